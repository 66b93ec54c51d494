//! The ingest use case: an object appeared in (or vanished from) a bucket; keep the image index
//! in step. The ingest Lambda (S3 and SQS events) and `clipsearch index` (backfill of a bucket
//! or a folder) are thin shells over [`Ingestor`].
//!
//! Records are keyed by the sha256 of the bytes, so a re-delivered event (Lambda is
//! at-least-once) finds its record and changes nothing, and the same image under a second key
//! costs a hash and a location update, never a second inference.
//!
//! Failures are sorted by what a queue should do with them ([`should_retry`]): bad input and
//! vanished objects are final (logged and dropped: retrying cannot help), everything else
//! (Milvus or S3 down, throttling, a deployment problem) fails the record so that it is
//! retried and, if it keeps failing, lands in the dead-letter queue instead of being lost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::clip::{Clip, Encoder, Towers};
use crate::config::{env_parse, ClipSettings, MilvusSettings};
use crate::events::{parse_notification, Invocation, Notification, ObjectEvent, SqsMessage};
use crate::objects::{ObjectSettings, ObjectSource, S3Objects};
use crate::store::{ImageIndex, ImageRecord, IndexSpec, Location, MilvusIndex, RemoveOutcome};
use crate::{Error, Result};

/// Records of one invocation processed at once by default (`CLIPSEARCH_INGEST_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// In-process lock stripes: two records with the same content never embed twice at once.
const CONTENT_STRIPES: usize = 64;

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New content: embedded and written.
    Indexed { id: String },
    /// Known content under a new key: the location was added, no inference.
    LocationAdded { id: String },
    /// Known content already listed under this key (a re-delivered event): nothing changed.
    Unchanged { id: String },
    /// A removed object: the record keeps its other locations.
    LocationRemoved { id: String },
    /// A removed object that was the content's last location: the record is gone.
    RecordDeleted { id: String },
    /// A removal for a location no record lists (re-delivered, or never indexed).
    NotIndexed,
    /// A removal event for a key that holds an object again: the newer upload's own event
    /// decides, so the stale removal is skipped.
    StillPresent,
    /// An event kind ingest has nothing to do for (restore, tagging, ...).
    Ignored { event_name: String },
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
            Outcome::StillPresent => "still_present",
            Outcome::Ignored { .. } => "ignored",
        }
    }

    /// The content hash the record concerns, when known.
    pub fn id(&self) -> Option<&str> {
        match self {
            Outcome::Indexed { id }
            | Outcome::LocationAdded { id }
            | Outcome::Unchanged { id }
            | Outcome::LocationRemoved { id }
            | Outcome::RecordDeleted { id } => Some(id),
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

/// The production wiring: CLIP, Milvus and S3.
pub type ClipIngestor = Ingestor<Clip, MilvusIndex, S3Objects>;

impl ClipIngestor {
    /// Loads the image tower, connects to S3 and Milvus and makes sure the collection exists;
    /// everything from the environment (see docs/ingest.md). Once per process (cold start).
    pub async fn from_env(clip: ClipSettings) -> Result<Self> {
        let objects = S3Objects::connect(&ObjectSettings::from_env()?).await;
        // On Lambda the model is copied from CLIPSEARCH_MODEL_S3_URI to /tmp first.
        let clip = crate::model_source::resolve(clip, Some(&objects)).await?;
        let max_image_bytes = clip.max_image_bytes;
        let encoder = tokio::task::spawn_blocking(move || Clip::load(&clip, Towers::IMAGE))
            .await
            .map_err(|e| Error::Config(format!("loading the model panicked: {e}")))??;
        let spec = IndexSpec {
            dimension: Encoder::dimension(&encoder),
            model: encoder.model_name().to_owned(),
        };
        let index = MilvusIndex::connect(&MilvusSettings::from_env()?, spec).await?;
        index.ensure_collection().await?;
        Ok(Ingestor::new(Arc::new(encoder), index, objects, max_image_bytes)
            .with_concurrency(env_parse("CLIPSEARCH_INGEST_CONCURRENCY", DEFAULT_CONCURRENCY)?))
    }
}

impl<E, I, S> Ingestor<E, I, S>
where
    E: Encoder + 'static,
    I: ImageIndex,
    S: ObjectSource,
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

    /// Indexes the object at `location`: fetch (refusing oversize objects before the body
    /// is downloaded), hash, then add the location to a known record or embed and write.
    pub async fn ingest_object(&self, location: &Location) -> Result<Outcome> {
        self.ingest_object_traced(location, &mut None).await
    }

    /// Indexes bytes already in hand as `location` (backfill of a folder).
    pub async fn ingest_bytes(&self, location: &Location, bytes: Vec<u8>) -> Result<Outcome> {
        self.ingest_bytes_traced(location, bytes, &mut None).await
    }

    /// Indexes a local file as `location`; a file over the size limit is refused from its
    /// metadata, before it is read.
    pub async fn ingest_file(&self, location: &Location, path: &Path) -> Result<Outcome> {
        self.ingest_file_traced(location, path, &mut None).await
    }

    /// Forgets `location` after its object was removed. If the key holds an object again
    /// (the removal event arrived late or twice), the newer upload's event wins and nothing
    /// is removed.
    pub async fn remove_object(&self, location: &Location) -> Result<Outcome> {
        location.validate()?;
        // A zero-byte cap turns the fetch into an existence check: it stops at the headers.
        match self.objects.fetch(&location.bucket, &location.key, 0).await {
            Err(Error::ObjectMissing { .. }) => {}
            Ok(_) | Err(Error::ImageTooLarge { .. }) => return Ok(Outcome::StillPresent),
            Err(e) => return Err(e),
        }
        Ok(match self.index.remove_location(location).await? {
            RemoveOutcome::NotIndexed => Outcome::NotIndexed,
            RemoveOutcome::LocationRemoved { id } => Outcome::LocationRemoved { id },
            RemoveOutcome::RecordDeleted { id } => Outcome::RecordDeleted { id },
        })
    }

    /// Handles one event, timing it and writing its log line.
    pub async fn handle(&self, event: &ObjectEvent) -> RecordReport {
        let started = Instant::now();
        let mut id = None;
        let outcome = match event {
            ObjectEvent::Created { location, .. } => self.ingest_object_traced(location, &mut id).await,
            ObjectEvent::Removed { location } => self.remove_object(location).await,
            ObjectEvent::Other { event_name, .. } => Ok(Outcome::Ignored {
                event_name: event_name.clone(),
            }),
        };
        self.report(event.location().clone(), id, outcome, started)
    }

    /// Handles a local file like an upload (backfill of a folder), with its log line.
    pub async fn handle_file(&self, location: &Location, path: &Path) -> RecordReport {
        let started = Instant::now();
        let mut id = None;
        let outcome = self.ingest_file_traced(location, path, &mut id).await;
        self.report(location.clone(), id, outcome, started)
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

    fn report(
        &self,
        location: Location,
        id: Option<String>,
        outcome: Result<Outcome>,
        started: Instant,
    ) -> RecordReport {
        let millis = started.elapsed().as_millis() as u64;
        // A removal learns the hash from the record it touched.
        let id = id.or_else(|| outcome.as_ref().ok().and_then(|o| o.id()).map(str::to_owned));
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
        }
    }

    async fn ingest_object_traced(&self, location: &Location, id: &mut Option<String>) -> Result<Outcome> {
        location.validate()?;
        let object = self
            .objects
            .fetch(&location.bucket, &location.key, self.max_image_bytes)
            .await?;
        self.ingest_bytes_traced(location, object.bytes, id).await
    }

    async fn ingest_file_traced(&self, location: &Location, path: &Path, id: &mut Option<String>) -> Result<Outcome> {
        let context = || path.display().to_string();
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(context(), e))?
            .len();
        if size > self.max_image_bytes {
            return Err(Error::ImageTooLarge {
                size,
                limit: self.max_image_bytes,
            });
        }
        let bytes = tokio::fs::read(path).await.map_err(|e| Error::io(context(), e))?;
        self.ingest_bytes_traced(location, bytes, id).await
    }

    async fn ingest_bytes_traced(
        &self,
        location: &Location,
        bytes: Vec<u8>,
        id_out: &mut Option<String>,
    ) -> Result<Outcome> {
        location.validate()?;
        let byte_size = bytes.len() as u64;
        if byte_size > self.max_image_bytes {
            return Err(Error::ImageTooLarge {
                size: byte_size,
                limit: self.max_image_bytes,
            });
        }
        let id = hex::encode(Sha256::digest(&bytes));
        *id_out = Some(id.clone());

        // Serialise work on one content in this process so that two keys with the same bytes
        // in one batch embed once; the second finds the first's record.
        let _guard = self.content_lock(&id).lock().await;
        let model = self.encoder.model_name();
        if let Some(existing) = self.index.get(&id).await? {
            if existing.model == model {
                if existing.locations.contains(location) {
                    return Ok(Outcome::Unchanged { id });
                }
                if self.index.add_location(&id, location).await? {
                    return Ok(Outcome::LocationAdded { id });
                }
                // The record vanished in between (its last key was deleted): index anew.
            }
        }

        let encoder = Arc::clone(&self.encoder);
        let embedded = tokio::task::spawn_blocking(move || encoder.embed_image(&bytes))
            .await
            .map_err(|e| Error::Inference(format!("the embedding task failed: {e}")))??;
        let record = ImageRecord {
            id: id.clone(),
            embedding: embedded.embedding,
            locations: vec![location.clone()],
            content_type: embedded.format.mime().to_owned(),
            width: embedded.width,
            height: embedded.height,
            byte_size,
            ingested_at_ms: now_ms(),
            model: model.to_owned(),
        };
        // One row written in one call: a failure leaves no partial record behind.
        self.index.upsert(record).await?;
        Ok(Outcome::Indexed { id })
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
            })
        }
        fn embed_text(&self, _: &str) -> Result<Embedding> {
            Err(Error::Config("no text".into()))
        }
    }

    /// Objects in a map; keys starting with "down" fail like an unreachable S3.
    struct FakeObjects(std::sync::Mutex<HashMap<(String, String), Vec<u8>>>);

    impl ObjectSource for FakeObjects {
        async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
            if key.starts_with("down") {
                return Err(Error::ObjectStoreUnavailable("test".into()));
            }
            let map = self.0.lock().unwrap();
            let bytes = map
                .get(&(bucket.to_owned(), key.to_owned()))
                .ok_or_else(|| Error::ObjectMissing {
                    bucket: bucket.into(),
                    key: key.into(),
                })?;
            if bytes.len() as u64 > max_bytes {
                return Err(Error::ImageTooLarge {
                    size: bytes.len() as u64,
                    limit: max_bytes,
                });
            }
            Ok(FetchedObject {
                bytes: bytes.clone(),
                content_type: None,
            })
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
        };
        Ingestor::new(
            Arc::new(FakeEncoder {
                calls: AtomicUsize::new(0),
            }),
            MemoryIndex::new(spec),
            FakeObjects(std::sync::Mutex::new(map)),
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
    async fn duplicates_and_redelivery_cost_no_inference() {
        let ing = ingestor(&[("a", b"IMG1"), ("b", b"IMG1")]);
        let reports = ing.handle_events(&[created("a"), created("b"), created("a")]).await;
        let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_ref().unwrap().as_str()).collect();
        // "a" twice in order; "b" concurrently with them, after or before the first "a".
        assert_eq!(outcomes[2], "unchanged");
        assert_eq!(ing.encoder().calls.load(Ordering::SeqCst), 1);
        assert_eq!(ing.index().count().await.unwrap(), 1);
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
    async fn removal_skips_keys_that_exist_again() {
        let ing = ingestor(&[("a", b"IMG3")]);
        ing.handle(&created("a")).await.outcome.unwrap();
        let removed = ObjectEvent::Removed {
            location: Location::new("b", "a"),
        };
        assert_eq!(ing.handle(&removed).await.outcome.unwrap(), Outcome::StillPresent);
        ing.objects().0.lock().unwrap().clear();
        assert!(matches!(
            ing.handle(&removed).await.outcome.unwrap(),
            Outcome::RecordDeleted { .. }
        ));
        assert_eq!(ing.handle(&removed).await.outcome.unwrap(), Outcome::NotIndexed);
    }
}
