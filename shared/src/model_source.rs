//! Where the model directory comes from. Locally it is a folder (`CLIPSEARCH_MODEL_DIR`); on
//! Lambda a full-size CLIP export (~600 MB fp32) is over the 250 MB package and layer limit, so
//! the functions copy it from an S3 prefix (`CLIPSEARCH_MODEL_S3_URI`) into /tmp at cold start.
//! A warm container finds the copy complete (a marker file) and skips the download.

use std::path::{Path, PathBuf};

use crate::clip::model_dir::is_unused_tower_file;
use crate::clip::Towers;
use crate::config::{env_opt, ClipSettings};
use crate::objects::{parse_s3_url, S3Objects};
use crate::{Error, Result};

/// Written last, so a copy interrupted by a timeout is never mistaken for a complete one.
const COMPLETE_MARKER: &str = ".clipsearch-complete";

/// Makes sure `settings.model_dir` holds the model, downloading it from
/// `CLIPSEARCH_MODEL_S3_URI` when that is set (only the files `towers` needs), and returns the
/// settings to load it with.
pub async fn resolve(settings: ClipSettings, objects: Option<&S3Objects>, towers: Towers) -> Result<ClipSettings> {
    let Some(uri) = env_opt("CLIPSEARCH_MODEL_S3_URI") else {
        return Ok(settings);
    };
    let objects = objects.ok_or_else(|| Error::Config("CLIPSEARCH_MODEL_S3_URI needs S3 access".into()))?;
    let dir = settings
        .model_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp/clipsearch-model"));
    download(objects, &uri, &dir, towers).await?;
    Ok(ClipSettings {
        model_dir: Some(dir),
        ..settings
    })
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
        if is_unused_tower_file(relative, towers) {
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
