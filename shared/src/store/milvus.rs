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
//! This file holds the connection and the collection's lifecycle; the [`ImageIndex`]
//! operations are in `milvus_index.rs`, the column codec in `milvus_rows.rs`.
//!
//! [`ImageIndex`]: super::ImageIndex
//! [`filter`]: super::filter

use std::collections::HashMap;
use std::time::{Duration, Instant};

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::*;
use tokio::sync::OnceCell;

use super::milvus_rows::{classify, no_index, sdk_store};
use super::{schema, validate_object, ImageIndex, ImageRecord, IndexSpec, IndexedObject};
use crate::config::{MilvusIndexKind, MilvusSettings};
use crate::deadline::{self, Service};
use crate::{Error, Result};

/// Rows per upsert RPC in bulk writes (~2 MB at dimension 512).
const WRITE_BATCH: usize = 1000;

/// The Milvus-backed image index. Create one per process with [`MilvusIndex::connect`] and
/// share it (`&MilvusIndex` or an `Arc`): it holds one gRPC channel and is safe to use from
/// many tasks.
pub struct MilvusIndex {
    pub(super) client: ClientV2,
    pub(super) settings: MilvusSettings,
    pub(super) spec: IndexSpec,
    /// Set once `ensure_collection` has succeeded: the index actually present on the
    /// collection, which decides the search parameters.
    ready: OnceCell<MilvusIndexKind>,
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

