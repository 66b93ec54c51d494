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

pub mod reconcile;
mod sync;
pub mod thumbnails;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::capture::CaptureTime;
use crate::clip::{Clip, Encoder, Towers};
use crate::config::{env_parse, ClipSettings, MilvusSettings};
use crate::events::{parse_notification, Invocation, Notification, ObjectEvent, SqsMessage};
use crate::objects::{ObjectSettings, ObjectSource, ObjectVersion, S3Objects};
use crate::status::{StatusRecord, StatusStore};
use crate::store::{ImageIndex, IndexSpec, IndexedObject, LazyMilvus, Location};
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

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New content: embedded and written.
    Indexed { id: String },
    /// Known content under a new key: its vector was copied, no inference.
    LocationAdded { id: String },
    /// The object's row already described what it holds (a re-delivered or stale event).
    Unchanged { id: String },
    /// The object is gone; other objects still hold its content.
    LocationRemoved { id: String },
    /// The object is gone and was the content's last location.
    RecordDeleted { id: String },
    /// The object is gone and had no row (re-delivered, or never indexed).
    NotIndexed,
    /// An event kind ingest has nothing to do for (restore, tagging, ...).
    Ignored { event_name: String },
    /// Reconcile made a content's missing thumbnail again.
    ThumbnailWritten { id: String },
    /// Reconcile deleted the thumbnail of a content no object holds any more.
    ThumbnailRemoved { id: String },
}

impl Outcome {
    /// A short stable name for logs and summaries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Indexed { .. } => "indexed",
            Outcome::LocationAdded { .. } => "location_added",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::LocationRemoved { .. } => "location_removed",
            Outcome::RecordDeleted { .. } => "record_deleted",
            Outcome::NotIndexed => "not_indexed",
            Outcome::Ignored { .. } => "ignored",
            Outcome::ThumbnailWritten { .. } => "thumbnail_written",
            Outcome::ThumbnailRemoved { .. } => "thumbnail_removed",
        }
    }

    /// The content hash the record concerns, when known.
    pub fn id(&self) -> Option<&str> {
        match self {
            Outcome::Indexed { id }
            | Outcome::LocationAdded { id }
            | Outcome::Unchanged { id }
            | Outcome::LocationRemoved { id }
            | Outcome::RecordDeleted { id }
            | Outcome::ThumbnailWritten { id }
            | Outcome::ThumbnailRemoved { id } => Some(id),
            _ => None,
        }
    }
}

/// True when a queue should deliver the record again: anything but bad input (not an image,
/// unsupported, corrupt, too large, a decompression bomb) and an object that no longer exists.
pub fn should_retry(error: &Error) -> bool {
    !(error.is_bad_input() || matches!(error, Error::ObjectMissing { .. }))
}

/// The result of one record, with what the log line says about it.
#[derive(Debug)]
pub struct RecordReport {
    pub location: Location,
    /// The sha256 of the content, once it was read.
    pub id: Option<String>,
    pub outcome: Result<Outcome>,
    pub millis: u64,
    /// Time spent embedding (0 when the content's vector was copied or nothing was embedded).
    pub inference_ms: f64,
}

/// What handling one record learns on the way, for its report: the content's hash once the
/// bytes were read, and the time spent embedding them.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub(crate) id: Option<String>,
    pub(crate) inference_ms: f64,
}

impl RecordReport {
    pub fn should_retry(&self) -> bool {
        self.outcome.as_ref().err().is_some_and(should_retry)
    }

    /// The failure's code and message, `None` on success.
    pub fn reason(&self) -> Option<String> {
        self.outcome.as_ref().err().map(|e| format!("{}: {e}", e.code()))
    }
}

/// The result of an SQS batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Messages to retry (the function answers them as `batchItemFailures`), in batch order.
    pub failed_message_ids: Vec<String>,
    /// One report per S3 record, in batch order.
    pub records: Vec<RecordReport>,
    /// Messages whose body is no S3 notification, with the reason (dropped: a retry would
    /// read the same body).
    pub unreadable: Vec<(String, String)>,
}

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
            .with_concurrency(env_parse("CLIPSEARCH_INGEST_CONCURRENCY", DEFAULT_CONCURRENCY)?))
    }
}

