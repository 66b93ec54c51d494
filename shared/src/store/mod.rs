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
mod lazy;
mod memory;
mod milvus;
mod milvus_index;
mod milvus_rows;
mod row_filter;
mod schema;

pub use lazy::LazyMilvus;
pub use memory::MemoryIndex;
pub use milvus::{MilvusIndex, ServedSegment};
pub use row_filter::RowFilter;

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

impl IndexSpec {
    /// The spec of whatever the encoder writes and queries with.
    pub fn of(encoder: &impl crate::clip::Encoder) -> Self {
        let model = encoder.model_name().to_owned();
        let text_model = Some(encoder.text_model_name().to_owned()).filter(|t| *t != model);
        Self {
            dimension: encoder.dimension(),
            model,
            text_model,
        }
    }
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
    /// The rows, with their vectors, whose content id starts with `id_prefix` (hex) and, when
    /// given, whose key starts with `key_prefix`; `None` when more than `limit` match, so the
    /// caller splits the id range (a scan of everything in bounded reads: duplicates).
    async fn rows_with_id_prefix(
        &self,
        id_prefix: &str,
        key_prefix: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<IndexedObject>>>;
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

/// Accepts a sha256 hex id (either case) and returns it lowercase; anything else is a bad
/// request, which also keeps ids trivially safe inside filter expressions.
pub fn normalize_id(id: &str) -> Result<String> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Error::InvalidRequest(format!(
            "image id must be 64 hex characters (a sha256), got {:?}",
            truncate_for_message(id)
        )))
    }
}

/// Checks a vector against the spec: right dimension, finite, not all zero (cosine of a zero
/// vector is undefined).
pub fn validate_vector(vector: &[f32], spec: &IndexSpec) -> Result<()> {
    if vector.len() != spec.dimension {
        return Err(Error::InvalidRequest(format!(
            "vector has dimension {}, the index holds {} ({})",
            vector.len(),
            spec.dimension,
            spec.model
        )));
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidRequest("vector contains NaN or infinity".into()));
    }
    if vector.iter().all(|v| *v == 0.0) {
        return Err(Error::InvalidRequest("vector is all zeros".into()));
    }
    Ok(())
}

