//! The image index: one record per distinct image content (keyed by the sha256 of its bytes),
//! holding its CLIP embedding, the S3 locations that hold those bytes and a little metadata.
//!
//! [`ImageIndex`] is what ingest, search and the CLI program against; [`MilvusIndex`] is the
//! real implementation and [`MemoryIndex`] an in-process one for unit tests of their logic.
//! Records never mix models: [`IndexSpec`] names the model and dimension a collection accepts.

pub mod filter;
mod memory;
mod milvus;
mod schema;

pub use memory::MemoryIndex;
pub use milvus::MilvusIndex;
pub use schema::MAX_LOCATIONS;

use crate::{Error, Result};

/// Largest `top_k` a search may ask for.
pub const MAX_TOP_K: usize = 100;
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

/// Everything stored for one image content.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// Lowercase sha256 hex of the image bytes: the same bytes always get the same id.
    pub id: String,
    /// The image embedding (L2-normalised by the encoder; the index uses cosine anyway).
    pub embedding: Vec<f32>,
    /// Where these bytes live; at least one, at most [`MAX_LOCATIONS`].
    pub locations: Vec<Location>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// Milliseconds since the Unix epoch of the first ingest of this content.
    pub ingested_at_ms: i64,
    /// Name of the model that produced `embedding`.
    pub model: String,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    pub vector: Vec<f32>,
    /// 1..=[`MAX_TOP_K`].
    pub top_k: usize,
    /// Drop hits whose cosine similarity is below this.
    pub min_score: Option<f32>,
    /// Only images stored under at least one key starting with this (in any bucket).
    pub key_prefix: Option<String>,
    /// Leave this id out ("more like this" should not return the image itself).
    pub exclude_id: Option<String>,
}

/// One search result, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: String,
    /// Cosine similarity in [-1, 1]; higher is closer.
    pub score: f32,
    /// All locations of the content; with a `key_prefix`, the matching ones come first.
    pub locations: Vec<Location>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
}

/// What the configured encoder produces, and therefore what the collection must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub dimension: usize,
    pub model: String,
}

/// What [`ImageIndex::remove_location`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// No record lists that location.
    NotIndexed,
    /// The record keeps its other locations.
    LocationRemoved { id: String },
    /// That was the record's last location, so the record is gone.
    RecordDeleted { id: String },
}

/// The operations ingest, search and the CLI need from the index.
#[allow(async_fn_in_trait)]
pub trait ImageIndex {
    /// Whether a record with this id exists (ingest skips inference when it does).
    async fn exists(&self, id: &str) -> Result<bool>;
    /// The full record, embedding included.
    async fn get(&self, id: &str) -> Result<Option<ImageRecord>>;
    /// Writes the record. If the id exists already, its locations are merged with the new
    /// ones (nothing is forgotten); every other field takes the new value. A location moves:
    /// it is removed from any other record that listed it (the key now holds these bytes).
    async fn upsert(&self, record: ImageRecord) -> Result<()>;
    /// Adds a location to an existing record without touching its embedding (and moves it off
    /// any other record). `Ok(false)` when the id is unknown.
    async fn add_location(&self, id: &str, location: &Location) -> Result<bool>;
    /// Forgets a location (an S3 object was deleted or overwritten); the record goes away with
    /// its last location.
    async fn remove_location(&self, location: &Location) -> Result<RemoveOutcome>;
    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>>;
    /// Number of records (distinct contents).
    async fn count(&self) -> Result<u64>;
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

/// Checks a search request's parameters (not the vector).
pub fn validate_search(request: &SearchRequest) -> Result<()> {
    if !(1..=MAX_TOP_K).contains(&request.top_k) {
        return Err(Error::InvalidRequest(format!(
            "top_k must be in 1..={MAX_TOP_K}, got {}",
            request.top_k
        )));
    }
    if let Some(min) = request.min_score {
        if !min.is_finite() {
            return Err(Error::InvalidRequest("min_score must be finite".into()));
        }
    }
    if let Some(prefix) = &request.key_prefix {
        if prefix.len() > MAX_KEY_BYTES || prefix.contains('\0') {
            return Err(Error::InvalidRequest(format!(
                "key_prefix must be at most {MAX_KEY_BYTES} bytes without NUL"
            )));
        }
    }
    Ok(())
}

/// Checks a record before it is written.
pub fn validate_record(record: &ImageRecord, spec: &IndexSpec) -> Result<ImageRecord> {
    let mut record = record.clone();
    record.id = normalize_id(&record.id)?;
    validate_vector(&record.embedding, spec)?;
    if record.model != spec.model {
        return Err(Error::SchemaMismatch(format!(
            "record {} was embedded by {:?} but the index holds {:?}",
            record.id, record.model, spec.model
        )));
    }
    if record.locations.is_empty() {
        return Err(Error::InvalidRequest(format!("record {} has no location", record.id)));
    }
    for location in &record.locations {
        location.validate()?;
    }
    record.locations = dedup_locations(record.locations);
    if record.locations.len() > MAX_LOCATIONS {
        return Err(too_many_locations(&record.id));
    }
    if record.content_type.len() > 255 {
        return Err(Error::InvalidRequest("content type longer than 255 bytes".into()));
    }
    if i64::try_from(record.byte_size).is_err() {
        return Err(Error::InvalidRequest("byte size out of range".into()));
    }
    Ok(record)
}

pub(crate) fn too_many_locations(id: &str) -> Error {
    Error::InvalidRequest(format!(
        "image {id} is already stored under {MAX_LOCATIONS} keys, the most one record tracks"
    ))
}

/// Removes repeated locations, keeping first-seen order.
pub(crate) fn dedup_locations(locations: Vec<Location>) -> Vec<Location> {
    let mut seen = std::collections::HashSet::new();
    locations.into_iter().filter(|l| seen.insert(l.clone())).collect()
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
        request.top_k = 100;
        assert!(validate_search(&request).is_ok());
        for bad in [0, 101] {
            request.top_k = bad;
            assert!(matches!(validate_search(&request), Err(Error::InvalidRequest(_))));
        }
    }

    #[test]
    fn records_are_normalised_and_checked() {
        let record = ImageRecord {
            id: "AB".repeat(32),
            embedding: vec![1.0, 0.0, 0.0],
            locations: vec![Location::new("b", "k"), Location::new("b", "k")],
            content_type: "image/png".into(),
            width: 1,
            height: 1,
            byte_size: 10,
            ingested_at_ms: 0,
            model: "m".into(),
        };
        let checked = validate_record(&record, &spec()).unwrap();
        assert_eq!(checked.id, "ab".repeat(32));
        assert_eq!(checked.locations.len(), 1);

        let other_model = ImageRecord {
            model: "other".into(),
            ..record.clone()
        };
        assert!(matches!(
            validate_record(&other_model, &spec()),
            Err(Error::SchemaMismatch(_))
        ));
        let no_location = ImageRecord {
            locations: vec![],
            ..record
        };
        assert!(validate_record(&no_location, &spec()).is_err());
    }

    #[test]
    fn matching_locations_come_first() {
        let locations = vec![Location::new("b", "x/1"), Location::new("b", "y/2")];
        let sorted = matching_first(locations.clone(), Some("y/"));
        assert_eq!(sorted[0].key, "y/2");
        assert_eq!(matching_first(locations.clone(), None), locations);
    }
}
