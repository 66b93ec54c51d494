//! The search use case: a query (text, image bytes, an `s3://` image, or an indexed id) becomes
//! a vector, the index returns the nearest images, and each hit gets a presigned GET URL so an
//! app can show it straight from S3. Also the two small read/write helpers the search API
//! offers beside it: an image's metadata ([`Searcher::image`]) and a presigned upload
//! ([`Searcher::upload`]).
//!
//! Everything a caller can get wrong is checked here, once, and reported as a bad-input
//! [`Error`]; the Lambda and the CLI only translate their transport into [`QueryParts`] and
//! [`SearchOptions`]. The encoder is CPU-bound, so it runs on tokio's blocking pool.

mod batch;
mod duplicates;
mod options;
mod status;

pub use batch::{BatchBody, MAX_BATCH_QUERIES};
pub use duplicates::{DuplicatesPage, DuplicatesRequest, MAX_API_CONTENTS, MAX_GROUPS_PER_PAGE};
pub use options::{CheckedOptions, SearchOptions, Sort};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::capture::rfc3339;
use crate::clip::{Encoder, Towers};
use crate::config::env_parse;
use crate::objects::{parse_s3_url, ObjectSettings, ObjectSource, PostConditions, Presigner};
use crate::status::StatusStore;
use crate::store::{normalize_id, ImageIndex, ImageRecord, Location, SearchHit, SearchRequest};
use crate::thumbnail::ThumbnailStore;
use crate::{Error, Result};

/// Results when the caller does not say.
pub const DEFAULT_TOP_K: usize = 10;
/// Lambda's synchronous payload limit (6 MB): a query image can never be larger on AWS, so
/// the same limit applies locally and a test sees what production would.
pub const DEFAULT_MAX_QUERY_IMAGE_BYTES: u64 = 6 * 1024 * 1024;
/// Longest query text (characters). CLIP reads 77 tokens; this only bounds tokenizer work.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest upload file name kept in the key (characters).
const MAX_UPLOAD_NAME_CHARS: usize = 100;

/// The image types ingest can embed, which are therefore the ones worth uploading.
pub const UPLOAD_CONTENT_TYPES: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/tiff",
    "image/bmp",
];

/// How a search deployment behaves.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// `CLIPSEARCH_ENABLE_TEXT` (default true): load the text tower, answer text queries.
    pub enable_text: bool,
    /// `CLIPSEARCH_ENABLE_IMAGE` (default true): load the vision tower, answer image queries.
    pub enable_image: bool,
    /// `CLIPSEARCH_MAX_QUERY_IMAGE_BYTES` (default 6 MiB): largest query image.
    pub max_query_image_bytes: u64,
    /// `CLIPSEARCH_BUCKET`: the indexed bucket (`image_url` queries must point into it;
    /// uploads go there).
    pub bucket: Option<String>,
    /// `CLIPSEARCH_UPLOAD_PREFIX`: where presigned uploads land.
    pub upload_prefix: String,
    /// `CLIPSEARCH_PRESIGN_EXPIRY_SECS`: lifetime of the URLs handed out (reported to callers).
    pub presign_expiry: Duration,
    /// `CLIPSEARCH_MAX_IMAGE_BYTES`: the largest upload a form admits (ingest refuses more).
    pub max_upload_bytes: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            enable_text: true,
            enable_image: true,
            max_query_image_bytes: DEFAULT_MAX_QUERY_IMAGE_BYTES,
            bucket: None,
            upload_prefix: "uploads/".into(),
            presign_expiry: Duration::from_secs(900),
            max_upload_bytes: crate::config::DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

