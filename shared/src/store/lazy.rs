//! The Milvus index of a deployed function: connected on first use, not at cold start.
//!
//! Lambda's init phase has 10 s and no invocation deadline to answer by. A Milvus that is slow,
//! down or only reachable through a VPC endpoint that is still coming up would fail (or stall)
//! the whole execution environment there. Connecting inside the first invocation instead puts
//! the connection, the Secrets Manager read and the collection load under that invocation's
//! deadline ([`crate::deadline`]): a slow Milvus costs one request a 503 (search) or one batch a
//! retry (ingest), and the next invocation tries again.

use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{
    IdPrefixScan, ImageIndex, ImageRecord, IndexSpec, IndexedObject, KeyRange, Location, MilvusIndex, SearchHit,
    SearchRequest,
};
use crate::config::MilvusSettings;
use crate::deadline::{self, Service};
use crate::Result;

/// Lambda's init phase limit, less a second for the runtime's own start.
const INIT_LIMIT: Duration = Duration::from_secs(9);
/// The most a cold start spends on Milvus.
const INIT_CONNECT: Duration = Duration::from_secs(3);

pub struct LazyMilvus {
    settings: MilvusSettings,
    spec: IndexSpec,
    /// The token read from `MILVUS_TOKEN_SECRET_ID`, once per container.
    token: OnceCell<String>,
    index: OnceCell<MilvusIndex>,
}

impl LazyMilvus {
    pub fn new(settings: MilvusSettings, spec: IndexSpec) -> Self {
        Self {
            settings,
            spec,
            token: OnceCell::new(),
            index: OnceCell::new(),
        }
    }

    /// The collection's name (no connection needed).
    pub fn collection(&self) -> &str {
        &self.settings.collection
    }

    /// The connected index with its collection ready; connects (reading the token, creating or
    /// loading the collection) on first use, within the invocation's deadline. A failed or
    /// cut-off attempt leaves nothing behind: the next call starts again.
    pub async fn connected(&self) -> Result<&MilvusIndex> {
        self.index
            .get_or_try_init(|| async {
                let mut settings = self.settings.clone();
                if let Some(secret) = &settings.token_secret {
                    let token = self
                        .token
                        .get_or_try_init(|| crate::secrets::milvus_token(secret))
                        .await?;
                    settings.token = Some(token.clone());
                }
                let what = format!("connecting to Milvus at {}", settings.uri);
                let index = deadline::bounded(
                    Service::Milvus,
                    &what,
                    MilvusIndex::connect(&settings, self.spec.clone()),
                )
                .await?;
                index.ensure_collection().await?;
                Ok(index)
            })
            .await
    }

    /// Connects during a cold start, if that fits: Lambda's init phase has 10 s in all, and the
    /// model came first. Gives Milvus what is left of 9 s since `init_started`, at most 3 s; a
    /// failure is only logged (the first invocation connects under its own deadline).
    pub async fn warm_up(&self, init_started: Instant) {
        let left = INIT_LIMIT.saturating_sub(init_started.elapsed()).min(INIT_CONNECT);
        if left.is_zero() {
            return;
        }
        let until = Instant::now() + left + deadline::RESERVE;
        if let Err(e) = deadline::within(Some(until), self.connected()).await {
            tracing::warn!(code = e.code(), error = %e, "Milvus not ready at start; invocations will connect");
        }
    }

    /// The server answers and the collection is usable.
    pub async fn health(&self) -> Result<()> {
        self.connected().await?.health().await
    }
}

impl ImageIndex for LazyMilvus {
    async fn exists(&self, id: &str) -> Result<bool> {
        self.connected().await?.exists(id).await
    }

    async fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        self.connected().await?.get(id).await
    }

    async fn vector_of(&self, id: &str) -> Result<Option<IndexedObject>> {
        self.connected().await?.vector_of(id).await
    }

    async fn object(&self, location: &Location) -> Result<Option<IndexedObject>> {
        self.connected().await?.object(location).await
    }

    async fn put_object(&self, object: IndexedObject) -> Result<()> {
        self.connected().await?.put_object(object).await
    }

    async fn remove_object(&self, location: &Location) -> Result<Option<String>> {
        self.connected().await?.remove_object(location).await
    }

    async fn objects_in(&self, range: &KeyRange, limit: usize) -> Result<Vec<IndexedObject>> {
        self.connected().await?.objects_in(range, limit).await
    }

    async fn rows_with_id_prefix(&self, scan: &IdPrefixScan<'_>) -> Result<Option<Vec<IndexedObject>>> {
        self.connected().await?.rows_with_id_prefix(scan).await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.connected().await?.search(request).await
    }

    async fn count(&self) -> Result<u64> {
        self.connected().await?.count().await
    }
}