impl<E, I, S> Ingestor<E, I, S>
where
    E: Encoder + 'static,
    I: ImageIndex,
    S: ObjectSource + StatusStore + ThumbnailStore,
{
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

    /// Handles one event, timing it and writing its log line.
    pub async fn handle(&self, event: &ObjectEvent) -> RecordReport {
        let started = Instant::now();
        let mut trace = Trace::default();
        let outcome = match event {
            ObjectEvent::Created { location, .. } => {
                self.sync_object(location, sync::Trigger::Created, &mut trace).await
            }
            ObjectEvent::Removed { location } => self.sync_object(location, sync::Trigger::Removed, &mut trace).await,
            ObjectEvent::Other { event_name, .. } => Ok(Outcome::Ignored {
                event_name: event_name.clone(),
            }),
        };
        self.note_status(event.location(), &outcome).await;
        self.report(event.location().clone(), trace, outcome, started)
    }

    /// Keeps the key's status record in step with what just happened: a refusal or a failure
    /// is recorded with its reason; success, or the object being gone, clears it. Status is
    /// advisory: failing to write it is logged and changes nothing about the record's outcome.
    /// A record that ran out of the invocation's time still gets its status written, in part
    /// of the time kept back to answer ([`crate::deadline::with_bookkeeping_time`]).
    async fn note_status(&self, location: &Location, outcome: &Result<Outcome>) {
        let write = async {
            match outcome {
                Ok(_) | Err(Error::ObjectMissing { .. }) => self.objects.clear_status(location).await,
                Err(e) => {
                    let record = StatusRecord::of_failure(location, e, should_retry(e));
                    self.objects.record_status(&record).await
                }
            }
        };
        if matches!(outcome, Ok(Outcome::Ignored { .. })) {
            return;
        }
        let written = crate::deadline::with_bookkeeping_time(write).await;
        if let Err(e) = written {
            tracing::warn!(bucket = %location.bucket, key = %location.key, code = e.code(), reason = %e, "status record not written");
        }
    }

    /// Handles a local file like an upload (backfill of a folder), with its log line.
    pub async fn handle_file(&self, location: &Location, path: &Path) -> RecordReport {
        let started = Instant::now();
        let mut trace = Trace::default();
        let outcome = self.ingest_file_traced(location, path, &mut trace).await;
        self.report(location.clone(), trace, outcome, started)
    }

    /// Handles events concurrently; events for the same location keep their order (a put
    /// followed by a delete must not be applied the other way round). Reports in input order.
    pub async fn handle_events(&self, events: &[ObjectEvent]) -> Vec<RecordReport> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<&Location, usize> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            let g = *group_of.entry(event.location()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let mut done: Vec<(usize, RecordReport)> = stream::iter(groups)
            .map(|group| async move {
                let mut out = Vec::with_capacity(group.len());
                for i in group {
                    out.push((i, self.handle(&events[i]).await));
                }
                out
            })
            .buffer_unordered(self.concurrency)
            .flat_map(stream::iter)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    /// Handles an SQS batch of S3 notifications. A message is failed (retried by the queue)
    /// when any of its records should be retried; bad records are logged and dropped; one
    /// record never stops the others.
    pub async fn handle_sqs(&self, messages: &[SqsMessage]) -> BatchReport {
        let mut report = BatchReport::default();
        let mut events = Vec::new();
        let mut owner = Vec::new();
        for (m, message) in messages.iter().enumerate() {
            match parse_notification(&message.body) {
                Ok(Notification::Events(list)) => {
                    owner.extend(std::iter::repeat_n(m, list.len()));
                    events.extend(list);
                }
                Ok(Notification::TestEvent) => {
                    tracing::info!(message_id = %message.message_id, outcome = "ignored", "s3:TestEvent");
                }
                Err(e) => {
                    tracing::warn!(
                        message_id = %message.message_id,
                        outcome = "rejected",
                        code = e.code(),
                        reason = %e,
                        "message body is no S3 notification; dropped"
                    );
                    report.unreadable.push((message.message_id.clone(), e.to_string()));
                }
            }
        }
        report.records = self.handle_events(&events).await;
        let mut failed = vec![false; messages.len()];
        for (record, &m) in report.records.iter().zip(&owner) {
            failed[m] |= record.should_retry();
        }
        report.failed_message_ids = messages
            .iter()
            .zip(failed)
            .filter(|(_, f)| *f)
            .map(|(m, _)| m.message_id.clone())
            .collect();
        report
    }

    /// Handles whatever the function was invoked with. Direct S3 events have no partial
    /// failure: the caller fails the whole invocation when any record should be retried
    /// (safe, since handling is idempotent).
    pub async fn handle_invocation(&self, invocation: &Invocation) -> BatchReport {
        match invocation {
            Invocation::TestEvent => {
                tracing::info!(outcome = "ignored", "s3:TestEvent");
                BatchReport::default()
            }
            Invocation::S3(events) => BatchReport {
                records: self.handle_events(events).await,
                ..BatchReport::default()
            },
            Invocation::Sqs(messages) => self.handle_sqs(messages).await,
        }
    }

    fn report(&self, location: Location, trace: Trace, outcome: Result<Outcome>, started: Instant) -> RecordReport {
        let millis = started.elapsed().as_millis() as u64;
        // A removal learns the hash from the record it touched.
        let id = trace
            .id
            .or_else(|| outcome.as_ref().ok().and_then(|o| o.id()).map(str::to_owned));
        let hash = id.as_deref().unwrap_or("");
        match &outcome {
            Ok(o) => tracing::info!(
                bucket = %location.bucket,
                key = %location.key,
                hash,
                outcome = o.as_str(),
                ms = millis,
                "record"
            ),
            Err(e) if should_retry(e) => tracing::error!(
                bucket = %location.bucket,
                key = %location.key,
                hash,
                outcome = "retry",
                code = e.code(),
                reason = %e,
                ms = millis,
                "record"
            ),
            Err(e) => tracing::warn!(
                bucket = %location.bucket,
                key = %location.key,
                hash,
                outcome = "rejected",
                code = e.code(),
                reason = %e,
                ms = millis,
                "record"
            ),
        }
        RecordReport {
            location,
            id,
            outcome,
            millis,
            inference_ms: trace.inference_ms,
        }
    }

    async fn ingest_file_traced(&self, location: &Location, path: &Path, trace: &mut Trace) -> Result<Outcome> {
        location.validate()?;
        let context = || path.display().to_string();
        let metadata = tokio::fs::metadata(path).await.map_err(|e| Error::io(context(), e))?;
        let version = file_version(&metadata);
        if version.size > self.max_image_bytes {
            return self.refuse_oversized(location, version.size, Thumbnails::None).await;
        }
        let row = self.index.object(location).await?;
        if let Some(row) = &row {
            if row.model == self.encoder.model_name() && row_version(row).same_as(&version) {
                trace.id = Some(row.id.clone());
                return Ok(Outcome::Unchanged { id: row.id.clone() });
            }
        }
        let bytes = tokio::fs::read(path).await.map_err(|e| Error::io(context(), e))?;
        let previous = row.map(|r| r.id);
        self.index_bytes(location, bytes, &version, previous, Thumbnails::None, trace)
            .await
    }

    /// Writes the row of `location` for these bytes (of `version`): the vector of a content the
    /// index already holds is copied, a new content is embedded. Refused bytes remove the row,
    /// so an overwrite with a non-image does not leave the old picture findable. `previous` is
    /// the content the object's row held before, if any.
    async fn index_bytes(
        &self,
        location: &Location,
        bytes: Vec<u8>,
        version: &ObjectVersion,
        previous: Option<String>,
        thumbnails: Thumbnails,
        trace: &mut Trace,
    ) -> Result<Outcome> {
        location.validate()?;
        let byte_size = bytes.len() as u64;
        if byte_size > self.max_image_bytes {
            return self.refuse_oversized(location, byte_size, thumbnails).await;
        }
        let id = hex::encode(Sha256::digest(&bytes));
        trace.id = Some(id.clone());
        // Bytes handed over without an object (tests, tooling) have no last-modified time.
        let modified_ms = Some(version.modified_ms).filter(|ms| *ms > 0).unwrap_or_else(now_ms);
        let captured = CaptureTime::of(&bytes, modified_ms);
        let model = self.encoder.model_name();
        let row_of = |embedding, content_type: String, width, height| IndexedObject {
            location: location.clone(),
            id: id.clone(),
            embedding,
            content_type,
            width,
            height,
            byte_size,
            etag: version.etag.clone(),
            modified_ms: version.modified_ms,
            ingested_at_ms: now_ms(),
            model: model.to_owned(),
            captured,
        };

        // Serialise work on one content in this process so that two keys with the same bytes
        // in one batch embed once; the second finds the first's row.
        let _guard = self.content_lock(&id).lock().await;
        if let Some(known) = self.index.vector_of(&id).await? {
            if known.model == model {
                let row = row_of(known.embedding, known.content_type, known.width, known.height);
                self.index.put_object(row).await?;
                self.drop_replaced_thumbnail(location, previous.as_deref(), &id, thumbnails)
                    .await?;
                return Ok(if previous.as_deref() == Some(id.as_str()) {
                    Outcome::Unchanged { id }
                } else {
                    Outcome::LocationAdded { id }
                });
            }
        }
        let encoder = Arc::clone(&self.encoder);
        let embedding = Instant::now();
        let embedded = tokio::task::spawn_blocking(move || encoder.embed_image(&bytes))
            .await
            .map_err(|e| Error::Inference(format!("the embedding task failed: {e}")))?;
        trace.inference_ms += embedding.elapsed().as_secs_f64() * 1000.0;
        let mut embedded = match embedded {
            Ok(embedded) => embedded,
            Err(e) => {
                if e.is_bad_input() {
                    self.remove_row(location, thumbnails).await?;
                }
                return Err(e);
            }
        };
        if let Some(jpeg) = embedded.thumbnail.take().filter(|_| thumbnails == Thumbnails::InBucket) {
            // Written before the row, so a row found by search has its thumbnail. A failure
            // costs only the tile (the page shows the original instead; reconcile redoes it),
            // never the record.
            if let Err(e) = self.objects.put_thumbnail(&location.bucket, &id, jpeg).await {
                tracing::warn!(%location, error = %e, "the thumbnail was not written");
            }
        }
        let row = row_of(
            embedded.embedding,
            embedded.format.mime().to_owned(),
            embedded.width,
            embedded.height,
        );
        // One row written in one call: a failure leaves no partial row behind.
        self.index.put_object(row).await?;
        self.drop_replaced_thumbnail(location, previous.as_deref(), &id, thumbnails)
            .await?;
        Ok(Outcome::Indexed { id })
    }

    /// After an overwrite, the thumbnail of the content the object held before goes when no
    /// object holds that content any more.
    async fn drop_replaced_thumbnail(
        &self,
        location: &Location,
        previous: Option<&str>,
        id: &str,
        thumbnails: Thumbnails,
    ) -> Result<()> {
        match previous {
            Some(old) if thumbnails == Thumbnails::InBucket && old != id && !self.index.exists(old).await? => {
                self.remove_thumbnail(location, old).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Deletes a content's thumbnail; a failure costs only a stray file that reconcile removes,
    /// never the record.
    async fn remove_thumbnail(&self, location: &Location, id: &str) {
        if let Err(e) = self.objects.remove_thumbnail(&location.bucket, id).await {
            tracing::warn!(%location, id, error = %e, "the thumbnail was not deleted");
        }
    }

    /// Refuses an object over the byte limit: its row (an older, smaller version's) goes, so the
    /// key does not keep showing a picture it no longer holds.
    async fn refuse_oversized(&self, location: &Location, size: u64, thumbnails: Thumbnails) -> Result<Outcome> {
        self.remove_row(location, thumbnails).await?;
        Err(Error::ImageTooLarge {
            size,
            limit: self.max_image_bytes,
        })
    }

    /// Deletes the row of `location`, saying whether its content is still held elsewhere; the
    /// last object of a content takes the content's thumbnail (in its bucket) with it.
    async fn remove_row(&self, location: &Location, thumbnails: Thumbnails) -> Result<Outcome> {
        Ok(match self.index.remove_object(location).await? {
            None => Outcome::NotIndexed,
            Some(id) if self.index.exists(&id).await? => Outcome::LocationRemoved { id },
            Some(id) => {
                if thumbnails == Thumbnails::InBucket {
                    self.remove_thumbnail(location, &id).await;
                }
                Outcome::RecordDeleted { id }
            }
        })
    }

    fn content_lock(&self, id: &str) -> &Mutex<()> {
        // The id is a sha256: its first bytes are already uniformly spread.
        let stripe = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as usize % CONTENT_STRIPES;
        &self.content_locks[stripe]
    }
}

/// The version a row was written for.
fn row_version(row: &IndexedObject) -> ObjectVersion {
    ObjectVersion {
        etag: row.etag.clone(),
        size: row.byte_size,
        modified_ms: row.modified_ms,
    }
}

/// A local file's version: size and modification time (files have no ETag).
pub fn file_version(metadata: &std::fs::Metadata) -> ObjectVersion {
    let modified_ms = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ObjectVersion {
        etag: String::new(),
        size: metadata.len(),
        modified_ms,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{Embedding, ImageEmbedding, SniffedFormat};
    use crate::objects::FetchedObject;
    use crate::store::MemoryIndex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Accepts bytes starting with "IMG", embeds them as a fixed unit vector.
    struct FakeEncoder {
        calls: AtomicUsize,
    }

    impl Encoder for FakeEncoder {
        fn model_name(&self) -> &str {
            "fake"
        }
        fn dimension(&self) -> usize {
            2
        }
        fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !bytes.starts_with(b"IMG") {
                return Err(Error::NotAnImage("no magic".into()));
            }
            Ok(ImageEmbedding {
                embedding: vec![1.0, 0.0],
                format: SniffedFormat::Png,
                width: 3,
                height: 4,
                thumbnail: Some(b"JPEG".to_vec()),
            })
        }
        fn embed_text(&self, _: &str) -> Result<Embedding> {
            Err(Error::Config("no text".into()))
        }
    }

    /// Objects in a map; keys starting with "down" fail like an unreachable S3.
    struct FakeObjects(
        std::sync::Mutex<HashMap<(String, String), Vec<u8>>>,
        /// Bytes that overwrite a key right after its next GET (an upload landing mid-ingest).
        std::sync::Mutex<Option<(String, Vec<u8>)>>,
        /// Status records by location.
        std::sync::Mutex<HashMap<Location, StatusRecord>>,
        /// Thumbnails by (bucket, content id), and how many were written.
        std::sync::Mutex<(std::collections::HashSet<(String, String)>, usize)>,
    );

    fn fake_version(bytes: &[u8]) -> ObjectVersion {
        ObjectVersion {
            etag: hex::encode(&Sha256::digest(bytes)[..8]),
            size: bytes.len() as u64,
            modified_ms: 0,
        }
    }

    impl FakeObjects {
        fn bytes(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
            if key.starts_with("down") {
                return Err(Error::ObjectStoreUnavailable("test".into()));
            }
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(&(bucket.to_owned(), key.to_owned()))
                .cloned())
        }
    }

    impl ObjectSource for FakeObjects {
        async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
            let bytes = self.bytes(bucket, key)?.ok_or_else(|| Error::ObjectMissing {
                bucket: bucket.into(),
                key: key.into(),
            })?;
            if bytes.len() as u64 > max_bytes {
                return Err(Error::ImageTooLarge {
                    size: bytes.len() as u64,
                    limit: max_bytes,
                });
            }
            let overwrite = self.1.lock().unwrap().take_if(|(k, _)| k == key);
            if let Some((k, newer)) = overwrite {
                self.0.lock().unwrap().insert((bucket.to_owned(), k), newer);
            }
            Ok(FetchedObject {
                version: fake_version(&bytes),
                bytes,
                content_type: None,
            })
        }

        async fn head(&self, bucket: &str, key: &str) -> Result<crate::objects::ObjectState> {
            // What S3 answers without s3:ListBucket: a 403 whether or not the key exists.
            if key.starts_with("nolist/") && self.bytes(bucket, key)?.is_none() {
                return Ok(crate::objects::ObjectState::Unreadable("403 AccessDenied".into()));
            }
            Ok(match self.bytes(bucket, key)? {
                Some(bytes) => crate::objects::ObjectState::Present(fake_version(&bytes)),
                None => crate::objects::ObjectState::Absent,
            })
        }
    }

    impl StatusStore for FakeObjects {
        async fn record_status(&self, record: &StatusRecord) -> Result<()> {
            self.2.lock().unwrap().insert(record.location(), record.clone());
            Ok(())
        }
        async fn clear_status(&self, location: &Location) -> Result<()> {
            self.2.lock().unwrap().remove(location);
            Ok(())
        }
        async fn read_status(&self, location: &Location) -> Result<Option<StatusRecord>> {
            Ok(self.2.lock().unwrap().get(location).cloned())
        }
    }

    impl ThumbnailStore for FakeObjects {
        fn thumbnail_key(&self, id: &str) -> Option<String> {
            Some(format!("thumbs/{id}"))
        }
        async fn put_thumbnail(&self, bucket: &str, id: &str, _jpeg: Vec<u8>) -> Result<()> {
            let mut thumbnails = self.3.lock().unwrap();
            thumbnails.0.insert((bucket.to_owned(), id.to_owned()));
            thumbnails.1 += 1;
            Ok(())
        }
        async fn remove_thumbnail(&self, bucket: &str, id: &str) -> Result<()> {
            self.3.lock().unwrap().0.remove(&(bucket.to_owned(), id.to_owned()));
            Ok(())
        }
    }

    fn ingestor(objects: &[(&str, &[u8])]) -> Ingestor<FakeEncoder, MemoryIndex, FakeObjects> {
        let map = objects
            .iter()
            .map(|(k, v)| (("b".to_owned(), (*k).to_owned()), v.to_vec()))
            .collect();
        let spec = IndexSpec {
            dimension: 2,
            model: "fake".into(),
            text_model: None,
        };
        Ingestor::new(
            Arc::new(FakeEncoder {
                calls: AtomicUsize::new(0),
            }),
            MemoryIndex::new(spec),
            FakeObjects(
                std::sync::Mutex::new(map),
                std::sync::Mutex::new(None),
                std::sync::Mutex::default(),
                std::sync::Mutex::default(),
            ),
            1000,
        )
    }

    fn created(key: &str) -> ObjectEvent {
        ObjectEvent::Created {
            location: Location::new("b", key),
            size: None,
        }
    }

    #[tokio::test]
    async fn one_thumbnail_per_content_goes_with_its_last_object() {
        let ing = ingestor(&[("a", b"IMG1"), ("b", b"IMG1"), ("c", b"IMG2")]);
        for key in ["a", "b", "c", "a"] {
            ing.handle(&created(key)).await.outcome.unwrap();
        }
        let id1 = hex::encode(Sha256::digest(b"IMG1"));
        let thumbnails =
            |ing: &Ingestor<FakeEncoder, MemoryIndex, FakeObjects>| ing.objects().3.lock().unwrap().clone();
        let (present, written) = thumbnails(&ing);
        assert_eq!(
            (present.len(), written),
            (2, 2),
            "one per content, made once: {present:?}"
        );
        let gone = |ing: &Ingestor<FakeEncoder, MemoryIndex, FakeObjects>, key: &str| {
            ing.objects()
                .0
                .lock()
                .unwrap()
                .remove(&("b".to_owned(), key.to_owned()));
        };
        gone(&ing, "a");
        ing.remove_object(&Location::new("b", "a")).await.unwrap();
        assert!(
            thumbnails(&ing).0.contains(&("b".to_owned(), id1.clone())),
            "b still holds IMG1"
        );
        gone(&ing, "b");
        ing.remove_object(&Location::new("b", "b")).await.unwrap();
        assert!(
            !thumbnails(&ing).0.contains(&("b".to_owned(), id1)),
            "the last object took it"
        );
        assert_eq!(thumbnails(&ing).0.len(), 1);
        // An overwrite with other bytes: the old content's thumbnail goes, the new one's comes.
        ing.objects()
            .0
            .lock()
            .unwrap()
            .insert(("b".to_owned(), "c".to_owned()), b"IMG3".to_vec());
        ing.handle(&created("c")).await.outcome.unwrap();
        let ids: Vec<String> = thumbnails(&ing).0.into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, vec![hex::encode(Sha256::digest(b"IMG3"))]);
    }

    #[tokio::test]
    async fn duplicates_and_redelivery_cost_no_inference() {
        let ing = ingestor(&[("a", b"IMG1"), ("b", b"IMG1")]);
        let reports = ing.handle_events(&[created("a"), created("b"), created("a")]).await;
        let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_ref().unwrap().as_str()).collect();
        // "a" twice in order; "b" concurrently with them, after or before the first "a".
        assert_eq!(outcomes[2], "unchanged");
        assert_eq!(ing.encoder().calls.load(Ordering::SeqCst), 1);
        assert_eq!(ing.index().count().await.unwrap(), 2, "a row per object");
        let id = reports[0].id.clone().unwrap();
        let record = ing.index().get(&id).await.unwrap().unwrap();
        assert_eq!(record.locations.len(), 2);
        assert_eq!((record.width, record.height, record.byte_size), (3, 4, 4));
    }

    #[tokio::test]
    async fn errors_are_sorted_for_the_queue() {
        let ing = ingestor(&[("good", b"IMG2"), ("text", b"hello"), ("big", &[b'I'; 2000])]);
        let messages: Vec<SqsMessage> = ["good", "text", "big", "gone", "down"]
            .iter()
            .map(|k| SqsMessage {
                message_id: format!("m-{k}"),
                body: crate::events::notification_body(&[created(k)]).to_string(),
            })
            .chain([SqsMessage {
                message_id: "m-junk".into(),
                body: "not json".into(),
            }])
            .collect();
        let report = ing.handle_sqs(&messages).await;
        assert_eq!(report.failed_message_ids, vec!["m-down".to_string()]);
        assert_eq!(report.unreadable.len(), 1);
        let codes: Vec<_> = report
            .records
            .iter()
            .map(|r| r.outcome.as_ref().map_err(|e| e.code()).err())
            .collect();
        assert_eq!(
            codes,
            vec![
                None,
                Some("not_an_image"),
                Some("image_too_large"),
                Some("object_missing"),
                Some("object_store_unavailable")
            ]
        );
    }

    #[tokio::test]
    async fn refusals_and_failures_are_recorded_until_the_key_is_indexed_or_gone() {
        use crate::status::Standing;
        let ing = ingestor(&[("text", b"hello"), ("down-1", b"IMG")]);
        ing.handle(&created("text")).await;
        ing.handle(&created("down-1")).await;
        ing.handle(&created("never-there")).await;
        let status = |key: &str| ing.objects().2.lock().unwrap().get(&Location::new("b", key)).cloned();
        let refused = status("text").expect("refusal recorded");
        assert_eq!(
            (refused.status, refused.code.as_str()),
            (Standing::Refused, "not_an_image")
        );
        assert!(refused.at_ms > 0);
        let failing = status("down-1").expect("failure recorded");
        assert_eq!(
            (failing.status, failing.code.as_str()),
            (Standing::Failing, "object_store_unavailable")
        );
        assert_eq!(status("never-there"), None, "a missing object is no refusal");
        // Fixed: the same key now holds an image.
        ing.objects()
            .0
            .lock()
            .unwrap()
            .insert(("b".into(), "text".into()), b"IMG-fixed".to_vec());
        assert!(matches!(
            ing.handle(&created("text")).await.outcome,
            Ok(Outcome::Indexed { .. })
        ));
        assert_eq!(status("text"), None, "indexed clears the refusal");
        // A refused key that is deleted loses its record too.
        ing.objects()
            .0
            .lock()
            .unwrap()
            .insert(("b".into(), "notes".into()), b"text".to_vec());
        ing.handle(&created("notes")).await;
        assert!(status("notes").is_some());
        ing.objects()
            .0
            .lock()
            .unwrap()
            .remove(&("b".to_string(), "notes".to_string()));
        ing.handle(&ObjectEvent::Removed {
            location: Location::new("b", "notes"),
        })
        .await;
        assert_eq!(status("notes"), None);
    }

    #[tokio::test]
    async fn a_stale_removal_leaves_the_object_indexed() {
        let ing = ingestor(&[("a", b"IMG3")]);
        ing.handle(&created("a")).await.outcome.unwrap();
        let removed = ObjectEvent::Removed {
            location: Location::new("b", "a"),
        };
        // The key still holds its object: the removal is stale and changes nothing.
        assert!(matches!(
            ing.handle(&removed).await.outcome.unwrap(),
            Outcome::Unchanged { .. }
        ));
        ing.objects().0.lock().unwrap().clear();
        assert!(matches!(
            ing.handle(&removed).await.outcome.unwrap(),
            Outcome::RecordDeleted { .. }
        ));
        assert_eq!(ing.handle(&removed).await.outcome.unwrap(), Outcome::NotIndexed);
    }

    #[tokio::test]
    async fn events_in_any_order_end_in_the_current_state() {
        let ing = ingestor(&[("k", b"IMG-new")]);
        let removed = ObjectEvent::Removed {
            location: Location::new("b", "k"),
        };
        // A late delete of an older version, then the create, then a create again.
        for event in [removed.clone(), created("k"), removed, created("k")] {
            ing.handle(&event).await.outcome.unwrap();
        }
        let row = ing.index().object(&Location::new("b", "k")).await.unwrap().unwrap();
        assert_eq!(row.id, hex::encode(Sha256::digest(b"IMG-new")));
        assert_eq!(ing.encoder().calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_overwrite_during_ingest_is_caught_by_the_re_check() {
        let ing = ingestor(&[("k", b"IMG-v1")]);
        *ing.objects().1.lock().unwrap() = Some(("k".into(), b"IMG-v2".to_vec()));
        // The GET reads v1, then v2 lands: the row written for v1 is stale at once, and the
        // re-read after the write sees it.
        let report = ing.handle(&created("k")).await;
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
        let row = ing.index().object(&Location::new("b", "k")).await.unwrap().unwrap();
        assert_eq!(
            row.id,
            hex::encode(Sha256::digest(b"IMG-v2")),
            "the row describes the newest bytes"
        );
        assert_eq!(row.etag, fake_version(b"IMG-v2").etag);
    }

    #[tokio::test]
    async fn a_delete_answered_403_is_a_removal_and_never_retried() {
        let ing = ingestor(&[("nolist/a", b"IMG-a")]);
        ing.handle(&created("nolist/a")).await.outcome.unwrap();
        ing.objects().0.lock().unwrap().clear();
        let removed = ing
            .handle(&ObjectEvent::Removed {
                location: Location::new("b", "nolist/a"),
            })
            .await;
        assert!(
            matches!(removed.outcome, Ok(Outcome::RecordDeleted { .. })),
            "{:?}",
            removed.outcome
        );
        assert!(!removed.should_retry());
        assert_eq!(ing.index().count().await.unwrap(), 0);
        // A creation answered 403 is a permissions problem: retried (and visible in the DLQ).
        let created = ing.handle(&created("nolist/b")).await;
        assert_eq!(created.outcome.as_ref().unwrap_err().code(), "object_access_denied");
        assert!(created.should_retry());
    }

    #[tokio::test]
    async fn an_overwrite_with_refused_bytes_removes_the_key() {
        let ing = ingestor(&[("k", b"IMG-old")]);
        ing.handle(&created("k")).await.outcome.unwrap();
        ing.objects()
            .0
            .lock()
            .unwrap()
            .insert(("b".into(), "k".into()), b"not an image".to_vec());
        let refused = ing.handle(&created("k")).await;
        assert_eq!(refused.outcome.as_ref().unwrap_err().code(), "not_an_image");
        assert!(!refused.should_retry());
        assert_eq!(
            ing.index().count().await.unwrap(),
            0,
            "the old picture is not left findable"
        );
    }
}