impl SearchSettings {
    pub fn from_env() -> Result<Self> {
        let objects = ObjectSettings::from_env()?;
        let settings = Self {
            enable_text: env_parse("CLIPSEARCH_ENABLE_TEXT", true)?,
            enable_image: env_parse("CLIPSEARCH_ENABLE_IMAGE", true)?,
            max_query_image_bytes: env_parse("CLIPSEARCH_MAX_QUERY_IMAGE_BYTES", DEFAULT_MAX_QUERY_IMAGE_BYTES)?,
            bucket: objects.bucket,
            upload_prefix: objects.upload_prefix,
            presign_expiry: objects.presign_expiry,
            max_upload_bytes: crate::config::ClipSettings::from_env()?.max_image_bytes,
        };
        if !settings.enable_text && !settings.enable_image {
            return Err(Error::Config(
                "CLIPSEARCH_ENABLE_TEXT and CLIPSEARCH_ENABLE_IMAGE are both false: nothing could \
                 be searched except by id, and no model would say which vectors the index holds"
                    .into(),
            ));
        }
        Ok(settings)
    }

    /// The encoder towers this deployment needs: a text-only deployment never loads the
    /// vision model, so it starts faster and uses less memory.
    pub fn towers(&self) -> Towers {
        Towers {
            image: self.enable_image,
            text: self.enable_text,
        }
    }
}

/// What to search with.
#[derive(Clone, PartialEq)]
pub enum Query {
    Text(String),
    /// Encoded image bytes (JPEG, PNG, WebP, GIF, TIFF or BMP).
    Image(Vec<u8>),
    /// An object in the indexed bucket.
    ImageUrl(Location),
    /// An indexed image: "more like this", the image itself left out.
    Id(String),
}

impl std::fmt::Debug for Query {
    // Image bytes would flood a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Query::Image(b) => write!(f, "Image({} bytes)", b.len()),
            Query::ImageUrl(l) => write!(f, "ImageUrl({l})"),
            Query::Id(id) => f.debug_tuple("Id").field(id).finish(),
        }
    }
}

impl Query {
    /// `text`, `image`, `image_url` or `id`: the name of the request field, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Query::Text(_) => "text",
            Query::Image(_) => "image",
            Query::ImageUrl(_) => "image_url",
            Query::Id(_) => "id",
        }
    }
}

/// The query fields of a request as a transport delivered them, before validation. Exactly
/// one must be present.
#[derive(Debug, Default, Clone)]
pub struct QueryParts {
    pub text: Option<String>,
    /// Raw image bytes (already base64-decoded, or a multipart file / raw body).
    pub image: Option<Vec<u8>>,
    /// `s3://bucket/key`.
    pub image_url: Option<String>,
    pub id: Option<String>,
}

impl QueryParts {
    /// Checks that exactly one kind is given and that it is usable.
    pub fn into_query(self, settings: &SearchSettings) -> Result<Query> {
        let given: Vec<&str> = [
            ("text", self.text.is_some()),
            ("image", self.image.is_some()),
            ("image_url", self.image_url.is_some()),
            ("id", self.id.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
        match given.len() {
            0 => {
                return Err(Error::InvalidRequest(
                    "no query: give exactly one of text, image, image_url or id".into(),
                ))
            }
            1 => {}
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "several queries ({}): give exactly one of text, image, image_url or id",
                    given.join(", ")
                )))
            }
        }
        if let Some(text) = self.text {
            let text = text.trim();
            if text.is_empty() {
                return Err(Error::EmptyText);
            }
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(Error::InvalidRequest(format!(
                    "text is longer than {MAX_TEXT_CHARS} characters"
                )));
            }
            return Ok(Query::Text(text.to_owned()));
        }
        if let Some(bytes) = self.image {
            check_image_size(bytes.len() as u64, settings)?;
            if bytes.is_empty() {
                return Err(Error::EmptyImage);
            }
            return Ok(Query::Image(bytes));
        }
        if let Some(url) = self.image_url {
            let (bucket, key) = parse_s3_url(url.trim())
                .ok_or_else(|| Error::InvalidRequest("image_url must look like s3://bucket/key".into()))?;
            let location = Location::new(bucket, key);
            location.validate()?;
            if let Some(indexed) = &settings.bucket {
                // The function's role may read other buckets; a query must not be a way in.
                if &location.bucket != indexed {
                    return Err(Error::InvalidRequest(format!(
                        "image_url must be in the indexed bucket s3://{indexed}/"
                    )));
                }
            }
            return Ok(Query::ImageUrl(location));
        }
        let id = self.id.unwrap_or_default();
        Ok(Query::Id(normalize_id(id.trim())?))
    }
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub query: Query,
    pub options: CheckedOptions,
}

