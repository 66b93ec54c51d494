//! `clipsearch relay`: a development stand-in for Lambda's SQS event source mapping. Polls the
//! ingest queue on the local emulator, invokes the function running under `cargo lambda watch`
//! with an SQS event, and deletes only the messages the function did not report in
//! `batchItemFailures`. Failed messages stay in the queue: they reappear after the visibility
//! timeout and, after the queue's `maxReceiveCount`, move to the dead-letter queue, as on AWS.
//!
//! With `--in-process MODEL_DIR` the relay is itself the function: it handles each batch with
//! the ingest use case the Lambda runs (`Ingestor::handle_sqs`). Several such relays are several
//! independent ingest workers, which is how the tests run concurrent Lambdas as separate
//! processes without an emulator per worker. Each batch then runs under the deadline an
//! invocation would have, `CLIPSEARCH_INVOCATION_TIMEOUT_SECS` (none when unset).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_sqs::types::QueueAttributeName;
use clipsearch::deadline;
use clipsearch::events::SqsMessage;
use clipsearch::ingest::ClipIngestor;
use serde_json::{json, Value};

mod emulator;
use crate::queue;
use emulator::invoke_through_emulator;

#[derive(clap::Args)]
pub struct RelayArgs {
    /// The ingest queue's URL.
    #[arg(long, env = "CLIPSEARCH_QUEUE_URL", conflicts_with = "queue")]
    pub queue_url: Option<String>,
    /// The ingest queue's name (looked up when no URL is given).
    #[arg(long, env = "CLIPSEARCH_QUEUE")]
    pub queue: Option<String>,
    /// The function to invoke (its binary name under `cargo lambda watch`).
    #[arg(long, default_value = "ingest")]
    pub function: String,
    /// Base URL of the Lambda emulator [default: http://127.0.0.1:$LAMBDA_PORT, port 9000].
    #[arg(long, env = "CLIPSEARCH_LAMBDA_URL")]
    pub lambda_url: Option<String>,
    /// Messages per invocation (1..=10: one SQS receive, Lambda's default batch is 10).
    #[arg(long, default_value_t = 10)]
    pub batch_size: i32,
    /// Long-poll wait per receive, in seconds (0..=20).
    #[arg(long, default_value_t = 5)]
    pub wait_secs: i32,
    /// Batches in flight at once: each poller receives and delivers batches on its own, as
    /// Lambda's SQS event source starts with five pollers (the emulator's
    /// `LAMBDA_CONCURRENCY` sets how many function instances serve them).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub pollers: u16,
    /// Exit once every poller's receive has returned nothing, instead of polling forever.
    #[arg(long)]
    pub until_empty: bool,
    /// Handle batches in this process with the model in DIR (ingest's own code), instead of
    /// invoking the emulated function.
    #[arg(long, value_name = "DIR", conflicts_with = "lambda_url")]
    pub in_process: Option<std::path::PathBuf>,
    /// Seconds to wait for the emulated function's answer before sending the batch again.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub invoke_timeout_secs: u64,
}

/// Who handles a batch.
enum Target {
    Emulator {
        http: reqwest::Client,
        url: String,
    },
    /// Each batch under the deadline a Lambda invocation would have
    /// (`CLIPSEARCH_INVOCATION_TIMEOUT_SECS`; none when unset).
    InProcess {
        ingestor: Box<ClipIngestor>,
        timeout: Option<Duration>,
    },
}

impl Target {
    /// The ids of the messages to retry.
    async fn deliver(&self, event: &Value, messages: &[SqsMessage]) -> Result<HashSet<String>> {
        match self {
            Target::Emulator { http, url } => invoke_through_emulator(http, url, event).await,
            Target::InProcess { ingestor, timeout } => {
                let deadline = deadline::invocation_deadline(0, *timeout);
                Ok(deadline::within(deadline, ingestor.handle_sqs(messages))
                    .await
                    .failed_message_ids
                    .into_iter()
                    .collect())
            }
        }
    }
}

/// The subcommand: `Ok(false)` when some messages were left for retry.
pub fn command(args: RelayArgs) -> Result<bool> {
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

#[derive(Default)]
struct Totals {
    invocations: u64,
    delivered: u64,
    deleted: u64,
    failed: u64,
}

impl std::iter::Sum for Totals {
    fn sum<I: Iterator<Item = Totals>>(all: I) -> Self {
        all.fold(Totals::default(), |a, b| Totals {
            invocations: a.invocations + b.invocations,
            delivered: a.delivered + b.delivered,
            deleted: a.deleted + b.deleted,
            failed: a.failed + b.failed,
        })
    }
}

/// What every poller shares: the queue, where batches go, how to receive.
struct Poller<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    queue_url: &'a str,
    queue_arn: &'a str,
    region: &'a str,
    target: &'a Target,
    options: &'a RelayArgs,
}

