//! `clipsearch index`: backfill of a folder of synthetic images and of a bucket prefix, run as
//! a user runs it, against a real Milvus (`MILVUS_URI`) and moto (`CLIPSEARCH_S3_ENDPOINT`).
//! Each test uses its own collection, so repeated and parallel runs do not interfere.

mod common;

use std::process::Command;

use common::local_stack::unique;
use common::{read_jsonl, repo_root as repo, run_python};
use serde_json::Value;

fn index(source: &str, collection: &str) -> (Value, String, bool) {
    assert!(
        std::env::var("MILVUS_URI").is_ok(),
        "MILVUS_URI is not set (scripts/test.sh sets it)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .args(["index", source])
        .env("CLIPSEARCH_MODEL_DIR", repo().join("tests/fixtures/tiny-clip"))
        .env("MILVUS_COLLECTION", collection)
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("no JSON summary\nstdout: {stdout}\nstderr: {stderr}"));
    (summary, stderr, out.status.success())
}

#[test]
fn a_folder_of_200_images_is_indexed_once_and_skipped_on_the_second_run() {
    let dir = std::env::temp_dir().join(unique("clipsearch-backfill"));
    run_python(&[
        "tools/gen_synthetic.py",
        dir.to_str().unwrap(),
        "--count",
        "200",
        "--seed",
        "41",
    ]);
    let collection = unique("t_backfill").replace('-', "_");
    let source = dir.to_string_lossy().into_owned();

    let (first, stderr, ok) = index(&source, &collection);
    assert!(ok, "{first}\n{stderr}");
    assert_eq!(first["total"], 200, "{first}");
    assert_eq!(first["indexed"], 200, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    assert_eq!(first["ignored"], 1, "labels.jsonl is not an image: {first}");
    assert!(
        stderr.contains("progress: 200/200"),
        "progress lines on stderr:\n{stderr}"
    );
    assert!(stderr.contains("200 indexed"), "{stderr}");

    let (second, stderr, ok) = index(&source, &collection);
    assert!(ok, "{second}\n{stderr}");
    assert_eq!(second["indexed"], 0, "no inference on the second run: {second}");
    assert_eq!(second["skipped"], 200, "{second}");
    eprintln!(
        "backfill: first run {:.1} images/s, second run {:.1} images/s",
        first["images_per_second"].as_f64().unwrap(),
        second["images_per_second"].as_f64().unwrap()
    );

    // `clipsearch search` on what was indexed: by text, the class named comes first; by
    // image, the file itself (keys are paths relative to the folder).
    let labels: std::collections::HashMap<String, String> = read_jsonl(&dir.join("labels.jsonl"))
        .into_iter()
        .map(|l| {
            let class = format!("{} {}", l["colour"].as_str().unwrap(), l["shape"].as_str().unwrap());
            (l["file"].as_str().unwrap().to_owned(), class)
        })
        .collect();
    let hits = search(&["--text", "a photo of a red circle", "--top-k", "3"], &collection);
    assert_eq!(hits.len(), 3, "{hits:?}");
    for hit in &hits[..2] {
        assert_eq!(labels[hit["key"].as_str().unwrap()], "red circle", "{hits:?}");
    }
    let (file, _) = labels.iter().find(|(_, class)| *class == "blue star").unwrap();
    let hits = search(&["--image", dir.join(file).to_str().unwrap()], &collection);
    assert_eq!(hits[0]["key"], file.as_str(), "{hits:?}");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.999, "{hits:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `clipsearch search ARGS --json` against `collection`: one JSON object per result.
fn search(args: &[&str], collection: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .arg("search")
        .args(args)
        .arg("--json")
        .env("CLIPSEARCH_MODEL_DIR", repo().join("tests/fixtures/tiny-clip"))
        .env("MILVUS_COLLECTION", collection)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clipsearch search {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

#[test]
fn a_bucket_prefix_is_backfilled_with_failures_listed() {
    let endpoint = std::env::var("CLIPSEARCH_S3_ENDPOINT").expect("CLIPSEARCH_S3_ENDPOINT (moto) is not set");
    let bucket = unique("t-backfill");
    let dir = std::env::temp_dir().join(unique("clipsearch-backfill-s3"));
    run_python(&[
        "tools/gen_synthetic.py",
        dir.to_str().unwrap(),
        "--count",
        "5",
        "--seed",
        "42",
    ]);
    // Upload with boto3 (no notification wiring: a backfill is for buckets that predate it).
    let upload = r#"
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket=sys.argv[2])
for name in sorted(os.listdir(sys.argv[3])):
    s3.upload_file(os.path.join(sys.argv[3], name), sys.argv[2], "photos/" + name)
s3.put_object(Bucket=sys.argv[2], Key="photos/sub/", Body=b"")
s3.put_object(Bucket=sys.argv[2], Key="elsewhere/x.png", Body=b"outside the prefix")
"#;
    run_python(&["-c", upload, &endpoint, &bucket, dir.to_str().unwrap()]);

    let collection = unique("t_backfill_s3").replace('-', "_");
    let (summary, stderr, ok) = index(&format!("s3://{bucket}/photos/"), &collection);
    // 5 images and labels.jsonl, which is no image: listed with its reason, exit status 1.
    assert!(!ok, "a failure gives a non-zero exit: {summary}");
    assert_eq!(summary["total"], 6, "{summary}");
    assert_eq!(summary["indexed"], 5, "{summary}");
    assert_eq!(summary["failures"][0]["key"], "photos/labels.jsonl", "{summary}");
    assert!(
        summary["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not_an_image"),
        "{summary}"
    );
    assert!(stderr.contains("photos/labels.jsonl"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
