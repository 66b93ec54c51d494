//! The ingest function end to end, through the Lambda emulator: an upload to the local bucket
//! (moto) puts an S3 notification in the SQS queue, `clipsearch relay` hands the batch to the
//! function under `cargo lambda watch` (scripts/lambda.sh) and deletes what succeeded; the
//! record then is in Milvus. Direct S3 events and s3:TestEvent are invoked over HTTP too.
//!
//! Needs what scripts/test.sh starts and exports: moto (`CLIPSEARCH_S3_ENDPOINT`), Milvus
//! (`MILVUS_URI`; the function and this test share `MILVUS_COLLECTION`), the emulator
//! (`LAMBDA_PORT`) started with the same environment, `ORT_DYLIB_PATH`. Missing services fail.

mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clipsearch::clip::{Clip, Encoder, Towers};
use clipsearch::config::{ClipSettings, MilvusSettings};
use clipsearch::events::{notification_body, ObjectEvent};
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::store::{ImageIndex, IndexSpec, Location, MilvusIndex};
use common::emulator;
use common::local_stack::{lambda_url, required_env, unique, wire_bucket};
use common::{cosine, repo_root};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn relay(queue_url: &str) -> Value {
    common::local_stack::relay(Path::new(env!("CARGO_BIN_EXE_clipsearch")), queue_url)
}

