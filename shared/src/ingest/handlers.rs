//! The event side of ingest: one event, a batch of events, an SQS batch or a whole Lambda
//! invocation, each record timed, logged, its status kept, and the batch's failures reported
//! for the queue to retry.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use futures::stream::{self, StreamExt};

use super::IngestObjects;
use super::{should_retry, sync, Ingestor, Outcome, Trace};
use super::{BatchReport, RecordReport};
use crate::clip::Encoder;
use crate::events::{parse_notification, Invocation, Notification, ObjectEvent, SqsMessage};
use crate::status::StatusRecord;
use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
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
        // One line per record, with the same fields at every level; the level says whether
        // the queue will retry it (error) or it was refused for good (warn).
        macro_rules! record_line {
            ($level:ident, $outcome:expr $(, $field:ident = $value:expr)*) => {
                tracing::$level!(
                    bucket = %location.bucket,
                    key = %location.key,
                    hash,
                    outcome = $outcome,
                    $($field = $value,)*
                    ms = millis,
                    "record"
                )
            };
        }
        match &outcome {
            Ok(o) => record_line!(info, o.as_str()),
            Err(e) if should_retry(e) => {
                record_line!(error, "retry", code = e.code(), reason = tracing::field::display(e))
            }
            Err(e) => record_line!(warn, "rejected", code = e.code(), reason = tracing::field::display(e)),
        }
        RecordReport {
            location,
            id,
            outcome,
            millis,
            inference_ms: trace.inference_ms,
        }
    }
}
