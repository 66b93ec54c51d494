//! `clipsearch dlq list|redrive|purge QUEUE`: the dead-letter queue behind an ingest queue
//! (found from the queue's redrive policy). `list` shows each message's objects with the last
//! error ingest recorded for them (the status records, `clipsearch status`); `redrive` sends
//! the messages back to the ingest queue once whatever failed is fixed; `purge` drops them.
//! Both ask first (`--yes` to skip the question).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName};
use clipsearch::events::{parse_notification, Notification};
use clipsearch::status::StatusStore;
use serde_json::json;

use crate::queue;

#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// One JSON line per dead letter: its objects and the last error recorded for each.
    List(QueueArg),
    /// Send every dead letter back to the ingest queue (after the cause is fixed).
    Redrive(Confirmed),
    /// Delete every dead letter.
    Purge(Confirmed),
}

#[derive(clap::Args)]
pub struct QueueArg {
    /// The ingest queue (name or URL) whose dead-letter queue to work on.
    #[arg(env = "CLIPSEARCH_QUEUE")]
    pub queue: String,
}

#[derive(clap::Args)]
pub struct Confirmed {
    #[command(flatten)]
    pub queue: QueueArg,
    /// Do not ask.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// How long listed messages stay hidden while the listing runs (they are made visible again
/// at its end).
const LIST_VISIBILITY_SECS: i32 = 60;
/// How long a message being redriven stays hidden between its receive and its delete.
const REDRIVE_VISIBILITY_SECS: i32 = 60;

pub fn command(command: DlqCommand) -> Result<bool> {
    crate::index::quiet_tracing();
    tokio::runtime::Runtime::new()?.block_on(run(command))
}

async fn run(command: DlqCommand) -> Result<bool> {
    let sqs = queue::sqs_client().await;
    let queue_arg = match &command {
        DlqCommand::List(q) => q,
        DlqCommand::Redrive(c) | DlqCommand::Purge(c) => &c.queue,
    };
    let source = queue::queue_url(&sqs, &queue_arg.queue).await?;
    let Some(dlq) = queue::dead_letter_queue(&sqs, &source).await? else {
        bail!("{source} has no redrive policy, so no dead-letter queue");
    };
    match command {
        DlqCommand::List(_) => list(&sqs, &dlq).await,
        DlqCommand::Redrive(c) => {
            let (waiting, _) = queue::depth(&sqs, &dlq).await?;
            if !confirm(
                c.yes,
                &format!("send {waiting} dead letter(s) from {dlq} back to {source}?"),
            )? {
                return Ok(false);
            }
            let moved = redrive(&sqs, &dlq, &source).await?;
            println!("{}", json!({ "redriven": moved, "from": dlq, "to": source }));
            Ok(true)
        }
        DlqCommand::Purge(c) => {
            let (waiting, _) = queue::depth(&sqs, &dlq).await?;
            if !confirm(c.yes, &format!("delete {waiting} dead letter(s) from {dlq}?"))? {
                return Ok(false);
            }
            sqs.purge_queue()
                .queue_url(&dlq)
                .send()
                .await
                .with_context(|| format!("purging {dlq}"))?;
            println!("{}", json!({ "purged": waiting, "queue": dlq }));
            Ok(true)
        }
    }
}

/// Asks on stderr, reads the answer from stdin; `--yes` skips the question.
fn confirm(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    // A script may answer on stdin too; an empty stdin is a no.
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let go = matches!(answer.trim(), "y" | "Y" | "yes");
    if !go {
        eprintln!("nothing done");
    }
    Ok(go)
}

/// Receives every message once (hidden meanwhile), then makes them all visible again.
async fn receive_all(sqs: &aws_sdk_sqs::Client, dlq: &str, visibility: i32) -> Result<Vec<Message>> {
    let mut all: Vec<Message> = Vec::new();
    loop {
        let messages = queue::receive(sqs, dlq, 10, 1, Some(visibility)).await?;
        if messages.is_empty() {
            return Ok(all);
        }
        all.extend(messages);
    }
}

async fn list(sqs: &aws_sdk_sqs::Client, dlq: &str) -> Result<bool> {
    let objects = crate::wiring::s3().await?;
    let messages = receive_all(sqs, dlq, LIST_VISIBILITY_SECS).await?;
    let mut out = std::io::stdout().lock();
    for message in &messages {
        let attributes = message.attributes().cloned().unwrap_or_default();
        let attribute =
            |name: MessageSystemAttributeName| -> Option<u64> { attributes.get(&name).and_then(|v| v.parse().ok()) };
        let body = message.body().unwrap_or_default();
        let (records, body_error) = match parse_notification(body) {
            Ok(Notification::Events(events)) => (events, None),
            Ok(Notification::TestEvent) => (Vec::new(), Some("s3:TestEvent".to_string())),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let mut listed = Vec::new();
        for event in &records {
            let location = event.location();
            let last_error = match objects.read_status(location).await {
                Ok(Some(record)) => {
                    json!({ "status": record.status, "code": record.code, "reason": record.reason, "at_ms": record.at_ms })
                }
                Ok(None) => serde_json::Value::Null,
                Err(e) => json!({ "unreadable": e.to_string() }),
            };
            listed.push(json!({ "bucket": location.bucket, "key": location.key, "last_error": last_error }));
        }
        let line = json!({
            "message_id": message.message_id(),
            "receive_count": attribute(MessageSystemAttributeName::ApproximateReceiveCount),
            "sent_at_ms": attribute(MessageSystemAttributeName::SentTimestamp),
            "objects": listed,
            "body_error": body_error,
        });
        writeln!(out, "{line}")?;
    }
    show_again(sqs, dlq, &messages).await?;
    eprintln!("{} dead letter(s) in {dlq}", messages.len());
    Ok(true)
}

/// Makes listed messages visible again at once.
async fn show_again(sqs: &aws_sdk_sqs::Client, dlq: &str, messages: &[Message]) -> Result<()> {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.change_message_visibility_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
            .with_context(|| format!("making the listed messages of {dlq} visible again"))?;
    }
    Ok(())
}

/// Moves batches from the dead-letter queue to `source`: each message is deleted only once
/// the ingest queue has taken it, so a failure part-way loses nothing (at worst a message is
/// in both queues, and ingest is idempotent).
async fn redrive(sqs: &aws_sdk_sqs::Client, dlq: &str, source: &str) -> Result<u64> {
    let mut moved = 0;
    loop {
        let messages = queue::receive(sqs, dlq, 10, 1, Some(REDRIVE_VISIBILITY_SECS)).await?;
        if messages.is_empty() {
            return Ok(moved);
        }
        let by_id: HashMap<String, &Message> = messages.iter().enumerate().map(|(i, m)| (i.to_string(), m)).collect();
        let bodies = by_id.iter().map(|(id, m)| (id.as_str(), m.body().unwrap_or_default()));
        let sent = queue::send_batch(sqs, source, bodies).await?;
        let taken: Vec<&Message> = sent
            .successful()
            .iter()
            .filter_map(|ok| by_id.get(ok.id()).copied())
            .collect();
        if let Some(failed) = sent.failed().first() {
            eprintln!(
                "{} message(s) not taken by {source} ({}); they stay in the dead-letter queue",
                sent.failed().len(),
                failed.code()
            );
        }
        moved += taken.len() as u64;
        if taken.is_empty() {
            // Nothing taken: stop rather than spin; the messages reappear after the timeout.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(moved);
        }
        queue::delete_batch(sqs, dlq, &taken).await?;
    }
}
