//! Shared by the search tests: puts labelled synthetic images into the local S3 and Milvus
//! (embedded with tiny-clip, written directly, independent of ingest) under a key prefix of
//! their own, so that other images in the same collection never disturb their assertions.
//! Each gets its thumbnail (made by the encoder, as ingest makes it) and a capture time one day
//! after the previous image's, from 2020-09-13 (the images carry no EXIF: the last-modified
//! fallback, with a made-up last-modified).
//!
//! Environment (what `scripts/test.sh` exports): `MILVUS_URI`, `MILVUS_COLLECTION`,
//! `CLIPSEARCH_S3_ENDPOINT`, `AWS_*`, `CLIPSEARCH_BUCKET` (default `images`, created when
//! missing), `LAMBDA_PORT` (default 9000). A missing service fails the test.
#![allow(dead_code)]

pub mod api;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clipsearch::capture::CaptureTime;
use clipsearch::clip::Encoder;
use clipsearch::config::{env_opt, MilvusSettings};
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::store::{ImageIndex, ImageRecord, IndexSpec, Location, MilvusIndex, SearchRequest};
use clipsearch::thumbnail::{ThumbnailStore, THUMBNAIL_EDGE};
use sha2::{Digest, Sha256};

use crate::common;

/// One seeded image.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: String,
    pub key: String,
    pub file: PathBuf,
    pub colour: String,
    pub shape: String,
    pub bytes: Vec<u8>,
    /// Its capture time (ms since the epoch, the last-modified fallback).
    pub captured_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Corpus {
    pub bucket: String,
    /// Unique per run: `search-test/<what>/<pid>-<time>/`.
    pub prefix: String,
    pub images: Vec<Seeded>,
    pub dir: PathBuf,
}

impl Corpus {
    pub fn by_class(&self, colour: &str, shape: &str) -> Vec<&Seeded> {
        self.images
            .iter()
            .filter(|s| s.colour == colour && s.shape == shape)
            .collect()
    }

    pub fn by_id(&self, id: &str) -> Option<&Seeded> {
        self.images.iter().find(|s| s.id == id)
    }
}

pub fn bucket() -> String {
    env_opt("CLIPSEARCH_BUCKET").unwrap_or_else(|| "images".into())
}

/// Percent-encodes a query-string value: every UTF-8 byte but the unreserved ones.
pub fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The search function's URL under `cargo lambda watch`.
pub fn lambda_base() -> String {
    let port = env_opt("LAMBDA_PORT").unwrap_or_else(|| "9000".into());
    format!("http://127.0.0.1:{port}/lambda-url/search")
}

pub async fn s3() -> S3Objects {
    let settings = ObjectSettings::from_env().expect("CLIPSEARCH_S3_* settings");
    assert!(
        settings.endpoint.is_some(),
        "CLIPSEARCH_S3_ENDPOINT is not set: these tests run against the local S3 emulator \
         (scripts/moto.sh up; CLIPSEARCH_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT)"
    );
    S3Objects::connect(&settings).await
}

pub async fn ensure_bucket(s3: &S3Objects, bucket: &str) {
    if let Err(e) = s3.client().create_bucket().bucket(bucket).send().await {
        let text = format!("{e:?}");
        assert!(
            text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists"),
            "cannot create bucket {bucket} on the local S3 (is moto running?): {text}"
        );
    }
}

pub async fn milvus(spec: IndexSpec) -> MilvusIndex {
    let settings = MilvusSettings::from_env().expect("MILVUS_* settings");
    let index = MilvusIndex::connect(&settings, spec).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach Milvus at {} ({e}); start it with scripts/milvus.sh up",
            settings.uri
        )
    });
    index.ensure_collection().await.expect("collection");
    index
}

/// The capture time of the first seeded image (2020-09-13T12:26:40Z); each next is a day later.
pub const SEEDED_FIRST_CAPTURE_MS: i64 = 1_600_000_000_000;
pub const DAY_MS: i64 = 86_400_000;

fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Generates `count` images (every colour × shape class once per 48), stores them in S3 under
/// a fresh prefix and indexes them, then waits until Milvus returns all of them.
pub async fn seed(what: &str, count: usize, seed: u64) -> Corpus {
    let dir = common::tempdir(&format!("search-{what}"));
    let dir_s = dir.to_str().expect("utf-8 temp path").to_owned();
    common::run_python(&[
        "tools/gen_synthetic.py",
        &dir_s,
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    let labels = common::read_jsonl(&dir.join("labels.jsonl"));
    let clip = common::tiny_clip().with_thumbnails(THUMBNAIL_EDGE);
    let spec = IndexSpec::of(&clip);
    let index = milvus(spec.clone()).await;
    let s3 = s3().await;
    let bucket = bucket();
    ensure_bucket(&s3, &bucket).await;
    let prefix = format!("search-test/{what}/{}/", run_id());

    let mut images = Vec::new();
    let mut records = Vec::new();
    for (n, row) in labels.iter().enumerate() {
        let name = row["file"].as_str().expect("file");
        let file = dir.join(name);
        let bytes = std::fs::read(&file).expect("generated image");
        let id = hex::encode(Sha256::digest(&bytes));
        let embedded = clip.embed_image(&bytes).expect("embeds");
        let captured_ms = SEEDED_FIRST_CAPTURE_MS + n as i64 * DAY_MS;
        let key = format!(
            "{prefix}{}-{}-{name}",
            row["colour"].as_str().unwrap(),
            row["shape"].as_str().unwrap()
        );
        s3.put(&bucket, &key, bytes.clone(), embedded.format.mime())
            .await
            .expect("put into the local S3");
        let thumbnail = embedded.thumbnail.clone().expect("the encoder makes thumbnails");
        s3.put_thumbnail(&bucket, &id, thumbnail)
            .await
            .expect("thumbnail into the local S3");
        records.push(ImageRecord {
            id: id.clone(),
            embedding: embedded.embedding,
            locations: vec![Location::new(bucket.as_str(), key.as_str())],
            content_type: embedded.format.mime().to_owned(),
            width: embedded.width,
            height: embedded.height,
            byte_size: bytes.len() as u64,
            ingested_at_ms: 0,
            model: spec.model.clone(),
            captured: CaptureTime::of(&bytes, captured_ms),
        });
        images.push(Seeded {
            id,
            key,
            file,
            colour: row["colour"].as_str().unwrap().to_owned(),
            shape: row["shape"].as_str().unwrap().to_owned(),
            bytes,
            captured_ms,
        });
    }
    for record in records {
        // One row per object: an image that another test indexed keeps its own keys.
        index.upsert(record).await.expect("upsert");
    }
    wait_visible(&index, &images, &prefix).await;
    Corpus {
        bucket,
        prefix,
        images,
        dir,
    }
}

/// Milvus makes writes searchable shortly after they are acknowledged.
async fn wait_visible(index: &MilvusIndex, images: &[Seeded], prefix: &str) {
    let probe = index
        .get(&images[0].id)
        .await
        .expect("get")
        .expect("just written")
        .embedding;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits = index
            .search(&SearchRequest {
                vector: probe.clone(),
                top_k: 100,
                min_score: None,
                key_prefix: Some(prefix.to_owned()),
                exclude_id: None,
                filter: Default::default(),
            })
            .await
            .expect("search");
        if hits.len() >= images.len().min(100) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} seeded images searchable after 60 s",
            hits.len(),
            images.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A client for the emulated function; fails the test when the emulator is not running.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("HTTP client")
}

/// The body behind a (presigned) URL, which must answer 200.
pub async fn download(url: &str) -> Vec<u8> {
    let response = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), reqwest::StatusCode::OK, "{url}");
    response.bytes().await.expect("body").to_vec()
}
