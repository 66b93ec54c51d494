//! The ingest Lambda: parse the invocation, hand it to clipsearch's ingest use case, shape the
//! answer. Accepts S3 notifications delivered directly, SQS batches of S3 notifications (the
//! production path; answered with `batchItemFailures`, so only failed messages are retried)
//! and `s3:TestEvent` (ignored).
//!
//! The model, the S3 client and the Milvus connection are created once per cold start and
//! reused by every invocation of the execution environment. Milvus is connected within what
//! the init phase has left, or else by the first invocation, under its deadline; every remote
//! call of an invocation ends before the invocation's deadline, so a hung dependency fails the
//! records it holds up (retried by the queue) instead of the whole batch timing out.

use anyhow::Context;
use clipsearch::config::ClipSettings;
use clipsearch::deadline;
use clipsearch::events::{parse_invocation, Invocation};
use clipsearch::ingest::ClipIngestor;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // One JSON object per line: CloudWatch Logs Insights can filter on key, hash, outcome, ms.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .init();

    let started = std::time::Instant::now();
    let ingestor = ClipIngestor::from_env(ClipSettings::from_env()?)
        .await
        .context("ingest cold start")?;
    ingestor.index().warm_up(started).await;
    let fallback_timeout = clipsearch::config::invocation_timeout()?;
    let namespace = clipsearch::config::metrics_namespace();
    tracing::info!(
        model = clipsearch::clip::Encoder::model_name(ingestor.encoder()),
        collection = ingestor.index().collection(),
        concurrency = ingestor.concurrency(),
        "ready"
    );
    let (ingestor, namespace) = (&ingestor, namespace.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline::invocation_deadline(event.context.deadline, fallback_timeout);
        let request_id = event.context.request_id.clone();
        deadline::within(deadline, handle(ingestor, namespace, &request_id, event.payload)).await
    }))
    .await
}

/// `namespace` and `request_id` label the invocation's EMF metrics lines.
async fn handle(
    ingestor: &ClipIngestor,
    namespace: &str,
    request_id: &str,
    payload: Value,
) -> Result<Value, lambda_runtime::Error> {
    let invocation = match parse_invocation(&payload) {
        Ok(invocation) => invocation,
        Err(e) => {
            // Retrying cannot make an unknown payload readable: say so and succeed, so that an
            // asynchronous invoker does not retry it.
            tracing::warn!(code = e.code(), reason = %e, outcome = "rejected", "unrecognised invocation");
            return Ok(json!({ "rejected": e.to_string() }));
        }
    };
    let report = ingestor.handle_invocation(&invocation).await;
    for metrics in clipsearch::metrics::ingest_batch(namespace, request_id, &report) {
        metrics.emit();
    }
    match invocation {
        Invocation::Sqs(_) => {
            let failures: Vec<Value> = report
                .failed_message_ids
                .iter()
                .map(|id| json!({ "itemIdentifier": id }))
                .collect();
            Ok(json!({ "batchItemFailures": failures }))
        }
        Invocation::TestEvent => Ok(json!({ "ignored": "s3:TestEvent" })),
        Invocation::S3(_) => {
            // S3 invokes asynchronously and retries a failed invocation as a whole, which is
            // safe: records already done come out `unchanged`.
            let retry: Vec<String> = report
                .records
                .iter()
                .filter(|r| r.should_retry())
                .map(|r| format!("{}: {}", r.location, r.reason().unwrap_or_default()))
                .collect();
            if !retry.is_empty() {
                return Err(format!("{} record(s) failed transiently: {}", retry.len(), retry.join("; ")).into());
            }
            let outcomes: Vec<Value> = report
                .records
                .iter()
                .map(|r| {
                    json!({
                        "key": r.location.key,
                        "hash": r.id,
                        "outcome": r.outcome.as_ref().map(|o| o.as_str()).unwrap_or("rejected"),
                        "reason": r.reason(),
                    })
                })
                .collect();
            Ok(json!({ "records": outcomes }))
        }
    }
}
