//! The [`ImageIndex`] operations of [`MilvusIndex`]: point reads and writes of one object's row,
//! range listings for reconcile, and search grouped by content.
//!
//! Reads that decide a write use `Strong` consistency (they must see every earlier write, from
//! any process); reads that serve a search (the search itself, its hits' locations, the record
//! "more like this" starts from) use `Session` (this process's own writes, others' within the
//! bounded staleness: what a search can find, a record read can too) and are cut off after
//! `MILVUS_SEARCH_TIMEOUT_SECS`.

use std::collections::{HashMap, HashSet};

use milvus::v2::prelude::*;

use super::milvus_rows::{encode, sdk_store, Columns};
use super::{
    filter, group_rows, matching_first, normalize_id, schema, validate_object, validate_search, validate_vector,
    IdPrefixScan, ImageIndex, ImageRecord, IndexedObject, KeyRange, Location, MilvusIndex, SearchHit, SearchRequest,
};
use crate::capture::{CaptureSource, CaptureTime};
use crate::{Error, Result};

/// Most rows one query returns (Milvus's own cap on limit + offset).
pub(crate) const MAX_QUERY_ROWS: usize = 16_384;
/// Rounds of search that search asks for more rows when many of them share a content.
const SEARCH_ROUNDS: usize = 8;

/// What a point or range read is for, which decides its consistency and time limit.
#[derive(Clone, Copy)]
enum Read {
    /// It decides a write (ingest, removal, reconcile): `Strong`, the RPC's own timeouts.
    DecidesWrite,
    /// It serves a search: `Session`, cut off after the search timeout.
    ServesSearch,
}

impl Read {
    fn consistency(self) -> ConsistencyLevel {
        match self {
            Read::DecidesWrite => ConsistencyLevel::Strong,
            Read::ServesSearch => ConsistencyLevel::Session,
        }
    }
}

impl MilvusIndex {
    /// One read RPC: a read serving a search is also cut off after `MILVUS_SEARCH_TIMEOUT_SECS`,
    /// so a stalled Milvus answers a search with a quick 503 instead of costing its invocation.
    async fn read_rpc<T>(
        &self,
        read: Read,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<T, milvus::v2::error::Error>>,
    ) -> Result<T> {
        let limit = matches!(read, Read::ServesSearch).then_some(self.settings.search_timeout);
        self.rpc_within(what, limit, call).await
    }

    async fn query_rows(
        &self,
        read: Read,
        expr: String,
        with_embedding: bool,
        limit: usize,
    ) -> Result<Vec<IndexedObject>> {
        let mut fields: Vec<&str> = schema::METADATA_FIELDS.to_vec();
        if with_embedding {
            fields.push(schema::EMBEDDING);
        }
        let request = QueryRequest::builder()
            .collection_name(self.collection())
            .filter(expr)
            .output_fields(fields)
            .limit(limit.clamp(1, MAX_QUERY_ROWS) as i64)
            .consistency_level(read.consistency())
            .build()
            .map_err(sdk_store)?;
        let response = self.read_rpc(read, "query", self.client.query(request)).await?;
        Columns::new(response.results().get_output_fields()).objects(with_embedding)
    }

    pub(super) async fn write(&self, rows: &[IndexedObject]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let insert = InsertRequest::builder()
            .collection_name(self.collection())
            .columns(encode(rows))
            .build()
            .map_err(sdk_store)?;
        let upsert = UpsertRequest::builder().insert(insert).build().map_err(sdk_store)?;
        self.rpc("upsert", self.client.upsert(upsert)).await?;
        Ok(())
    }

    fn location_clause(location: &Location) -> Result<String> {
        filter::in_list(schema::LOCATION, [schema::primary_key(location).as_str()])
    }

    fn range_clause(range: &KeyRange) -> Result<String> {
        let mut clauses = vec![filter::equals(schema::BUCKET, &range.bucket)?];
        clauses.extend(filter::starts_with(schema::KEY, &range.prefix)?);
        if let Some(after) = &range.after {
            clauses.push(format!("{} > {}", schema::KEY, filter::string_literal(after)?));
        }
        if let Some(through) = &range.through {
            clauses.push(format!("{} <= {}", schema::KEY, filter::string_literal(through)?));
        }
        Ok(filter::and_all(&clauses))
    }

