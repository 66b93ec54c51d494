//! docs/ARCHITECTURE.md's "Never" list, checked against the sources: which room may import
//! which, and what the adapters may not touch.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file under `dir` whose text names one of `forbidden` (an import path), with the
/// offending line.
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&repo().join(dir), &mut files);
    assert!(!files.is_empty(), "no sources under {dir}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = forbidden.iter().find(|f| code.contains(*f)) {
                found.push(format!("{}:{}: {name}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

fn assert_none(dir: &str, forbidden: &[&str]) {
    let found = offenders(dir, forbidden);
    assert!(
        found.is_empty(),
        "{dir} must not use {forbidden:?}:\n{}",
        found.join("\n")
    );
}

const USE_CASES: [&str; 6] = [
    "crate::ingest",
    "crate::search",
    "crate::status",
    "crate::duplicates",
    "crate::thumbnail",
    "crate::model_source",
];

#[test]
fn the_encoders_know_no_index_no_s3_and_no_use_case() {
    assert_none(
        "shared/src/clip",
        &[
            &["crate::store", "crate::objects", "milvus::", "aws_sdk"][..],
            &USE_CASES,
        ]
        .concat(),
    );
}

#[test]
fn the_index_knows_no_encoder_no_s3_and_no_use_case() {
    assert_none(
        "shared/src/store",
        &[&["crate::clip", "crate::objects", "aws_sdk"][..], &USE_CASES].concat(),
    );
}

#[test]
fn the_library_imports_no_lambda_crate() {
    assert_none("shared/src", &["lambda_runtime", "lambda_http", "aws_lambda_events"]);
}

#[test]
fn adapters_use_neither_the_milvus_nor_the_s3_sdk() {
    for dir in ["functions/ingest/src", "functions/search/src", "cli/src"] {
        assert_none(dir, &["milvus::", "aws_sdk_s3", "milvus_sdk"]);
    }
}

#[test]
fn http_shapes_are_parsed_in_the_search_function_only() {
    // Base64 images and JSON bodies belong to the adapter (functions/search/src/body.rs).
    assert_none("shared/src/search", &["base64::", "SearchBody", "from_json"]);
}
