//! The search Lambda as a library: `main.rs` builds an [`App`] once per cold start and hands it
//! every request. Routes live in [`app`], request parsing in [`request`] (JSON bodies in [`body`]), error answers in
//! [`error`], the page and the OpenAPI document in [`assets`].

pub mod app;
pub mod assets;
pub mod body;
pub mod error;
pub mod index;
pub mod request;

use std::sync::Arc;

use anyhow::Context;
use clipsearch::clip::Clip;
use clipsearch::config::{ClipSettings, MilvusSettings};
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::search::{SearchSettings, Searcher};
use clipsearch::store::IndexSpec;

pub use app::{App, DEFAULT_MAX_BODY_BYTES, ROUTES};
pub use clipsearch::store::LazyMilvus;

/// The deployed function's types.
pub type SearchApp = App<Clip, LazyMilvus, S3Objects>;

/// One JSON object per log line (CloudWatch Logs Insights filters on the fields).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// Everything the search function is configured with, read from the environment in one place.
pub struct SearchConfig {
    pub search: SearchSettings,
    pub objects: ObjectSettings,
    pub clip: ClipSettings,
    pub milvus: MilvusSettings,
    /// `CLIPSEARCH_MAX_REQUEST_BYTES`.
    pub max_body_bytes: usize,
    /// `CLIPSEARCH_INVOCATION_TIMEOUT_SECS`.
    pub fallback_timeout: Option<std::time::Duration>,
    /// `CLIPSEARCH_METRICS_NAMESPACE`.
    pub metrics_namespace: String,
}

impl SearchConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let objects = ObjectSettings::from_env()?;
        let clip = ClipSettings::from_env()?;
        Ok(Self {
            search: SearchSettings::from_env_with(&objects, &clip)?,
            objects,
            clip,
            milvus: MilvusSettings::from_env()?,
            max_body_bytes: clipsearch::config::max_request_bytes(DEFAULT_MAX_BODY_BYTES)?,
            fallback_timeout: clipsearch::config::invocation_timeout()?,
            metrics_namespace: clipsearch::config::metrics_namespace(),
        })
    }
}

/// The cold start with the configuration of the environment ([`build`]).
pub async fn from_env() -> anyhow::Result<SearchApp> {
    build(SearchConfig::from_env()?).await
}

/// The cold start: loads only the towers the configuration enables, makes the S3 client and
/// tries Milvus within what is left of the init phase (a failure there is logged, not fatal:
/// requests connect under their own deadline, and answer 503 while Milvus does not).
pub async fn build(config: SearchConfig) -> anyhow::Result<SearchApp> {
    let started = std::time::Instant::now();
    let settings = config.search;
    let objects = S3Objects::connect(&config.objects).await;
    // On Lambda the model is copied from CLIPSEARCH_MODEL_S3_URI to /tmp first.
    let towers = settings.towers();
    let clip_settings = clipsearch::model_source::resolve(config.clip, Some(&objects), towers).await?;
    let clip = tokio::task::spawn_blocking(move || Clip::load(&clip_settings, towers))
        .await
        .context("loading the model")??;
    let spec = IndexSpec::of(&clip);
    let model_ms = started.elapsed().as_secs_f64() * 1000.0;
    let index = LazyMilvus::new(config.milvus, spec);
    index.warm_up(started).await;
    tracing::info!(
        model = clip.name(),
        text = towers.text,
        image = towers.image,
        model_ms,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ready"
    );
    let searcher = Searcher::new(Arc::new(clip), index, Some(objects), settings);
    Ok(App::new(searcher, config.max_body_bytes)
        .with_fallback_timeout(config.fallback_timeout)
        .with_metrics(config.metrics_namespace))
}
