//! Benchmark of the text-query path (not a test): the search use case's handler time for a
//! query asked again and again, with the query cache on and off, and for a batch of distinct
//! queries one request at a time vs one `search_many`. The index is in memory (`--rows` random
//! unit vectors), so the times are the handler's own: embedding + a brute-force search over the
//! rows; a Milvus search adds its own latency (the store section of BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p clipsearch --example bench_query -- --model DIR [--rows 10000] [--repeats 200]
//! ```
//! Prints one JSON object: p50/p90 handler ms per case.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;
use clipsearch::objects::S3Objects;
use clipsearch::search::{Query, SearchParams, SearchSettings, Searcher};
use clipsearch::store::{ImageIndex, ImageRecord, IndexSpec, Location, MemoryIndex};

#[path = "../../tests/common/rng.rs"]
mod rng;
use rng::Rng;

struct Args {
    model: std::path::PathBuf,
    rows: usize,
    repeats: usize,
}

fn args() -> Result<Args> {
    let mut out = Args {
        model: std::path::PathBuf::new(),
        rows: 10_000,
        repeats: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => out.model = value.into(),
            "--rows" => out.rows = value.parse()?,
            "--repeats" => out.repeats = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(!out.model.as_os_str().is_empty(), "--model DIR is required");
    Ok(out)
}

fn percentiles(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({"p50_ms": at(0.5), "p90_ms": at(0.9), "n": ms.len()})
}

async fn searcher(args: &Args, cache: usize) -> Result<Searcher<Clip, MemoryIndex, S3Objects>> {
    let settings = ClipSettings {
        model_dir: Some(args.model.clone()),
        query_cache_entries: cache,
        ..ClipSettings::from_env()?
    };
    let clip = Clip::load(&settings, Towers::TEXT)?;
    let index = MemoryIndex::new(IndexSpec::of(&clip));
    let mut rng = Rng(7);
    for i in 0..args.rows {
        let id = format!("{i:064x}");
        index
            .upsert(ImageRecord {
                id,
                embedding: rng.unit_vector(clip.dimension()),
                locations: vec![Location::new("bench", format!("img/{i}.jpg").as_str())],
                content_type: "image/jpeg".into(),
                width: 1,
                height: 1,
                byte_size: 1,
                captured: clipsearch::capture::CaptureTime {
                    ms: 0,
                    source: clipsearch::capture::CaptureSource::Modified,
                },
                model: clip.name().to_owned(),
                ingested_at_ms: 0,
            })
            .await?;
    }
    Ok(Searcher::new(Arc::new(clip), index, None, SearchSettings::default()))
}

fn text(query: &str) -> SearchParams {
    SearchParams::new(Query::Text(query.to_owned()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = args()?;
    let mut report = serde_json::Map::new();
    for (name, cache) in [("repeated_query_no_cache", 0), ("repeated_query_cached", 1024)] {
        let searcher = searcher(&args, cache).await?;
        searcher.search(text("a photo of a red circle")).await?; // warm-up (and the cache's miss)
        let mut ms = Vec::with_capacity(args.repeats);
        for _ in 0..args.repeats {
            let t = Instant::now();
            searcher.search(text("a photo of a red circle")).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        report.insert(name.into(), percentiles(ms));
    }
    // Eight distinct queries: eight requests, or one batch (cache off, so every text runs).
    let searcher = searcher(&args, 0).await?;
    let queries: Vec<String> = (0..8).map(|i| format!("a photo of shape number {i}")).collect();
    let (mut one_by_one, mut batched) = (Vec::new(), Vec::new());
    for _ in 0..(args.repeats / 8).max(5) {
        let t = Instant::now();
        for q in &queries {
            searcher.search(text(q)).await?;
        }
        one_by_one.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        for answer in searcher
            .search_many(queries.iter().map(|q| Ok(text(q))).collect())
            .await
        {
            answer?;
        }
        batched.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report.insert("eight_queries_one_by_one".into(), percentiles(one_by_one));
    report.insert("eight_queries_one_batch".into(), percentiles(batched));
    report.insert("rows".into(), args.rows.into());
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
