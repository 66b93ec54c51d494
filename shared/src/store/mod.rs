//! The image index: one row per S3 object (bucket + key), holding the sha256 of the bytes it
//! currently holds, their CLIP embedding and a little metadata. Every S3 event changes only its
//! own object's row, so concurrent writers never read, change and write back a shared value
//! (Milvus has no transactions): see docs/milvus.md for why this layout and how ordering is
//! decided. Identical content under several keys is embedded once and stored per key; search
//! groups rows by content, so a photo stored under five keys is one result listing five
//! locations.
//!
//! [`ImageIndex`] is what ingest, search and the CLI program against; [`MilvusIndex`] is the
//! real implementation and [`MemoryIndex`] an in-process one for unit tests of their logic.
//! Rows never mix models: [`IndexSpec`] names the model and dimension a collection accepts.

pub mod filter;
mod grouping;
mod lazy;
#[cfg(any(test, feature = "testing"))]
mod memory;
mod milvus;
mod milvus_collection;
mod milvus_index;
mod milvus_rows;
mod milvus_segments;
mod row_filter;
mod schema;
mod validate;

pub(crate) use grouping::{cosine, group_rows, matching_first};
pub use lazy::LazyMilvus;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryIndex;
pub use milvus::MilvusIndex;
pub use milvus_segments::ServedSegment;
pub use row_filter::RowFilter;
pub use validate::{normalize_id, validate_key_prefix, validate_object, validate_search, validate_vector};

use crate::capture::CaptureTime;
use crate::{Error, Result};

/// Largest `top_k` a search may ask for (one page of results).
pub const MAX_TOP_K: usize = 100;
/// Most ranked contents one index search returns: a page's offset plus its size stay within
/// this, and a date sort orders at most this many of the most relevant.
pub const MAX_RESULT_WINDOW: usize = 1000;
/// Longest S3 key (bytes), as S3 itself allows.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest bucket name (bytes): S3 allows 63; other S3-compatible stores are given some room.
pub const MAX_BUCKET_BYTES: usize = 255;

/// One place the bytes of an image live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub bucket: String,
    pub key: String,
}

impl Location {
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Checks the lengths the collection can hold and the characters a filter can carry.
    pub fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() || self.bucket.len() > MAX_BUCKET_BYTES {
            return Err(Error::InvalidRequest(format!(
                "bucket name must be 1..={MAX_BUCKET_BYTES} bytes, got {}",
                self.bucket.len()
            )));
        }
        if self.key.is_empty() || self.key.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidRequest(format!(
                "object key must be 1..={MAX_KEY_BYTES} bytes, got {}",
                self.key.len()
            )));
        }
        if self.bucket.contains('\0') || self.key.contains('\0') {
            return Err(Error::InvalidRequest("bucket and key must not contain NUL".into()));
        }
        Ok(())
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// One image content as search and `GET /images/{id}` see it: the rows of every object that
/// holds these bytes, grouped.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// Lowercase sha256 hex of the image bytes: the same bytes always get the same id.
    pub id: String,
    /// The image embedding (L2-normalised by the encoder; the index uses cosine anyway).
    pub embedding: Vec<f32>,
    /// Every object holding these bytes, sorted; at least one.
    pub locations: Vec<Location>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// Milliseconds since the Unix epoch of the earliest ingest among its objects.
    pub ingested_at_ms: i64,
    /// Name of the model that produced `embedding`.
    pub model: String,
    /// When the photo was taken (as its first-listed object's row says).
    pub captured: CaptureTime,
}

/// One object's row: what the object at `location` held when it was last indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedObject {
    pub location: Location,
    /// sha256 hex of the bytes the object held.
    pub id: String,
    /// Empty when read without the vector ([`ImageIndex::object`], listings).
    pub embedding: Vec<f32>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// The object's version as S3 named it (ETag); empty for a local file.
    pub etag: String,
    /// The object's last-modified time (ms since the epoch; a file's mtime).
    pub modified_ms: i64,
    /// When this row was written (ms since the epoch).
    pub ingested_at_ms: i64,
    pub model: String,
    /// When the photo was taken, and whether EXIF or the last-modified time said so.
    pub captured: CaptureTime,
}

impl IndexedObject {
    /// The row of `location` for a content record (bulk loads and tests).
    pub fn of_record(record: &ImageRecord, location: Location) -> Self {
        Self {
            location,
            id: record.id.clone(),
            embedding: record.embedding.clone(),
            content_type: record.content_type.clone(),
            width: record.width,
            height: record.height,
            byte_size: record.byte_size,
            etag: String::new(),
            modified_ms: record.ingested_at_ms,
            ingested_at_ms: record.ingested_at_ms,
            model: record.model.clone(),
            captured: record.captured,
        }
    }
}

