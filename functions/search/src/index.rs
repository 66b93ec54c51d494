//! The Milvus connection of a search deployment: made once per cold start, but lazily, so that
//! a Milvus that is down when the function starts costs requests a 503 (and the next request
//! a new attempt) instead of failing the whole execution environment.

use clipsearch::config::MilvusSettings;
use clipsearch::store::{
    ImageIndex, ImageRecord, IndexSpec, IndexedObject, KeyRange, Location, MemoryIndex, MilvusIndex, SearchHit,
    SearchRequest,
};
use clipsearch::Result;
use tokio::sync::OnceCell;

/// What `GET /health` asks of the index.
#[allow(async_fn_in_trait)]
pub trait Health {
    /// `Ok` when the index answers and its collection is usable.
    async fn health(&self) -> Result<()>;
}

pub struct LazyMilvus {
    settings: MilvusSettings,
    spec: IndexSpec,
    index: OnceCell<MilvusIndex>,
}

impl LazyMilvus {
    pub fn new(settings: MilvusSettings, spec: IndexSpec) -> Self {
        Self {
            settings,
            spec,
            index: OnceCell::new(),
        }
    }

    /// The connected index; connects (and checks the collection) on first use.
    pub async fn connected(&self) -> Result<&MilvusIndex> {
        self.index
            .get_or_try_init(|| async {
                let index = MilvusIndex::connect(&self.settings, self.spec.clone()).await?;
                index.ensure_collection().await?;
                Ok(index)
            })
            .await
    }
}

impl Health for LazyMilvus {
    async fn health(&self) -> Result<()> {
        self.connected().await?.health().await
    }
}

/// The in-memory index is always healthy (unit tests of the routes use it).
impl Health for MemoryIndex {
    async fn health(&self) -> Result<()> {
        Ok(())
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

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.connected().await?.search(request).await
    }

    async fn count(&self) -> Result<u64> {
        self.connected().await?.count().await
    }
}
