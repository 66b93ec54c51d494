//! Operating the product at scale, on the local stack (moto, the relay, the emulated
//! functions, Milvus): ingest status through the function and the CLI, backfill through the
//! queue, and the dead-letter queue. Needs what scripts/test.sh starts and exports.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use clipsearch::objects::{ObjectSettings, S3Objects};
use common::emulator;
use common::local_stack::{lambda_url, relay, required_env, unique, wire_bucket};
use common::png;
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLIPSEARCH: &str = env!("CARGO_BIN_EXE_clipsearch");

fn cli(args: &[&str]) -> Output {
    Command::new(CLIPSEARCH)
        .args(args)
        .output()
        .expect("running clipsearch")
}

fn stdout_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "no JSON on stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn api_status(query: &str) -> (u16, Value) {
    let url = format!("{}/lambda-url/search/status?{query}", lambda_url());
    let answer = emulator::send(emulator::client().get(url)).await;
    let doc = serde_json::from_slice(&answer.body).unwrap_or_else(|_| panic!("not JSON: {}", answer.text()));
    (answer.status.as_u16(), doc)
}

fn encoded(key: &str) -> String {
    form_urlencoded::byte_serialize(key.as_bytes()).collect()
}

/// Indexed, refused and unknown keys answer alike through `GET /status` and `clipsearch
/// status`; a refused key that is fixed becomes indexed and loses its refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_indexed_refused_and_unknown_keys_apart() {
    required_env("MILVUS_URI");
    // The search function answers for its configured bucket only.
    let bucket = required_env("CLIPSEARCH_BUCKET");
    let queue_url = wire_bucket(&bucket);
    // Only this test's uploads in the queue (wiring sends S3's test event).
    sqs_do(&queue_url, &["purge"]);
    let prefix = format!("{}/", unique("status"));
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;

    let good = png(4242, 64, 48);
    let good_key = format!("{prefix}good photo.png");
    let notes_key = format!("{prefix}notes.jpg");
    let broken_key = format!("{prefix}broken.png");
    s3.put(&bucket, &good_key, good.clone(), "image/png").await.unwrap();
    s3.put(&bucket, &notes_key, b"shopping list: milk, eggs".to_vec(), "image/jpeg")
        .await
        .unwrap();
    s3.put(&bucket, &broken_key, good[..good.len() / 2].to_vec(), "image/png")
        .await
        .unwrap();
    let summary = relay(Path::new(CLIPSEARCH), &queue_url);
    // The status records written meanwhile are no images: the notification ignores them.
    assert_eq!(summary["delivered"], 3, "{summary}");

    let (code, indexed) = api_status(&format!("key={}", encoded(&good_key))).await;
    assert_eq!(code, 200, "{indexed}");
    assert_eq!(indexed["status"], "indexed", "{indexed}");
    assert_eq!(indexed["id"], hex::encode(Sha256::digest(&good)));
    assert_eq!(indexed["model"], "tiny-clip");
    assert!(indexed["ingested_at_ms"].as_i64().unwrap() > 1_600_000_000_000);

    let (code, refused) = api_status(&format!("bucket={bucket}&key={}", encoded(&notes_key))).await;
    assert_eq!(code, 200, "{refused}");
    assert_eq!(refused["status"], "refused", "{refused}");
    assert_eq!(refused["code"], "not_an_image", "{refused}");
    assert!(refused["at_ms"].as_i64().unwrap() > 1_600_000_000_000);
    let (_, broken) = api_status(&format!("key={}", encoded(&broken_key))).await;
    assert_eq!(broken["status"], "refused", "{broken}");

    let (code, unknown) = api_status(&format!("key={}", encoded(&format!("{prefix}never.jpg")))).await;
    assert_eq!((code, unknown["status"].as_str()), (200, Some("unknown")), "{unknown}");
    let (code, other) = api_status("bucket=someone-else&key=a.jpg").await;
    assert_eq!(code, 400, "{other}");
    let (code, missing) = api_status("bucket=x").await;
    assert_eq!(code, 400, "{missing}");

    // The CLI answers the same, exit status 0 only for an indexed key.
    let out = cli(&["status", &format!("s3://{bucket}/{good_key}")]);
    assert!(out.status.success());
    assert_eq!(stdout_json(&out)["id"], indexed["id"]);
    let out = cli(&["status", &format!("s3://{bucket}/{notes_key}")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out), refused, "the CLI and the API give the same answer");
    let out = cli(&["status", &format!("s3://{bucket}/{prefix}never.jpg")]);
    assert_eq!(stdout_json(&out)["status"], "unknown");

    let listed = |out: Output| -> Vec<String> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let refusals = listed(cli(&["status", "--refused", &format!("s3://{bucket}/{prefix}")]));
    assert_eq!(refusals, vec![broken_key.clone(), notes_key.clone()], "in key order");

    // Fixed: the key now holds a real image. Indexed, and its refusal is gone.
    let fixed = png(4243, 40, 40);
    s3.put(&bucket, &notes_key, fixed.clone(), "image/png").await.unwrap();
    relay(Path::new(CLIPSEARCH), &queue_url);
    let (_, now) = api_status(&format!("key={}", encoded(&notes_key))).await;
    assert_eq!(now["status"], "indexed", "{now}");
    assert_eq!(now["id"], hex::encode(Sha256::digest(&fixed)));
    let refusals = listed(cli(&["status", "--refused", &format!("s3://{bucket}/{prefix}")]));
    assert_eq!(refusals, vec![broken_key.clone()]);

    // A refused key that is deleted loses its record too.
    s3.delete(&bucket, &broken_key).await.unwrap();
    relay(Path::new(CLIPSEARCH), &queue_url);
    let (_, gone) = api_status(&format!("key={}", encoded(&broken_key))).await;
    assert_eq!(gone["status"], "unknown", "{gone}");
    assert!(listed(cli(&["status", "--refused", &format!("s3://{bucket}/{prefix}")])).is_empty());
}