/// A PNG whose bytes are new on every run (the function's collection is shared and lasting).
fn fresh_png() -> Vec<u8> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        let v = seed
            .wrapping_add((x * 31 + y * 17) as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        image::Rgb([(v >> 56) as u8, (v >> 48) as u8, (x * 4) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn invoke(event: &Value) -> Value {
    let url = format!("{}/2015-03-31/functions/ingest/invocations", lambda_url());
    let answer = emulator::send(emulator::client().post(&url).json(event)).await;
    assert!(answer.status.is_success(), "HTTP {}: {}", answer.status, answer.text());
    serde_json::from_slice(&answer.body).unwrap_or_else(|_| panic!("not JSON: {}", answer.text()))
}

struct Stack {
    s3: S3Objects,
    index: MilvusIndex,
    clip: Clip,
    bucket: String,
    queue_url: String,
}

async fn stack() -> Stack {
    required_env("MILVUS_URI");
    let bucket = unique("t-lambda");
    let queue_url = wire_bucket(&bucket);
    let settings = ClipSettings {
        model_dir: Some(
            std::env::var_os("CLIPSEARCH_MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("tests/fixtures/tiny-clip")),
        ),
        ..ClipSettings::from_env().unwrap()
    };
    let clip = Clip::load(&settings, Towers::IMAGE).expect("the function's model loads");
    let spec = IndexSpec {
        dimension: Encoder::dimension(&clip),
        model: clip.name().to_owned(),
        text_model: None,
    };
    let index = MilvusIndex::connect(&MilvusSettings::from_env().unwrap(), spec)
        .await
        .expect("Milvus");
    index.ensure_collection().await.unwrap();
    Stack {
        s3: S3Objects::connect(&ObjectSettings::from_env().unwrap()).await,
        index,
        clip,
        bucket,
        queue_url,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_reaches_milvus_through_the_queue_and_the_emulator() {
    let stack = stack().await;
    let bytes = fresh_png();
    let id = hex::encode(Sha256::digest(&bytes));
    let key = "uploads/holiday photo+1 ü.png";
    stack
        .s3
        .put(&stack.bucket, key, bytes.clone(), "image/png")
        .await
        .unwrap();
    stack
        .s3
        .put(
            &stack.bucket,
            "uploads/readme.txt",
            b"not an image".to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    stack
        .s3
        .put(
            &stack.bucket,
            "uploads/notes.jpg",
            b"not an image either".to_vec(),
            "image/jpeg",
        )
        .await
        .unwrap();

    // s3:TestEvent + two records (readme.txt has no image suffix: the bucket does not notify
    // it); notes.jpg is a permanent failure: dropped, not retried.
    let summary = relay(&stack.queue_url);
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(summary["delivered"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["delivered"], summary["deleted"]);

    let record = stack.index.get(&id).await.unwrap().expect("the upload is indexed");
    assert_eq!(record.locations, vec![Location::new(&stack.bucket, key)]);
    let expected = stack.clip.embed_image(&bytes).unwrap().embedding;
    assert!(cosine(&record.embedding, &expected) > 0.9999);
    assert_eq!(record.content_type, "image/png");

    // The same event again, delivered directly as S3 would: nothing changes.
    let direct = notification_body(&[ObjectEvent::Created {
        location: Location::new(&stack.bucket, key),
        size: Some(bytes.len() as u64),
    }]);
    let answer = invoke(&direct).await;
    assert_eq!(answer["records"][0]["outcome"], "unchanged", "{answer}");
    assert_eq!(answer["records"][0]["hash"], id.as_str());

    // s3:TestEvent is acknowledged and ignored.
    let test_event: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("tests/events/s3-test-event.json")).unwrap())
            .unwrap();
    assert_eq!(invoke(&test_event).await["ignored"], "s3:TestEvent");

    // An SQS batch: a missing object is final (not in batchItemFailures), a good one succeeds.
    let batch = json!({ "Records": [
        {
            "messageId": "m-missing", "eventSource": "aws:sqs",
            "body": notification_body(&[ObjectEvent::Created { location: Location::new(&stack.bucket, "gone.png"), size: None }]).to_string()
        },
        {
            "messageId": "m-good", "eventSource": "aws:sqs",
            "body": notification_body(&[ObjectEvent::Created { location: Location::new(&stack.bucket, key), size: None }]).to_string()
        }
    ]});
    assert_eq!(invoke(&batch).await, json!({ "batchItemFailures": [] }));

    // Deleting the object removes it from the index.
    stack.s3.delete(&stack.bucket, key).await.unwrap();
    relay(&stack.queue_url);
    assert!(stack.index.get(&id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_batch_answers_batch_item_failures_for_transient_errors_only() {
    // A bucket nobody created: S3 says NoSuchBucket, which is final; an object in an
    // unreachable region is not reproducible here, so the transient path is covered by
    // tests/ingest.rs (Milvus stopped mid-batch). This checks the answer's shape.
    let stack = stack().await;
    let batch = json!({ "Records": [
        { "messageId": "m1", "eventSource": "aws:sqs", "body": "this is not JSON" },
        { "messageId": "m2", "eventSource": "aws:sqs",
          "body": notification_body(&[ObjectEvent::Created { location: Location::new("no-such-bucket-here", "x.png"), size: None }]).to_string() },
        { "messageId": "m3", "eventSource": "aws:sqs",
          "body": std::fs::read_to_string(repo_root().join("tests/events/s3-test-event.json")).unwrap() }
    ]});
    assert_eq!(invoke(&batch).await, json!({ "batchItemFailures": [] }));
    drop(stack);
}

/// The ingest function of the second emulator, whose Milvus accepts connections and never
/// answers (scripts/test.sh: `LAMBDA_MILVUS_DOWN_PORT`, `CLIPSEARCH_INVOCATION_TIMEOUT_SECS`
/// playing the function timeout). A record held up by Milvus is answered as a batch item
/// failure, so the queue retries it, before the function's timeout; the record that needs no
/// Milvus (an unreadable body, dropped) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_that_never_answers_fails_the_record_for_retry_before_the_timeout() {
    let port = required_env("LAMBDA_MILVUS_DOWN_PORT");
    let timeout: f64 = required_env("LAMBDA_MILVUS_DOWN_TIMEOUT_SECS").parse().unwrap();
    let stack = stack().await;
    let key = "photos/held-up.png";
    stack
        .s3
        .put(&stack.bucket, key, fresh_png(), "image/png")
        .await
        .unwrap();
    let batch = json!({ "Records": [
        { "messageId": "held-up", "eventSource": "aws:sqs",
          "body": notification_body(&[ObjectEvent::Created { location: Location::new(stack.bucket.as_str(), key), size: None }]).to_string() },
        { "messageId": "unreadable", "eventSource": "aws:sqs", "body": "this is not JSON" }
    ]});
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/ingest/invocations");
    let response = emulator::send(emulator::client().post(&url).json(&batch)).await;
    let took = response.took.as_secs_f64();
    let status = response.status;
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert!(status.is_success(), "HTTP {status}: {answer}");
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [{ "itemIdentifier": "held-up" }] })
    );
    assert!(
        took < timeout,
        "answered after {took:.1} s; the function's timeout is {timeout} s"
    );
}

/// The EMF metrics lines (shared/src/metrics.rs) of an SQS batch and of a search request, read
/// back from the emulator's log as CloudWatch reads them from a function's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_batch_and_a_search_print_their_metrics() {
    let stack = stack().await;
    let mark = emulator::log_mark();
    let good = "metrics/good.png";
    let png = fresh_png();
    stack.s3.put(&stack.bucket, good, png, "image/png").await.unwrap();
    let bad = "metrics/not-an-image.jpg";
    stack
        .s3
        .put(&stack.bucket, bad, b"plain text".to_vec(), "image/jpeg")
        .await
        .unwrap();
    let message = |id: &str, key: &str| {
        let location = Location::new(&stack.bucket, key);
        json!({
            "messageId": id, "eventSource": "aws:sqs",
            "body": notification_body(&[ObjectEvent::Created { location, size: None }]).to_string()
        })
    };
    let batch = json!({ "Records": [
        message("m-good", good), message("m-bad", bad), message("m-missing", "metrics/gone.png")
    ]});
    assert_eq!(invoke(&batch).await, json!({ "batchItemFailures": [] }));

    // The batch's invocation, found by its records' log lines (other tests invoke meanwhile).
    let lines = emulator::logged_since(mark);
    let invocation = lines
        .iter()
        .find(|l| l["bucket"] == stack.bucket.as_str() && l["key"] == good && l["message"] == "record")
        .and_then(emulator::request_id)
        .expect("the good record's log line, inside its invocation's span")
        .to_owned();
    let metrics: Vec<&Value> = lines
        .iter()
        .filter(|l| l["_aws"].is_object() && l["RequestId"] == invocation.as_str())
        .collect();
    assert_eq!(metrics.len(), 2, "the totals and one refusal reason: {metrics:?}");
    let totals = metrics[0];
    assert_eq!(
        totals["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        clipsearch::metrics::DEFAULT_NAMESPACE
    );
    for (name, value) in [
        ("Records", 3.0),
        ("ImagesIndexed", 1.0),
        ("Duplicates", 0.0),
        ("Refused", 1.0),
        ("Retried", 0.0),
        ("MilvusErrors", 0.0),
    ] {
        assert_eq!(totals[name], value, "{name}: {totals}");
    }
    assert!(totals["InferenceMs"].as_f64().unwrap() > 0.0, "{totals}");
    assert_eq!(metrics[1]["Reason"], "not_an_image");
    assert_eq!(metrics[1]["RefusedByReason"], 1.0);

    // A search (no other test of this file searches): one line with its latency.
    let mark = emulator::log_mark();
    let url = format!("{}/lambda-url/search/search?q=a+red+circle&top_k=3", lambda_url());
    let answer = emulator::send(emulator::client().get(&url)).await;
    assert!(answer.status.is_success(), "HTTP {}: {}", answer.status, answer.text());
    let lines = emulator::logged_since(mark);
    let searched = lines
        .iter()
        .find(|l| l["_aws"].is_object() && l["Function"] == "search")
        .unwrap_or_else(|| panic!("no search metrics line after the request: {lines:?}"));
    assert_eq!(searched["Route"], "/search");
    assert_eq!(
        (searched["Requests"].as_f64(), searched["ServerErrors"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    let took = searched["SearchLatencyMs"].as_f64().unwrap();
    let logged = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request" && emulator::request_id(l) == searched["RequestId"].as_str())
        .expect("the request's own log line, with the same request id");
    assert!(
        (took - logged["fields"]["ms"].as_f64().unwrap()).abs() < 1.0,
        "{searched} vs {logged}"
    );
}
