//! Bulk writes and the segments' state: what tests, benchmarks and tooling need to know that
//! every row is searched through its built index (`flush_and_wait_indexed`), not only written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use milvus::v2::prelude::*;

use super::milvus::MilvusIndex;
use super::milvus_rows::{classify, sdk_store};
use super::{validate_object, ImageIndex, ImageRecord, IndexedObject};
use crate::config::MilvusIndexKind;
use crate::{Error, Result};

/// Rows per upsert RPC in bulk writes (~2 MB at dimension 512).
const WRITE_BATCH: usize = 1000;

impl MilvusIndex {
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