impl SearchParams {
    /// A search with the default options.
    pub fn new(query: Query) -> Self {
        Self {
            query,
            options: CheckedOptions::default(),
        }
    }

    /// Checks the query parts and the options together.
    pub fn build(parts: QueryParts, options: SearchOptions, settings: &SearchSettings) -> Result<Self> {
        let options = options.check()?;
        Ok(Self {
            query: parts.into_query(settings)?,
            options,
        })
    }
}

/// The JSON body of `POST /search`: the query fields and every option of [`SearchOptions`].
/// Unknown fields are refused so that a typo (`"txt"`) is a 400 naming it rather than a
/// confusing "no query".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct SearchBody {
    pub text: Option<String>,
    /// Base64 (standard or URL-safe alphabet, padding optional; a `data:` URL prefix is
    /// accepted, as browsers produce it).
    pub image: Option<String>,
    pub image_url: Option<String>,
    pub id: Option<String>,
    pub options: SearchOptions,
}

/// The query fields of a body; the options are [`SearchOptions::FIELDS`].
const QUERY_FIELDS: [&str; 4] = ["text", "image", "image_url", "id"];

#[derive(Deserialize)]
struct BodyFields {
    text: Option<String>,
    image: Option<String>,
    image_url: Option<String>,
    id: Option<String>,
    #[serde(flatten)]
    options: SearchOptions,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for SearchBody {
    type Error = String;

    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> std::result::Result<Self, String> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !QUERY_FIELDS.contains(&k.as_str()) && !SearchOptions::FIELDS.contains(&k.as_str()))
        {
            let shown: String = unknown.chars().take(60).collect();
            return Err(format!(
                "unknown field `{shown}`, expected one of {}",
                QUERY_FIELDS
                    .iter()
                    .chain(SearchOptions::FIELDS.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let fields: BodyFields = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        Ok(Self {
            text: fields.text,
            image: fields.image,
            image_url: fields.image_url,
            id: fields.id,
            options: fields.options,
        })
    }
}

impl SearchBody {
    /// Parses a JSON body; malformed JSON is a bad request.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidRequest(format!("malformed JSON body: {e}")))
    }

    pub fn into_params(self, settings: &SearchSettings) -> Result<SearchParams> {
        let image = self.image.map(|b64| decode_base64_image(&b64, settings)).transpose()?;
        SearchParams::build(
            QueryParts {
                text: self.text,
                image,
                image_url: self.image_url,
                id: self.id,
            },
            self.options,
            settings,
        )
    }
}

/// Decodes a base64 image, refusing one over the limit from its length before decoding.
pub fn decode_base64_image(b64: &str, settings: &SearchSettings) -> Result<Vec<u8>> {
    let mut data = b64.trim();
    if let Some(rest) = data.strip_prefix("data:") {
        data = rest
            .split_once(',')
            .map(|(_, d)| d)
            .ok_or_else(|| Error::InvalidRequest("image: a data: URL without a comma".into()))?;
    }
    check_image_size(data.len() as u64 / 4 * 3, settings)?;
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = if cleaned.contains(['-', '_']) {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine
        .decode(cleaned.trim_end_matches('='))
        .map_err(|e| Error::InvalidRequest(format!("image is not valid base64: {e}")))
}

fn check_image_size(size: u64, settings: &SearchSettings) -> Result<()> {
    if size > settings.max_query_image_bytes {
        return Err(Error::ImageTooLarge {
            size,
            limit: settings.max_query_image_bytes,
        });
    }
    Ok(())
}

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
    /// Every location holding these bytes.
    pub locations: Vec<LocationInfo>,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: u64,
    /// Milliseconds since the Unix epoch of the first ingest.
    pub ingested_at_ms: i64,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    pub captured_at: String,
    pub captured_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationInfo {
    pub bucket: String,
    pub key: String,
}

/// A presigned upload form: POST `multipart/form-data` to `url` with every one of `fields`,
/// then the file as the last part, named `file`. S3 refuses the upload unless it is this key,
/// this content type and 1..=`max_bytes` bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadTicket {
    pub method: String,
    pub url: String,
    pub bucket: String,
    pub key: String,
    /// Form fields, the signed policy among them.
    pub fields: std::collections::BTreeMap<String, String>,
    pub content_type: String,
    pub max_bytes: u64,
    pub expires_in: u64,
}

/// The search use case over an encoder, an index and (optionally) S3.
pub struct Searcher<E, I, O> {
    encoder: Arc<E>,
    index: I,
    objects: Option<O>,
    settings: SearchSettings,
}

impl<E, I, O> std::fmt::Debug for Searcher<E, I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<E, I, O> Searcher<E, I, O>
where
    E: Encoder + 'static,
    I: ImageIndex,
    O: ObjectSource + Presigner + StatusStore + ThumbnailStore,
{
    /// `objects` is needed for `image_url` queries, result URLs and uploads; without it (the
    /// CLI) results carry no URL.
    pub fn new(encoder: Arc<E>, index: I, objects: Option<O>, settings: SearchSettings) -> Self {
        Self {
            encoder,
            index,
            objects,
            settings,
        }
    }

    pub fn settings(&self) -> &SearchSettings {
        &self.settings
    }

    pub fn index(&self) -> &I {
        &self.index
    }

    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    pub fn model(&self) -> &str {
        self.encoder.model_name()
    }

    /// Runs a validated search.
    pub async fn search(&self, params: SearchParams) -> Result<SearchResponse> {
        let started = Instant::now();
        let (vector, exclude_id) = self.vector(params.query).await?;
        self.search_vector(&params.options, vector, exclude_id, started).await
    }

    /// The index search and its results for a query embedded between `started` and now.
    async fn search_vector(
        &self,
        options: &CheckedOptions,
        vector: Vec<f32>,
        exclude_id: Option<String>,
        started: Instant,
    ) -> Result<SearchResponse> {
        let embedded = Instant::now();
        let hits = self
            .index
            .search(&SearchRequest {
                vector,
                top_k: options.window(),
                min_score: options.min_score,
                key_prefix: options.prefix.clone(),
                exclude_id,
                filter: options.filter.clone(),
            })
            .await?;
        let (hits, next_offset) = options.page(hits);
        let searched = Instant::now();
        let mut results = Vec::with_capacity(hits.len());
        for hit in hits {
            if let Some(result) = self.result(hit).await? {
                results.push(result);
            }
        }
        let done = Instant::now();
        Ok(SearchResponse {
            results,
            next_offset,
            took_ms: ms(done - started),
            model: self.model().to_owned(),
            timings: StageTimings {
                embed_ms: ms(embedded - started),
                search_ms: ms(searched - embedded),
                presign_ms: ms(done - searched),
            },
        })
    }

    /// The query's vector, and the id to leave out of the results.
    async fn vector(&self, query: Query) -> Result<(Vec<f32>, Option<String>)> {
        match query {
            Query::Text(text) => {
                if !self.settings.enable_text {
                    return Err(disabled("text"));
                }
                let encoder = Arc::clone(&self.encoder);
                let vector = blocking(move || encoder.embed_text(&text)).await?;
                Ok((vector, None))
            }
            Query::Image(bytes) => Ok((self.embed_image(bytes).await?, None)),
            Query::ImageUrl(location) => {
                if !self.settings.enable_image {
                    return Err(disabled("image"));
                }
                let objects = self.objects()?;
                let fetched = objects
                    .fetch(&location.bucket, &location.key, self.settings.max_query_image_bytes)
                    .await?;
                Ok((self.embed_image(fetched.bytes).await?, None))
            }
            Query::Id(id) => {
                let record = self.index.get(&id).await?.ok_or_else(|| Error::NotFound(id.clone()))?;
                Ok((record.embedding, Some(record.id)))
            }
        }
    }

    async fn embed_image(&self, bytes: Vec<u8>) -> Result<Vec<f32>> {
        if !self.settings.enable_image {
            return Err(disabled("image"));
        }
        check_image_size(bytes.len() as u64, &self.settings)?;
        let encoder = Arc::clone(&self.encoder);
        Ok(blocking(move || encoder.embed_image(&bytes)).await?.embedding)
    }

    async fn result(&self, hit: SearchHit) -> Result<Option<SearchResult>> {
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

    async fn presign(&self, location: &Location) -> Result<Option<String>> {
        match &self.objects {
            Some(objects) => Ok(Some(objects.presign_get(&location.bucket, &location.key).await?)),
            None => Ok(None),
        }
    }

    /// A presigned GET of a content's thumbnail in `bucket` (where ingest wrote it), `None`
    /// without S3 access or with thumbnails off.
    async fn presign_thumbnail(&self, bucket: &str, id: &str) -> Result<Option<String>> {
        let Some(objects) = &self.objects else {
            return Ok(None);
        };
        match objects.thumbnail_key(id) {
            Some(key) => Ok(Some(objects.presign_get(bucket, &key).await?)),
            None => Ok(None),
        }
    }

    fn objects(&self) -> Result<&O> {
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

    /// A presigned upload form into the bucket's upload prefix under a fresh key, so a browser
    /// uploads straight to S3 and ingest takes it from there.
    pub async fn upload(&self, filename: &str, content_type: &str) -> Result<UploadTicket> {
        let content_type = content_type.trim().to_ascii_lowercase();
        if !UPLOAD_CONTENT_TYPES.contains(&content_type.as_str()) {
            return Err(Error::UnsupportedFormat(format!(
                "content type {:?} (uploads accept {})",
                truncate(&content_type, 80),
                UPLOAD_CONTENT_TYPES.join(", ")
            )));
        }
        let name = upload_name(filename)?;
        let bucket = self
            .settings
            .bucket
            .clone()
            .ok_or_else(|| Error::Config("uploads need CLIPSEARCH_BUCKET (the indexed bucket)".into()))?;
        let key = format!("{}{}-{name}", self.settings.upload_prefix, unique_token());
        Location::new(bucket.as_str(), key.as_str()).validate()?;
        let conditions = PostConditions {
            bucket: &bucket,
            key: &key,
            content_type: &content_type,
            max_bytes: self.settings.max_upload_bytes,
            expires_in: self.settings.presign_expiry,
        };
        let form = self.objects()?.presign_post(&conditions).await?;
        Ok(UploadTicket {
            method: "POST".into(),
            url: form.url,
            fields: form.fields,
            max_bytes: self.settings.max_upload_bytes,
            expires_in: self.settings.presign_expiry.as_secs(),
            bucket,
            key,
            content_type,
        })
    }
}

fn disabled(kind: &str) -> Error {
    Error::InvalidRequest(format!("{kind} queries are disabled in this deployment"))
}

/// Runs CPU-bound work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Inference(format!("encoder task failed: {e}")))?
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// The last path component of a client's file name, reduced to characters that need no
/// escaping anywhere (URLs, filters, shells).
fn upload_name(filename: &str) -> Result<String> {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() {
        return Err(Error::InvalidRequest("filename is empty".into()));
    }
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    // Keep the extension when shortening: it is what people recognise.
    let chars: Vec<char> = cleaned.chars().collect();
    let name: String = if chars.len() > MAX_UPLOAD_NAME_CHARS {
        chars[chars.len() - MAX_UPLOAD_NAME_CHARS..].iter().collect()
    } else {
        cleaned.to_owned()
    };
    Ok(if name.is_empty() { "image".into() } else { name })
}

/// 16 hex characters, unique per call in practice (time, process and a counter hashed), so
/// two uploads of `photo.jpg` never overwrite each other.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{ImageEmbedding, SniffedFormat};
    use crate::objects::FetchedObject;
    use crate::store::{IndexSpec, MemoryIndex};

    /// Text "a"…: a vector pointing along the first letter; images: along their first byte.
    struct FakeEncoder;

    fn axis(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 4];
        v[i % 4] = 1.0;
        v
    }

    impl Encoder for FakeEncoder {
        fn model_name(&self) -> &str {
            "fake"
        }
        fn dimension(&self) -> usize {
            4
        }
        fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
            if bytes.starts_with(b"nope") {
                return Err(Error::NotAnImage("text".into()));
            }
            Ok(ImageEmbedding {
                embedding: axis(bytes[0] as usize),
                format: SniffedFormat::Png,
                width: 1,
                height: 1,
                thumbnail: None,
            })
        }
        fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
            Ok(axis((text.as_bytes()[0] - b'a') as usize))
        }
    }

