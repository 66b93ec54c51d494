//! S3 access behind small traits: fetch with a size cap, list, presign GET and upload forms. The use cases
//! depend on the traits, so their logic is unit-tested with an in-memory fake and run with
//! [`S3Objects`] against AWS or a local emulator (moto) alike.

pub mod post_policy;
mod s3;
mod status_store;
mod thumbnail_store;

pub use post_policy::{PostConditions, PresignedPost};
pub use s3::S3Objects;

use crate::Result;

/// Which bytes an object holds, as S3 names them: two reads that agree on this read the same
/// bytes (S3 is strongly consistent for reads after writes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectVersion {
    /// The ETag, quotes included as S3 sends it; empty for a local file.
    pub etag: String,
    pub size: u64,
    /// Last-modified time, ms since the Unix epoch (0 when unknown).
    pub modified_ms: i64,
}

impl ObjectVersion {
    /// Same bytes: equal ETags when both have one (S3), else equal size and time (files).
    pub fn same_as(&self, other: &ObjectVersion) -> bool {
        if !self.etag.is_empty() && !other.etag.is_empty() {
            self.etag == other.etag && self.size == other.size
        } else {
            self.size == other.size && self.modified_ms == other.modified_ms
        }
    }
}

/// An object's bytes and what S3 says about them.
#[derive(Debug, Clone)]
pub struct FetchedObject {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// The version these bytes are (from the GET's own headers).
    pub version: ObjectVersion,
}

/// What a HEAD says about a key now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    Present(ObjectVersion),
    /// No object under the key (404, or a 403 that a listing shows is a missing key).
    Absent,
    /// S3 answered 403 and could not be asked whether the key exists (no `s3:ListBucket`):
    /// the object is missing or the role may not read it.
    Unreadable(String),
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub version: ObjectVersion,
}

/// Reads objects. `fetch` refuses objects over `max_bytes` from their metadata, before the
/// body is downloaded (an `ImageTooLarge` error).
#[allow(async_fn_in_trait)]
pub trait ObjectSource {
    async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject>;
    /// The key's current state, by HEAD (never downloads the body).
    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectState>;
}

/// Makes time-limited URLs so browsers and apps talk to S3 directly.
#[allow(async_fn_in_trait)]
pub trait Presigner {
    async fn presign_get(&self, bucket: &str, key: &str) -> Result<String>;
    /// A signed upload form that S3 accepts only for this bucket, key and content type and a
    /// body of at most `max_bytes` (a POST policy: unlike a presigned PUT, S3 enforces it).
    async fn presign_post(&self, conditions: &PostConditions<'_>) -> Result<PresignedPost>;
}

/// Where ingest status records go unless `CLIPSEARCH_STATUS_PREFIX` says otherwise.
pub const DEFAULT_STATUS_PREFIX: &str = ".clipsearch/status/";
/// Where presigned uploads land unless `CLIPSEARCH_UPLOAD_PREFIX` says otherwise.
pub const DEFAULT_UPLOAD_PREFIX: &str = "uploads/";
/// Lifetime of the URLs handed out unless `CLIPSEARCH_PRESIGN_EXPIRY_SECS` says otherwise.
pub const DEFAULT_PRESIGN_EXPIRY: std::time::Duration = std::time::Duration::from_secs(900);

/// Settings for S3 access.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    /// `CLIPSEARCH_S3_ENDPOINT`: a custom endpoint (the local emulator, MinIO); unset on AWS.
    pub endpoint: Option<String>,
    /// `CLIPSEARCH_S3_PATH_STYLE`: path-style addressing (default: on when an endpoint is set).
    pub path_style: bool,
    /// `CLIPSEARCH_BUCKET`: the images bucket (uploads, `s3://` queries, backfill default).
    pub bucket: Option<String>,
    /// `CLIPSEARCH_UPLOAD_PREFIX`: where presigned uploads land (default `uploads/`).
    pub upload_prefix: String,
    /// `CLIPSEARCH_PRESIGN_EXPIRY_SECS`: lifetime of presigned URLs (default 900).
    pub presign_expiry: std::time::Duration,
    /// `CLIPSEARCH_STATUS_PREFIX`: where ingest records refusals in each bucket (default
    /// `.clipsearch/status/`; a `.json` suffix keeps them out of the image notifications).
    /// Empty: none are kept.
    pub status_prefix: String,
    /// `CLIPSEARCH_THUMBNAIL_PREFIX`: where ingest writes thumbnails in each bucket and search
    /// links to them (default `.clipsearch/thumbnails/`). Empty: no thumbnails.
    pub thumbnail_prefix: String,
}

/// Parses `s3://bucket/key-or-prefix`.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        assert_eq!(parse_s3_url("s3://b/k/x.jpg"), Some(("b".into(), "k/x.jpg".into())));
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), "".into())));
        assert_eq!(parse_s3_url("s3:///k"), None);
        assert_eq!(parse_s3_url("http://b/k"), None);
    }
}
