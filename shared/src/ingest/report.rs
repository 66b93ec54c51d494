//! What ingest says about each record and each batch: the [`Outcome`], whether a queue should
//! retry it ([`should_retry`]), and the reports the adapters answer with and log.

use crate::store::Location;
use crate::{Error, Result};

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
