//! `clipsearch reconcile`, run as a user runs it, on a deliberately damaged index: rows deleted,
//! stale rows added, an object changed behind the index's back. It must report each difference,
//! `--apply` must make the index equal the source, and a second run must find nothing. Against a
//! real Milvus (`MILVUS_URI`) and moto (`CLIPSEARCH_S3_ENDPOINT`), on a bucket and on a folder.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clipsearch::clip::{Clip, Encoder, Towers};
use clipsearch::config::MilvusSettings;
use clipsearch::objects::{ObjectSettings, S3Objects};
use clipsearch::store::{ImageIndex, IndexSpec, IndexedObject, KeyRange, Location, MilvusIndex};
use clipsearch::thumbnail::ThumbnailStore;
use common::local_stack::unique;
use common::repo_root as repo;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A small PNG that differs for every seed.
fn png(seed: u32) -> Vec<u8> {
    common::png(seed, 36, 30)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs the CLI; returns its JSON lines (differences, then the summary) and exit status.
fn clipsearch(args: &[&str], collection: &str) -> (Vec<Value>, Value, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .args(args)
        .env("CLIPSEARCH_MODEL_DIR", repo().join("tests/fixtures/tiny-clip"))
        .env("MILVUS_COLLECTION", collection)
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\nstderr: {stderr}")))
        .collect();
    let last = lines.pop().unwrap_or_else(|| panic!("no output\nstderr: {stderr}"));
    let summary = last.get("summary").cloned().unwrap_or(last);
    (lines, summary, out.status.success())
}

fn differences(lines: &[Value]) -> BTreeSet<(String, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["difference"].as_str().unwrap().to_owned(),
                l["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn open_index(collection: &str) -> MilvusIndex {
    let clip = Clip::load(&common::settings(), Towers::IMAGE).unwrap();
    let mut settings = MilvusSettings::from_env().expect("MILVUS_* environment");
    settings.collection = collection.to_owned();
    let spec = IndexSpec {
        dimension: Encoder::dimension(&clip),
        model: clip.name().to_owned(),
        text_model: None,
    };
    let index = MilvusIndex::connect(&settings, spec).await.expect("Milvus reachable");
    index.ensure_collection().await.unwrap();
    index
}

/// A row for a key that holds nothing: a copy of `like` under another key.
async fn plant_stale_row(index: &MilvusIndex, like: &Location, key: &str) {
    let mut row = index
        .vector_of(&index.object(like).await.unwrap().unwrap().id)
        .await
        .unwrap()
        .unwrap();
    row.location = Location::new(like.bucket.clone(), key);
    index.put_object(row).await.unwrap();
}

/// The index rows of a bucket, as key → content id.
async fn rows(index: &MilvusIndex, bucket: &str) -> BTreeSet<(String, String)> {
    let range = KeyRange {
        bucket: bucket.into(),
        ..Default::default()
    };
    index
        .objects_in(&range, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r: IndexedObject| (r.location.key, r.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_is_reported_and_repaired_from_the_bucket() {
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let bucket = unique("reconcile").to_ascii_lowercase();
    s3.client().create_bucket().bucket(&bucket).send().await.unwrap();
    let mut truth = BTreeSet::new();
    for i in 0..8u32 {
        let key = format!("r/img{i}.png");
        let bytes = png(i);
        s3.put(&bucket, &key, bytes.clone(), "image/png").await.unwrap();
        truth.insert((key, sha256(&bytes)));
    }
    // Outside the prefix: never reported, never touched.
    s3.put(&bucket, "other/x.png", png(99), "image/png").await.unwrap();
    let collection = unique("t_reconcile").replace('-', "_");
    let source = format!("s3://{bucket}/r/");
    let (_, indexed, ok) = clipsearch(&["index", &format!("s3://{bucket}/")], &collection);
    assert!(ok, "{indexed}");
    assert_eq!(indexed["indexed"], 9, "{indexed}");

    let (lines, summary, ok) = clipsearch(&["reconcile", &source, "-q"], &collection);
    assert!(
        ok && lines.is_empty(),
        "a fresh index equals the bucket: {lines:?} {summary}"
    );
    assert_eq!(summary["checked"], 8, "{summary}");

    // The damage.
    let index = open_index(&collection).await;
    let at = |key: &str| Location::new(bucket.clone(), key);
    index.remove_object(&at("r/img1.png")).await.unwrap();
    index.remove_object(&at("r/img6.png")).await.unwrap();
    plant_stale_row(&index, &at("r/img2.png"), "r/ghost-a.png").await;
    plant_stale_row(&index, &at("r/img2.png"), "r/zz-ghost.png").await;
    let changed = png(1234);
    s3.put(&bucket, "r/img3.png", changed.clone(), "image/png")
        .await
        .unwrap();
    truth.retain(|(k, _)| k != "r/img3.png");
    truth.insert(("r/img3.png".into(), sha256(&changed)));

    let expected = set(&[
        ("missing", "r/img1.png"),
        ("missing", "r/img6.png"),
        ("stale", "r/ghost-a.png"),
        ("stale", "r/zz-ghost.png"),
        ("changed", "r/img3.png"),
    ]);
    // Small pages: the differences straddle page boundaries, and the stale row after the last
    // key is in the last page's open-ended range.
    let (lines, summary, ok) = clipsearch(&["reconcile", &source, "--page-size", "3", "-q"], &collection);
    assert!(!ok, "differences found: exit 1 ({summary})");
    assert_eq!(differences(&lines), expected, "{summary}");
    assert_eq!(summary["differences"], 5, "{summary}");
    assert!(lines.iter().all(|l| l["repair"].is_null()), "a report changes nothing");
    assert_eq!(rows(&index, &bucket).await.len(), 9 - 2 + 2, "still damaged");

    // Resumable: after img4 only img6 (missing) and zz-ghost (stale) are left to see.
    let (lines, _, _) = clipsearch(
        &["reconcile", &source, "--start-after", "r/img4.png", "-q"],
        &collection,
    );
    assert_eq!(
        differences(&lines),
        set(&[("missing", "r/img6.png"), ("stale", "r/zz-ghost.png")])
    );

    let (lines, summary, ok) = clipsearch(
        &["reconcile", &source, "--apply", "--page-size", "3", "-q"],
        &collection,
    );
    assert!(ok, "{lines:?} {summary}");
    assert_eq!(differences(&lines), expected);
    assert_eq!(summary["repaired"], 5, "{summary}");

    let (lines, summary, ok) = clipsearch(&["reconcile", &source, "-q"], &collection);
    assert!(
        ok && lines.is_empty(),
        "a second run finds nothing: {lines:?} {summary}"
    );
    let mut expected_rows = truth.clone();
    expected_rows.insert(("other/x.png".into(), sha256(&png(99))));
    assert_eq!(
        rows(&index, &bucket).await,
        expected_rows,
        "the index equals the bucket"
    );

    // Thumbnails in step: one lost, one left behind by a content no object holds.
    let img0 = sha256(&png(0));
    let orphan = "ab".repeat(32);
    s3.remove_thumbnail(&bucket, &img0).await.unwrap();
    s3.put_thumbnail(&bucket, &orphan, b"left behind".to_vec())
        .await
        .unwrap();
    let orphan_key = s3.thumbnail_key(&orphan).unwrap();
    let expected = set(&[
        ("thumbnail_missing", "r/img0.png"),
        ("thumbnail_orphaned", orphan_key.as_str()),
    ]);
    let (lines, _, ok) = clipsearch(&["reconcile", &source, "-q"], &collection);
    assert!(!ok);
    assert_eq!(differences(&lines), expected);
    let (lines, summary, ok) = clipsearch(&["reconcile", &source, "--apply", "-q"], &collection);
    assert!(ok, "{lines:?} {summary}");
    assert_eq!(differences(&lines), expected);
    let repairs: BTreeSet<&str> = lines.iter().filter_map(|l| l["repair"].as_str()).collect();
    assert_eq!(repairs, BTreeSet::from(["thumbnail_written", "thumbnail_removed"]));
    let (ids, _) = s3.thumbnail_ids(&bucket, None).await.unwrap();
    assert!(ids.contains(&img0) && !ids.contains(&orphan), "{ids:?}");
    let (lines, _, ok) = clipsearch(&["reconcile", &source, "-q"], &collection);
    assert!(ok && lines.is_empty(), "{lines:?}");
    let _ = index.drop_collection().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_reconciled_like_it_is_indexed() {
    let dir = std::env::temp_dir().join(unique("clipsearch-reconcile"));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let write = |name: &str, seed: u32| std::fs::write(dir.join(name), png(seed)).unwrap();
    for (i, name) in ["a.png", "b.png", "c.png", "sub/d.png", "sub/e.png"].iter().enumerate() {
        write(name, 500 + i as u32);
    }
    let collection = unique("t_reconcile_dir").replace('-', "_");
    let source = dir.to_string_lossy().into_owned();
    let (_, indexed, ok) = clipsearch(&["index", &source, "--bucket", "album"], &collection);
    assert!(ok && indexed["indexed"] == 5, "{indexed}");

    std::fs::remove_file(dir.join("b.png")).unwrap();
    write("new.png", 600);
    // Other bytes: another modification time (and most likely another size).
    std::thread::sleep(std::time::Duration::from_millis(20));
    write("sub/d.png", 601);
    let expected = set(&[("stale", "b.png"), ("missing", "new.png"), ("changed", "sub/d.png")]);

    let args = |extra: &[&'static str]| {
        let mut v = vec!["reconcile", source.as_str(), "--bucket", "album", "-q"];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        clipsearch(&refs, &collection)
    };
    let (lines, _, ok) = run(&[]);
    assert!(!ok);
    assert_eq!(differences(&lines), expected);
    let (lines, summary, ok) = run(&["--apply"]);
    assert!(ok, "{lines:?} {summary}");
    assert_eq!(summary["repaired"], 3, "{summary}");
    let (lines, summary, ok) = run(&[]);
    assert!(
        ok && lines.is_empty(),
        "a second run finds nothing: {lines:?} {summary}"
    );

    let index = open_index(&collection).await;
    let expected_rows: BTreeSet<(String, String)> = [
        ("a.png", 500),
        ("c.png", 502),
        ("new.png", 600),
        ("sub/d.png", 601),
        ("sub/e.png", 504),
    ]
    .iter()
    .map(|(k, seed)| (k.to_string(), sha256(&png(*seed))))
    .collect();
    assert_eq!(rows(&index, "album").await, expected_rows);
    let _ = index.drop_collection().await;
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
