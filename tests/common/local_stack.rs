//! The local stand-ins for AWS that scripts/test.sh starts and exports: moto (S3 + SQS,
//! `CLIPSEARCH_S3_ENDPOINT`) and the Lambda emulator (`LAMBDA_PORT`), plus the dev relay.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::run_python;

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/test.sh, or start Milvus, moto and scripts/lambda.sh by hand")
    })
}

/// A name no earlier or parallel run has used (buckets, prefixes, collections).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The Lambda emulator's base URL.
pub fn lambda_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        std::env::var("LAMBDA_PORT").unwrap_or_else(|_| "9000".into())
    )
}

/// The production event wiring on moto (bucket → notification → queue → DLQ), made by the
/// same script the demo uses. Returns the queue URL.
pub fn wire_bucket(bucket: &str) -> String {
    let endpoint = required_env("CLIPSEARCH_S3_ENDPOINT");
    let out = run_python(&["scripts/local-aws.py", "--bucket", bucket, "--endpoint", &endpoint]);
    let wiring: Value = serde_json::from_str(&out).unwrap();
    wiring["queue_url"]
        .as_str()
        .expect("local-aws.py prints queue_url")
        .to_owned()
}

/// `clipsearch relay --until-empty`: delivers the queue to the ingest function under the
/// emulator; panics unless every message was handled. Returns the relay's JSON summary.
pub fn relay(clipsearch: &Path, queue_url: &str) -> Value {
    let out = Command::new(clipsearch)
        .args(["relay", "--queue-url", queue_url, "--until-empty", "--wait-secs", "1"])
        .env(
            "LAMBDA_PORT",
            std::env::var("LAMBDA_PORT").unwrap_or_else(|_| "9000".into()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("relay printed no summary\nstdout: {stdout}\nstderr: {stderr}"));
    assert!(
        out.status.success(),
        "relay left messages for retry: {summary}\n{stderr}"
    );
    summary
}