    struct FakeObjects;

    impl crate::status::StatusStore for FakeObjects {}
    impl crate::thumbnail::ThumbnailStore for FakeObjects {
        fn thumbnail_key(&self, id: &str) -> Option<String> {
            Some(format!("thumbs/{id}"))
        }
    }

    impl ObjectSource for FakeObjects {
        async fn fetch(&self, bucket: &str, key: &str, _max: u64) -> Result<FetchedObject> {
            if key == "missing" {
                return Err(Error::ObjectMissing {
                    bucket: bucket.into(),
                    key: key.into(),
                });
            }
            Ok(FetchedObject {
                bytes: vec![2],
                content_type: None,
                version: Default::default(),
            })
        }
        async fn head(&self, _bucket: &str, _key: &str) -> Result<crate::objects::ObjectState> {
            Ok(crate::objects::ObjectState::Present(Default::default()))
        }
    }

    impl Presigner for FakeObjects {
        async fn presign_get(&self, bucket: &str, key: &str) -> Result<String> {
            Ok(format!("https://s3/{bucket}/{key}?sig"))
        }
        async fn presign_post(&self, c: &crate::objects::PostConditions<'_>) -> Result<crate::objects::PresignedPost> {
            Ok(crate::objects::PresignedPost {
                url: format!("https://s3/{}", c.bucket),
                fields: [
                    ("key".to_owned(), c.key.to_owned()),
                    ("Content-Type".to_owned(), c.content_type.to_owned()),
                ]
                .into(),
            })
        }
    }

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn settings() -> SearchSettings {
        SearchSettings {
            bucket: Some("photos".into()),
            ..Default::default()
        }
    }