    /// Drops the whole collection (all records). For tests and `reset`-style tooling.
    pub async fn drop_collection(&self) -> Result<()> {
        let name = self.collection();
        let exists = self
            .client
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name(name)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("has_collection", e))?
            .exists();
        if exists {
            self.client
                .drop_collection(
                    DropCollectionRequest::builder()
                        .collection_name(name)
                        .build()
                        .map_err(sdk_store)?,
                )
                .await
                .map_err(|e| classify("drop_collection", e))?;
        }
        Ok(())
    }

    /// Writes one row per location of each record, in batches. For bulk loads and benchmarks.
    pub async fn upsert_many(&self, records: &[ImageRecord]) -> Result<()> {
        self.ready().await?;
        let rows = records
            .iter()
            .flat_map(|r| r.locations.iter().map(|l| IndexedObject::of_record(r, l.clone())))
            .map(|row| validate_object(&row, &self.spec))
            .collect::<Result<Vec<_>>>()?;
        for batch in rows.chunks(WRITE_BATCH) {
            self.write(batch).await?;
        }
        Ok(())
    }

    /// Seals what was written and waits until the query node serves every row from indexed
    /// sealed segments. `describe_index` reporting every row indexed is not enough: until the
    /// query node has loaded a sealed segment's index, it searches that segment through an
    /// interim index with the server's own parameters (docs/milvus.md, "Fresh, not yet indexed
    /// data"). Only benchmarks and tests need this; normal operation lets Milvus do it in the
    /// background.
    ///
    /// What Milvus 2.3.5 reports (checked with `bench_store --trace-segments`):
    /// `GetQuerySegmentInfo` lists only sealed segments, never growing ones; a sealed segment
    /// is listed as soon as its raw data is loaded, with an empty index name until its index
    /// is; under a FLAT index the name stays empty for good (FLAT searches the raw data). So
    /// the wait also asks the data coordinator (`GetPersistentSegmentInfo`) for every segment
    /// holding rows, and requires each to be served: that covers rows still in a growing
    /// segment and a compacted segment the query node has not switched to yet.
    pub async fn flush_and_wait_indexed(&self, timeout: Duration) -> Result<()> {
        let kind = self.ready().await?;
        let started = Instant::now();
        self.client
            .flush(
                FlushRequest::builder()
                    .collection_names([self.collection()])
                    .wait_flushed_ms(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("flush", e))?;
        let total = self.count().await?;
        let indexed = |s: &ServedSegment| s.is_sealed() && (kind == MilvusIndexKind::Flat || s.has_index());
        loop {
            let served = self.served_segments().await?;
            let stored = self.stored_segments().await?;
            let ready: HashMap<i64, u64> = served
                .iter()
                .filter(|s| indexed(s))
                .map(|s| (s.id, u64::try_from(s.rows).unwrap_or(0)))
                .collect();
            let rows = ready.values().sum::<u64>();
            let unindexed = served.iter().any(|s| s.rows > 0 && !indexed(s));
            let missing: Vec<i64> = stored
                .iter()
                .filter(|(id, rows)| *rows > 0 && !ready.contains_key(id))
                .map(|(id, _)| *id)
                .collect();
            tracing::debug!(
                rows,
                total,
                unindexed,
                ?missing,
                ?served,
                "waiting for indexed sealed segments"
            );
            // `rows` counts deleted rows too until compaction drops them, hence `>=`.
            if !unindexed && missing.is_empty() && rows >= total {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::StoreUnavailable(format!(
                    "after {timeout:?} the query node serves {rows} of {total} rows from indexed sealed \
                     segments; segments not served yet: {missing:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Compacts the collection (merges small segments, drops deleted rows), then waits as
    /// [`MilvusIndex::flush_and_wait_indexed`] does until the query node serves the compacted
    /// segments with their index. For benchmarks: otherwise Milvus compacts on its own a minute
    /// or two after a bulk load (the upserts' delete records are enough to trigger it), and
    /// the segments, and with them an approximate index's answers, change mid-measurement.
    pub async fn compact_and_wait_indexed(&self, timeout: Duration) -> Result<()> {
        self.ready().await?;
        let started = Instant::now();
        let compaction = self
            .client
            .compact(
                CompactRequest::builder()
                    .collection_name(self.collection())
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("compact", e))?;
        let id = compaction.compaction_id();
        if id > 0 {
            loop {
                let state = self
                    .client
                    .get_compaction_state(
                        GetCompactionStateRequest::builder()
                            .compaction_id(id)
                            .build()
                            .map_err(sdk_store)?,
                    )
                    .await
                    .map_err(|e| classify("get_compaction_state", e))?;
                if state.state() == CompactionStateCode::Completed {
                    break;
                }
                if started.elapsed() > timeout {
                    return Err(Error::StoreUnavailable(format!(
                        "compaction {id} still running after {timeout:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.flush_and_wait_indexed(timeout.saturating_sub(started.elapsed()))
            .await
    }

    /// The segments the data coordinator holds for this collection (`GetPersistentSegmentInfo`:
    /// growing, sealed and flushed ones, not those compacted away), as (id, rows).
    async fn stored_segments(&self) -> Result<Vec<(i64, i64)>> {
        let response = self
            .client
            .list_persistent_segments(
                ListPersistentSegmentsRequest::builder()
                    .collection_name(self.collection())
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("list_persistent_segments", e))?;
        Ok(response
            .segments()
            .iter()
            .filter(|s| s.get_state() != SegmentState::Dropped)
            .map(|s| (s.get_segment_id(), s.get_row_count()))
            .collect())
    }

    /// The segments the query node serves for this collection (`GetQuerySegmentInfo`), for
    /// [`MilvusIndex::flush_and_wait_indexed`] and diagnostics.
    pub async fn served_segments(&self) -> Result<Vec<ServedSegment>> {
        let response = self
            .client
            .list_query_segments(
                ListQuerySegmentsRequest::builder()
                    .collection_name(self.collection())
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("list_query_segments", e))?;
        Ok(response
            .segments()
            .iter()
            .map(|s| ServedSegment {
                id: s.get_segment_id(),
                state: format!("{:?}", s.get_state()),
                rows: s.get_row_count(),
                index_name: s.get_index_name().to_owned(),
                index_id: s.get_index_id(),
            })
            .collect())
    }

    // ---- collection setup ----

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

    async fn prepare_collection(&self) -> Result<MilvusIndexKind> {
        let name = self.collection().to_owned();
        let exists = self
            .client
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name(&name)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("has_collection", e))?
            .exists();
        if !exists {
            let created = self
                .client
                .create_collection(
                    CreateCollectionRequest::builder()
                        .collection_name(&name)
                        .description(schema::description(&self.spec))
                        .schema(schema::collection_schema(&self.spec)?)
                        .properties(schema::properties(&self.spec))
                        .build()
                        .map_err(sdk_store)?,
                )
                .await;
            if let Err(e) = created {
                // Another process may have created it between our check and our create; the
                // checks below decide whether that collection is usable.
                tracing::info!(collection = %name, error = %e, "create_collection failed; re-checking");
            } else {
                tracing::info!(collection = %name, model = %self.spec.model, dimension = self.spec.dimension, "created Milvus collection");
            }
        }

        let described = self
            .client
            .describe_collection(
                DescribeCollectionRequest::builder()
                    .collection_name(&name)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("describe_collection", e))?;
        schema::check_existing(&name, described.description(), &self.spec)?;

        let index = match self.existing_index(&name).await? {
            Some(kind) => kind,
            None => {
                self.create_vector_index(&name).await?;
                self.settings.index
            }
        };

        let state = self
            .client
            .get_load_state(
                GetLoadStateRequest::builder()
                    .collection_name(&name)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("get_load_state", e))?
            .state();
        if state != LoadState::Loaded {
            let wait = self.settings.rpc_timeout.max(Duration::from_secs(120));
            self.client
                .load_collection(
                    LoadCollectionRequest::builder()
                        .collection_name(&name)
                        .sync(true)
                        .timeout_ms(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
                        .build()
                        .map_err(sdk_store)?,
                )
                .await
                .map_err(|e| classify("load_collection", e))?;
        }
        Ok(index)
    }

    /// The vector index on the collection, if any; refuses one that does not rank by cosine.
    async fn existing_index(&self, name: &str) -> Result<Option<MilvusIndexKind>> {
        let described = self
            .client
            .describe_index(
                DescribeIndexRequest::builder()
                    .collection_name(name)
                    .field_name(schema::EMBEDDING)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await;
        let described = match described {
            Ok(d) => d,
            Err(SdkError::Server(e)) if no_index(e.code(), e.reason()) => return Ok(None),
            Err(e) => return Err(classify("describe_index", e)),
        };
        let Some(index) = described
            .indexes()
            .iter()
            .find(|i| i.get_field_name() == schema::EMBEDDING)
        else {
            return Ok(None);
        };
        if index.get_metric_type() != MetricType::Cosine {
            return Err(Error::SchemaMismatch(format!(
                "collection {name:?} ranks by {:?}, not COSINE",
                index.get_metric_type()
            )));
        }
        let kind = match index.get_index_type() {
            IndexType::Hnsw => MilvusIndexKind::Hnsw,
            IndexType::IvfFlat => MilvusIndexKind::IvfFlat,
            IndexType::Flat => MilvusIndexKind::Flat,
            // AUTOINDEX and anything else: let the server pick the search parameters.
            _ => MilvusIndexKind::AutoIndex,
        };
        if kind != self.settings.index {
            tracing::warn!(collection = %name, existing = kind.as_str(), configured = self.settings.index.as_str(),
                "collection already has another index type; using it (drop the index to rebuild)");
        }
        Ok(Some(kind))
    }

    async fn create_vector_index(&self, name: &str) -> Result<()> {
        let s = &self.settings;
        let (index_type, params) = match s.index {
            MilvusIndexKind::Hnsw => (
                IndexType::Hnsw,
                HashMap::from([
                    ("M".to_owned(), s.hnsw_m.to_string()),
                    ("efConstruction".to_owned(), s.hnsw_ef_construction.to_string()),
                ]),
            ),
            MilvusIndexKind::IvfFlat => (
                IndexType::IvfFlat,
                HashMap::from([("nlist".to_owned(), s.ivf_nlist.to_string())]),
            ),
            MilvusIndexKind::AutoIndex => (IndexType::AutoIndex, HashMap::new()),
            MilvusIndexKind::Flat => (IndexType::Flat, HashMap::new()),
        };
        let mut param = IndexParam::new()
            .field_name(schema::EMBEDDING)
            .index_type(index_type)
            .metric_type(MetricType::Cosine);
        if !params.is_empty() {
            param = param.extra_params(params);
        }
        self.client
            .create_index(
                CreateIndexRequest::builder()
                    .collection_name(name)
                    .index_param(param)
                    // Building is asynchronous anyway; waiting here would fail on Milvus Lite,
                    // whose index state never reports "finished".
                    .sync(false)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("create_index", e))
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

/// One segment a query node serves, as `GetQuerySegmentInfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedSegment {
    pub id: i64,
    /// `Sealed` for every segment Milvus 2.3.5 lists (it does not list growing segments).
    pub state: String,
    pub rows: i64,
    /// The vector index the node has loaded for it; empty until then (the segment is searched
    /// through an interim index meanwhile), and always empty under a FLAT index.
    pub index_name: String,
    pub index_id: i64,
}

impl ServedSegment {
    pub fn is_sealed(&self) -> bool {
        self.state != "Growing"
    }

    pub fn has_index(&self) -> bool {
        !self.index_name.is_empty()
    }
}
