//! Ingest status: why an object is not in the index.
//!
//! The index says what *is* indexed; nothing said why an object never showed up. Ingest now
//! records each object it refuses (bad input: not an image, unsupported, too large, a bomb) or
//! fails on (a retryable error, with the last one seen) as a small JSON document, and clears it
//! once the object is indexed or gone. [`status_of`] answers for one key from both: the index
//! first (it is the truth, so a record left behind by a failed clear never hides an indexed
//! object), then the recorded refusal, else unknown. The API (`GET /status`) and the CLI
//! (`clipsearch status`) both call it.
//!
//! Where records live is the store's business ([`StatusStore`]); on S3 it is a JSON object per
//! key under `CLIPSEARCH_STATUS_PREFIX` in the object's own bucket (`objects::status_store`).

use serde::{Deserialize, Serialize};

use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

/// Why a recorded object is not indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Bad input: ingest will refuse it again until the object changes.
    Refused,
    /// A retryable failure (Milvus or S3 unavailable, ...): the queue retries it and, after its
    /// receive limit, moves it to the dead-letter queue. The reason is the last error seen.
    Failing,
}

/// What ingest recorded about an object it could not index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub bucket: String,
    pub key: String,
    pub status: Standing,
    /// The error's stable code (`not_an_image`, `image_too_large`, `milvus_unavailable`, ...).
    pub code: String,
    pub reason: String,
    /// When ingest recorded it, ms since the Unix epoch.
    pub at_ms: i64,
}

impl StatusRecord {
    /// The record of a failed ingest of `location` now.
    pub fn of_failure(location: &Location, error: &Error, retried: bool) -> Self {
        Self {
            bucket: location.bucket.clone(),
            key: location.key.clone(),
            status: if retried { Standing::Failing } else { Standing::Refused },
            code: error.code().to_string(),
            reason: error.to_string(),
            at_ms: now_ms(),
        }
    }

    pub fn location(&self) -> Location {
        Location::new(self.bucket.clone(), self.key.clone())
    }
}

/// The answer for one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestStatus {
    Indexed {
        bucket: String,
        key: String,
        id: String,
        model: String,
        /// When the row was written, ms since the Unix epoch.
        ingested_at_ms: i64,
    },
    Refused(StatusRecord),
    Failing(StatusRecord),
    /// Neither indexed nor recorded: not uploaded, not notified yet, or still in the queue.
    Unknown {
        bucket: String,
        key: String,
    },
}

/// Where status records are kept. Every method has a do-nothing default, so object sources
/// without a status store (local folders, test doubles) need no code.
#[allow(async_fn_in_trait)]
pub trait StatusStore {
    /// Records (or replaces) why `record.location()` is not indexed.
    async fn record_status(&self, _record: &StatusRecord) -> Result<()> {
        Ok(())
    }
    /// Forgets whatever was recorded about `location` (nothing recorded is fine).
    async fn clear_status(&self, _location: &Location) -> Result<()> {
        Ok(())
    }
    async fn read_status(&self, _location: &Location) -> Result<Option<StatusRecord>> {
        Ok(None)
    }
    /// Records of keys under `prefix` in `bucket` that sort after `start_after`, in key order,
    /// at most `limit`, and the key to continue after when more follow.
    async fn list_statuses(
        &self,
        _bucket: &str,
        _prefix: &str,
        _start_after: Option<&str>,
        _limit: usize,
    ) -> Result<(Vec<StatusRecord>, Option<String>)> {
        Ok((Vec::new(), None))
    }
}

/// Indexed, refused, failing or unknown: the index first, then the recorded status.
pub async fn status_of<I: ImageIndex, S: StatusStore>(
    index: &I,
    store: &S,
    location: &Location,
) -> Result<IngestStatus> {
    location.validate()?;
    if let Some(row) = index.object(location).await? {
        return Ok(IngestStatus::Indexed {
            bucket: location.bucket.clone(),
            key: location.key.clone(),
            id: row.id,
            model: row.model,
            ingested_at_ms: row.ingested_at_ms,
        });
    }
    Ok(match store.read_status(location).await? {
        Some(record) if record.status == Standing::Refused => IngestStatus::Refused(record),
        Some(record) => IngestStatus::Failing(record),
        None => IngestStatus::Unknown {
            bucket: location.bucket.clone(),
            key: location.key.clone(),
        },
    })
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::{ImageIndex, MemoryIndex};

    #[derive(Default)]
    struct Records(Mutex<Vec<StatusRecord>>);

    impl StatusStore for Records {
        async fn read_status(&self, location: &Location) -> Result<Option<StatusRecord>> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.location() == *location)
                .cloned())
        }
    }

    fn spec() -> crate::store::IndexSpec {
        crate::store::IndexSpec {
            dimension: 2,
            model: "m".into(),
            text_model: None,
        }
    }

    #[tokio::test]
    async fn the_index_answers_first_then_the_record_then_unknown() {
        let index = MemoryIndex::new(spec());
        let indexed = Location::new("b", "ok.jpg");
        let refused = Location::new("b", "notes.jpg");
        index
            .put_object(crate::store::IndexedObject {
                location: indexed.clone(),
                id: "a".repeat(64),
                embedding: vec![1.0, 0.0],
                content_type: "image/png".into(),
                width: 1,
                height: 1,
                byte_size: 1,
                etag: String::new(),
                modified_ms: 0,
                captured: crate::capture::CaptureTime {
                    ms: 1,
                    source: crate::capture::CaptureSource::Exif,
                },
                model: "m".into(),
                ingested_at_ms: 7,
            })
            .await
            .unwrap();
        let store = Records::default();
        let not_an_image = Error::NotAnImage("text".into());
        // A record left behind for an indexed key (its clear failed) does not hide the row.
        for location in [&indexed, &refused] {
            store
                .0
                .lock()
                .unwrap()
                .push(StatusRecord::of_failure(location, &not_an_image, false));
        }
        match status_of(&index, &store, &indexed).await.unwrap() {
            IngestStatus::Indexed { id, ingested_at_ms, .. } => assert_eq!((id.len(), ingested_at_ms), (64, 7)),
            other => panic!("{other:?}"),
        }
        match status_of(&index, &store, &refused).await.unwrap() {
            IngestStatus::Refused(r) => assert_eq!(r.code, not_an_image.code()),
            other => panic!("{other:?}"),
        }
        let unknown = status_of(&index, &store, &Location::new("b", "never.jpg"))
            .await
            .unwrap();
        assert!(matches!(unknown, IngestStatus::Unknown { .. }), "{unknown:?}");
        let json = serde_json::to_value(status_of(&index, &store, &refused).await.unwrap()).unwrap();
        assert_eq!(json["status"], "refused");
        assert_eq!(json["key"], "notes.jpg");
    }

    #[test]
    fn retryable_failures_are_failing_and_bad_input_refused() {
        let location = Location::new("b", "k");
        let failing = StatusRecord::of_failure(&location, &Error::StoreUnavailable("down".into()), true);
        assert_eq!(failing.status, Standing::Failing);
        let round = serde_json::from_str::<StatusRecord>(&serde_json::to_string(&failing).unwrap()).unwrap();
        assert_eq!(round, failing);
    }
}