/// Cosine similarity of two vectors; 0 when either is all zeros.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Checks a key prefix a caller gave (`name` is what the caller calls it): a possible key.
pub fn validate_key_prefix(prefix: &str, name: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_BYTES || prefix.contains('\0') {
        return Err(Error::InvalidRequest(format!(
            "{name} must be at most {MAX_KEY_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

/// Checks a search request's parameters (not the vector).
pub fn validate_search(request: &SearchRequest) -> Result<()> {
    if !(1..=MAX_RESULT_WINDOW).contains(&request.top_k) {
        return Err(Error::InvalidRequest(format!(
            "top_k must be in 1..={MAX_RESULT_WINDOW}, got {}",
            request.top_k
        )));
    }
    if let Some(min) = request.min_score {
        if !min.is_finite() {
            return Err(Error::InvalidRequest("min_score must be finite".into()));
        }
    }
    if let Some(prefix) = &request.key_prefix {
        validate_key_prefix(prefix, "key_prefix")?;
    }
    Ok(())
}

/// Checks a row before it is written.
pub fn validate_object(object: &IndexedObject, spec: &IndexSpec) -> Result<IndexedObject> {
    let mut object = object.clone();
    object.id = normalize_id(&object.id)?;
    object.location.validate()?;
    validate_vector(&object.embedding, spec)?;
    if object.model != spec.model {
        return Err(Error::SchemaMismatch(format!(
            "{} was embedded by {:?} but the index holds {:?}",
            object.location, object.model, spec.model
        )));
    }
    if object.content_type.len() > 255 || object.etag.len() > 255 {
        return Err(Error::InvalidRequest(
            "content type or ETag longer than 255 bytes".into(),
        ));
    }
    if i64::try_from(object.byte_size).is_err() {
        return Err(Error::InvalidRequest("byte size out of range".into()));
    }
    Ok(object)
}

/// Groups rows (all of one content or of several) into content records, in first-seen order
/// of content; locations sorted. Rows without a vector give records without one.
pub(crate) fn group_rows(rows: Vec<IndexedObject>) -> Vec<ImageRecord> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, ImageRecord> = std::collections::HashMap::new();
    for row in rows {
        match by_id.get_mut(&row.id) {
            Some(record) => {
                record.locations.push(row.location);
                record.ingested_at_ms = record.ingested_at_ms.min(row.ingested_at_ms);
                if record.embedding.is_empty() {
                    record.embedding = row.embedding;
                }
            }
            None => {
                order.push(row.id.clone());
                by_id.insert(
                    row.id.clone(),
                    ImageRecord {
                        id: row.id,
                        embedding: row.embedding,
                        locations: vec![row.location],
                        content_type: row.content_type,
                        width: row.width,
                        height: row.height,
                        byte_size: row.byte_size,
                        ingested_at_ms: row.ingested_at_ms,
                        model: row.model,
                        captured: row.captured,
                    },
                );
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .map(|mut r| {
            r.locations.sort();
            r.locations.dedup();
            r
        })
        .collect()
}

/// Puts the locations whose key starts with `prefix` first (stable otherwise).
pub(crate) fn matching_first(mut locations: Vec<Location>, prefix: Option<&str>) -> Vec<Location> {
    if let Some(prefix) = prefix {
        locations.sort_by_key(|l| !l.key.starts_with(prefix));
    }
    locations
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> IndexSpec {
        IndexSpec {
            dimension: 3,
            model: "m".into(),
            text_model: None,
        }
    }

    #[test]
    fn ids_are_sha256_hex() {
        let upper = "A".repeat(64);
        assert_eq!(normalize_id(&upper).unwrap(), "a".repeat(64));
        for bad in ["", "abc", &"g".repeat(64), &format!("{}\"", "a".repeat(63))] {
            assert!(matches!(normalize_id(bad), Err(Error::InvalidRequest(_))));
        }
    }

    #[test]
    fn vectors_are_checked() {
        assert!(validate_vector(&[1.0, 0.0, 0.0], &spec()).is_ok());
        for bad in [vec![1.0, 0.0], vec![f32::NAN, 0.0, 0.0], vec![0.0; 3]] {
            assert!(matches!(validate_vector(&bad, &spec()), Err(Error::InvalidRequest(_))));
        }
    }

    #[test]
    fn top_k_bounds() {
        let mut request = SearchRequest {
            vector: vec![1.0, 0.0, 0.0],
            top_k: 1,
            ..Default::default()
        };
        assert!(validate_search(&request).is_ok());
        request.top_k = MAX_RESULT_WINDOW;
        assert!(validate_search(&request).is_ok());
        for bad in [0, MAX_RESULT_WINDOW + 1] {
            request.top_k = bad;
            assert!(matches!(validate_search(&request), Err(Error::InvalidRequest(_))));
        }
    }

    fn row(id: &str, key: &str) -> IndexedObject {
        IndexedObject {
            location: Location::new("b", key),
            id: id.into(),
            embedding: vec![1.0, 0.0, 0.0],
            content_type: "image/png".into(),
            width: 1,
            height: 1,
            byte_size: 10,
            etag: "\"e\"".into(),
            modified_ms: 0,
            ingested_at_ms: 7,
            model: "m".into(),
            captured: CaptureTime {
                ms: 0,
                source: crate::capture::CaptureSource::Modified,
            },
        }
    }

    #[test]
    fn rows_are_normalised_and_checked() {
        let checked = validate_object(&row(&"AB".repeat(32), "k"), &spec()).unwrap();
        assert_eq!(checked.id, "ab".repeat(32));
        let other_model = IndexedObject {
            model: "other".into(),
            ..row(&"ab".repeat(32), "k")
        };
        assert!(matches!(
            validate_object(&other_model, &spec()),
            Err(Error::SchemaMismatch(_))
        ));
        assert!(validate_object(&row("nothex", "k"), &spec()).is_err());
        assert!(validate_object(&row(&"ab".repeat(32), ""), &spec()).is_err());
    }

    #[test]
    fn rows_group_by_content() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let mut late = row(&a, "z");
        late.ingested_at_ms = 3;
        let records = group_rows(vec![row(&b, "y"), late, row(&a, "x"), row(&a, "x")]);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].id, b);
        assert_eq!(
            records[1].locations,
            vec![Location::new("b", "x"), Location::new("b", "z")]
        );
        assert_eq!(records[1].ingested_at_ms, 3);
    }

    #[test]
    fn key_ranges_are_half_open_on_the_left() {
        let range = KeyRange {
            bucket: "b".into(),
            prefix: "p/".into(),
            after: Some("p/b".into()),
            through: Some("p/d".into()),
        };
        for (key, inside) in [
            ("p/b", false),
            ("p/c", true),
            ("p/d", true),
            ("p/e", false),
            ("q/c", false),
        ] {
            assert_eq!(range.contains(&Location::new("b", key)), inside, "{key}");
        }
        assert!(!range.contains(&Location::new("other", "p/c")));
    }

    #[test]
    fn matching_locations_come_first() {
        let locations = vec![Location::new("b", "x/1"), Location::new("b", "y/2")];
        let sorted = matching_first(locations.clone(), Some("y/"));
        assert_eq!(sorted[0].key, "y/2");
        assert_eq!(matching_first(locations.clone(), None), locations);
    }
}
