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

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::*;
use tokio::sync::{Mutex, OnceCell};

use super::schema::{self, MAX_LOCATIONS};
use super::{
    dedup_locations, filter, matching_first, normalize_id, too_many_locations, validate_record, validate_search,
    validate_vector, ImageIndex, ImageRecord, IndexSpec, Location, RemoveOutcome, SearchHit, SearchRequest,
};
use crate::config::{MilvusIndexKind, MilvusSettings};
use crate::{Error, Result};

/// Rows per upsert RPC in bulk writes (~2 MB at dimension 512).
const WRITE_BATCH: usize = 1000;
/// In-process lock stripes serialising read-modify-write of one record's locations.
const LOCK_STRIPES: usize = 64;

/// The Milvus-backed image index. Create one per process with [`MilvusIndex::connect`] and
/// share it (`&MilvusIndex` or an `Arc`): it holds one gRPC channel and is safe to use from
/// many tasks.
pub struct MilvusIndex {
    client: ClientV2,
    settings: MilvusSettings,
    spec: IndexSpec,
    /// Set once `ensure_collection` has succeeded: the index actually present on the
    /// collection, which decides the search parameters.
    ready: OnceCell<MilvusIndexKind>,
    locks: Vec<Mutex<()>>,
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
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
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
        let response = self
            .client
            .check_health(CheckHealthRequest::builder().build().map_err(sdk_store)?)
            .await
            .map_err(|e| classify("health check", e))?;
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

    /// Writes whole records as given (replacing any record with the same id, locations
    /// included, without merging). For bulk loads and benchmarks; ingest uses
    /// [`ImageIndex::upsert`], which merges locations.
    pub async fn upsert_many(&self, records: &[ImageRecord]) -> Result<()> {
        self.ready().await?;
        let checked = records
            .iter()
            .map(|r| validate_record(r, &self.spec))
            .collect::<Result<Vec<_>>>()?;
        for batch in checked.chunks(WRITE_BATCH) {
            self.write(batch).await?;
        }
        Ok(())
    }

