//! The search use case: a query (text, image bytes, an `s3://` image, or an indexed id) becomes
//! a vector, the index returns the nearest images, and each hit gets a presigned GET URL so an
//! app can show it straight from S3 (`results`). Also the two small read/write helpers the
//! search API offers beside it: an image's metadata ([`Searcher::image`]) and a presigned
//! upload ([`Searcher::upload`], `upload`).
//!
//! Everything a caller can get wrong is checked here, once, and reported as a bad-input
//! [`Error`]; the Lambda and the CLI only translate their transport into [`QueryParts`] and
//! [`SearchOptions`] (HTTP's JSON bodies, base64 images, forms and query strings are parsed in
//! the search function, `functions/search/src/{body,request}.rs`). The encoder is CPU-bound, so
//! it runs on tokio's blocking pool.

mod batch;
mod duplicates;
mod options;
mod query;
mod results;
mod settings;
mod status;
mod upload;

pub use batch::MAX_BATCH_QUERIES;
pub use duplicates::{DuplicatesPage, DuplicatesRequest, MAX_API_CONTENTS, MAX_GROUPS_PER_PAGE};
pub use options::{CheckedOptions, SearchOptions, Sort};
pub use query::{Query, QueryParts, SearchParams};
pub use results::{ImageInfo, LocationInfo, SearchResponse, SearchResult, StageTimings};
pub use settings::SearchSettings;
pub use upload::{UploadTicket, UPLOAD_CONTENT_TYPES};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clip::Encoder;
use crate::objects::{ObjectSource, Presigner};
use crate::status::StatusStore;
use crate::store::{ImageIndex, SearchRequest};
use crate::thumbnail::ThumbnailStore;
use crate::{Error, Result};

/// Results when the caller does not say.
pub const DEFAULT_TOP_K: usize = 10;
/// Lambda's synchronous payload limit (6 MB): a query image can never be larger on AWS, so
/// the same limit applies locally and a test sees what production would.
pub const DEFAULT_MAX_QUERY_IMAGE_BYTES: u64 = 6 * 1024 * 1024;
/// Longest query text (characters). CLIP reads 77 tokens; this only bounds tokenizer work.
pub const MAX_TEXT_CHARS: usize = 2000;

/// What the searcher needs of S3: reading query images, presigning, status records and
/// thumbnail keys.
pub trait SearchObjects: ObjectSource + Presigner + StatusStore + ThumbnailStore {}
impl<T: ObjectSource + Presigner + StatusStore + ThumbnailStore> SearchObjects for T {}

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

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
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
        self.settings.check_query_image_size(bytes.len() as u64)?;
        let encoder = Arc::clone(&self.encoder);
        Ok(blocking(move || encoder.embed_image(&bytes)).await?.embedding)
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

#[cfg(test)]
mod tests;
