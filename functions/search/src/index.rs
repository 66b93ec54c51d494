//! What `GET /health` asks of the index. The deployed index is [`LazyMilvus`] (in the library:
//! the ingest function connects the same way), so a Milvus that is down when the function
//! starts costs requests a 503 (and the next request a new attempt) instead of failing the
//! whole execution environment.

use clipsearch::store::LazyMilvus;
use clipsearch::Result;

/// What `GET /health` asks of the index.
#[allow(async_fn_in_trait)]
pub trait Health {
    /// `Ok` when the index answers and its collection is usable.
    async fn health(&self) -> Result<()>;
}

impl Health for LazyMilvus {
    async fn health(&self) -> Result<()> {
        LazyMilvus::health(self).await
    }
}