    /// One search round: rows best first, as (content id, score, location, metadata).
    async fn search_rows(&self, request: &SearchRequest, expr: String, limit: usize) -> Result<Vec<(f32, RankedRow)>> {
        let index = self.ready().await?;
        let output = [
            schema::BUCKET,
            schema::KEY,
            schema::ID,
            schema::CONTENT_TYPE,
            schema::WIDTH,
            schema::HEIGHT,
            schema::BYTE_SIZE,
            schema::CAPTURED_MS,
            schema::CAPTURED_FROM,
        ];
        let mut builder = milvus::v2::request::dql::SearchRequest::builder()
            .collection_name(self.collection())
            .vector_field(schema::EMBEDDING)
            .vectors(SearchVectors::Float(vec![request.vector.clone()]))
            .output_fields(output)
            .limit(limit as i64)
            .extra_params(self.search_params(index, limit))
            .consistency_level(Read::ServesSearch.consistency());
        if !expr.is_empty() {
            builder = builder.filter(expr);
        }
        let request = builder.build().map_err(sdk_store)?;
        let response = self
            .read_rpc(Read::ServesSearch, "search", self.client.search(request))
            .await?;
        let mut rows = Vec::new();
        for result in response.results().iter() {
            let scores = result.get_scores();
            let columns = Columns::new(result.get_output_fields());
            for (row, score) in scores.iter().enumerate() {
                rows.push((
                    *score,
                    RankedRow {
                        id: columns.string(schema::ID, row)?,
                        location: columns.location(row)?,
                        content_type: columns.string(schema::CONTENT_TYPE, row)?,
                        width: super::milvus_rows::clamp_u32(columns.int(schema::WIDTH, row)?),
                        height: super::milvus_rows::clamp_u32(columns.int(schema::HEIGHT, row)?),
                        byte_size: u64::try_from(columns.int(schema::BYTE_SIZE, row)?).unwrap_or(0),
                        captured: CaptureTime {
                            ms: columns.int(schema::CAPTURED_MS, row)?,
                            source: CaptureSource::parse(&columns.string(schema::CAPTURED_FROM, row)?),
                        },
                    },
                ));
            }
        }
        // Equal scores in a stable order (content, then key), so pages of one search agree.
        rows.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1.id.cmp(&b.1.id))
                .then_with(|| a.1.location.cmp(&b.1.location))
        });
        Ok(rows)
    }

    /// Every location holding each of `ids`, sorted.
    async fn locations_of(&self, ids: &[&str]) -> Result<HashMap<String, Vec<Location>>> {
        let mut out: HashMap<String, Vec<Location>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let request = QueryRequest::builder()
            .collection_name(self.collection())
            .filter(filter::in_list(schema::ID, ids.iter().copied())?)
            .output_fields([schema::LOCATION, schema::BUCKET, schema::KEY, schema::ID])
            .limit(MAX_QUERY_ROWS as i64)
            .consistency_level(Read::ServesSearch.consistency())
            .build()
            .map_err(sdk_store)?;
        let response = self
            .read_rpc(Read::ServesSearch, "query", self.client.query(request))
            .await?;
        let columns = Columns::new(response.results().get_output_fields());
        for row in 0..columns.len()? {
            out.entry(columns.string(schema::ID, row)?)
                .or_default()
                .push(columns.location(row)?);
        }
        for locations in out.values_mut() {
            locations.sort();
        }
        Ok(out)
    }
}

/// What a search round reads of one row.
struct RankedRow {
    id: String,
    location: Location,
    content_type: String,
    width: u32,
    height: u32,
    byte_size: u64,
    captured: CaptureTime,
}

impl ImageIndex for MilvusIndex {
    async fn exists(&self, id: &str) -> Result<bool> {
        let id = normalize_id(id)?;
        self.ready().await?;
        Ok(!self
            .query_rows(Read::DecidesWrite, filter::equals(schema::ID, &id)?, false, 1)
            .await?
            .is_empty())
    }

