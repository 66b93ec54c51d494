//! The random schedules of S3 operations behind tests/ingest_schedule.rs and tests/faults.rs:
//! each is a random sequence of operations on a few keys, applied to the S3 emulator for real,
//! whose events reach an SQS queue duplicated, shuffled and delayed while several ingest
//! workers (`clipsearch relay --in-process`, the Lambda's own ingest code in separate OS
//! processes) drain it against the real Milvus; a [`Disruption`] (a Milvus restart, or a
//! network fault between the workers and Milvus or S3) may strike halfway. At the end every
//! object present is found under its key with the vector of its current bytes, and nothing
//! else is in the index ([`compare`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::local_stack::{required_env, unique};
use crate::common::rng::Rng;
use crate::fault_proxy::{Fault, FaultProxy};
use aws_sdk_sqs::types::QueueAttributeName;
use clipsearch::clip::{Clip, Encoder, Towers};
use clipsearch::config::MilvusSettings;
use clipsearch::events::{notification_body, ObjectEvent};
use clipsearch::objects::{ObjectSettings, ObjectSource, ObjectState, S3Objects};
use clipsearch::store::{ImageIndex, IndexSpec, KeyRange, Location, MilvusIndex, SearchRequest};
use sha2::{Digest, Sha256};

const KEYS: usize = 6;
const IMAGES: usize = 5;
const OPS: usize = 30;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small PNG that differs for every seed.
fn png(seed: u64) -> Vec<u8> {
    common::png(seed as u32, 40, 32)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Ingest workers; killed when dropped.
pub struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the workers reach Milvus and S3 (the real services, or a fault proxy in front).
pub struct Routes<'a> {
    pub milvus: &'a MilvusSettings,
    /// `None`: the test's own `CLIPSEARCH_S3_ENDPOINT`.
    pub s3_endpoint: Option<String>,
}

pub fn spawn_workers(n: usize, queue_url: &str, routes: &Routes, logs: &Path) -> Workers {
    std::fs::create_dir_all(logs).unwrap();
    let real_endpoint = required_env("CLIPSEARCH_S3_ENDPOINT");
    Workers(
        (0..n)
            .map(|i| {
                let log = std::fs::File::create(logs.join(format!("worker-{i}.log"))).unwrap();
                Command::new(env!("CARGO_BIN_EXE_clipsearch"))
                    .args(["relay", "--queue-url", queue_url, "--wait-secs", "1", "--in-process"])
                    .arg(common::tiny_clip_dir())
                    .env("MILVUS_URI", &routes.milvus.uri)
                    .env("MILVUS_COLLECTION", &routes.milvus.collection)
                    // Fail fast while Milvus is down: the queue retries.
                    .env("MILVUS_TIMEOUT_SECS", "5")
                    .env("MILVUS_CONNECT_TIMEOUT_SECS", "5")
                    .env(
                        "CLIPSEARCH_S3_ENDPOINT",
                        routes.s3_endpoint.as_deref().unwrap_or(&real_endpoint),
                    )
                    // The queue itself is never behind a fault.
                    .env("CLIPSEARCH_SQS_ENDPOINT", &real_endpoint)
                    // Each batch under a Lambda invocation's deadline, as in AWS.
                    .env("CLIPSEARCH_INVOCATION_TIMEOUT_SECS", "15")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("the clipsearch binary runs")
            })
            .collect(),
    )
}

/// What strikes halfway through a schedule.
pub enum Disruption<'a> {
    None,
    /// That Milvus is stopped at the middle operation and started again (kept data).
    Restart(&'a PrivateMilvus),
    /// The proxy in front of one service turns to `fault` a third of the way through the
    /// operations and back to passing traffic after `lasting`, once two thirds are done.
    Fault {
        proxy: &'a FaultProxy,
        fault: Fault,
        lasting: Duration,
    },
}

/// What a schedule did.
#[derive(Debug, Default)]
pub struct ScheduleReport {
    /// Messages sent to the queue.
    pub sent: usize,
    /// Messages the workers handed back to the queue for a retry (summed from their logs).
    pub retried: usize,
    /// Seconds from the end of the operations until the queue was drained.
    pub drain_secs: f64,
}

