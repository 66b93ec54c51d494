//! The collection's lifecycle: created with its schema and vector index when missing, checked
//! against what this process expects when it exists (schema version, dimension, model, metric),
//! loaded, and dropped by tooling.

use std::collections::HashMap;
use std::time::Duration;

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::*;

use super::milvus::MilvusIndex;
use super::milvus_rows::{classify, no_index, sdk_store};
use super::schema;
use crate::config::MilvusIndexKind;
use crate::{Error, Result};

impl MilvusIndex {
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

    pub(super) async fn prepare_collection(&self) -> Result<MilvusIndexKind> {
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
}
