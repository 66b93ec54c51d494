//! Benchmark of the search function (not a test): text-query latency through the handler
//! (`App::handle` on a Function-URL-shaped request: JSON parse, tokenize + text encoder,
//! Milvus search, presign, JSON answer) at N indexed vectors, with the share of each stage;
//! or, with `--cold-start`, the time from process start to the first answer.
//!
//!   cargo run --release -p search --example bench_search -- [--records 10000] [--queries 300]
//!   cargo run --release -p search --example bench_search -- --cold-start
//!
//! Environment as the function's (`CLIPSEARCH_MODEL_DIR`, `MILVUS_URI`, `ORT_DYLIB_PATH`, S3
//! settings); the collection defaults to `bench_search_<dimension>` (`MILVUS_COLLECTION` wins)
//! and is filled with random unit vectors up to `--records` on first use.

use std::time::{Duration, Instant};

use clipsearch::store::{ImageIndex, ImageRecord, Location};
use lambda_http::http::{Method, Request};
use lambda_http::Body;
use search::SearchApp;

const QUERIES: [&str; 8] = [
    "a photo of a red circle",
    "a photo of a blue square",
    "a photo of a green triangle",
    "a photo of a yellow star",
    "a photo of a purple cross",
    "a photo of an orange stripes",
    "a photo of a white circle",
    "a photo of a black star",
];

fn request(text: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/search")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::json!({"text": text, "top_k": 10}).to_string()))
        .expect("request")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let process_start = Instant::now();
    if std::env::args().any(|a| a == "--cold-start") {
        // Text-only, as a text-search deployment would run.
        std::env::set_var("CLIPSEARCH_ENABLE_IMAGE", "false");
        let app = search::from_env().await?;
        let ready = process_start.elapsed();
        let response = app.handle(request(QUERIES[0])).await;
        let first = process_start.elapsed();
        anyhow::ensure!(response.status() == 200, "first answer: {:?}", response.body());
        println!(
            "{{\"model\": {:?}, \"init_ms\": {:.1}, \"first_answer_ms\": {:.1}}}",
            app.searcher().model(),
            ms(ready),
            ms(first)
        );
        return Ok(());
    }

    let records: usize = arg("--records").map(|v| v.parse()).transpose()?.unwrap_or(10_000);
    let queries: usize = arg("--queries").map(|v| v.parse()).transpose()?.unwrap_or(300);
    std::env::set_var("CLIPSEARCH_ENABLE_IMAGE", "false");
    if std::env::var_os("MILVUS_COLLECTION").is_none() {
        std::env::set_var("MILVUS_COLLECTION", "bench_search");
    }
    let app: SearchApp = search::from_env().await?;
    fill(&app, records).await?;

    for text in QUERIES.iter().cycle().take(20) {
        app.handle(request(text)).await;
    }
    let (mut total, mut embed, mut search, mut presign) = (vec![], vec![], vec![], vec![]);
    for text in QUERIES.iter().cycle().take(queries) {
        let started = Instant::now();
        let response = app.handle(request(text)).await;
        total.push(ms(started.elapsed()));
        anyhow::ensure!(response.status() == 200, "{:?}", response.body());
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
        anyhow::ensure!(body["results"].as_array().map(Vec::len) == Some(10));
        embed.push(body["timings"]["embed_ms"].as_f64().unwrap_or_default());
        search.push(body["timings"]["search_ms"].as_f64().unwrap_or_default());
        presign.push(body["timings"]["presign_ms"].as_f64().unwrap_or_default());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (t, e, s, p) = (mean(&total), mean(&embed), mean(&search), mean(&presign));
    let mut sorted = total.clone();
    sorted.sort_by(f64::total_cmp);
    let other = t - e - s - p;
    println!(
        "records: {}  queries: {queries}  model: {}",
        app.searcher().index().count().await?,
        app.searcher().model()
    );
    println!(
        "handler latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  mean {:.2}",
        percentile(&sorted, 50.0),
        percentile(&sorted, 95.0),
        percentile(&sorted, 99.0),
        t
    );
    println!(
        "mean share: tokenize+encode {:.2} ms ({:.0}%), Milvus search {:.2} ms ({:.0}%), presign {:.3} ms ({:.1}%), rest of handler {:.3} ms ({:.1}%)",
        e, 100.0 * e / t, s, 100.0 * s / t, p, 100.0 * p / t, other, 100.0 * other / t
    );
    println!(
        "handler overhead over encoder + Milvus: {:.1}% (target < 10%)",
        100.0 * (t - e - s) / (e + s)
    );
    Ok(())
}

/// Tops the collection up to `records` random unit vectors (ids are deterministic, so reruns
/// reuse them) and waits until the vector index covers them.
async fn fill(app: &SearchApp, records: usize) -> anyhow::Result<()> {
    let index = app.searcher().index().connected().await?;
    let have = index.count().await? as usize;
    if have >= records {
        return Ok(());
    }
    let dim = index.spec().dimension;
    let model = index.spec().model.clone();
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut batch = Vec::new();
    for i in 0..records {
        let v: Vec<f32> = (0..dim).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        batch.push(ImageRecord {
            id: format!("{i:064x}"),
            embedding: v.into_iter().map(|x| x / norm).collect(),
            locations: vec![Location::new("bench", format!("bench/{i:05}.jpg"))],
            content_type: "image/jpeg".into(),
            width: 640,
            height: 480,
            byte_size: 50_000,
            ingested_at_ms: 0,
            captured: clipsearch::capture::CaptureTime {
                ms: 0,
                source: clipsearch::capture::CaptureSource::Modified,
            },
            model: model.clone(),
        });
    }
    index.upsert_many(&batch).await?;
    index.flush_and_wait_indexed(Duration::from_secs(300)).await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