/// Sums the "N left for retry" of every worker's log.
fn retried_in(logs: &Path) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(rest) = line.strip_suffix(" left for retry") {
                total += rest
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
            }
            if line.contains("invocation failed, ") {
                total += line
                    .split("invocation failed, ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// The private Milvus of the restart test, on its own ports and data.
pub struct PrivateMilvus {
    pub port: u16,
}

impl PrivateMilvus {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(common::repo_root().join("scripts/milvus.sh"))
            .args(args)
            .env("MILVUS_PORT", self.port.to_string())
            .env("MILVUS_HEALTH_PORT", (self.port - 10_000 + 100).to_string())
            .env("MILVUS_ETCD_PORT", (self.port - 17_000).to_string());
        command
    }

    pub fn run(&self, args: &[&str]) {
        let status = self.command(args).status().expect("bash runs");
        assert!(
            status.success(),
            "scripts/milvus.sh {args:?} on port {} failed",
            self.port
        );
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateMilvus {
    fn drop(&mut self) {
        let _ = self.command(&["down"]).status();
    }
}

pub struct Stack {
    s3: S3Objects,
    sqs: aws_sdk_sqs::Client,
}

pub async fn stack() -> Stack {
    let endpoint = required_env("CLIPSEARCH_S3_ENDPOINT");
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build(),
    );
    Stack { s3, sqs }
}

/// Messages not yet handled: visible, in flight or delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let map = attributes.attributes().cloned().unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|name| map.get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
    .sum()
}

/// Runs one schedule on `routes.milvus`'s engine (a fresh collection), with `disruption`.
pub async fn run_schedule(seed: u64, routes: &Routes<'_>, disruption: Disruption<'_>) -> ScheduleReport {
    eprintln!("schedule seed {seed} (reproduce: SCHEDULE_SEED={seed} SCHEDULES=1)");
    let stack = stack().await;
    let mut rng = Rng(seed);
    let bucket = unique("sched").to_ascii_lowercase();
    stack.s3.client().create_bucket().bucket(&bucket).send().await.unwrap();
    let queue_url = stack
        .sqs
        .create_queue()
        .queue_name(unique("sched"))
        // Failed messages come back soon (Milvus down): the test is bounded in time.
        .attributes(QueueAttributeName::VisibilityTimeout, "3")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();

    let clip = Clip::load(&common::settings(), Towers::IMAGE).unwrap();
    let spec = IndexSpec {
        dimension: Encoder::dimension(&clip),
        model: clip.name().to_owned(),
        text_model: None,
    };
    let mut milvus = routes.milvus.clone();
    milvus.collection = format!("sched_{}", unique("c").replace('-', "_"));
    // The test's own view of the index goes straight to Milvus, never through a proxy.
    let mut direct = milvus.clone();
    if let Disruption::Fault { proxy, .. } = &disruption {
        if milvus.uri == proxy.url() {
            direct.uri = required_env("MILVUS_URI");
        }
    }
    let index = MilvusIndex::connect(&direct, spec).await.expect("Milvus reachable");
    index.ensure_collection().await.unwrap();

    // The contents: images, and bytes under an image name that are no image.
    let mut contents: Vec<Vec<u8>> = (0..IMAGES as u64)
        .map(|i| png(seed.wrapping_mul(31).wrapping_add(i)))
        .collect();
    contents.push(b"these bytes are text, not a picture".to_vec());
    let refused = IMAGES;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("s/k{i}.png")).collect();

    let logs = common::repo_root().join(format!(".local/schedules/{seed}"));
    let _ = std::fs::remove_dir_all(&logs);
    let worker_routes = Routes {
        milvus: &milvus,
        s3_endpoint: routes.s3_endpoint.clone(),
    };
    let workers = spawn_workers(env_usize("SCHEDULE_WORKERS", 3), &queue_url, &worker_routes, &logs);

    let mut truth: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending: Vec<ObjectEvent> = Vec::new();
    let mut sent = 0usize;
    let mut restarted: Option<std::thread::JoinHandle<()>> = None;
    let mut fault_began: Option<Instant> = None;
    for op in 0..OPS {
        if let Disruption::Fault { proxy, fault, lasting } = &disruption {
            if op == OPS / 3 {
                eprintln!("seed {seed}: {} from operation {op}", fault.name());
                proxy.set(*fault);
                fault_began = Some(Instant::now());
            }
            if op == 2 * OPS / 3 {
                if let Some(began) = fault_began {
                    tokio::time::sleep(lasting.saturating_sub(began.elapsed())).await;
                }
                eprintln!("seed {seed}: the {} ends at operation {op}", fault.name());
                proxy.set(Fault::Pass);
            }
        }
        if op == OPS / 2 {
            if let Disruption::Restart(private) = &disruption {
                eprintln!("seed {seed}: stopping Milvus at operation {op}");
                private.run(&["down"]);
                let command = private.command(&["up"]);
                restarted = Some(std::thread::spawn(move || {
                    let mut command = command;
                    assert!(command.status().unwrap().success(), "Milvus restart");
                }));
            }
        }
        let roll = rng.next_u64() % 100;
        let mut touched: Vec<(String, Option<usize>)> = Vec::new();
        if roll < 55 {
            let content = if rng.next_u64() % 100 < 15 {
                refused
            } else {
                (rng.next_u64() % IMAGES as u64) as usize
            };
            touched.push((keys[(rng.next_u64() % KEYS as u64) as usize].clone(), Some(content)));
        } else if roll < 80 {
            touched.push((keys[(rng.next_u64() % KEYS as u64) as usize].clone(), None));
        } else {
            // The same content under several keys at once.
            let content = (rng.next_u64() % IMAGES as u64) as usize;
            for _ in 0..3 {
                touched.push((keys[(rng.next_u64() % KEYS as u64) as usize].clone(), Some(content)));
            }
        }
        for (key, content) in touched {
            let location = Location::new(&bucket, &key);
            match content {
                Some(c) => {
                    stack
                        .s3
                        .put(&bucket, &key, contents[c].clone(), "image/png")
                        .await
                        .unwrap();
                    truth.insert(key, c);
                    pending.push(ObjectEvent::Created {
                        location,
                        size: Some(contents[c].len() as u64),
                    });
                }
                None => {
                    stack.s3.delete(&bucket, &key).await.unwrap();
                    truth.remove(&key);
                    pending.push(ObjectEvent::Removed { location });
                }
            }
            // At least once: some events twice.
            if rng.next_u64() % 100 < 30 {
                pending.push(pending.last().unwrap().clone());
            }
        }
        // Events leave in bursts, shuffled and delayed: any order among those in flight.
        if rng.next_u64() % 100 < 40 || op == OPS - 1 {
            while !pending.is_empty() {
                let event = pending.swap_remove((rng.next_u64() % pending.len() as u64) as usize);
                stack
                    .sqs
                    .send_message()
                    .queue_url(&queue_url)
                    .message_body(notification_body(&[event]).to_string())
                    .delay_seconds((rng.next_u64() % 3) as i32)
                    .send()
                    .await
                    .unwrap();
                sent += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.next_u64() % 60)).await;
    }
    if let Some(handle) = restarted {
        handle.join().expect("Milvus came back");
        eprintln!("seed {seed}: Milvus is back");
    }

    // Drained: nothing visible, in flight or delayed, twice in a row.
    let operations_done = Instant::now();
    let restart = matches!(disruption, Disruption::Restart(_));
    let deadline = Instant::now() + Duration::from_secs(if restart { 600 } else { 180 });
    let mut quiet = 0;
    while quiet < 2 {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the queue did not drain (worker logs in {})",
            logs.display()
        );
        quiet = if queue_depth(&stack.sqs, &queue_url).await == 0 {
            quiet + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let drain_secs = operations_done.elapsed().as_secs_f64();
    drop(workers);

    let problems = compare(&index, &stack.s3, &clip, &bucket, &truth, &contents, refused).await;
    let _ = index.drop_collection().await;
    assert!(
        problems.is_empty(),
        "seed {seed}: the index differs from the bucket after {sent} messages (worker logs in {}):\n{}",
        logs.display(),
        problems.join("\n")
    );
    ScheduleReport {
        sent,
        retried: retried_in(&logs),
        drain_secs,
    }
}

/// Every difference between the index and the bucket.
pub async fn compare(
    index: &MilvusIndex,
    s3: &S3Objects,
    clip: &Clip,
    bucket: &str,
    truth: &BTreeMap<String, usize>,
    contents: &[Vec<u8>],
    refused: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<String> = s3.list(bucket, "").await.unwrap().into_iter().map(|o| o.key).collect();
    let expected_keys: BTreeSet<String> = truth.keys().cloned().collect();
    assert_eq!(listed, expected_keys, "the test's model of the bucket is S3's");

    let indexed: BTreeSet<String> = index
        .objects_in(
            &KeyRange {
                bucket: bucket.into(),
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.location.key)
        .collect();
    let images: BTreeSet<String> = truth
        .iter()
        .filter(|(_, c)| **c != refused)
        .map(|(k, _)| k.clone())
        .collect();
    if indexed != images {
        problems.push(format!("indexed keys {indexed:?}, image keys in the bucket {images:?}"));
    }
    for (key, &content) in truth {
        let location = Location::new(bucket, key);
        let row = index.object(&location).await.unwrap();
        if content == refused {
            if row.is_some() {
                problems.push(format!("{key}: holds no image but has a row"));
            }
            continue;
        }
        let Some(row) = row else {
            problems.push(format!("{key}: no row"));
            continue;
        };
        let id = sha256(&contents[content]);
        if row.id != id {
            problems.push(format!("{key}: row of content {} but the object holds {id}", row.id));
        }
        if let ObjectState::Present(version) = s3.head(bucket, key).await.unwrap() {
            if row.etag != version.etag {
                problems.push(format!(
                    "{key}: row ETag {} but the object's is {}",
                    row.etag, version.etag
                ));
            }
        }
        // The row's own vector: a search restricted to exactly this key.
        let expected = clip.embed_image(&contents[content]).unwrap().embedding;
        let hits = index
            .search(&SearchRequest {
                vector: expected,
                top_k: 1,
                key_prefix: Some(key.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        match hits.first() {
            Some(hit) if hit.id == id && hit.score > 0.999 => {}
            other => problems.push(format!("{key}: its vector is not its bytes' ({other:?})")),
        }
    }
    let total = index.count().await.unwrap();
    if total != images.len() as u64 {
        problems.push(format!("{total} rows, {} image objects", images.len()));
    }
    problems
}

pub fn test_milvus() -> MilvusSettings {
    MilvusSettings::from_env().expect("MILVUS_* environment")
}

pub fn base_seed() -> u64 {
    std::env::var("SCHEDULE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        })
}