pub async fn run(options: RelayArgs) -> Result<bool> {
    if !(1..=10).contains(&options.batch_size) {
        bail!("--batch-size must be 1..=10 (one SQS receive)");
    }
    if !(0..=20).contains(&options.wait_secs) {
        bail!("--wait-secs must be 0..=20");
    }
    let sqs = queue::sqs_client().await;
    let queue_url = match (&options.queue_url, &options.queue) {
        (Some(url), _) => url.clone(),
        (None, Some(name)) => queue::queue_url(&sqs, name).await?,
        (None, None) => bail!("give --queue-url or --queue (or CLIPSEARCH_QUEUE_URL / CLIPSEARCH_QUEUE)"),
    };
    let queue_arn = queue::attributes(&sqs, &queue_url, &[QueueAttributeName::QueueArn])
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .unwrap_or_default();
    let region = queue_arn.split(':').nth(3).unwrap_or("us-east-1").to_owned();
    let lambda_url = options
        .lambda_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", clipsearch::config::lambda_port()));
    let invoke_url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        lambda_url.trim_end_matches('/'),
        options.function
    );
    let target = match &options.in_process {
        Some(model) => {
            let ingestor = crate::wiring::ingestor(Some(model)).await?;
            eprintln!("relay: {queue_url} -> in-process ingest (pid {})", std::process::id());
            Target::InProcess {
                ingestor: Box::new(ingestor),
                timeout: clipsearch::config::invocation_timeout()?,
            }
        }
        None => {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(options.invoke_timeout_secs))
                .build()?;
            eprintln!("relay: {queue_url} -> {invoke_url}");
            Target::Emulator { http, url: invoke_url }
        }
    };

    let poller = Poller {
        sqs: &sqs,
        queue_url: &queue_url,
        queue_arn: &queue_arn,
        region: &region,
        target: &target,
        options: &options,
    };
    let pollers = (0..options.pollers).map(|_| poller.run());
    let totals: Totals = futures::future::try_join_all(pollers).await?.into_iter().sum();
    println!(
        "{}",
        json!({
            "invocations": totals.invocations,
            "delivered": totals.delivered,
            "deleted": totals.deleted,
            "failed": totals.failed,
        })
    );
    Ok(totals.failed == 0)
}

impl Poller<'_> {
    /// One poller: receive a batch, deliver it, delete what was handled; again until told to
    /// stop. Its own totals.
    async fn run(&self) -> Result<Totals> {
        let mut totals = Totals::default();
        loop {
            let messages = queue::receive(
                self.sqs,
                self.queue_url,
                self.options.batch_size,
                self.options.wait_secs,
                None,
            )
            .await?;
            if messages.is_empty() {
                if self.options.until_empty {
                    break;
                }
                continue;
            }
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    let attributes: serde_json::Map<String, Value> = m
                        .attributes()
                        .map(|a| {
                            a.iter()
                                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "messageId": m.message_id().unwrap_or_default(),
                        "receiptHandle": m.receipt_handle().unwrap_or_default(),
                        "body": m.body().unwrap_or_default(),
                        "attributes": attributes,
                        "messageAttributes": {},
                        "md5OfBody": m.md5_of_body().unwrap_or_default(),
                        "eventSource": "aws:sqs",
                        "eventSourceARN": self.queue_arn,
                        "awsRegion": self.region,
                    })
                })
                .collect();
            totals.invocations += 1;
            totals.delivered += messages.len() as u64;
            let batch: Vec<SqsMessage> = messages
                .iter()
                .map(|m| SqsMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                })
                .collect();
            let retry = match self.target.deliver(&json!({ "Records": records }), &batch).await {
                Ok(failures) => failures,
                Err(e) => {
                    // Like the real mapping: an invocation error retries the whole batch.
                    eprintln!(
                        "relay: invocation failed, {} message(s) stay queued: {e:#}",
                        messages.len()
                    );
                    messages
                        .iter()
                        .filter_map(|m| m.message_id().map(str::to_owned))
                        .collect()
                }
            };
            let done: Vec<&aws_sdk_sqs::types::Message> = messages
                .iter()
                .filter(|m| !retry.contains(m.message_id().unwrap_or_default()))
                .collect();
            let deleted = done.len() as u64;
            queue::delete_batch(self.sqs, self.queue_url, &done).await?;
            totals.deleted += deleted;
            totals.failed += messages.len() as u64 - deleted;
            eprintln!(
                "relay: {} message(s): {deleted} done, {} left for retry",
                messages.len(),
                messages.len() as u64 - deleted
            );
        }
        Ok(totals)
    }
}
