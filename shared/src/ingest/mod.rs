//! The ingest use case: an object appeared in (or vanished from) a bucket; keep the image index
//! in step. The ingest Lambda (S3 and SQS events) and `clipsearch index` (backfill of a bucket
//! or a folder) are thin shells over [`Ingestor`].
//!
//! Each event makes the object's row agree with what the object holds *now* ([`sync`]): the
//! event only says which key to look at, so duplicates, reordering and concurrent Lambdas all
//! end in the bucket's current state, and a stale event cannot undo a newer one. The same image
//! under a second key costs a hash and a copied vector, never a second inference.
//!
//! Failures are sorted by what a queue should do with them ([`should_retry`]): bad input and
//! vanished objects are final (logged and dropped: retrying cannot help), everything else
//! (Milvus or S3 down, throttling, a deployment problem) fails the record so that it is
//! retried and, if it keeps failing, lands in the dead-letter queue instead of being lost.

mod handlers;
pub mod reconcile;
mod report;
mod rows;
mod sync;
pub mod thumbnails;

pub(crate) use report::Trace;
pub use report::{should_retry, BatchReport, Outcome, RecordReport};
pub use rows::file_version;
use rows::row_version;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

use crate::clip::{Clip, Encoder, Towers};
use crate::config::{ClipSettings, MilvusSettings};
use crate::objects::{ObjectSettings, ObjectSource, ObjectVersion, S3Objects};
use crate::status::StatusStore;
use crate::store::{ImageIndex, IndexSpec, LazyMilvus, Location};
use crate::thumbnail::{ThumbnailStore, THUMBNAIL_EDGE};
use crate::{Error, Result};

/// Records of one invocation processed at once by default (`CLIPSEARCH_INGEST_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// In-process lock stripes: two records with the same content never embed twice at once.
const CONTENT_STRIPES: usize = 64;

/// Where a record's thumbnail lives: beside an S3 object, in its bucket; a local file's
/// "bucket" is only a name, so it gets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Thumbnails {
    InBucket,
    None,
}

/// What ingest needs of S3: reading objects, status records and thumbnails.
pub trait IngestObjects: ObjectSource + StatusStore + ThumbnailStore {}
impl<T: ObjectSource + StatusStore + ThumbnailStore> IngestObjects for T {}

/// The ingest use case over an encoder, an index and an object source.
pub struct Ingestor<E, I, S> {
    encoder: Arc<E>,
    index: I,
    objects: S,
    max_image_bytes: u64,
    concurrency: usize,
    content_locks: Vec<Mutex<()>>,
}

/// The production wiring: CLIP, Milvus (connected on first use) and S3.
pub type ClipIngestor = Ingestor<Clip, LazyMilvus, S3Objects>;

impl ClipIngestor {
    /// Loads the image tower and makes the S3 client; Milvus is connected (and the collection
    /// created or loaded) on first use, under the deadline of whatever uses it first.
    /// Everything from the environment (see docs/ingest.md). Once per process (cold start).
    pub async fn from_env(clip: ClipSettings) -> Result<Self> {
        let objects = S3Objects::connect(&ObjectSettings::from_env()?).await;
        // On Lambda the model is copied from CLIPSEARCH_MODEL_S3_URI to /tmp first.
        let clip = crate::model_source::resolve(clip, Some(&objects), Towers::IMAGE).await?;
        let max_image_bytes = clip.max_image_bytes;
        let encoder = tokio::task::spawn_blocking(move || {
            Clip::load(&clip, Towers::IMAGE).map(|c| c.with_thumbnails(THUMBNAIL_EDGE))
        })
        .await
        .map_err(|e| Error::Config(format!("loading the model panicked: {e}")))??;
        let spec = IndexSpec::of(&encoder);
        let index = LazyMilvus::new(MilvusSettings::from_env()?, spec);
        Ok(Ingestor::new(Arc::new(encoder), index, objects, max_image_bytes)
            .with_concurrency(crate::config::ingest_concurrency(DEFAULT_CONCURRENCY)?))
    }
}

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
    pub fn new(encoder: Arc<E>, index: I, objects: S, max_image_bytes: u64) -> Self {
        Self {
            encoder,
            index,
            objects,
            max_image_bytes,
            concurrency: DEFAULT_CONCURRENCY,
            content_locks: (0..CONTENT_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// How many records [`Ingestor::handle_events`] and [`Ingestor::handle_sqs`] work on at
    /// once (at least 1). Inference itself is serialised by the model session; concurrency
    /// overlaps downloads, hashing, decoding and index round trips with it.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn index(&self) -> &I {
        &self.index
    }

    pub fn objects(&self) -> &S {
        &self.objects
    }

    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// Makes the index agree with the object at `location` as it is now (indexed, re-indexed,
    /// or removed), whatever event brought us here.
    pub async fn ingest_object(&self, location: &Location) -> Result<Outcome> {
        self.sync_object(location, sync::Trigger::Created, &mut Trace::default())
            .await
    }

    /// Indexes bytes already in hand as `location` (tests, local tooling): no S3 involved.
    pub async fn ingest_bytes(&self, location: &Location, bytes: Vec<u8>) -> Result<Outcome> {
        let version = ObjectVersion {
            size: bytes.len() as u64,
            ..ObjectVersion::default()
        };
        let previous = self.index.object(location).await?.map(|r| r.id);
        let trace = &mut Trace::default();
        self.index_bytes(location, bytes, &version, previous, Thumbnails::InBucket, trace)
            .await
    }

    /// Indexes a local file as `location`; a file over the size limit is refused from its
    /// metadata, before it is read.
    pub async fn ingest_file(&self, location: &Location, path: &Path) -> Result<Outcome> {
        self.ingest_file_traced(location, path, &mut Trace::default()).await
    }

    /// Handles the removal of the object at `location`: the same as any other event, since what
    /// counts is whether the key holds an object now. A removal that S3 answers with 403 (the
    /// role may not list the bucket, so a missing key is not a 404) counts as gone: it is never
    /// retried into the dead-letter queue.
    pub async fn remove_object(&self, location: &Location) -> Result<Outcome> {
        self.sync_object(location, sync::Trigger::Removed, &mut Trace::default())
            .await
    }

    /// Re-checks one key against the index (reconcile): like an event, with 403s an error.
    pub async fn reconcile_object(&self, location: &Location) -> Result<Outcome> {
        self.sync_object(location, sync::Trigger::Reconcile, &mut Trace::default())
            .await
    }

    /// Forgets a key without asking S3 (a local folder's file is gone).
    pub async fn forget(&self, location: &Location) -> Result<Outcome> {
        self.remove_row(location, Thumbnails::None).await
    }

    fn content_lock(&self, id: &str) -> &Mutex<()> {
        // The id is a sha256: its first bytes are already uniformly spread.
        let stripe = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as usize % CONTENT_STRIPES;
        &self.content_locks[stripe]
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
