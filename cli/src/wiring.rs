//! The CLI's composition root: how a command gets its model, index, S3 client, use case and log
//! output, written once here (the functions wire theirs in `functions/*/src`). Settings come
//! from `clipsearch::config`; a command's `--model` wins over `CLIPSEARCH_MODEL_DIR`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clipsearch::clip::{Clip, Towers};
use clipsearch::config::{ClipSettings, MilvusSettings};
use clipsearch::ingest::ClipIngestor;
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::search::{SearchSettings, Searcher};
use clipsearch::store::{IndexSpec, MilvusIndex};

/// The search use case as the CLI runs it: no presigned URLs.
pub type LocalSearcher = Searcher<Clip, MilvusIndex, S3Objects>;

/// The encoder settings, with `model` (the command's flag) as the model directory when given.
pub fn clip_settings(model: Option<&Path>) -> Result<ClipSettings> {
    let settings = ClipSettings::from_env()?;
    Ok(ClipSettings {
        model_dir: model.map(Path::to_path_buf).or(settings.model_dir.clone()),
        ..settings
    })
}

/// The S3 client (`CLIPSEARCH_S3_*`).
pub async fn s3() -> Result<S3Objects> {
    Ok(S3Objects::connect(&ObjectSettings::from_env()?).await)
}

/// The Milvus index of `spec`'s model, connected.
pub async fn connect_index(spec: IndexSpec) -> Result<MilvusIndex> {
    let milvus = MilvusSettings::from_env()?;
    MilvusIndex::connect(&milvus, spec)
        .await
        .with_context(|| format!("connecting to Milvus at {}", milvus.uri))
}

/// The index that `model`'s vectors live in, for commands that only read stored rows: the text
/// tower, the smaller one, is loaded to name it.
pub async fn index_of(model: Option<&Path>) -> Result<MilvusIndex> {
    let clip = Clip::load(&clip_settings(model)?, Towers::TEXT)?;
    connect_index(IndexSpec::of(&clip)).await
}

/// The search use case over `model`'s `towers` and its index.
pub async fn searcher(model: &Path, towers: Towers, settings: SearchSettings) -> Result<LocalSearcher> {
    let clip = Clip::load(&clip_settings(Some(model))?, towers)?;
    let index = connect_index(IndexSpec::of(&clip)).await?;
    Ok(Searcher::new(Arc::new(clip), index, None, settings))
}

/// The ingest use case, wired as the ingest function wires it ([`ClipIngestor::from_env`]).
pub async fn ingestor(model: Option<&Path>) -> Result<ClipIngestor> {
    ClipIngestor::from_env(clip_settings(model)?)
        .await
        .context("connecting the ingest pipeline (model, Milvus, S3)")
}

/// Logs to stderr, filtered by `RUST_LOG` or else `default_filter`.
pub fn log_to_stderr(default_filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .try_init();
}
