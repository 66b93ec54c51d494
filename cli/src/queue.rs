//! SQS for the commands that work on the ingest queues (`relay`, `index --via-queue`, `dlq`):
//! one client, queue lookup by name or URL, depths, and the dead-letter queue behind a queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the queue's depth is read while it drains.
const POLL: Duration = Duration::from_secs(2);

/// SQS on the same endpoint as S3 unless `CLIPSEARCH_SQS_ENDPOINT` says otherwise (moto serves
/// both on one port); credentials and region from the standard AWS environment.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(endpoint) = clipsearch::config::sqs_endpoint() {
        config = config.endpoint_url(endpoint);
    }
    if shared.region().is_none() {
        config = config.region(aws_sdk_sqs::config::Region::new("us-east-1"));
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

/// A queue's URL from its URL (kept as is) or its name (looked up).
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name_or_url: &str) -> Result<String> {
    if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
        return Ok(name_or_url.to_owned());
    }
    sqs.get_queue_url()
        .queue_name(name_or_url)
        .send()
        .await
        .with_context(|| format!("looking up queue {name_or_url}"))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("queue {name_or_url} has no URL"))
}

/// Some of a queue's attributes, by name.
pub async fn attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    names: &[QueueAttributeName],
) -> Result<std::collections::HashMap<QueueAttributeName, String>> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .with_context(|| format!("reading the attributes of {url}"))?;
    Ok(answer.attributes().cloned().unwrap_or_default())
}

/// Messages waiting and messages in flight (received, not yet deleted): both approximate on
/// AWS, by SQS's own account.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(u64, u64)> {
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ];
    let found = attributes(sqs, url, &names).await?;
    let count = |name: &QueueAttributeName| found.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((count(&names[0]), count(&names[1])))
}

/// The URL of the dead-letter queue a queue's redrive policy names, if any.
pub async fn dead_letter_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Option<String>> {
    let found = attributes(sqs, url, &[QueueAttributeName::RedrivePolicy]).await?;
    let Some(policy) = found.get(&QueueAttributeName::RedrivePolicy) else {
        return Ok(None);
    };
    let policy: serde_json::Value =
        serde_json::from_str(policy).with_context(|| format!("the redrive policy of {url}: {policy}"))?;
    let Some(arn) = policy["deadLetterTargetArn"].as_str() else {
        return Ok(None);
    };
    // arn:aws:sqs:region:account:name
    let name = arn.rsplit(':').next().unwrap_or(arn);
    queue_url(sqs, name).await.map(Some)
}

/// One ReceiveMessage: up to `max` messages (1..=10) with their system attributes (receive
/// count, sent time), waiting up to `wait_secs` for the first; `visibility` replaces the
/// queue's visibility timeout for these messages. Empty when none came.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
    wait_secs: i32,
    visibility: Option<i32>,
) -> Result<Vec<Message>> {
    let answer = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .set_visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .with_context(|| format!("receiving from {url}"))?;
    Ok(answer.messages().to_vec())
}

/// Deletes received messages (at most 10) in one DeleteMessageBatch; none is no call.
pub async fn delete_batch(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[&Message]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    sqs.delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .with_context(|| format!("deleting handled messages from {url}"))?;
    Ok(())
}

/// One SendMessageBatch of `(id, body)` entries (at most 10); the answer says which went.
pub async fn send_batch<'a>(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SendMessageBatchOutput> {
    let entries = entries
        .into_iter()
        .map(|(id, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(body)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    sqs.send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .with_context(|| format!("SendMessageBatch to {url}"))
}

/// Shows the queue draining until nothing is waiting or in flight (twice in a row, since the
/// counts are approximate). `Ok(false)` when the watch was interrupted.
pub async fn watch_drain(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    sent: u64,
    stop: &AtomicBool,
    quiet: bool,
) -> Result<bool> {
    let bar = progress(
        quiet,
        "{spinner} [{elapsed_precise}] queue {msg} {wide_bar} {pos}/{len} handled",
    );
    bar.set_length(sent);
    let mut empty_polls = 0;
    let mut last_line = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let (waiting, in_flight) = depth(sqs, queue_url).await?;
        bar.set_position(sent.saturating_sub(waiting + in_flight));
        bar.set_message(format!("{waiting} waiting, {in_flight} in flight"));
        if bar.is_hidden() && !quiet && last_line.elapsed() >= Duration::from_secs(10) {
            eprintln!("queue: {waiting} waiting, {in_flight} in flight");
            last_line = Instant::now();
        }
        empty_polls = if waiting + in_flight == 0 { empty_polls + 1 } else { 0 };
        if empty_polls >= 2 {
            bar.finish_and_clear();
            eprintln!("the queue has drained");
            return Ok(true);
        }
        tokio::time::sleep(POLL).await;
    }
    bar.finish_and_clear();
    eprintln!("stopped watching; the queue keeps draining");
    Ok(false)
}

/// A progress bar on a terminal, else hidden.
pub fn progress(quiet: bool, template: &str) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
