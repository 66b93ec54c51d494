//! The ingest use case on real components: moto (S3 + SQS, with the bucket notification wired
//! by scripts/local-aws.py), a real Milvus, ONNX Runtime with tiny-clip. Events are the ones
//! moto itself puts in the queue, so their shape (URL-encoded keys, missing optional fields) is
//! the emulator's, not ours.
//!
//! Needs `MILVUS_URI`, `CLIPSEARCH_S3_ENDPOINT` (moto), AWS_* test credentials and
//! `ORT_DYLIB_PATH`; scripts/test.sh provides them. A missing service fails the tests.
//! Every test has its own bucket, queue and collection, so they run in parallel and repeatedly.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clipsearch::clip::{Clip, Embedding, Encoder, ImageEmbedding, Towers};
use clipsearch::config::MilvusSettings;
use clipsearch::events::{notification_body, ObjectEvent, SqsMessage};
use clipsearch::ingest::{BatchReport, Ingestor, Outcome};
use clipsearch::objects::{FetchedObject, ObjectSettings, ObjectSource, ObjectState, S3Objects};
use clipsearch::store::{ImageIndex, IndexSpec, IndexedObject, KeyRange, Location, MilvusIndex};
use clipsearch::{Error, Result};
use sha2::{Digest, Sha256};

/// tiny-clip, counting image inferences.
struct Counting {
    clip: Clip,
    calls: AtomicUsize,
}

impl Encoder for Counting {
    fn model_name(&self) -> &str {
        self.clip.name()
    }
    fn dimension(&self) -> usize {
        Encoder::dimension(&self.clip)
    }
    fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.clip.embed_image(bytes)
    }
    fn embed_text(&self, text: &str) -> Result<Embedding> {
        self.clip.embed_text(text)
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A small PNG that differs for every seed.
fn png(seed: u32) -> Vec<u8> {
    common::png(seed, 48, 40)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn bad(name: &str) -> Vec<u8> {
    std::fs::read(common::fixtures().join("bad").join(name)).unwrap()
}

struct Env {
    ingestor: Ingestor<Counting, MilvusIndex, S3Objects>,
    s3: S3Objects,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    queue_url: String,
}

fn s3_endpoint() -> String {
    std::env::var("CLIPSEARCH_S3_ENDPOINT")
        .expect("CLIPSEARCH_S3_ENDPOINT must point at moto (scripts/moto.sh up; scripts/test.sh sets it)")
}

/// A bucket wired to its own queue (through the repo's own set-up script) and a collection.
async fn env(test: &str, milvus: MilvusSettings) -> Env {
    let bucket = unique(&format!("t-{test}")).replace('_', "-");
    let out = common::run_python(&[
        "scripts/local-aws.py",
        "--bucket",
        &bucket,
        "--endpoint",
        &s3_endpoint(),
    ]);
    let wiring: serde_json::Value = serde_json::from_str(out.trim()).expect("local-aws.py prints JSON");
    let queue_url = wiring["queue_url"].as_str().unwrap().to_owned();

    let clip = Clip::load(&common::settings(), Towers::IMAGE).expect("tiny-clip loads");
    let spec = IndexSpec {
        dimension: Encoder::dimension(&clip),
        model: clip.name().to_owned(),
        text_model: None,
    };
    let index = MilvusIndex::connect(&milvus, spec).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach Milvus at {} ({e}); start it with scripts/milvus.sh up",
            milvus.uri
        )
    });
    index.ensure_collection().await.expect("collection");
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let encoder = Arc::new(Counting {
        clip,
        calls: AtomicUsize::new(0),
    });
    let max_bytes = common::settings().max_image_bytes;
    Env {
        ingestor: Ingestor::new(encoder, index, s3.clone(), max_bytes),
        s3,
        sqs: sqs_client().await,
        bucket,
        queue_url,
    }
}