    async fn searcher(settings: SearchSettings) -> Searcher<FakeEncoder, MemoryIndex, FakeObjects> {
        let index = MemoryIndex::new(IndexSpec {
            dimension: 4,
            model: "fake".into(),
            text_model: None,
        });
        for n in 0..4u8 {
            index
                .upsert(ImageRecord {
                    id: id(n),
                    embedding: axis(n as usize),
                    locations: vec![Location::new("photos", format!("dir{}/img{n}.png", n % 2))],
                    content_type: "image/png".into(),
                    width: 10,
                    height: 20,
                    byte_size: 3,
                    ingested_at_ms: 5,
                    model: "fake".into(),
                    captured: crate::capture::CaptureTime {
                        ms: i64::from(n) * 1000,
                        source: crate::capture::CaptureSource::Exif,
                    },
                })
                .await
                .unwrap();
        }
        Searcher::new(Arc::new(FakeEncoder), index, Some(FakeObjects), settings)
    }

    fn body(json: &str) -> Result<SearchParams> {
        SearchBody::from_json(json.as_bytes())?.into_params(&settings())
    }

    #[test]
    fn exactly_one_query_kind() {
        assert!(matches!(body("{}"), Err(Error::InvalidRequest(m)) if m.contains("no query")));
        assert!(matches!(body(r#"{"text":"a","id":"x"}"#), Err(Error::InvalidRequest(m)) if m.contains("several")));
        assert!(matches!(body(r#"{"text":"  "}"#), Err(Error::EmptyText)));
        assert!(matches!(body(r#"{"txt":"a"}"#), Err(Error::InvalidRequest(m)) if m.contains("txt")));
        assert!(matches!(body("{"), Err(Error::InvalidRequest(m)) if m.contains("malformed")));
        assert_eq!(body(r#"{"text":" red "}"#).unwrap().query, Query::Text("red".into()));
    }

    #[test]
    fn options_are_checked() {
        for bad in [
            r#"{"text":"a","top_k":0}"#,
            r#"{"text":"a","top_k":101}"#,
            r#"{"text":"a","min_score":2}"#,
            r#"{"text":"a","min_score_ratio":1.5}"#,
            r#"{"text":"a","min_score_ratio":-0.1}"#,
        ] {
            assert!(matches!(body(bad), Err(Error::InvalidRequest(_))), "{bad}");
        }
        let p = body(r#"{"text":"a","top_k":100,"min_score":0.5,"prefix":"x/"}"#).unwrap();
        assert_eq!(
            (p.options.top_k, p.options.min_score, p.options.prefix.as_deref()),
            (100, Some(0.5), Some("x/"))
        );
        assert_eq!(body(r#"{"text":"a"}"#).unwrap().options.top_k, DEFAULT_TOP_K);
        let p = body(r#"{"text":"a","min_score_ratio":0.9,"offset":20,"sort":"oldest","min_width":5}"#).unwrap();
        assert_eq!(
            (
                p.options.min_score_ratio,
                p.options.offset,
                p.options.sort,
                p.options.filter.min_width
            ),
            (Some(0.9), 20, Sort::Oldest, Some(5))
        );
        assert!(body(r#"{"text":"a","txt":"b"}"#)
            .unwrap_err()
            .to_string()
            .contains("txt"));
        assert!(body(r#"{"text":"a","offset":"ten"}"#).is_err());
        let field = |name: &str, value: &'static str| SearchOptions::from_fields(move |n| (n == name).then_some(value));
        assert!(field("top_k", "ten").is_err());
        assert!(field("min_score", "x").is_err());
        assert!(field("min_score_ratio", "most").is_err());
        let parsed = field("min_score_ratio", " 0.8 ").unwrap();
        assert_eq!(parsed.check().unwrap().min_score_ratio, Some(0.8));
    }

    #[test]
    fn base64_images() {
        let p = body(r#"{"image":"iVBORw=="}"#).unwrap();
        assert_eq!(p.query, Query::Image(vec![0x89, 0x50, 0x4e, 0x47]));
        let p = body(r#"{"image":"data:image/png;base64,iVBORw"}"#).unwrap();
        assert_eq!(p.query, Query::Image(vec![0x89, 0x50, 0x4e, 0x47]));
        assert!(matches!(
            body(r#"{"image":"not base64!"}"#),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(body(r#"{"image":""}"#), Err(Error::EmptyImage)));
        let small = SearchSettings {
            max_query_image_bytes: 3,
            ..settings()
        };
        let big = SearchBody {
            image: Some("iVBORw0KGgo=".into()),
            ..Default::default()
        };
        assert!(matches!(big.into_params(&small), Err(Error::ImageTooLarge { .. })));
    }

    #[test]
    fn image_urls_stay_in_the_bucket() {
        assert!(matches!(
            body(r#"{"image_url":"s3://photos/a.png"}"#).unwrap().query,
            Query::ImageUrl(l) if l.key == "a.png"
        ));
        assert!(body(r#"{"image_url":"s3://other/a.png"}"#).is_err());
        assert!(body(r#"{"image_url":"https://photos/a.png"}"#).is_err());
        assert!(body(r#"{"image_url":"s3://photos/"}"#).is_err());
        assert!(body(r#"{"id":"abc"}"#).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn searches_rank_presign_and_exclude() {
        let s = searcher(settings()).await;
        let r = s.search(SearchParams::new(Query::Text("b".into()))).await.unwrap();
        assert_eq!(r.results[0].id, id(1));
        assert_eq!(r.results[0].url.as_deref(), Some("https://s3/photos/dir1/img1.png?sig"));
        assert_eq!(r.model, "fake");

        let more = s.search(SearchParams::new(Query::Id(id(1)))).await.unwrap();
        assert!(more.results.iter().all(|h| h.id != id(1)));
        assert_eq!(more.results.len(), 3);

        let url = s
            .search(SearchParams::new(Query::ImageUrl(Location::new("photos", "x"))))
            .await
            .unwrap();
        assert_eq!(url.results[0].id, id(2));

        let filtered = s
            .search(SearchParams {
                options: CheckedOptions {
                    prefix: Some("dir0/".into()),
                    min_score: Some(-0.5),
                    ..Default::default()
                },
                ..SearchParams::new(Query::Image(vec![1]))
            })
            .await
            .unwrap();
        assert!(filtered.results.iter().all(|h| h.key.starts_with("dir0/")));

        assert!(matches!(
            s.search(SearchParams::new(Query::Id(id(9)))).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.search(SearchParams::new(Query::ImageUrl(Location::new("photos", "missing"))))
                .await,
            Err(Error::ObjectMissing { .. })
        ));
        assert!(matches!(
            s.search(SearchParams::new(Query::Image(b"nope".to_vec()))).await,
            Err(Error::NotAnImage(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disabled_towers_refuse_their_queries() {
        let s = searcher(SearchSettings {
            enable_image: false,
            ..settings()
        })
        .await;
        let err = s.search(SearchParams::new(Query::Image(vec![1]))).await.unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(s.search(SearchParams::new(Query::Text("a".into()))).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn images_and_uploads() {
        let s = searcher(settings()).await;
        let info = s.image(&id(3).to_uppercase()).await.unwrap();
        assert_eq!((info.key.as_str(), info.width, info.height), ("dir1/img3.png", 10, 20));
        assert!(matches!(s.image(&id(8)).await, Err(Error::NotFound(_))));

        let t = s.upload("C:\\photos\\my cat.JPG", "image/jpeg").await.unwrap();
        assert!(
            t.key.starts_with("uploads/") && t.key.ends_with("-my_cat.JPG"),
            "{}",
            t.key
        );
        assert_eq!((t.method.as_str(), t.content_type.as_str()), ("POST", "image/jpeg"));
        assert_eq!(t.fields["key"], t.key);
        assert_eq!(t.max_bytes, crate::config::DEFAULT_MAX_IMAGE_BYTES);
        assert_ne!(
            s.upload("a.png", "image/png").await.unwrap().key,
            s.upload("a.png", "image/png").await.unwrap().key
        );
        assert!(matches!(
            s.upload("a.txt", "text/plain").await,
            Err(Error::UnsupportedFormat(_))
        ));
        assert!(matches!(s.upload("", "image/png").await, Err(Error::InvalidRequest(_))));
    }
}
