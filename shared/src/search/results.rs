//! What a search answers: ranked results with presigned URLs of each image and its thumbnail,
//! and an indexed image's metadata ([`Searcher::image`]).

use serde::{Deserialize, Serialize};

use super::SearchObjects;
use super::Searcher;
use crate::capture::rfc3339;
use crate::clip::Encoder;
use crate::store::{normalize_id, ImageIndex, ImageRecord, Location, SearchHit};
use crate::{Error, Result};

/// One ranked image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub id: String,
    /// Cosine similarity, higher is closer.
    pub score: f32,
    pub bucket: String,
    pub key: String,
    /// A presigned GET URL of `bucket`/`key` (absent when the searcher has no presigner, as in
    /// the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A presigned GET of the content's thumbnail (at most 384 px on the long side, upright
    /// JPEG), absent where `url` is or when thumbnails are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    /// When the photo was taken (RFC 3339, UTC).
    pub captured_at: String,
    /// `exif` (EXIF date with its UTC offset), `exif_local` (EXIF date without one, read as
    /// UTC) or `modified` (no EXIF date: the object's last-modified time).
    pub captured_from: String,
}

/// Where the time of one search went (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Turning the query into a vector: tokenize + text encoder, decode + image encoder, the
    /// S3 fetch of an `image_url`, or the index read of an `id`.
    pub embed_ms: f64,
    /// The nearest-neighbour search in the index.
    pub search_ms: f64,
    /// Presigning the result URLs.
    pub presign_ms: f64,
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Best first (or in the asked date order).
    pub results: Vec<SearchResult>,
    /// The `offset` of the next page, absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    pub took_ms: f64,
    /// The model whose vectors were compared.
    pub model: String,
    pub timings: StageTimings,
}

/// An indexed image's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    /// The first location (the one `url` points at).
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Every location holding these bytes.
    pub locations: Vec<LocationInfo>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// When the photo was taken (RFC 3339, UTC), and from what (as in a search result).
    pub captured_at: String,
    pub captured_from: String,
    /// The model whose vector is stored, and when the content was first ingested (ms since
    /// the Unix epoch).
    pub model: String,
    pub ingested_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationInfo {
    pub bucket: String,
    pub key: String,
}

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
    pub(super) async fn result(&self, hit: SearchHit) -> Result<Option<SearchResult>> {
        // The index puts the locations matching the prefix first.
        let Some(location) = hit.locations.into_iter().next() else {
            return Ok(None);
        };
        let url = self.presign(&location).await?;
        let thumbnail_url = self.presign_thumbnail(&location.bucket, &hit.id).await?;
        Ok(Some(SearchResult {
            id: hit.id,
            score: hit.score,
            bucket: location.bucket,
            key: location.key,
            url,
            thumbnail_url,
            content_type: hit.content_type,
            width: hit.width,
            height: hit.height,
            captured_at: rfc3339(hit.captured.ms),
            captured_from: hit.captured.source.as_str().to_owned(),
        }))
    }

    pub(super) async fn presign(&self, location: &Location) -> Result<Option<String>> {
        match &self.objects {
            Some(objects) => Ok(Some(objects.presign_get(&location.bucket, &location.key).await?)),
            None => Ok(None),
        }
    }

    /// A presigned GET of a content's thumbnail in `bucket` (where ingest wrote it), `None`
    /// without S3 access or with thumbnails off.
    pub(super) async fn presign_thumbnail(&self, bucket: &str, id: &str) -> Result<Option<String>> {
        let Some(objects) = &self.objects else {
            return Ok(None);
        };
        match objects.thumbnail_key(id) {
            Some(key) => Ok(Some(objects.presign_get(bucket, &key).await?)),
            None => Ok(None),
        }
    }

    pub(super) fn objects(&self) -> Result<&O> {
        self.objects
            .as_ref()
            .ok_or_else(|| Error::Config("this searcher has no S3 access".into()))
    }

    /// An indexed image's metadata and a presigned URL; `NotFound` for an unknown id.
    pub async fn image(&self, id: &str) -> Result<ImageInfo> {
        let id = normalize_id(id.trim())?;
        let record: ImageRecord = self.index.get(&id).await?.ok_or_else(|| Error::NotFound(id.clone()))?;
        let first = record
            .locations
            .first()
            .cloned()
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        let thumbnail_url = self.presign_thumbnail(&first.bucket, &id).await?;
        Ok(ImageInfo {
            url: self.presign(&first).await?,
            id: record.id,
            bucket: first.bucket,
            key: first.key,
            locations: record
                .locations
                .into_iter()
                .map(|l| LocationInfo {
                    bucket: l.bucket,
                    key: l.key,
                })
                .collect(),
            content_type: record.content_type,
            width: record.width,
            height: record.height,
            byte_size: record.byte_size,
            ingested_at_ms: record.ingested_at_ms,
            model: record.model,
            thumbnail_url,
            captured_at: rfc3339(record.captured.ms),
            captured_from: record.captured.source.as_str().to_owned(),
        })
    }
}