    async fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        let id = normalize_id(id)?;
        self.ready().await?;
        let expr = filter::equals(schema::ID, &id)?;
        // The vector from one row; the locations from all of them.
        let Some(first) = self
            .query_rows(Read::ServesSearch, expr.clone(), true, 1)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        // `group_rows` takes the vector from whichever row has one and drops the repeated
        // location.
        let mut rows = self.query_rows(Read::ServesSearch, expr, false, MAX_QUERY_ROWS).await?;
        rows.push(first);
        Ok(group_rows(rows).into_iter().next())
    }

    async fn vector_of(&self, id: &str) -> Result<Option<IndexedObject>> {
        let id = normalize_id(id)?;
        self.ready().await?;
        Ok(self
            .query_rows(Read::DecidesWrite, filter::equals(schema::ID, &id)?, true, 1)
            .await?
            .into_iter()
            .next())
    }

    async fn object(&self, location: &Location) -> Result<Option<IndexedObject>> {
        location.validate()?;
        self.ready().await?;
        let rows = self
            .query_rows(Read::DecidesWrite, Self::location_clause(location)?, false, 2)
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn put_object(&self, object: IndexedObject) -> Result<()> {
        let row = validate_object(&object, &self.spec)?;
        self.ready().await?;
        // One row in one call: a failure leaves the object's previous row (or none) in place.
        self.write(std::slice::from_ref(&row)).await
    }

    async fn remove_object(&self, location: &Location) -> Result<Option<String>> {
        let old = self.object(location).await?;
        let delete = DeleteRequest::builder()
            .collection_name(self.collection())
            .filter(Self::location_clause(location)?)
            .build()
            .map_err(sdk_store)?;
        self.rpc("delete", self.client.delete(delete)).await?;
        Ok(old.map(|o| o.id))
    }

    async fn objects_in(&self, range: &KeyRange, limit: usize) -> Result<Vec<IndexedObject>> {
        self.ready().await?;
        let limit = limit.min(MAX_QUERY_ROWS - 1);
        let rows = self
            .query_rows(Read::DecidesWrite, Self::range_clause(range)?, false, limit + 1)
            .await?;
        if rows.len() > limit {
            return Err(Error::Store(format!(
                "more than {limit} index rows in one listing range of s3://{}/{}; list a narrower prefix",
                range.bucket, range.prefix
            )));
        }
        Ok(rows)
    }

    async fn rows_with_id_prefix(&self, scan: &IdPrefixScan<'_>) -> Result<Option<Vec<IndexedObject>>> {
        let id_prefix = scan.id_prefix;
        if id_prefix.len() > 64 || !id_prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidRequest(format!("{id_prefix:?} is not a hex id prefix")));
        }
        self.ready().await?;
        let mut clauses: Vec<String> = filter::starts_with(schema::ID, &id_prefix.to_ascii_lowercase())?
            .into_iter()
            .collect();
        clauses.extend(filter::starts_with(schema::KEY, scan.key_prefix.unwrap_or(""))?);
        let limit = scan.limit.min(MAX_QUERY_ROWS - 1);
        let rows = self
            .query_rows(Read::ServesSearch, filter::and_all(&clauses), true, limit + 1)
            .await?;
        Ok((rows.len() <= limit).then_some(rows))
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        validate_search(request)?;
        validate_vector(&request.vector, &self.spec)?;
        self.ready().await?;
        let mut base = Vec::new();
        if let Some(exclude) = &request.exclude_id {
            base.push(filter::not_equals(schema::ID, &normalize_id(exclude)?)?);
        }
        if let Some(prefix) = request.key_prefix.as_deref() {
            base.extend(filter::starts_with(schema::KEY, prefix)?);
        }
        base.extend(request.filter.clauses()?);

        // Rows of one content have the same vector, so they rank side by side; each round asks
        // for the contents not seen yet, so a content under thousands of keys costs rounds, not
        // a result list full of copies.
        let mut hits: Vec<SearchHit> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        // Rows read per content found so far: the next round asks for that many rows per
        // missing content (twice over), so contents under many keys do not take a round each.
        let (mut rows_read, mut contents_found) = (0usize, 0usize);
        'rounds: for _ in 0..SEARCH_ROUNDS {
            let want = request.top_k - hits.len();
            let rows_per_content = rows_read.div_ceil(contents_found.max(1)).max(1);
            let limit = (want * 2 * rows_per_content).clamp(want + 4, MAX_QUERY_ROWS);
            let mut clauses = base.clone();
            if !seen.is_empty() {
                clauses.push(filter::not_in_list(schema::ID, seen.iter().map(String::as_str))?);
            }
            let rows = self.search_rows(request, filter::and_all(&clauses), limit).await?;
            let exhausted = rows.len() < limit;
            rows_read += rows.len();
            for (score, row) in rows {
                if request.min_score.is_some_and(|min| score < min) {
                    break 'rounds;
                }
                if seen.insert(row.id.clone()) {
                    contents_found += 1;
                    hits.push(SearchHit {
                        id: row.id,
                        score,
                        locations: vec![row.location],
                        content_type: row.content_type,
                        width: row.width,
                        height: row.height,
                        byte_size: row.byte_size,
                        captured: row.captured,
                    });
                    if hits.len() == request.top_k {
                        break 'rounds;
                    }
                }
            }
            if exhausted {
                break;
            }
        }

        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        let mut all = self.locations_of(&ids).await?;
        for hit in &mut hits {
            if let Some(locations) = all.remove(&hit.id) {
                // The row that ranked stays listed even if a concurrent delete just removed it.
                let mut merged = locations;
                if !merged.contains(&hit.locations[0]) {
                    merged.push(hit.locations[0].clone());
                }
                hit.locations = matching_first(merged, request.key_prefix.as_deref());
            }
        }
        Ok(hits)
    }

    async fn count(&self) -> Result<u64> {
        self.ready().await?;
        let request = QueryRequest::builder()
            .collection_name(self.collection())
            .filter("")
            .output_fields(["count(*)"])
            .consistency_level(ConsistencyLevel::Strong)
            .build()
            .map_err(sdk_store)?;
        let response = self.rpc("count", self.client.query(request)).await?;
        let columns = Columns::new(response.results().get_output_fields());
        let count = columns.int("count(*)", 0)?;
        u64::try_from(count).map_err(|_| Error::Store(format!("negative count {count}")))
    }
}
