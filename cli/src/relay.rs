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

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use clipsearch::config::{env_opt, ClipSettings};
use clipsearch::deadline;
use clipsearch::events::SqsMessage;
use clipsearch::ingest::ClipIngestor;
use serde_json::{json, Value};

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
    /// Exit after the first receive that returns nothing, instead of polling forever.
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

pub async fn run(options: RelayArgs) -> Result<bool> {
    if !(1..=10).contains(&options.batch_size) {
        bail!("--batch-size must be 1..=10 (one SQS receive)");
    }
    if !(0..=20).contains(&options.wait_secs) {
        bail!("--wait-secs must be 0..=20");
    }
    let sqs = sqs_client().await;
    let queue_url = match (&options.queue_url, &options.queue) {
        (Some(url), _) => url.clone(),
        (None, Some(name)) => sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .with_context(|| format!("looking up queue {name}"))?
            .queue_url()
            .ok_or_else(|| anyhow!("queue {name} has no URL"))?
            .to_owned(),
        (None, None) => bail!("give --queue-url or --queue (or CLIPSEARCH_QUEUE_URL / CLIPSEARCH_QUEUE)"),
    };
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the attributes of {queue_url}"))?;
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    let region = queue_arn.split(':').nth(3).unwrap_or("us-east-1").to_owned();
    let lambda_url = options.lambda_url.clone().unwrap_or_else(|| {
        format!(
            "http://127.0.0.1:{}",
            env_opt("LAMBDA_PORT").unwrap_or_else(|| "9000".into())
        )
    });
    let invoke_url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        lambda_url.trim_end_matches('/'),
        options.function
    );
    let target = match &options.in_process {
        Some(model) => {
            let clip = ClipSettings {
                model_dir: Some(model.clone()),
                ..ClipSettings::from_env()?
            };
            let ingestor = ClipIngestor::from_env(clip).await.context("ingest cold start")?;
            eprintln!("relay: {queue_url} -> in-process ingest (pid {})", std::process::id());
            Target::InProcess {
                ingestor: Box::new(ingestor),
                timeout: deadline::fallback_from_env()?,
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

    let mut totals = Totals::default();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(options.batch_size)
            .wait_time_seconds(options.wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .context("receiving from the queue")?;
        let messages = received.messages();
        if messages.is_empty() {
            if options.until_empty {
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
                    "eventSourceARN": queue_arn,
                    "awsRegion": region,
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
        let retry = match target.deliver(&json!({ "Records": records }), &batch).await {
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
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !retry.contains(m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let deleted = done.len() as u64;
        if !done.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .context("deleting handled messages")?;
        }
        totals.deleted += deleted;
        totals.failed += messages.len() as u64 - deleted;
        eprintln!(
            "relay: {} message(s): {deleted} done, {} left for retry",
            messages.len(),
            messages.len() as u64 - deleted
        );
    }
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

/// Times a batch is sent when `cargo lambda watch` itself fails the call.
const EMULATOR_ATTEMPTS: usize = 3;

/// Why an invocation gave no list of failures.
enum InvokeError {
    /// The emulator, not the function, failed the call: its own 500 (a problem document whose
    /// type is `https://httpstatuses.com/500`; the function's errors never look like that) or
    /// no answer in time. cargo-lambda 1.9.2 does this to a small share of calls whose answer is
    /// large, and then the function's answer is lost.
    EmulatorLost(String),
    Function(anyhow::Error),
}

impl From<anyhow::Error> for InvokeError {
    fn from(e: anyhow::Error) -> Self {
        InvokeError::Function(e)
    }
}

/// Invokes the function, sending the batch again when the emulator lost the answer: ingest is
/// idempotent, and SQS would redeliver the batch after its visibility timeout anyway.
async fn invoke_through_emulator(http: &reqwest::Client, url: &str, event: &Value) -> Result<HashSet<String>> {
    let mut attempt = 1;
    loop {
        match invoke(http, url, event).await {
            Ok(failures) => return Ok(failures),
            Err(InvokeError::EmulatorLost(why)) if attempt < EMULATOR_ATTEMPTS => {
                eprintln!("relay: the emulator lost the answer ({why}); sending the batch again ({attempt}/{EMULATOR_ATTEMPTS})");
                attempt += 1;
            }
            Err(InvokeError::EmulatorLost(why)) => {
                bail!("the emulator lost the answer {EMULATOR_ATTEMPTS} times; last: {why}")
            }
            Err(InvokeError::Function(e)) => return Err(e),
        }
    }
}

/// Invokes the function; returns the ids it asks to retry. A function error or a malformed
/// answer is an error (the whole batch is retried, as Lambda does).
async fn invoke(http: &reqwest::Client, url: &str, event: &Value) -> Result<HashSet<String>, InvokeError> {
    let lost = |e: reqwest::Error| match e.is_timeout() {
        true => InvokeError::EmulatorLost(format!("no answer in time ({e})")),
        false => InvokeError::Function(anyhow::Error::new(e).context("POST to the Lambda emulator")),
    };
    let response = http.post(url).json(event).send().await.map_err(lost)?;
    let status = response.status();
    let text = response.text().await.map_err(lost)?;
    if status == reqwest::StatusCode::INTERNAL_SERVER_ERROR
        && serde_json::from_str::<Value>(&text).is_ok_and(|doc| doc["type"] == "https://httpstatuses.com/500")
    {
        return Err(InvokeError::EmulatorLost(format!("its own HTTP 500: {text}")));
    }
    if !status.is_success() {
        return Err(anyhow!("HTTP {status}: {text}").into());
    }
    let answer: Value = serde_json::from_str(&text).with_context(|| format!("answer is not JSON: {text}"))?;
    if answer.get("errorType").is_some() || answer.get("errorMessage").is_some() {
        return Err(anyhow!("function error: {text}").into());
    }
    let failures = match answer.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(HashSet::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(anyhow!("batchItemFailures is not a list: {other}").into()),
    };
    Ok(failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("a batchItemFailures entry has no itemIdentifier: {f}"))
        })
        .collect::<Result<_>>()?)
}

/// SQS on the same endpoint as S3 unless `CLIPSEARCH_SQS_ENDPOINT` says otherwise (moto serves
/// both on one port); credentials and region from the standard AWS environment.
async fn sqs_client() -> aws_sdk_sqs::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(endpoint) = env_opt("CLIPSEARCH_SQS_ENDPOINT").or_else(|| env_opt("CLIPSEARCH_S3_ENDPOINT")) {
        config = config.endpoint_url(endpoint);
    }
    if shared.region().is_none() {
        config = config.region(aws_sdk_sqs::config::Region::new("us-east-1"));
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-thread HTTP server giving `answers` in turn, one per connection; returns its URL.
    fn server(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/invoke", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 8192];
                let _ = stream.read(&mut request).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
                served += 1;
            }
            served
        });
        (url, handle)
    }

    const EMULATOR_500: &str =
        r#"{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}"#;

    #[tokio::test]
    async fn a_batch_the_emulator_lost_is_sent_again_and_the_functions_answer_counts() {
        let (url, handle) = server(vec![
            (500, EMULATOR_500),
            (200, r#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#),
        ]);
        let failures = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap();
        assert_eq!(failures, HashSet::from(["m2".to_owned()]));
        assert_eq!(handle.join().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_function_error_is_not_sent_again() {
        let (url, handle) = server(vec![(200, r#"{"errorType":"Boom","errorMessage":"no"}"#)]);
        let error = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("function error"), "{error:#}");
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_emulator_that_keeps_losing_answers_is_an_error_after_three_attempts() {
        let (url, handle) = server(vec![(500, EMULATOR_500); EMULATOR_ATTEMPTS]);
        let error = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("lost the answer 3 times"), "{error:#}");
        assert_eq!(handle.join().unwrap(), EMULATOR_ATTEMPTS);
    }
}
