//! Where the model directory comes from. Locally it is a folder (`CLIPSEARCH_MODEL_DIR`); on
//! Lambda a full-size CLIP export (~600 MB fp32) is over the 250 MB package and layer limit, so
//! the functions copy it from an S3 prefix (`CLIPSEARCH_MODEL_S3_URI`) into /tmp at cold start.
//! A separate text tower (`CLIPSEARCH_TEXT_MODEL_S3_URI`) is copied the same way. A warm
//! container finds each copy complete (a marker file) and skips the download.

use std::path::{Path, PathBuf};

use crate::clip::model_dir::is_unused_tower_file;
use crate::clip::Towers;
use crate::config::ClipSettings;
use crate::objects::{parse_s3_url, S3Objects};
use crate::{Error, Result};

/// Written last, so a copy interrupted by a timeout is never mistaken for a complete one.
const COMPLETE_MARKER: &str = ".clipsearch-complete";

/// Where the functions copy their models from: `CLIPSEARCH_MODEL_S3_URI` (the model) and
/// `CLIPSEARCH_TEXT_MODEL_S3_URI` (a separate text tower), each `s3://bucket/prefix/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSources {
    pub model: Option<String>,
    pub text_model: Option<String>,
}

/// Makes sure the model directories hold what the sources name (only the files `towers`
/// needs) and returns the settings to load them with. Without sources: the settings as given.
pub async fn resolve(settings: ClipSettings, objects: Option<&S3Objects>, towers: Towers) -> Result<ClipSettings> {
    resolve_from(&ModelSources::from_env(), settings, objects, towers).await
}

/// [`resolve`] with the sources given.
pub async fn resolve_from(
    sources: &ModelSources,
    mut settings: ClipSettings,
    objects: Option<&S3Objects>,
    towers: Towers,
) -> Result<ClipSettings> {
    if sources.model.is_none() && sources.text_model.is_none() {
        return Ok(settings);
    }
    let objects = objects.ok_or_else(|| Error::Config("CLIPSEARCH_*_S3_URI needs S3 access".into()))?;
    let separate_text = towers.text && (sources.text_model.is_some() || settings.text_model_dir.is_some());
    if let Some(uri) = &sources.model {
        let dir = settings
            .model_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/tmp/clipsearch-model"));
        // Text queries go to the separate tower, so the model's own text graph is not copied,
        // unless it is all a text-only function would copy (the model directory must hold a
        // tower to open).
        let needed = Towers {
            image: towers.image,
            text: towers.text && (!separate_text || !towers.image),
        };
        download(objects, uri, &dir, needed).await?;
        settings.model_dir = Some(dir);
    }
    if let Some(uri) = &sources.text_model {
        let dir = settings
            .text_model_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/tmp/clipsearch-text-model"));
        download(objects, uri, &dir, Towers::TEXT).await?;
        settings.text_model_dir = Some(dir);
    }
    Ok(settings)
}

/// Copies the objects under the `s3://bucket/prefix/` into `dir`, keeping relative paths, but
/// for the ONNX files of towers `towers` leaves out.
pub async fn download(objects: &S3Objects, uri: &str, dir: &Path, towers: Towers) -> Result<()> {
    if dir.join(COMPLETE_MARKER).exists() {
        return Ok(());
    }
    let (bucket, prefix) = parse_s3_url(uri)
        .ok_or_else(|| Error::Config(format!("CLIPSEARCH_MODEL_S3_URI={uri:?} is not s3://bucket/prefix")))?;
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix
    } else {
        format!("{prefix}/")
    };
    let listed = objects.list(&bucket, &prefix).await?;
    if listed.is_empty() {
        return Err(Error::Config(format!("no model files under {uri}")));
    }
    for object in listed {
        let relative = &object.key[prefix.len()..];
        // Never write outside the model directory, whatever the keys say.
        if relative.is_empty() || relative.ends_with('/') || relative.split('/').any(|p| p == ".." || p.is_empty()) {
            continue;
        }
        // source/ holds the weights an export was made from (scripts/download-model.sh): never
        // loaded, often as large as the model.
        if is_unused_tower_file(relative, towers) || relative.starts_with("source/") {
            continue;
        }
        let target = dir.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        objects.download_to(&bucket, &object.key, &target).await?;
    }
    std::fs::write(dir.join(COMPLETE_MARKER), uri).map_err(|e| Error::io("writing the model marker", e))?;
    Ok(())
}
