//! Making one object's row agree with the object as it is now.
//!
//! Milvus has no transactions and no compare-and-set, so ordering cannot be decided by
//! comparing an event's `sequencer` with the stored one: the read and the write would race
//! exactly like the location lists did. Instead an event is only a hint about which key to
//! look at. [`Ingestor::sync_object`] reads the key's state (HEAD), writes the row for it, and
//! reads the state again: if the object changed meanwhile, its write may be stale, so it goes
//! round again. Of all the writes to one row, the one Milvus orders last was followed by such a
//! check that saw its own version still in place (or it would have written again), so the row
//! ends describing the object's final bytes, whatever order, duplication or concurrency the
//! events came with. docs/milvus.md has the argument in full.

use super::IngestObjects;
use super::{row_version, Ingestor, Outcome, Thumbnails, Trace};
use crate::clip::Encoder;
use crate::objects::{ObjectState, ObjectVersion};
use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

/// Rounds of read, write, re-read before the record is handed back to the queue.
const SYNC_ROUNDS: usize = 4;

/// What brought us to the key; it decides only what an ambiguous 403 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    Created,
    /// S3 reported the object removed: a 403 (no `s3:ListBucket`) is a missing key.
    Removed,
    Reconcile,
}

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
    pub(super) async fn sync_object(
        &self,
        location: &Location,
        trigger: Trigger,
        trace: &mut Trace,
    ) -> Result<Outcome> {
        location.validate()?;
        let mut before = self.state(location, trigger).await?;
        for round in 0..SYNC_ROUNDS {
            let (outcome, acted_on) = self.apply(location, &before, trace).await;
            if let Err(e) = &outcome {
                if super::should_retry(e) && !matches!(e, Error::ObjectMissing { .. }) {
                    return outcome; // Milvus or S3 failing: the queue retries the whole record.
                }
            }
            let after = self.state(location, trigger).await?;
            if same(&acted_on, &after) {
                return match outcome {
                    // A creation whose object is gone and never had a row: say so (final).
                    Ok(Outcome::NotIndexed) if trigger == Trigger::Created => Err(Error::ObjectMissing {
                        bucket: location.bucket.clone(),
                        key: location.key.clone(),
                    }),
                    other => other,
                };
            }
            tracing::info!(
                bucket = %location.bucket,
                key = %location.key,
                round,
                "object changed while it was being indexed; syncing again"
            );
            before = after;
        }
        Err(Error::ObjectStoreUnavailable(format!(
            "{location} kept changing during {SYNC_ROUNDS} rounds of indexing; retrying later"
        )))
    }

    /// The key's state, with a 403 resolved by what triggered us.
    async fn state(&self, location: &Location, trigger: Trigger) -> Result<Option<ObjectVersion>> {
        match self.objects.head(&location.bucket, &location.key).await? {
            ObjectState::Present(version) => Ok(Some(version)),
            ObjectState::Absent => Ok(None),
            ObjectState::Unreadable(reason) if trigger == Trigger::Removed => {
                tracing::warn!(bucket = %location.bucket, key = %location.key, %reason,
                    "HEAD after a removal was refused; treating the object as removed (grant s3:ListBucket on the prefix to get 404s)");
                Ok(None)
            }
            ObjectState::Unreadable(reason) => Err(Error::ObjectAccess(reason)),
        }
    }

    /// One round: makes the row match `state`. Returns the outcome and the version the row now
    /// describes (`None`: no object).
    async fn apply(
        &self,
        location: &Location,
        state: &Option<ObjectVersion>,
        trace: &mut Trace,
    ) -> (Result<Outcome>, Option<ObjectVersion>) {
        let Some(version) = state else {
            return (self.remove_row(location, Thumbnails::InBucket).await, None);
        };
        let previous = match self.index.object(location).await {
            Ok(Some(row)) if row.model == self.encoder.model_name() && row_version(&row).same_as(version) => {
                trace.id = Some(row.id.clone());
                return (Ok(Outcome::Unchanged { id: row.id }), Some(version.clone()));
            }
            Ok(row) => row.map(|r| r.id),
            Err(e) => return (Err(e), Some(version.clone())),
        };
        if version.size > self.max_image_bytes {
            return (
                self.refuse_oversized(location, version.size, Thumbnails::InBucket)
                    .await,
                Some(version.clone()),
            );
        }
        let fetched = match self
            .objects
            .fetch(&location.bucket, &location.key, self.max_image_bytes)
            .await
        {
            Ok(fetched) => fetched,
            // Gone or grown since the HEAD: the re-read differs from `version`, so the next
            // round acts on what is there now.
            Err(e) => return (Err(e), Some(version.clone())),
        };
        let acted_on = fetched.version.clone();
        let outcome = self
            .index_bytes(
                location,
                fetched.bytes,
                &fetched.version,
                previous,
                Thumbnails::InBucket,
                trace,
            )
            .await;
        (outcome, Some(acted_on))
    }
}

/// Whether the row written for `acted_on` still describes the key's state.
fn same(acted_on: &Option<ObjectVersion>, now: &Option<ObjectVersion>) -> bool {
    match (acted_on, now) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_as(b),
        _ => false,
    }
}
