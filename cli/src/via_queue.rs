//! `clipsearch index s3://bucket/prefix --via-queue QUEUE`: a backfill the deployed ingest
//! fleet does. This process only lists the prefix and sends one S3-notification-shaped message
//! per object to the ingest queue (SendMessageBatch, 10 at a time, a few batches in flight);
//! SQS and Lambda scale the embedding out. Then it watches the queue drain.
//!
//! Resumable: the continuation token names the last object sent (with the bucket and prefix it
//! belongs to). A checkpoint line with the token is printed after each listed page, and on
//! Ctrl-C or SIGTERM the run stops at a batch boundary and prints the exact token, so resuming
//! sends nothing twice. (After a SIGKILL, resuming from the last checkpoint re-sends at most
//! one page: ingest is idempotent, so that costs a read per object and no inference.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clipsearch::events::{notification_body, ObjectEvent};
use clipsearch::objects::ObjectSummary;
use clipsearch::store::Location;
use futures::stream::{self, StreamExt};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::queue;

/// SQS's largest batch.
const BATCH: usize = 10;
/// SendMessageBatch calls in flight at once.
const IN_FLIGHT: usize = 8;
/// Attempts per batch for entries SQS answers as failed (throttling, internal errors).
const ATTEMPTS: u32 = 6;

/// What a `--via-queue` run needs beyond the source.
pub struct Options<'a> {
    pub source: &'a str,
    pub queue: &'a str,
    pub continuation_token: Option<&'a str>,
    /// Messages per second at most.
    pub rate: Option<f64>,
    pub page_size: i32,
    pub wait: bool,
    pub quiet: bool,
}

/// Where a run stopped: the last key sent under a bucket and prefix.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Token {
    bucket: String,
    prefix: String,
    after: String,
}

impl Token {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(token: &str) -> Result<Self> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|e| anyhow!("not a continuation token printed by clipsearch: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| anyhow!("not a continuation token printed by clipsearch: {e}"))
    }
}

/// Spaces sends to at most `rate` messages per second over the whole run.
struct Pacer {
    started: tokio::time::Instant,
    issued: AtomicU64,
    rate: Option<f64>,
}

