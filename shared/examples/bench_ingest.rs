//! Benchmark of the ingest function's work in one fresh process (not a test): its init
//! (`ClipIngestor::from_env`: S3 client and the vision tower), its first record end to end
//! (Milvus connected and the collection loaded on first use, the S3 GET, decode, embedding,
//! the insert), then one batch of the remaining objects at the function's concurrency, and the
//! process's peak RSS (VmHWM), which sizes the function's memory. Every setting comes from the
//! environment as on Lambda (S3 endpoint, MILVUS_URI, CLIPSEARCH_INGEST_CONCURRENCY...);
//! `scripts/bench.d/ingest.sh` starts the services, uploads new objects for each run (so each
//! one is embedded, not found as a duplicate) and takes medians.
//!
//! ```text
//! cargo run --release -p clipsearch --example bench_ingest -- --bucket B --prefix P
//! ```
//! Prints one JSON object: `init_ms`, `first_record_ms` (first record alone), `ready_ms` (exec
//! to the first record stored), `batch_ms` and `batch_records` (the rest in one batch),
//! `peak_rss_mib`, `concurrency`.

use std::time::Instant;

#[path = "support/process.rs"]
mod process;

use anyhow::{bail, Context, Result};
use clipsearch::config::ClipSettings;
use clipsearch::events::ObjectEvent;
use clipsearch::ingest::{ClipIngestor, Outcome};
use clipsearch::store::Location;

#[tokio::main]
async fn main() -> Result<()> {
    let exec_ms = process::since_exec_ms().unwrap_or(f64::NAN);
    let main_started = Instant::now();
    let (mut bucket, mut prefix) = (None, String::new());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bucket" => bucket = Some(value),
            "--prefix" => prefix = value,
            other => bail!("unknown option {other}"),
        }
    }
    let bucket = bucket.context("--bucket is required")?;

    let t = Instant::now();
    let ingestor = ClipIngestor::from_env(ClipSettings::from_env()?).await?;
    let init_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut keys = ingestor.objects().list(&bucket, &prefix).await?;
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    let (first, rest) = keys.split_first().context("no objects under the prefix")?;

    let t = Instant::now();
    let outcome = ingestor
        .ingest_object(&Location::new(&bucket, first.key.as_str()))
        .await?;
    let first_record_ms = t.elapsed().as_secs_f64() * 1000.0;
    let ready_ms = exec_ms + main_started.elapsed().as_secs_f64() * 1000.0;
    if !matches!(outcome, Outcome::Indexed { .. }) {
        bail!(
            "the first object was not embedded ({}): upload new content for each run",
            outcome.as_str()
        );
    }

    let events: Vec<ObjectEvent> = rest
        .iter()
        .map(|o| ObjectEvent::Created {
            location: Location::new(&bucket, o.key.as_str()),
            size: Some(o.size),
        })
        .collect();
    let t = Instant::now();
    let reports = ingestor.handle_events(&events).await;
    let batch_ms = t.elapsed().as_secs_f64() * 1000.0;
    if let Some(failed) = reports.iter().find(|r| r.outcome.is_err()) {
        bail!("{}: {:?}", failed.location.key, failed.reason());
    }
    println!(
        "{}",
        serde_json::json!({
            "init_ms": init_ms, "first_record_ms": first_record_ms, "ready_ms": ready_ms,
            "batch_ms": batch_ms, "batch_records": reports.len(),
            "peak_rss_mib": process::peak_rss_mib(), "concurrency": ingestor.concurrency(),
        })
    );
    Ok(())
}