/// The keys of one bucket that a listing covers: those starting with `prefix`, after `after`
/// (exclusive) and up to `through` (inclusive). Reconcile walks a bucket in such ranges so that
/// consecutive ranges cover every key exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub bucket: String,
    pub prefix: String,
    pub after: Option<String>,
    pub through: Option<String>,
}

impl KeyRange {
    pub fn contains(&self, location: &Location) -> bool {
        location.bucket == self.bucket
            && location.key.starts_with(&self.prefix)
            && self.after.as_deref().is_none_or(|a| location.key.as_str() > a)
            && self.through.as_deref().is_none_or(|t| location.key.as_str() <= t)
    }
}

/// One bounded read of [`ImageIndex::rows_with_id_prefix`]: the rows whose content id starts
/// with `id_prefix` (hex) and, when given, whose key starts with `key_prefix`.
#[derive(Debug, Clone, Copy)]
pub struct IdPrefixScan<'a> {
    pub id_prefix: &'a str,
    pub key_prefix: Option<&'a str>,
    pub limit: usize,
}

impl IdPrefixScan<'_> {
    /// Whether the scan reads `row` (the limit aside).
    pub fn selects(&self, row: &IndexedObject) -> bool {
        row.id.starts_with(self.id_prefix) && self.key_prefix.is_none_or(|p| row.location.key.starts_with(p))
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    /// 1..=[`MAX_RESULT_WINDOW`].
    pub top_k: usize,
    /// Drop hits whose cosine similarity is below this.
    pub min_score: Option<f32>,
    /// Only images stored under at least one key starting with this (in any bucket).
    pub key_prefix: Option<String>,
    /// Leave this id out ("more like this" should not return the image itself).
    pub exclude_id: Option<String>,
    /// Only rows whose scalars pass (content type, size, capture time).
    pub filter: RowFilter,
}

/// One search result, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: String,
    /// Cosine similarity in [-1, 1]; higher is closer.
    pub score: f32,
    /// Every object holding the content; with a `key_prefix`, the matching ones come first.
    pub locations: Vec<Location>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// The capture time of the row that ranked.
    pub captured: CaptureTime,
}

/// What the configured encoder produces, and therefore what the collection must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub dimension: usize,
    /// The image model whose vectors the rows hold.
    pub model: String,
    /// A separate text tower that queries this image space (recorded at creation); `None`
    /// when the model embeds its own text.
    pub text_model: Option<String>,
}

/// The operations ingest, search and the CLI need from the index.
#[allow(async_fn_in_trait)]
pub trait ImageIndex {
    /// Whether any object holds this content (ingest copies its vector instead of embedding).
    async fn exists(&self, id: &str) -> Result<bool>;
    /// The content with its embedding and every location holding it.
    async fn get(&self, id: &str) -> Result<Option<ImageRecord>>;
    /// One row holding this content, with its vector (ingest copies it instead of embedding).
    async fn vector_of(&self, id: &str) -> Result<Option<IndexedObject>>;
    /// The row of one object, without its vector.
    async fn object(&self, location: &Location) -> Result<Option<IndexedObject>>;
    /// Writes one object's row, replacing whatever that object's row said before. Touches no
    /// other row, so concurrent writers of different objects cannot lose each other's work.
    async fn put_object(&self, object: IndexedObject) -> Result<()>;
    /// Deletes one object's row; `Some(id)` of the content it held, `None` when there was none.
    async fn remove_object(&self, location: &Location) -> Result<Option<String>>;
    /// The rows in a key range (without vectors), for reconcile. At most `limit` rows; a range
    /// holding more is an error rather than a silent cut.
    async fn objects_in(&self, range: &KeyRange, limit: usize) -> Result<Vec<IndexedObject>>;
    /// The rows, with their vectors, that `scan` selects; `None` when more than its `limit`
    /// match, so the caller splits the id range (a scan of everything in bounded reads:
    /// duplicates).
    async fn rows_with_id_prefix(&self, scan: &IdPrefixScan<'_>) -> Result<Option<Vec<IndexedObject>>>;
    /// The `top_k` best distinct contents.
    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>>;
    /// Number of rows (indexed objects).
    async fn count(&self) -> Result<u64>;

    /// [`ImageIndex::search`] of a request it owns, for futures that must not borrow one.
    async fn search_owned(&self, request: SearchRequest) -> Result<Vec<SearchHit>> {
        self.search(&request).await
    }

    /// Writes one row per location of a content record (bulk loads, tests).
    async fn upsert(&self, record: ImageRecord) -> Result<()> {
        for location in record.locations.clone() {
            self.put_object(IndexedObject::of_record(&record, location)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