    /// Seals what was written and waits until the vector index covers every row, so that
    /// searches run on the built index rather than on brute-force growing segments. Only
    /// benchmarks need this; normal operation lets Milvus do it in the background.
    pub async fn flush_and_wait_indexed(&self, timeout: Duration) -> Result<()> {
        self.ready().await?;
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
        loop {
            let described = self
                .client
                .describe_index(
                    DescribeIndexRequest::builder()
                        .collection_name(self.collection())
                        .field_name(schema::EMBEDDING)
                        .build()
                        .map_err(sdk_store)?,
                )
                .await
                .map_err(|e| classify("describe_index", e))?;
            let done = described.indexes().iter().any(|index| {
                index.get_pending_rows() == 0 && u64::try_from(index.get_indexed_rows()).unwrap_or(0) >= total
            });
            if done {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::StoreUnavailable(format!(
                    "index build not finished after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // ---- collection setup ----

    async fn ready(&self) -> Result<MilvusIndexKind> {
        self.ready.get_or_try_init(|| self.prepare_collection()).await.copied()
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
            Err(SdkError::Server(e)) if e.reason().to_ascii_lowercase().contains("not found") => return Ok(None),
            Err(SdkError::Server(e)) if e.reason().to_ascii_lowercase().contains("not exist") => return Ok(None),
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

    fn search_params(&self, index: MilvusIndexKind, top_k: usize) -> HashMap<String, String> {
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

    // ---- reads and writes ----

    fn lock_for(&self, id: &str) -> &Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        &self.locks[(hasher.finish() as usize) % self.locks.len()]
    }

    /// Rows matching `expr`, strongly consistent (reads that feed a write must see the
    /// latest state).
    async fn query(&self, expr: String, with_embedding: bool) -> Result<Vec<ImageRecord>> {
        let mut fields: Vec<&str> = schema::METADATA_FIELDS.to_vec();
        fields.push(schema::MODEL);
        if with_embedding {
            fields.push(schema::EMBEDDING);
        }
        let response = self
            .client
            .query(
                QueryRequest::builder()
                    .collection_name(self.collection())
                    .filter(expr)
                    .output_fields(fields)
                    .consistency_level(ConsistencyLevel::Strong)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("query", e))?;
        let columns = Columns::new(response.results().get_output_fields());
        let ids = columns.strings(schema::ID)?;
        (0..ids.len()).map(|row| columns.record(row, with_embedding)).collect()
    }

    async fn fetch(&self, id: &str, with_embedding: bool) -> Result<Option<ImageRecord>> {
        let expr = filter::in_list(schema::ID, [id])?;
        Ok(self.query(expr, with_embedding).await?.into_iter().next())
    }

    async fn write(&self, records: &[ImageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        let mut ids = Vec::with_capacity(n);
        let mut embeddings = Vec::with_capacity(n);
        let mut buckets = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut content_types = Vec::with_capacity(n);
        let mut widths = Vec::with_capacity(n);
        let mut heights = Vec::with_capacity(n);
        let mut sizes = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut models = Vec::with_capacity(n);
        for r in records {
            ids.push(r.id.clone());
            embeddings.push(r.embedding.clone());
            buckets.push(r.locations.iter().map(|l| l.bucket.clone()).collect());
            keys.push(r.locations.iter().map(|l| l.key.clone()).collect());
            content_types.push(r.content_type.clone());
            widths.push(i64::from(r.width));
            heights.push(i64::from(r.height));
            sizes.push(i64::try_from(r.byte_size).unwrap_or(i64::MAX));
            times.push(r.ingested_at_ms);
            models.push(r.model.clone());
        }
        let columns = vec![
            FieldData::VarChar {
                name: schema::ID.into(),
                values: ids,
            },
            FieldData::FloatVector {
                name: schema::EMBEDDING.into(),
                values: embeddings,
            },
            FieldData::ArrayVarChar {
                name: schema::BUCKETS.into(),
                values: buckets,
            },
            FieldData::ArrayVarChar {
                name: schema::KEYS.into(),
                values: keys,
            },
            FieldData::VarChar {
                name: schema::CONTENT_TYPE.into(),
                values: content_types,
            },
            FieldData::Int64 {
                name: schema::WIDTH.into(),
                values: widths,
            },
            FieldData::Int64 {
                name: schema::HEIGHT.into(),
                values: heights,
            },
            FieldData::Int64 {
                name: schema::BYTE_SIZE.into(),
                values: sizes,
            },
            FieldData::Int64 {
                name: schema::INGESTED_AT_MS.into(),
                values: times,
            },
            FieldData::VarChar {
                name: schema::MODEL.into(),
                values: models,
            },
        ];
        let insert = InsertRequest::builder()
            .collection_name(self.collection())
            .columns(columns)
            .build()
            .map_err(sdk_store)?;
        self.client
            .upsert(UpsertRequest::builder().insert(insert).build().map_err(sdk_store)?)
            .await
            .map_err(|e| classify("upsert", e))?;
        Ok(())
    }

    async fn delete_ids(&self, ids: &[&str]) -> Result<()> {
        let expr = filter::in_list(schema::ID, ids.iter().copied())?;
        self.client
            .delete(
                DeleteRequest::builder()
                    .collection_name(self.collection())
                    .filter(expr)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("delete", e))?;
        Ok(())
    }

    /// Removes `locations` from every record other than `owner` (the objects now hold the
    /// owner's bytes). Each record is rewritten under its own lock; none is held on entry.
    async fn detach(&self, locations: &[Location], owner: &str) -> Result<()> {
        if locations.is_empty() {
            return Ok(());
        }
        let keys = locations
            .iter()
            .map(|l| filter::string_literal(&l.key))
            .collect::<Result<Vec<_>>>()?;
        let expr = filter::and_all(&[
            format!("array_contains_any({}, [{}])", schema::KEYS, keys.join(", ")),
            filter::not_equals(schema::ID, owner)?,
        ]);
        let others = self.query(expr, false).await?;
        for other in others {
            for location in locations {
                if other.locations.contains(location) {
                    self.remove_from(&other.id, location).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes one location from one record (deleting the record with its last location).
    /// `None` when the record does not (or no longer) list it.
    async fn remove_from(&self, id: &str, location: &Location) -> Result<Option<RemoveOutcome>> {
        let _guard = self.lock_for(id).lock().await;
        let Some(mut record) = self.fetch(id, true).await? else {
            return Ok(None);
        };
        let before = record.locations.len();
        record.locations.retain(|l| l != location);
        if record.locations.len() == before {
            return Ok(None);
        }
        if record.locations.is_empty() {
            self.delete_ids(&[id]).await?;
            Ok(Some(RemoveOutcome::RecordDeleted { id: id.to_owned() }))
        } else {
            self.write(std::slice::from_ref(&record)).await?;
            Ok(Some(RemoveOutcome::LocationRemoved { id: id.to_owned() }))
        }
    }

    fn prefix_clause(prefix: &str) -> Result<Option<String>> {
        // One range per array slot: "some key starts with prefix". Out-of-range slots
        // evaluate to false.
        let clauses = (0..MAX_LOCATIONS)
            .map(|slot| filter::starts_with(&format!("{}[{slot}]", schema::KEYS), prefix))
            .collect::<Result<Vec<_>>>()?;
        let clauses: Vec<String> = clauses.into_iter().flatten().collect();
        Ok((!clauses.is_empty()).then(|| clauses.join(" or ")))
    }
}

impl ImageIndex for MilvusIndex {
    async fn exists(&self, id: &str) -> Result<bool> {
        let id = normalize_id(id)?;
        self.ready().await?;
        let response = self
            .client
            .query(
                QueryRequest::builder()
                    .collection_name(self.collection())
                    .filter(filter::in_list(schema::ID, [id.as_str()])?)
                    .output_fields([schema::ID])
                    .consistency_level(ConsistencyLevel::Strong)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("query", e))?;
        let columns = Columns::new(response.results().get_output_fields());
        Ok(!columns.strings(schema::ID)?.is_empty())
    }

    async fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        let id = normalize_id(id)?;
        self.ready().await?;
        self.fetch(&id, true).await
    }

    async fn upsert(&self, record: ImageRecord) -> Result<()> {
        let mut record = validate_record(&record, &self.spec)?;
        self.ready().await?;
        let added = {
            let _guard = self.lock_for(&record.id).lock().await;
            let existing = self.fetch(&record.id, false).await?;
            let added: Vec<Location> = match &existing {
                Some(old) => record
                    .locations
                    .iter()
                    .filter(|l| !old.locations.contains(l))
                    .cloned()
                    .collect(),
                None => record.locations.clone(),
            };
            if let Some(old) = existing {
                let mut merged = old.locations;
                merged.extend(record.locations);
                record.locations = dedup_locations(merged);
                record.ingested_at_ms = record.ingested_at_ms.min(old.ingested_at_ms);
                if record.locations.len() > MAX_LOCATIONS {
                    return Err(too_many_locations(&record.id));
                }
            }
            self.write(std::slice::from_ref(&record)).await?;
            added
        };
        self.detach(&added, &record.id).await
    }

    async fn add_location(&self, id: &str, location: &Location) -> Result<bool> {
        let id = normalize_id(id)?;
        location.validate()?;
        self.ready().await?;
        {
            let _guard = self.lock_for(&id).lock().await;
            let Some(mut record) = self.fetch(&id, true).await? else {
                return Ok(false);
            };
            if record.locations.contains(location) {
                return Ok(true);
            }
            if record.locations.len() >= MAX_LOCATIONS {
                return Err(too_many_locations(&id));
            }
            record.locations.push(location.clone());
            self.write(std::slice::from_ref(&record)).await?;
        }
        self.detach(std::slice::from_ref(location), &id).await?;
        Ok(true)
    }

    async fn remove_location(&self, location: &Location) -> Result<RemoveOutcome> {
        location.validate()?;
        self.ready().await?;
        let candidates = self
            .query(filter::array_contains(schema::KEYS, &location.key)?, false)
            .await?;
        let mut outcome = RemoveOutcome::NotIndexed;
        // Normally at most one record lists a location; if a race left it on several, all of
        // them let go of it and the first outcome is reported.
        for candidate in candidates {
            if !candidate.locations.contains(location) {
                continue; // same key in another bucket
            }
            if let Some(done) = self.remove_from(&candidate.id, location).await? {
                if outcome == RemoveOutcome::NotIndexed {
                    outcome = done;
                }
            }
        }
        Ok(outcome)
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        validate_search(request)?;
        validate_vector(&request.vector, &self.spec)?;
        let index = self.ready().await?;

        let mut clauses = Vec::new();
        if let Some(exclude) = &request.exclude_id {
            clauses.push(filter::not_equals(schema::ID, &normalize_id(exclude)?)?);
        }
        if let Some(prefix) = request.key_prefix.as_deref() {
            if let Some(clause) = Self::prefix_clause(prefix)? {
                clauses.push(clause);
            }
        }
        let expr = filter::and_all(&clauses);

        let output: Vec<&str> = schema::METADATA_FIELDS
            .iter()
            .copied()
            .filter(|f| *f != schema::ID)
            .collect();
        let mut builder = SearchRequestBuilderExt::new(self.collection())
            .vector_field(schema::EMBEDDING)
            .vectors(SearchVectors::Float(vec![request.vector.clone()]))
            .output_fields(output)
            .limit(request.top_k as i64)
            .extra_params(self.search_params(index, request.top_k))
            // Sees this process's own writes; other writers' within the bounded staleness.
            .consistency_level(ConsistencyLevel::Session);
        if !expr.is_empty() {
            builder = builder.filter(expr);
        }
        let response = self
            .client
            .search(builder.build().map_err(sdk_store)?)
            .await
            .map_err(|e| classify("search", e))?;

        let mut hits = Vec::new();
        for result in response.results().iter() {
            let ids = match result.get_ids() {
                Ids::VarChar(ids) => ids.clone(),
                Ids::Int64(ids) => ids.iter().map(i64::to_string).collect(),
                other => return Err(Error::Store(format!("unexpected id column {other:?}"))),
            };
            let scores = result.get_scores();
            let columns = Columns::new(result.get_output_fields());
            for (row, id) in ids.into_iter().enumerate() {
                let score = scores
                    .get(row)
                    .copied()
                    .ok_or_else(|| Error::Store("search result has fewer scores than ids".into()))?;
                if request.min_score.is_some_and(|min| score < min) {
                    continue;
                }
                hits.push(SearchHit {
                    id,
                    score,
                    locations: matching_first(columns.locations(row)?, request.key_prefix.as_deref()),
                    content_type: columns.string(schema::CONTENT_TYPE, row)?,
                    width: clamp_u32(columns.int(schema::WIDTH, row)?),
                    height: clamp_u32(columns.int(schema::HEIGHT, row)?),
                    byte_size: u64::try_from(columns.int(schema::BYTE_SIZE, row)?).unwrap_or(0),
                });
            }
        }
        // Milvus returns best first already; keep that guarantee explicit for callers.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }

    async fn count(&self) -> Result<u64> {
        self.ready().await?;
        let response = self
            .client
            .query(
                QueryRequest::builder()
                    .collection_name(self.collection())
                    .filter("")
                    .output_fields(["count(*)"])
                    .consistency_level(ConsistencyLevel::Strong)
                    .build()
                    .map_err(sdk_store)?,
            )
            .await
            .map_err(|e| classify("count", e))?;
        let columns = Columns::new(response.results().get_output_fields());
        let count = columns.int("count(*)", 0)?;
        u64::try_from(count).map_err(|_| Error::Store(format!("negative count {count}")))
    }
}

/// `SearchRequest` is also our own type's name; this alias keeps the SDK builder readable.
struct SearchRequestBuilderExt;

impl SearchRequestBuilderExt {
    #[allow(clippy::new_ret_no_self)]
    fn new(collection: &str) -> milvus::v2::request::dql::SearchRequestBuilder {
        milvus::v2::request::dql::SearchRequest::builder().collection_name(collection)
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Column-oriented results by field name.
struct Columns<'a> {
    by_name: HashMap<&'a str, &'a FieldData>,
}

impl<'a> Columns<'a> {
    fn new(fields: &'a [FieldData]) -> Self {
        let by_name = fields.iter().map(|f| (field_name(f), f)).collect();
        Self { by_name }
    }

    fn field(&self, name: &str) -> Result<&'a FieldData> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::Store(format!("Milvus response lacks field {name:?}")))
    }

    fn strings(&self, name: &str) -> Result<&'a [String]> {
        match self.field(name) {
            Ok(FieldData::VarChar { values, .. }) => Ok(values),
            Ok(other) => Err(unexpected(name, other)),
            // A query with no match may come back without any column.
            Err(_) if self.by_name.is_empty() => Ok(&[]),
            Err(e) => Err(e),
        }
    }

    fn string(&self, name: &str, row: usize) -> Result<String> {
        self.strings(name)?.get(row).cloned().ok_or_else(|| short(name, row))
    }

    fn int(&self, name: &str, row: usize) -> Result<i64> {
        match self.field(name)? {
            FieldData::Int64 { values, .. } => values.get(row).copied().ok_or_else(|| short(name, row)),
            FieldData::Int32 { values, .. } => values.get(row).map(|v| i64::from(*v)).ok_or_else(|| short(name, row)),
            other => Err(unexpected(name, other)),
        }
    }

    fn string_array(&self, name: &str, row: usize) -> Result<&'a [String]> {
        match self.field(name)? {
            FieldData::ArrayVarChar { values, .. } => {
                values.get(row).map(Vec::as_slice).ok_or_else(|| short(name, row))
            }
            other => Err(unexpected(name, other)),
        }
    }

    fn vector(&self, name: &str, row: usize) -> Result<Vec<f32>> {
        match self.field(name)? {
            FieldData::FloatVector { values, .. } => values.get(row).cloned().ok_or_else(|| short(name, row)),
            other => Err(unexpected(name, other)),
        }
    }

    fn locations(&self, row: usize) -> Result<Vec<Location>> {
        let buckets = self.string_array(schema::BUCKETS, row)?;
        let keys = self.string_array(schema::KEYS, row)?;
        if buckets.len() != keys.len() {
            return Err(Error::Store(format!(
                "row {row}: {} buckets but {} keys",
                buckets.len(),
                keys.len()
            )));
        }
        Ok(buckets
            .iter()
            .zip(keys)
            .map(|(b, k)| Location::new(b.clone(), k.clone()))
            .collect())
    }

    fn record(&self, row: usize, with_embedding: bool) -> Result<ImageRecord> {
        Ok(ImageRecord {
            id: self.string(schema::ID, row)?,
            embedding: if with_embedding {
                self.vector(schema::EMBEDDING, row)?
            } else {
                Vec::new()
            },
            locations: self.locations(row)?,
            content_type: self.string(schema::CONTENT_TYPE, row)?,
            width: clamp_u32(self.int(schema::WIDTH, row)?),
            height: clamp_u32(self.int(schema::HEIGHT, row)?),
            byte_size: u64::try_from(self.int(schema::BYTE_SIZE, row)?).unwrap_or(0),
            ingested_at_ms: self.int(schema::INGESTED_AT_MS, row)?,
            model: self.string(schema::MODEL, row)?,
        })
    }
}

fn field_name(field: &FieldData) -> &str {
    match field {
        FieldData::Bool { name, .. }
        | FieldData::Int8 { name, .. }
        | FieldData::Int16 { name, .. }
        | FieldData::Int32 { name, .. }
        | FieldData::Int64 { name, .. }
        | FieldData::Float { name, .. }
        | FieldData::Double { name, .. }
        | FieldData::VarChar { name, .. }
        | FieldData::Json { name, .. }
        | FieldData::ArrayVarChar { name, .. }
        | FieldData::FloatVector { name, .. } => name,
        _ => "",
    }
}

fn unexpected(name: &str, field: &FieldData) -> Error {
    let kind = format!("{field:?}");
    let kind = kind.split([' ', '{']).next().unwrap_or_default();
    Error::Store(format!("field {name:?} came back as {kind}"))
}

fn short(name: &str, row: usize) -> Error {
    Error::Store(format!("field {name:?} has no row {row}"))
}

/// A request the SDK refused to build: our bug or bad input, never transient.
fn sdk_store(e: SdkError) -> Error {
    Error::Store(e.to_string())
}

/// Maps SDK errors to ours: anything a retry may fix (transport down, timeouts, throttling,
/// server not ready) becomes [`Error::StoreUnavailable`]; the rest [`Error::Store`].
pub(crate) fn classify(context: &str, e: SdkError) -> Error {
    let message = format!("{context}: {e}");
    if is_transient(&e) {
        Error::StoreUnavailable(message)
    } else {
        Error::Store(message)
    }
}

fn is_transient(e: &SdkError) -> bool {
    match e {
        SdkError::Grpc(status) => is_transient_grpc_code(status.code() as i32),
        SdkError::Timeout(_) => true,
        SdkError::RetryExhausted { source, .. } => is_transient(source),
        SdkError::Server(server) => {
            let reason = server.reason().to_ascii_lowercase();
            [
                "rate limit",
                "not ready",
                "unavailable",
                "timeout",
                "deadline",
                "too many",
                "service not healthy",
            ]
            .iter()
            .any(|needle| reason.contains(needle))
        }
        _ => false,
    }
}

/// gRPC status codes (numbering fixed by the gRPC spec) that mean "try again later":
/// CANCELLED, UNKNOWN (how tonic reports a broken transport), DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
fn is_transient_grpc_code(code: i32) -> bool {
    matches!(code, 1 | 2 | 4 | 8 | 10 | 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_transient() {
        let slow = SdkError::Timeout("connecting".into());
        assert!(matches!(classify("x", slow), Error::StoreUnavailable(_)));
        let exhausted = SdkError::RetryExhausted {
            attempts: 3,
            source: Box::new(SdkError::Timeout("x".into())),
        };
        assert!(matches!(classify("x", exhausted), Error::StoreUnavailable(_)));
        for unavailable_or_deadline in [14, 4] {
            assert!(is_transient_grpc_code(unavailable_or_deadline));
        }
    }

    #[test]
    fn rejections_are_not_transient() {
        // INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED
        for code in [3, 5, 7, 16, 12] {
            assert!(!is_transient_grpc_code(code));
        }
        let unexpected = SdkError::Unexpected("bug".into());
        assert!(matches!(classify("x", unexpected), Error::Store(_)));
    }

    #[test]
    fn prefix_clause_covers_every_slot() {
        let clause = MilvusIndex::prefix_clause("a\"b").unwrap().unwrap();
        assert_eq!(clause.matches(" or ").count(), MAX_LOCATIONS - 1);
        assert!(clause.starts_with(r#"(keys[0] >= "a\"b" and keys[0] < "a\"c")"#));
        assert!(MilvusIndex::prefix_clause("").unwrap().is_none());
    }
}
