//! The ordinary delete, as AWS answers it to a role without `s3:ListBucket`: S3 says 403, not
//! 404, for the deleted key. moto always says 404, so the ingest workers here read S3 through
//! tests/iam/s3_without_listbucket.py, which answers as S3 does to such a role (a missing key's
//! HEAD/GET is 403 AccessDenied, listings are refused). The production wiring on moto carries
//! the events: bucket → notification → SQS queue (redrive to a dead-letter queue after 5
//! receives) → `clipsearch relay --in-process` (ingest's own code, as the function runs it).
//!
//! The removal must be applied (the row is gone) and its message deleted on the first receive:
//! never retried, so never carried to the dead-letter queue.
//!
//! Needs what scripts/test.sh starts: moto (`CLIPSEARCH_S3_ENDPOINT`), Milvus (`MILVUS_URI`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use clipsearch::clip::{Clip, Encoder, Towers};
use clipsearch::config::{ClipSettings, MilvusSettings};
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::store::{ImageIndex, IndexSpec, Location, MilvusIndex};
use common::local_stack::{required_env, unique};
use serde_json::Value;

struct Proxy {
    child: Child,
    url: String,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let port_file = std::env::temp_dir().join(unique("s3-proxy-port"));
        let mut child = Command::new(common::python())
            .arg(common::repo_root().join("tests/iam/s3_without_listbucket.py"))
            .arg(upstream)
            .arg(&port_file)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the proxy");
        for _ in 0..100 {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                if !port.is_empty() {
                    return Self {
                        child,
                        url: format!("http://127.0.0.1:{}", port.trim()),
                    };
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the proxy did not start");
    }

    /// Stops the proxy and returns the answers it rewrote.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let out = self.child.stdout.take().unwrap();
        let lines = BufReader::new(out).lines().map_while(Result::ok).collect();
        let _ = self.child.wait();
        lines
    }
}

/// `clipsearch relay --in-process` with S3 read through `s3_endpoint` (SQS straight from moto).
fn relay(queue_url: &str, s3_endpoint: &str) -> Value {
    let out = Command::new(Path::new(env!("CARGO_BIN_EXE_clipsearch")))
        .args([
            "relay",
            "--queue-url",
            queue_url,
            "--until-empty",
            "--wait-secs",
            "1",
            "--in-process",
        ])
        .arg(common::fixtures().join("tiny-clip"))
        .env("CLIPSEARCH_SQS_ENDPOINT", required_env("CLIPSEARCH_S3_ENDPOINT"))
        .env("CLIPSEARCH_S3_ENDPOINT", s3_endpoint)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "relay printed no summary\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let get = |name| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_403_is_a_removal_and_never_reaches_the_dead_letter_queue() {
    let moto = required_env("CLIPSEARCH_S3_ENDPOINT");
    let bucket = unique("t-no-list");
    let wiring = common::run_python(&["scripts/local-aws.py", "--bucket", &bucket, "--endpoint", &moto]);
    let wiring: Value = serde_json::from_str(&wiring).unwrap();
    let (queue_url, dlq_url) = (
        wiring["queue_url"].as_str().unwrap().to_owned(),
        wiring["dlq_url"].as_str().unwrap().to_owned(),
    );

    let clip = Clip::load(
        &ClipSettings {
            model_dir: Some(common::fixtures().join("tiny-clip")),
            ..ClipSettings::from_env().unwrap()
        },
        Towers::IMAGE,
    )
    .unwrap();
    let index = MilvusIndex::connect(
        &MilvusSettings::from_env().unwrap(),
        IndexSpec {
            dimension: Encoder::dimension(&clip),
            model: clip.name().to_owned(),
            text_model: None,
        },
    )
    .await
    .expect("Milvus");
    index.ensure_collection().await.unwrap();
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&shared).endpoint_url(&moto).build());

    let proxy = Proxy::start(&moto);
    let key = "photos/to-be-deleted.png";
    let location = Location::new(bucket.as_str(), key);
    s3.put(&bucket, key, common::png(7, 48, 40), "image/png").await.unwrap();
    let indexed = relay(&queue_url, &proxy.url);
    assert_eq!(indexed["failed"], 0, "{indexed}");
    assert!(
        index.object(&location).await.unwrap().is_some(),
        "indexed through the proxy: {indexed}"
    );

    // The ordinary delete. Every HEAD/GET of the key is now a 403, and the listing that
    // could tell "missing" from "forbidden" is refused too.
    s3.delete(&bucket, key).await.unwrap();
    let removed = relay(&queue_url, &proxy.url);
    let rewritten = proxy.stop();
    assert!(
        rewritten
            .iter()
            .any(|l| l.starts_with(&format!("403 HEAD /{bucket}/{key}"))),
        "the proxy never answered the deleted key with 403: {rewritten:?}"
    );
    assert!(
        rewritten
            .iter()
            .any(|l| l.starts_with(&format!("403 GET /{bucket}")) && l.contains("ListBucket")),
        "the listing was never refused: {rewritten:?}"
    );
    assert_eq!(removed["failed"], 0, "{removed}");
    assert_eq!(
        removed["delivered"], removed["deleted"],
        "every message deleted on its first receive: {removed}"
    );
    assert!(
        index.object(&location).await.unwrap().is_none(),
        "the row is gone: {removed}"
    );
    assert_eq!(queue_depth(&sqs, &queue_url).await, (0, 0), "nothing left to retry");
    assert_eq!(
        queue_depth(&sqs, &dlq_url).await,
        (0, 0),
        "nothing in the dead-letter queue"
    );
}