fn milvus_settings(test: &str) -> MilvusSettings {
    let mut settings = MilvusSettings::from_env().unwrap();
    settings.collection = unique(&format!("t_ingest_{test}")).replace('-', "_");
    settings
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let config = aws_sdk_sqs::config::Builder::from(&shared)
        .endpoint_url(s3_endpoint())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

impl Env {
    fn location(&self, key: &str) -> Location {
        Location::new(&self.bucket, key)
    }

    /// Where the index says the content `id` lives (it must be indexed).
    async fn locations(&self, id: &str) -> BTreeSet<Location> {
        let record = self.ingestor.index().get(id).await.unwrap();
        record.expect("the content is indexed").locations.into_iter().collect()
    }

    async fn put(&self, key: &str, bytes: &[u8]) {
        self.s3
            .put(&self.bucket, key, bytes.to_vec(), "application/octet-stream")
            .await
            .unwrap();
    }

    /// Receives (and deletes) messages until `records` S3 records arrived; the configuration's
    /// s3:TestEvent messages are passed along too (ingest must ignore them).
    async fn receive(&self, records: usize) -> Vec<SqsMessage> {
        let mut out = Vec::new();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen < records {
            assert!(
                Instant::now() < deadline,
                "only {seen} of {records} S3 records arrived in the queue"
            );
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("SQS receive");
            for m in received.messages() {
                let body = m.body().unwrap_or_default().to_owned();
                let value: serde_json::Value = serde_json::from_str(&body).unwrap();
                seen += value["Records"].as_array().map_or(0, Vec::len);
                out.push(SqsMessage {
                    message_id: m.message_id().unwrap().to_owned(),
                    body,
                });
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        out
    }

    fn calls(&self) -> usize {
        self.ingestor.encoder().calls.load(Ordering::SeqCst)
    }

    async fn cleanup(self) {
        let _ = self.ingestor.index().drop_collection().await;
    }
}

fn outcomes(report: &BatchReport) -> Vec<String> {
    report
        .records
        .iter()
        .map(|r| match &r.outcome {
            Ok(o) => o.as_str().to_owned(),
            Err(e) => e.code().to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_becomes_a_record_and_a_redelivery_changes_nothing() {
    let env = env("upload", milvus_settings("upload")).await;
    let bytes = png(1);
    env.put("photos/cat 1.png", &bytes).await;
    let messages = env.receive(1).await;

    let report = env.ingestor.handle_sqs(&messages).await;
    assert_eq!(outcomes(&report), ["indexed"]);
    assert!(report.failed_message_ids.is_empty());

    let id = sha256(&bytes);
    assert_eq!(report.records[0].id.as_deref(), Some(id.as_str()));
    let record = env.ingestor.index().get(&id).await.unwrap().expect("the record");
    assert_eq!(record.locations, vec![env.location("photos/cat 1.png")]);
    assert_eq!(
        (record.content_type.as_str(), record.width, record.height),
        ("image/png", 48, 40)
    );
    assert_eq!(record.byte_size, bytes.len() as u64);
    let expected = env.ingestor.encoder().clip.embed_image(&bytes).unwrap().embedding;
    assert!(common::cosine(&record.embedding, &expected) > 0.9999);
    assert_eq!(env.calls(), 1);

    // Lambda is at-least-once: the very same messages again.
    let again = env.ingestor.handle_sqs(&messages).await;
    assert_eq!(outcomes(&again), ["unchanged"]);
    assert_eq!(env.calls(), 1, "a re-delivery must not embed again");
    assert_eq!(env.ingestor.index().count().await.unwrap(), 1);
    assert_eq!(env.ingestor.index().get(&id).await.unwrap().unwrap(), record);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bytes_under_two_keys_embed_once_and_deletes_remove_locations() {
    let env = env("dup", milvus_settings("dup")).await;
    let bytes = png(2);
    env.put("a/one.png", &bytes).await;
    env.put("b/two.png", &bytes).await;
    let report = env.ingestor.handle_sqs(&env.receive(2).await).await;
    let mut got = outcomes(&report);
    got.sort();
    assert_eq!(got, ["indexed", "location_added"]);
    assert_eq!(env.calls(), 1, "one inference for one content");
    let id = sha256(&bytes);
    let locations: BTreeSet<Location> = env.locations(&id).await;
    assert_eq!(
        locations,
        BTreeSet::from([env.location("a/one.png"), env.location("b/two.png")])
    );
    assert_eq!(env.ingestor.index().count().await.unwrap(), 2, "one row per object");

    env.s3.delete(&env.bucket, "a/one.png").await.unwrap();
    let removal = env.receive(1).await;
    let report = env.ingestor.handle_sqs(&removal).await;
    assert_eq!(outcomes(&report), ["location_removed"]);
    let record = env.ingestor.index().get(&id).await.unwrap().unwrap();
    assert_eq!(record.locations, vec![env.location("b/two.png")]);
    // The removal again: nothing left to remove.
    assert_eq!(outcomes(&env.ingestor.handle_sqs(&removal).await), ["not_indexed"]);

    env.s3.delete(&env.bucket, "b/two.png").await.unwrap();
    let report = env.ingestor.handle_sqs(&env.receive(1).await).await;
    assert_eq!(outcomes(&report), ["record_deleted"]);
    assert!(env.ingestor.index().get(&id).await.unwrap().is_none());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_indexes_the_good_and_reports_the_rest() {
    let env = env("mixed", milvus_settings("mixed")).await;
    let good: Vec<Vec<u8>> = (10..13).map(png).collect();
    for (i, bytes) in good.iter().enumerate() {
        env.put(&format!("good/{i}.png"), bytes).await;
    }
    // Text under an image name: the notification passes it (suffix), the content does not.
    env.put("bad/notes.jpg", &bad("notes.txt")).await;
    env.put("bad/truncated.jpg", &bad("truncated.jpg")).await;
    env.put("bad/huge.png", &bad("huge_30000x30000.png")).await;
    let mut messages = env.receive(6).await;
    messages.push(SqsMessage {
        message_id: "missing-key".into(),
        body: notification_body(&[ObjectEvent::Created {
            location: env.location("never/uploaded.png"),
            size: Some(1),
        }])
        .to_string(),
    });

    let report = env.ingestor.handle_sqs(&messages).await;
    assert!(
        report.failed_message_ids.is_empty(),
        "permanent failures must not be retried: {:?}",
        report.failed_message_ids
    );
    let by_key: std::collections::BTreeMap<String, String> = report
        .records
        .iter()
        .map(|r| {
            let what = match &r.outcome {
                Ok(o) => o.as_str().to_owned(),
                Err(e) => e.code().to_owned(),
            };
            (r.location.key.clone(), what)
        })
        .collect();
    let expected: std::collections::BTreeMap<String, String> = [
        ("good/0.png", "indexed"),
        ("good/1.png", "indexed"),
        ("good/2.png", "indexed"),
        ("bad/notes.jpg", "not_an_image"),
        ("bad/truncated.jpg", "corrupt_image"),
        ("bad/huge.png", "too_many_pixels"),
        ("never/uploaded.png", "object_missing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(by_key, expected);
    for record in report.records.iter().filter(|r| r.outcome.is_err()) {
        assert!(!record.should_retry());
        assert!(record
            .reason()
            .unwrap()
            .contains(record.outcome.as_ref().unwrap_err().code()));
    }
    assert_eq!(env.ingestor.index().count().await.unwrap(), 3);
    for bytes in &good {
        assert!(env.ingestor.index().exists(&sha256(bytes)).await.unwrap());
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_keys_round_trip() {
    let env = env("keys", milvus_settings("keys")).await;
    let keys = [
        "with space.png",
        "plus+sign.png",
        "ünïcödé/日本 語.png",
        "100% sure.png",
        "literal%2Bescape.png",
        "a+b c%20d/é+%.png",
    ];
    let bytes = png(3);
    for key in keys {
        env.put(key, &bytes).await;
    }
    let report = env.ingestor.handle_sqs(&env.receive(keys.len()).await).await;
    assert!(
        report.records.iter().all(|r| r.outcome.is_ok()),
        "{:?}",
        outcomes(&report)
    );
    let id = sha256(&bytes);
    let stored: BTreeSet<Location> = env.locations(&id).await;
    let expected: BTreeSet<Location> = keys.iter().map(|k| env.location(k)).collect();
    assert_eq!(stored, expected);
    assert_eq!(env.calls(), 1);

    // Removal events carry the same encoding.
    for key in ["plus+sign.png", "100% sure.png", "a+b c%20d/é+%.png"] {
        env.s3.delete(&env.bucket, key).await.unwrap();
    }
    let report = env.ingestor.handle_sqs(&env.receive(3).await).await;
    assert_eq!(outcomes(&report), ["location_removed"; 3]);
    let left: BTreeSet<Location> = env.locations(&id).await;
    let expected: BTreeSet<Location> = ["with space.png", "ünïcödé/日本 語.png", "literal%2Bescape.png"]
        .iter()
        .map(|k| env.location(k))
        .collect();
    assert_eq!(left, expected);
    env.cleanup().await;
}

/// The shared Milvus, until an operation budget runs out; from then on every call fails with
/// the error the real client gives for an unreachable server (captured by connecting to a dead
/// port), as if Milvus stopped at that point. Deterministic, and the shared test Milvus stays
/// up. `milvus_really_stopped_mid_batch` below does the same with a real server (opt-in).
struct StopsAfter {
    inner: MilvusIndex,
    budget: std::sync::atomic::AtomicIsize,
    error: String,
}

impl StopsAfter {
    fn gate(&self) -> Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) > 0 {
            Ok(())
        } else {
            Err(Error::StoreUnavailable(self.error.clone()))
        }
    }
}

impl ImageIndex for StopsAfter {
    async fn exists(&self, id: &str) -> Result<bool> {
        self.gate()?;
        self.inner.exists(id).await
    }
    async fn get(&self, id: &str) -> Result<Option<clipsearch::store::ImageRecord>> {
        self.gate()?;
        self.inner.get(id).await
    }
    async fn vector_of(&self, id: &str) -> Result<Option<IndexedObject>> {
        self.gate()?;
        self.inner.vector_of(id).await
    }
    async fn object(&self, location: &Location) -> Result<Option<IndexedObject>> {
        self.gate()?;
        self.inner.object(location).await
    }
    async fn put_object(&self, object: IndexedObject) -> Result<()> {
        self.gate()?;
        self.inner.put_object(object).await
    }
    async fn remove_object(&self, location: &Location) -> Result<Option<String>> {
        self.gate()?;
        self.inner.remove_object(location).await
    }
    async fn objects_in(&self, range: &KeyRange, limit: usize) -> Result<Vec<IndexedObject>> {
        self.gate()?;
        self.inner.objects_in(range, limit).await
    }
    async fn rows_with_id_prefix(
        &self,
        scan: &clipsearch::store::IdPrefixScan<'_>,
    ) -> Result<Option<Vec<IndexedObject>>> {
        self.gate()?;
        self.inner.rows_with_id_prefix(scan).await
    }
    async fn search(&self, request: &clipsearch::store::SearchRequest) -> Result<Vec<clipsearch::store::SearchHit>> {
        self.gate()?;
        self.inner.search(request).await
    }
    async fn count(&self) -> Result<u64> {
        self.gate()?;
        self.inner.count().await
    }
}

async fn unreachable_milvus_error() -> Error {
    let mut settings = milvus_settings("dead");
    settings.uri = "http://127.0.0.1:9".into();
    settings.connect_timeout = Duration::from_secs(2);
    settings.rpc_timeout = Duration::from_secs(2);
    let spec = IndexSpec {
        dimension: 8,
        model: "m".into(),
        text_model: None,
    };
    match MilvusIndex::connect(&settings, spec).await {
        Err(e) => e,
        Ok(index) => index.ensure_collection().await.unwrap_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_failing_mid_batch_fails_the_rest_transiently_and_writes_nothing_partial() {
    let Error::StoreUnavailable(message) = unreachable_milvus_error().await else {
        panic!("an unreachable Milvus must be StoreUnavailable")
    };
    let settings = milvus_settings("stop");
    let env = env("stop", settings.clone()).await;
    let images: Vec<Vec<u8>> = (20..25).map(png).collect();
    for (i, bytes) in images.iter().enumerate() {
        env.put(&format!("img/{i}.png"), bytes).await;
    }
    let mut messages = env.receive(5).await;
    // Only the five uploads, so that message i is record i (the s3:TestEvent has no record).
    messages.retain(|m| m.body.contains("\"Records\""));
    assert_eq!(messages.len(), 5);

    let spec = env.ingestor.index().spec().clone();
    let inner = MilvusIndex::connect(&settings, spec.clone()).await.unwrap();
    // A new object costs three index calls (its row, a known vector, the write): records 0
    // and 1 take 6, record 2's reads the 7th and 8th; its write, after the inference, is the
    // first to fail.
    let stopping = Ingestor::new(
        Arc::new(Counting {
            clip: Clip::load(&common::settings(), Towers::IMAGE).unwrap(),
            calls: AtomicUsize::new(0),
        }),
        StopsAfter {
            inner,
            budget: std::sync::atomic::AtomicIsize::new(8),
            error: message,
        },
        env.s3.clone(),
        common::settings().max_image_bytes,
    )
    .with_concurrency(1); // the queue's order, deterministically

    let report = stopping.handle_sqs(&messages).await;
    let results = outcomes(&report);
    assert_eq!(
        results,
        [
            "indexed",
            "indexed",
            "index_unavailable",
            "index_unavailable",
            "index_unavailable"
        ]
    );
    assert!(report.records[2..].iter().all(|r| r.should_retry()));
    let expected_failed: Vec<String> = messages[2..].iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(
        report.failed_message_ids, expected_failed,
        "batchItemFailures: exactly the failed messages"
    );
    assert_eq!(
        stopping.encoder().calls.load(Ordering::SeqCst),
        3,
        "record 2 was embedded, then its write failed"
    );

    // Nothing partial: the first two whole, the rest absent.
    let index = env.ingestor.index();
    assert_eq!(index.count().await.unwrap(), 2);
    for (i, bytes) in images.iter().enumerate() {
        let record = index.get(&sha256(bytes)).await.unwrap();
        if i < 2 {
            let record = record.expect("a record written before the failure");
            assert_eq!(record.embedding.len(), spec.dimension);
            assert_eq!(record.locations, vec![env.location(&format!("img/{i}.png"))]);
        } else {
            assert!(record.is_none(), "no partial record for img/{i}.png");
        }
    }

    // The queue delivers the failed messages again, Milvus is back: they go through.
    let retry: Vec<SqsMessage> = messages
        .iter()
        .filter(|m| report.failed_message_ids.contains(&m.message_id))
        .cloned()
        .collect();
    let report = env.ingestor.handle_sqs(&retry).await;
    assert_eq!(outcomes(&report), ["indexed"; 3]);
    assert!(report.failed_message_ids.is_empty());
    assert_eq!(index.count().await.unwrap(), 5);
    env.cleanup().await;
}

/// A second Milvus of this test's own, really stopped (`scripts/milvus.sh down`) when the
/// third record is fetched. Opt-in (`--ignored`, set `INGEST_TEST_MILVUS_PORT` and
/// `INGEST_TEST_MILVUS_HEALTH_PORT` to free ports): it starts and restarts a whole Milvus,
/// which takes minutes on a small machine, and milvus-lite instances starting at the same
/// time can collide on their internal ports.
struct PrivateMilvus {
    port: String,
    health_port: String,
}

impl PrivateMilvus {
    fn script(&self, action: &str) -> bool {
        Command::new("bash")
            .arg(common::repo_root().join("scripts/milvus.sh"))
            .arg(action)
            .env("MILVUS_PORT", &self.port)
            .env("MILVUS_HEALTH_PORT", &self.health_port)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for PrivateMilvus {
    fn drop(&mut self) {
        self.script("down");
    }
}

struct StopsMilvus<'a> {
    inner: S3Objects,
    milvus: &'a PrivateMilvus,
    fetches: AtomicUsize,
    stop_at: usize,
}

// Status records are not this test's concern.
impl clipsearch::status::StatusStore for StopsMilvus<'_> {}
impl clipsearch::thumbnail::ThumbnailStore for StopsMilvus<'_> {}

impl ObjectSource for StopsMilvus<'_> {
    async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
        if self.fetches.fetch_add(1, Ordering::SeqCst) + 1 == self.stop_at {
            assert!(self.milvus.script("down"), "stopping the private Milvus");
        }
        self.inner.fetch(bucket, key, max_bytes).await
    }
    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectState> {
        self.inner.head(bucket, key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts its own Milvus (minutes); run with --ignored"]
async fn milvus_really_stopped_mid_batch() {
    let port = std::env::var("INGEST_TEST_MILVUS_PORT").unwrap_or_else(|_| "19590".into());
    let health_port = std::env::var("INGEST_TEST_MILVUS_HEALTH_PORT").unwrap_or_else(|_| "9099".into());
    let milvus = PrivateMilvus { port, health_port };
    assert!(milvus.script("up"), "starting a private Milvus on port {}", milvus.port);
    let mut settings = milvus_settings("realstop");
    settings.uri = format!("http://127.0.0.1:{}", milvus.port);
    // A fresh server is slow on its first collection calls: default deadlines for set-up.
    let env = env("realstop", settings.clone()).await;
    // Then short ones, so that the records after the stop fail fast.
    settings.rpc_timeout = Duration::from_secs(10);
    settings.connect_timeout = Duration::from_secs(10);

    let images: Vec<Vec<u8>> = (30..35).map(png).collect();
    for (i, bytes) in images.iter().enumerate() {
        env.put(&format!("img/{i}.png"), bytes).await;
    }
    let mut messages = env.receive(5).await;
    messages.retain(|m| m.body.contains("\"Records\""));
    let spec = env.ingestor.index().spec().clone();
    let index = MilvusIndex::connect(&settings, spec.clone()).await.unwrap();
    index.ensure_collection().await.unwrap();
    let stopping = Ingestor::new(
        Arc::new(Counting {
            clip: Clip::load(&common::settings(), Towers::IMAGE).unwrap(),
            calls: AtomicUsize::new(0),
        }),
        index,
        StopsMilvus {
            inner: env.s3.clone(),
            milvus: &milvus,
            fetches: AtomicUsize::new(0),
            stop_at: 3,
        },
        common::settings().max_image_bytes,
    )
    .with_concurrency(1);

    let report = stopping.handle_sqs(&messages).await;
    let results = outcomes(&report);
    assert_eq!(results[..2], ["indexed", "indexed"]);
    assert!(results[2..].iter().all(|c| c == "index_unavailable"), "{results:?}");
    let expected_failed: Vec<String> = messages[2..].iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(report.failed_message_ids, expected_failed);

    assert!(milvus.script("up"), "restarting the private Milvus");
    let index = MilvusIndex::connect(&settings, spec).await.unwrap();
    index.ensure_collection().await.unwrap();
    assert_eq!(index.count().await.unwrap(), 2);
    for bytes in &images[2..] {
        assert!(index.get(&sha256(bytes)).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_milvus_is_a_transient_error() {
    // The error mapping the retry decision rests on, against a port nobody listens on.
    let err = unreachable_milvus_error().await;
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(clipsearch::ingest::should_retry(&err));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_s3_is_a_transient_error() {
    let settings = ObjectSettings {
        endpoint: Some("http://127.0.0.1:9".into()),
        ..ObjectSettings::from_env().unwrap()
    };
    let s3 = S3Objects::connect(&settings).await;
    let err = s3.fetch("b", "k", 10).await.unwrap_err();
    assert!(matches!(err, Error::ObjectStoreUnavailable(_)), "{err:?}");
    assert!(clipsearch::ingest::should_retry(&err));
    // And the same object gone is final.
    let env = env("gone", milvus_settings("gone")).await;
    let report = env
        .ingestor
        .handle(&ObjectEvent::Created {
            location: env.location("nope.png"),
            size: None,
        })
        .await;
    assert!(matches!(report.outcome, Err(Error::ObjectMissing { .. })));
    assert!(!report.should_retry());
    env.cleanup().await;
}

#[test]
fn event_fixtures_parse() {
    use clipsearch::events::{parse_invocation, parse_notification, Invocation, Notification};
    let dir = common::repo_root().join("tests/events");
    let load = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let Invocation::S3(events) = parse_invocation(&load("s3-put.json")).unwrap() else {
        panic!("s3-put.json is an S3 event")
    };
    assert_eq!(
        events,
        vec![ObjectEvent::Created {
            location: Location::new("clipsearch-images", "uploads/my cat+dog 100%.jpg"),
            size: Some(1024)
        }]
    );
    let Invocation::S3(events) = parse_invocation(&load("s3-delete.json")).unwrap() else {
        panic!("s3-delete.json is an S3 event")
    };
    assert_eq!(
        events,
        vec![ObjectEvent::Removed {
            location: Location::new("clipsearch-images", "uploads/ünïcödé.png")
        }]
    );
    assert_eq!(
        parse_invocation(&load("s3-test-event.json")).unwrap(),
        Invocation::TestEvent
    );
    let Invocation::Sqs(messages) = parse_invocation(&load("sqs-batch.json")).unwrap() else {
        panic!("sqs-batch.json is an SQS event")
    };
    assert_eq!(messages.len(), 3);
    assert!(matches!(parse_notification(&messages[0].body).unwrap(), Notification::Events(e) if e.len() == 1));
    assert_eq!(parse_notification(&messages[1].body).unwrap(), Notification::TestEvent);
    assert!(
        matches!(parse_notification(&messages[2].body).unwrap(), Notification::Events(e) if matches!(e[0], ObjectEvent::Removed { .. }))
    );
    let Invocation::S3(events) = parse_invocation(&load("s3-moto-minimal.json")).unwrap() else {
        panic!("s3-moto-minimal.json is an S3 event")
    };
    assert_eq!(
        events,
        vec![ObjectEvent::Created {
            location: Location::new("images", "dir/a b+c%é.jpg"),
            size: Some(5)
        }]
    );
}

#[test]
fn outcome_names_are_stable() {
    assert_eq!(Outcome::NotIndexed.as_str(), "not_indexed");
}
