//! [`ImageIndex`] over Milvus through `milvus-sdk-rust`'s v2 client.
//!
//! SDK/server quirks handled here and nowhere else:
//! - `get()` and `delete().ids()` send templated filters that Milvus 2.3 rejects, so point reads
//!   and deletes use `query`/`delete` with a literal `id in ["…"]` filter.
//! - `SingleResult::rows()` fails on search results from 2.3 ("primary-key or score field name
//!   is empty"), so hits are decoded from `get_ids`/`get_scores`/`get_output_fields`.
//! - The SDK's default retry policy is 75 attempts (minutes when the server is down); it is
//!   bounded here by `MILVUS_TIMEOUT_SECS` so a Lambda fails fast with a transient error.
//! - `like` in 2.3 only does prefix patterns on scalars, and its wildcard escaping differs
//!   between versions, so key-prefix filters are string ranges instead (see [`filter`]).
//!
//! This file holds the connection and the RPC wrapper; the collection's lifecycle is in
//! `milvus_collection.rs`, bulk writes and segment state in `milvus_segments.rs`, the
//! [`ImageIndex`] operations in `milvus_index.rs`, the column codec and the SDK errors'
//! classification in `milvus_rows.rs`.
//!
//! [`ImageIndex`]: super::ImageIndex
//! [`filter`]: super::filter

use std::collections::HashMap;
use std::time::Duration;

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::*;
use tokio::sync::OnceCell;

use super::milvus_rows::{classify, sdk_store};
use super::IndexSpec;
use crate::config::{MilvusIndexKind, MilvusSettings};
use crate::deadline::{self, Service};
use crate::{Error, Result};

/// The Milvus-backed image index. Create one per process with [`MilvusIndex::connect`] and
/// share it (`&MilvusIndex` or an `Arc`): it holds one gRPC channel and is safe to use from
/// many tasks.
pub struct MilvusIndex {
    pub(super) client: ClientV2,
    pub(super) settings: MilvusSettings,
    pub(super) spec: IndexSpec,
    /// Set once `ensure_collection` has succeeded: the index actually present on the
    /// collection, which decides the search parameters.
    pub(super) ready: OnceCell<MilvusIndexKind>,
}

impl std::fmt::Debug for MilvusIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusIndex")
            .field("uri", &self.settings.uri)
            .field("collection", &self.settings.collection)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl MilvusIndex {
    /// Connects (waiting up to `connect_timeout` for the server). Does not touch the
    /// collection: [`MilvusIndex::ensure_collection`] does, and every operation calls it
    /// lazily the first time.
    pub async fn connect(settings: &MilvusSettings, spec: IndexSpec) -> Result<Self> {
        if spec.dimension == 0 || spec.dimension > 32_768 {
            return Err(Error::Config(format!(
                "vector dimension {} is outside 1..=32768",
                spec.dimension
            )));
        }
        if spec.model.trim().is_empty() {
            return Err(Error::Config("the model name is empty".into()));
        }
        let mut config = ConnectConfig::new()
            .uri(settings.uri.clone())
            .connect_timeout(settings.connect_timeout)
            .rpc_timeout(settings.rpc_timeout)
            // Client telemetry heartbeats are a Zilliz feature; they only add traffic here.
            .telemetry(TelemetryConfig::new().enabled(false))
            .retry(
                RetryConfig::new()
                    .max_attempts(6)
                    .max_retry_timeout(settings.rpc_timeout),
            );
        if let Some(token) = &settings.token {
            config = config.token(token.clone());
        } else if let Some(user) = &settings.user {
            config = config.username_password(user, settings.password.as_deref().unwrap_or_default());
        }
        if let Some(database) = &settings.database {
            config = config.database(database.clone());
        }
        let client = ClientV2::new(&config)
            .await
            .map_err(|e| classify(&format!("connecting to Milvus at {}", settings.uri), e))?;
        Ok(Self {
            client,
            settings: settings.clone(),
            spec,
            ready: OnceCell::new(),
        })
    }

    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    pub fn collection(&self) -> &str {
        &self.settings.collection
    }

    /// Makes the collection usable: creates it (schema, vector index) when missing, refuses
    /// one built for another model or dimension, and loads it. Runs once per process; later
    /// calls return immediately. Concurrent first calls from several processes are safe.
    pub async fn ensure_collection(&self) -> Result<()> {
        self.ready().await.map(|_| ())
    }

    /// The server answers and says it is healthy.
    pub async fn ping(&self) -> Result<()> {
        let request = CheckHealthRequest::builder().build().map_err(sdk_store)?;
        let response = self.rpc("health check", self.client.check_health(request)).await?;
        if response.is_healthy() {
            Ok(())
        } else {
            Err(Error::StoreUnavailable(format!(
                "Milvus reports unhealthy: {}",
                response.reasons().join("; ")
            )))
        }
    }

    /// [`MilvusIndex::ping`] plus a usable (existing, matching, loaded) collection.
    pub async fn health(&self) -> Result<()> {
        self.ping().await?;
        self.ensure_collection().await
    }

    /// One RPC: its SDK error classified as ours, and cut off at the invocation's deadline
    /// ([`crate::deadline`]).
    pub(super) async fn rpc<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<T, SdkError>>,
    ) -> Result<T> {
        self.rpc_within(what, None, call).await
    }

    /// One RPC, also cut off after `limit` when given.
    pub(super) async fn rpc_within<T>(
        &self,
        what: &str,
        limit: Option<Duration>,
        call: impl std::future::Future<Output = std::result::Result<T, SdkError>>,
    ) -> Result<T> {
        deadline::bounded_by(Service::Milvus, &format!("Milvus {what}"), limit, async {
            call.await.map_err(|e| classify(what, e))
        })
        .await
    }

    /// The collection, checked and loaded once per process. Creating or loading it can take
    /// minutes on a big collection: it never waits longer than the invocation can (a cut-off
    /// wait is started again by the next call, and the server keeps loading meanwhile).
    pub(super) async fn ready(&self) -> Result<MilvusIndexKind> {
        self.ready
            .get_or_try_init(|| {
                deadline::bounded(
                    Service::Milvus,
                    "Milvus collection set-up (create or load)",
                    self.prepare_collection(),
                )
            })
            .await
            .copied()
    }

    pub(super) fn search_params(&self, index: MilvusIndexKind, top_k: usize) -> HashMap<String, String> {
        match index {
            MilvusIndexKind::Hnsw => {
                // HNSW needs ef >= top_k.
                let ef = (self.settings.search_ef as usize).max(top_k);
                HashMap::from([("ef".to_owned(), ef.to_string())])
            }
            MilvusIndexKind::IvfFlat => HashMap::from([(
                "nprobe".to_owned(),
                self.settings.ivf_nprobe.min(self.settings.ivf_nlist).to_string(),
            )]),
            MilvusIndexKind::AutoIndex | MilvusIndexKind::Flat => HashMap::new(),
        }
    }
}