impl Pacer {
    async fn admit(&self, messages: usize) {
        let issued = self.issued.fetch_add(messages as u64, Ordering::SeqCst);
        if let Some(rate) = self.rate.filter(|r| *r > 0.0) {
            let due = self.started + Duration::from_secs_f64(issued as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
    }
}

pub async fn run(options: Options<'_>) -> Result<bool> {
    let Some((bucket, prefix)) = clipsearch::objects::parse_s3_url(options.source) else {
        bail!(
            "--via-queue needs an s3://bucket/prefix source, not {:?}",
            options.source
        );
    };
    let mut after = match options.continuation_token {
        Some(token) => {
            let token = Token::decode(token)?;
            if (token.bucket.as_str(), token.prefix.as_str()) != (bucket.as_str(), prefix.as_str()) {
                bail!(
                    "the continuation token is for s3://{}/{}, not {}",
                    token.bucket,
                    token.prefix,
                    options.source
                );
            }
            Some(token.after)
        }
        None => None,
    };
    let objects = crate::wiring::s3().await?;
    let sqs = queue::sqs_client().await;
    let queue_url = queue::queue_url(&sqs, options.queue).await?;
    let dead_letters = queue::dead_letter_queue(&sqs, &queue_url).await?;
    let dead_before = match &dead_letters {
        Some(url) => Some(queue::depth(&sqs, url).await?.0),
        None => None,
    };
    let stop = stop_on_signals()?;

    let bar = queue::progress(
        options.quiet,
        "{spinner} [{elapsed_precise}] listed {len} sent {pos} {per_sec} {msg}",
    );
    let started = Instant::now();
    let pacer = Pacer {
        started: tokio::time::Instant::now(),
        issued: AtomicU64::new(0),
        rate: options.rate,
    };
    let (mut listed, mut sent) = (0u64, 0u64);
    let token_after = |after: &Option<String>| {
        after.as_ref().map(|key| {
            Token {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                after: key.clone(),
            }
            .encode()
        })
    };
    let list = |after: Option<String>| {
        let (objects, bucket, prefix) = (&objects, &bucket, &prefix);
        async move {
            objects
                .list_page(bucket, prefix, after.as_deref(), options.page_size)
                .await
                .with_context(|| format!("listing s3://{bucket}/{prefix}"))
        }
    };
    let mut page = list(after.clone()).await?;
    let mut interrupted = false;
    loop {
        let (summaries, next) = page;
        // Folder markers ("photos/") are never images; everything else is tried (the content
        // decides, as for `clipsearch index`).
        let batch: Vec<ObjectSummary> = summaries.into_iter().filter(|o| !o.key.ends_with('/')).collect();
        listed += batch.len() as u64;
        bar.inc_length(batch.len() as u64);
        // The next page is listed while this one is sent.
        let next_listing = async {
            match &next {
                Some(key) => Some(list(Some(key.clone())).await),
                None => None,
            }
        };
        let sending = send_page(&sqs, &queue_url, &bucket, &batch, &pacer, &stop, &bar);
        let (done, next_page) = tokio::join!(sending, next_listing);
        let (count, last_sent, failure) = done;
        sent += count;
        if let Some(key) = last_sent {
            after = Some(key);
        }
        if let Some(e) = failure {
            bar.finish_and_clear();
            print_summary(
                &options,
                &queue_url,
                listed,
                sent,
                token_after(&after),
                true,
                started,
                None,
            );
            return Err(e.context(format!(
                "sending to {queue_url}; resume with --continuation-token {}",
                token_after(&after).unwrap_or_default()
            )));
        }
        if stop.load(Ordering::SeqCst) && (count as usize) < batch.len() {
            interrupted = true;
            break;
        }
        // The whole page went: continue after its last listed key (a marker may end it).
        if let Some(key) = &next {
            after = Some(key.clone());
        }
        bar.suspend(|| {
            println!(
                "{}",
                json!({ "checkpoint": { "continuation_token": token_after(&after), "listed": listed, "sent": sent } })
            )
        });
        match next_page {
            Some(listing) => page = listing?,
            None => break,
        }
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    let token = token_after(&after);
    if interrupted {
        eprintln!(
            "interrupted after sending {sent} message(s); resume with --continuation-token {}",
            token.as_deref().unwrap_or("(none: nothing was sent)")
        );
        print_summary(&options, &queue_url, listed, sent, token, true, started, None);
        return Ok(false);
    }
    eprintln!(
        "sent {sent} message(s) for {listed} object(s) in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        sent as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    let drained = if options.wait {
        Some(queue::watch_drain(&sqs, &queue_url, sent, &stop, options.quiet).await?)
    } else {
        None
    };
    let dead_lettered = match (&dead_letters, dead_before) {
        (Some(url), Some(before)) if drained.is_some() => {
            let now = queue::depth(&sqs, url).await?.0;
            let new = now.saturating_sub(before);
            if new > 0 {
                eprintln!("{new} message(s) went to the dead-letter queue {url}: `clipsearch dlq list {queue_url}`");
            }
            Some(new)
        }
        _ => None,
    };
    print_summary(
        &options,
        &queue_url,
        listed,
        sent,
        None,
        false,
        started,
        drained.map(|d| (d, dead_lettered)),
    );
    Ok(drained != Some(false) && dead_lettered.unwrap_or(0) == 0)
}

/// Sends one listed page in batches of 10, a few in flight, stopping at a batch boundary once
/// `stop` is set. Batches are started in key order and their results read in that order, so
/// what was sent is always a prefix of the page: the count, the last key sent, and the error
/// that ended it early.
async fn send_page(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    bucket: &str,
    page: &[ObjectSummary],
    pacer: &Pacer,
    stop: &AtomicBool,
    bar: &ProgressBar,
) -> (u64, Option<String>, Option<anyhow::Error>) {
    let mut results = std::pin::pin!(stream::iter(page.chunks(BATCH))
        .then(|chunk| async move {
            pacer.admit(chunk.len()).await;
            chunk
        })
        .take_while(|_| std::future::ready(!stop.load(Ordering::SeqCst)))
        .map(|chunk| async move { send_batch(sqs, queue_url, bucket, chunk).await.map(|()| chunk) })
        .buffered(IN_FLIGHT));
    let (mut sent, mut last) = (0u64, None);
    while let Some(result) = results.next().await {
        match result {
            Ok(chunk) => {
                sent += chunk.len() as u64;
                bar.inc(chunk.len() as u64);
                last = chunk.last().map(|o| o.key.clone());
            }
            Err(e) => return (sent, last, Some(e)),
        }
    }
    (sent, last, None)
}

/// One SendMessageBatch, retrying the entries SQS answers as failed.
async fn send_batch(sqs: &aws_sdk_sqs::Client, queue_url: &str, bucket: &str, chunk: &[ObjectSummary]) -> Result<()> {
    let mut pending: Vec<(String, String)> = chunk
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let event = ObjectEvent::Created {
                location: Location::new(bucket, o.key.clone()),
                size: Some(o.size),
            };
            (i.to_string(), notification_body(&[event]).to_string())
        })
        .collect();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let answer = queue::send_batch(
            sqs,
            queue_url,
            pending.iter().map(|(id, body)| (id.as_str(), body.as_str())),
        )
        .await?;
        let failed = answer.failed();
        if let Some(ours) = failed.iter().find(|f| f.sender_fault()) {
            bail!(
                "SQS refused a message: {} {}",
                ours.code(),
                ours.message().unwrap_or("")
            );
        }
        let retry: std::collections::HashSet<&str> = failed.iter().map(|f| f.id()).collect();
        pending.retain(|(id, _)| retry.contains(id.as_str()));
        if pending.is_empty() {
            return Ok(());
        }
    }
    bail!("{} message(s) still failing after {ATTEMPTS} attempts", pending.len())
}

#[allow(clippy::too_many_arguments)]
fn print_summary(
    options: &Options<'_>,
    queue_url: &str,
    listed: u64,
    sent: u64,
    token: Option<String>,
    interrupted: bool,
    started: Instant,
    drained: Option<(bool, Option<u64>)>,
) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "source": options.source,
            "queue": queue_url,
            "listed": listed,
            "sent": sent,
            "interrupted": interrupted,
            "continuation_token": token,
            "seconds": seconds,
            "messages_per_second": sent as f64 / seconds.max(1e-9),
            "drained": drained.map(|d| d.0),
            "dead_lettered": drained.and_then(|d| d.1),
        })
    );
}

/// A flag set by the first Ctrl-C or SIGTERM (a second one ends the process as usual).
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = Arc::new(AtomicBool::new(false));
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("stopping after the batches in flight (again to abort)");
        flag.store(true, Ordering::SeqCst);
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        std::process::exit(130);
    });
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_junk() {
        let token = Token {
            bucket: "b".into(),
            prefix: "photos/".into(),
            after: "photos/ünïcode key.jpg".into(),
        };
        assert_eq!(Token::decode(&token.encode()).unwrap(), token);
        assert!(Token::decode("not a token").is_err());
        assert!(Token::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}")).is_err());
    }
}