/// Objects in the backfill test: more than one page of the sender's listing, as the issue asks.
const BACKFILL_OBJECTS: u32 = 1000;

fn sqs_depth(queue_url: &str) -> u64 {
    let out = Command::new(common::python())
        .args(["-c", DEPTH_PY, queue_url])
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a count")
}

/// Messages waiting in a queue (moto's count is exact), and `purge` / `send` helpers.
const DEPTH_PY: &str = r#"
import os, sys, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["CLIPSEARCH_S3_ENDPOINT"], region_name="us-east-1")
url = sys.argv[1]
action = sys.argv[2] if len(sys.argv) > 2 else "depth"
if action == "purge":
    sqs.purge_queue(QueueUrl=url)
elif action == "send":
    sqs.send_message(QueueUrl=url, MessageBody=sys.argv[3])
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
print(int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]))
"#;

fn sqs_do(queue_url: &str, action: &[&str]) {
    let mut args = vec!["-c", DEPTH_PY, queue_url];
    args.extend_from_slice(action);
    let out = Command::new(common::python()).args(&args).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

/// `clipsearch index --via-queue`: 1000 objects listed and sent as S3 notifications, the run
/// interrupted by SIGTERM part-way and resumed from the token it printed, with nothing sent
/// twice; then the relay and the emulated ingest function index every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_through_the_queue_resumes_without_resending_and_indexes_everything() {
    required_env("MILVUS_URI");
    let bucket = unique("t-bulk");
    let queue_url = wire_bucket(&bucket);
    let prefix = format!("{}/", unique("bulk"));
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let keys: Vec<String> = (0..BACKFILL_OBJECTS)
        .map(|i| format!("{prefix}{:02}/photo {i:04}.png", i % 7))
        .collect();
    futures::future::join_all(keys.chunks(50).map(|chunk| {
        let s3 = &s3;
        let bucket = &bucket;
        async move {
            for key in chunk {
                let seed: u32 = key[key.len() - 8..key.len() - 4].parse().unwrap();
                s3.put(bucket, key, png(90_000 + seed, 8, 8), "image/png")
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    // A console's folder marker is listed but is no object to send.
    s3.put(&bucket, &format!("{prefix}00/"), Vec::new(), "application/x-directory")
        .await
        .unwrap();
    // The uploads notified the queue as they landed; start from an empty queue so that it
    // holds exactly what the sender sends.
    sqs_do(&queue_url, &["purge"]);
    assert_eq!(sqs_depth(&queue_url), 0);

    let source = format!("s3://{bucket}/{prefix}");
    let mut first = Command::new(CLIPSEARCH)
        .args([
            "index",
            &source,
            "--via-queue",
            &queue_url,
            "--rate",
            "300",
            "--page-size",
            "100",
            "--no-wait",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(first.stdout.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let sent = line["checkpoint"]["sent"].as_u64();
        seen.push(line);
        if sent.is_some_and(|n| n >= 300) {
            break;
        }
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGTERM) }, 0);
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()));
    let status = first.wait().unwrap();
    let summary = seen.last().unwrap().clone();
    assert_eq!(summary["interrupted"], true, "{seen:?}");
    assert_eq!(status.code(), Some(1), "an interrupted run says so");
    let sent_first = summary["sent"].as_u64().unwrap();
    assert!((300..BACKFILL_OBJECTS as u64).contains(&sent_first), "{summary}");
    assert_eq!(
        sqs_depth(&queue_url),
        sent_first,
        "the queue holds what the summary says was sent"
    );
    let token = summary["continuation_token"].as_str().expect("a token").to_owned();

    // A token is bound to its source.
    let wrong = cli(&[
        "index",
        "s3://another/prefix/",
        "--via-queue",
        &queue_url,
        "--continuation-token",
        &token,
    ]);
    assert_eq!(wrong.status.code(), Some(2));

    let out = cli(&[
        "index",
        &source,
        "--via-queue",
        &queue_url,
        "--continuation-token",
        &token,
        "--no-wait",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = json_lines(&out.stdout);
    let done = resumed.last().unwrap();
    assert_eq!(done["interrupted"], false, "{done}");
    assert_eq!(
        sent_first + done["sent"].as_u64().unwrap(),
        BACKFILL_OBJECTS as u64,
        "every object sent once across both runs"
    );
    assert_eq!(sqs_depth(&queue_url), BACKFILL_OBJECTS as u64, "nothing sent twice");
    let end_token = resumed
        .iter()
        .rev()
        .find_map(|l| l["checkpoint"]["continuation_token"].as_str())
        .expect("a checkpoint")
        .to_owned();

    // The fleet drains the queue while a sender with nothing left to send watches it drain.
    let relay_thread = std::thread::spawn({
        let queue_url = queue_url.clone();
        move || relay(Path::new(CLIPSEARCH), &queue_url)
    });
    let watch = cli(&[
        "index",
        &source,
        "--via-queue",
        &queue_url,
        "--continuation-token",
        &end_token,
    ]);
    let relayed = relay_thread.join().unwrap();
    assert_eq!(relayed["delivered"], BACKFILL_OBJECTS as u64, "{relayed}");
    let watched = json_lines(&watch.stdout);
    let watched = watched.last().unwrap();
    assert_eq!(
        (watched["sent"].as_u64(), watched["drained"].as_bool()),
        (Some(0), Some(true)),
        "{watched}"
    );

    // The index now equals the bucket under the prefix: every object is there.
    let out = cli(&["reconcile", &source]);
    let summary = json_lines(&out.stdout).last().unwrap()["summary"].clone();
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary["checked"], BACKFILL_OBJECTS as u64, "{summary}");
    assert_eq!(summary["differences"], 0, "{summary}");
}

/// Messages that keep failing land in the dead-letter queue; `clipsearch dlq list` shows each
/// with its object and the last error ingest recorded, `redrive` (confirmed) sends them back
/// and they are indexed, `purge` empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_reason_and_redriven_to_success() {
    required_env("MILVUS_URI");
    let bucket = unique("t-dlq");
    let endpoint = required_env("CLIPSEARCH_S3_ENDPOINT");
    // Quick retries: hidden for 1 s after a failed receive, dead after 2 receives.
    let wiring: Value = serde_json::from_str(&common::run_python(&[
        "scripts/local-aws.py",
        "--bucket",
        &bucket,
        "--endpoint",
        &endpoint,
        "--visibility-timeout",
        "1",
        "--max-receive-count",
        "2",
    ]))
    .unwrap();
    let queue_url = wiring["queue_url"].as_str().unwrap().to_owned();
    let dlq_url = wiring["dlq_url"].as_str().unwrap().to_owned();
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let keys: Vec<String> = (0..3).map(|i| format!("dead/photo-{i}.png")).collect();
    for (i, key) in keys.iter().enumerate() {
        s3.put(&bucket, key, png(77_000 + i as u32, 24, 24), "image/png")
            .await
            .unwrap();
    }

    // An ingest worker whose Milvus is down fails every record (retryable) until the queue
    // gives up on the messages.
    for _ in 0..30 {
        if sqs_depth(&dlq_url) == 3 {
            break;
        }
        let out = Command::new(CLIPSEARCH)
            .args([
                "relay",
                "--queue-url",
                &queue_url,
                "--until-empty",
                "--wait-secs",
                "2",
                "--pollers",
                "1",
            ])
            .arg("--in-process")
            .arg(common::tiny_clip_dir())
            .env("MILVUS_URI", "http://127.0.0.1:9")
            .env("CLIPSEARCH_INVOCATION_TIMEOUT_SECS", "5")
            .output()
            .unwrap();
        assert!(!out.status.success(), "records fail while Milvus is down");
        std::thread::sleep(std::time::Duration::from_millis(1200));
    }
    assert_eq!(sqs_depth(&dlq_url), 3, "all three messages are dead letters");

    let out = cli(&["dlq", "list", &queue_url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let letters = json_lines(&out.stdout);
    assert_eq!(letters.len(), 3, "{letters:?}");
    let mut listed: Vec<String> = Vec::new();
    for letter in &letters {
        let object = &letter["objects"][0];
        listed.push(object["key"].as_str().unwrap().to_owned());
        assert_eq!(object["last_error"]["status"], "failing", "{letter}");
        assert_eq!(object["last_error"]["code"], "index_unavailable", "{letter}");
        assert!(letter["receive_count"].as_u64().unwrap() >= 1, "{letter}");
    }
    listed.sort();
    assert_eq!(listed, keys);
    assert_eq!(sqs_depth(&dlq_url), 3, "listing leaves them in place");

    // Asked and declined: nothing moves.
    let mut declined = Command::new(CLIPSEARCH)
        .args(["dlq", "redrive", &queue_url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut declined.stdin.take().unwrap(), b"n\n").unwrap();
    assert!(!declined.wait_with_output().unwrap().status.success());
    assert_eq!(sqs_depth(&dlq_url), 3);

    let out = cli(&["dlq", "redrive", &queue_url, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout_json(&out)["redriven"], 3);
    assert_eq!(sqs_depth(&dlq_url), 0);
    // Milvus is back (the real one): the redriven messages succeed.
    let summary = relay(Path::new(CLIPSEARCH), &queue_url);
    assert_eq!(
        (summary["delivered"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(0)),
        "{summary}"
    );
    for key in &keys {
        let out = cli(&["status", &format!("s3://{bucket}/{key}")]);
        assert_eq!(stdout_json(&out)["status"], "indexed", "{key}");
    }

    sqs_do(&dlq_url, &["send", "not an S3 notification"]);
    let out = cli(&["dlq", "list", &queue_url]);
    assert!(json_lines(&out.stdout)[0]["body_error"].is_string());
    let out = cli(&["dlq", "purge", &queue_url, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sqs_depth(&dlq_url), 0);
}
