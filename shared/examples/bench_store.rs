//! Benchmark of the Milvus image index (not a test): insert throughput, search latency and
//! recall@10 of HNSW and IVF_FLAT against FLAT (exact) on the same queries.
//!
//! ```text
//! scripts/milvus.sh up
//! cargo run --release -p clipsearch --example bench_store -- --sizes 10000,100000 --queries 200
//! ```
//!
//! Options: `--sizes N[,N…]` (default 10000,100000), `--dim D` (512), `--queries Q` (200),
//! `--indexes FLAT,HNSW,IVF_FLAT` (FLAT is needed for recall), `--noise X` (0.8: cluster
//! spread; larger is harder for the approximate indexes). Connection settings come from
//! the usual `MILVUS_*` variables (index parameters too: `MILVUS_HNSW_M`, `MILVUS_SEARCH_EF`,
//! `MILVUS_IVF_NLIST`, `MILVUS_IVF_NPROBE`). Vectors are clustered (200 random centres plus
//! noise), which is closer to real embeddings than uniform noise and harder for IVF.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clipsearch::config::{MilvusIndexKind, MilvusSettings};
use clipsearch::store::{ImageIndex, ImageRecord, IndexSpec, Location, MilvusIndex, SearchRequest};

// The splitmix64 generator the store tests use, so both make the same kind of data.
#[path = "../../tests/common/rng.rs"]
mod rng;
use rng::{normalize, Rng};

/// Clustered unit vectors: a random centre plus noise of comparable size.
fn clustered(rng: &mut Rng, centres: &[Vec<f32>], dim: usize, noise_scale: f32) -> Vec<f32> {
    let centre = &centres[(rng.next_u64() % centres.len() as u64) as usize];
    let noise = rng.vector(dim);
    normalize(centre.iter().zip(noise).map(|(c, n)| c + noise_scale * n).collect())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Row {
    size: usize,
    index: MilvusIndexKind,
    insert_per_s: f64,
    build: Duration,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    prefix_p50: Duration,
    results: Vec<Vec<String>>,
}

async fn run_one(
    base: &MilvusSettings,
    kind: MilvusIndexKind,
    spec: &IndexSpec,
    records: &[ImageRecord],
    queries: &[Vec<f32>],
) -> anyhow::Result<Row> {
    let mut settings = base.clone();
    settings.index = kind;
    settings.collection = format!("bench_{}_{}", kind.as_str().to_lowercase(), records.len());
    settings.rpc_timeout = settings.rpc_timeout.max(Duration::from_secs(120));
    let index = MilvusIndex::connect(&settings, spec.clone()).await?;
    index.drop_collection().await?;
    index.ensure_collection().await?;

    let started = Instant::now();
    for chunk in records.chunks(5000) {
        index.upsert_many(chunk).await?;
    }
    let insert_time = started.elapsed();
    let built = Instant::now();
    index.flush_and_wait_indexed(Duration::from_secs(900)).await?;
    let build = built.elapsed();
    // Let the query node switch to the indexed segments, then warm up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for q in queries.iter().take(20) {
        index.search(&request(q, None)).await?;
    }

    let mut latencies = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = index.search(&request(q, None)).await?;
        latencies.push(t.elapsed());
        results.push(hits.into_iter().map(|h| h.id).collect());
    }
    latencies.sort();
    // Key-prefix filter matching 1 record in 10 ("d3/…").
    let mut prefix_latencies = Vec::new();
    for q in queries.iter().take(50) {
        let t = Instant::now();
        index.search(&request(q, Some("d3/"))).await?;
        prefix_latencies.push(t.elapsed());
    }
    prefix_latencies.sort();
    index.drop_collection().await?;
    Ok(Row {
        size: records.len(),
        index: kind,
        insert_per_s: records.len() as f64 / insert_time.as_secs_f64(),
        build,
        p50: percentile(&latencies, 50.0),
        p95: percentile(&latencies, 95.0),
        p99: percentile(&latencies, 99.0),
        prefix_p50: percentile(&prefix_latencies, 50.0),
        results,
    })
}

fn request(vector: &[f32], prefix: Option<&str>) -> SearchRequest {
    SearchRequest {
        vector: vector.to_vec(),
        top_k: 10,
        key_prefix: prefix.map(str::to_owned),
        ..Default::default()
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = arg(&args, "--sizes")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let dim: usize = arg(&args, "--dim").map_or(Ok(512), |s| s.parse())?;
    let n_queries: usize = arg(&args, "--queries").map_or(Ok(200), |s| s.parse())?;
    let noise: f32 = arg(&args, "--noise").map_or(Ok(0.8), |s| s.parse())?;
    let kinds: Vec<MilvusIndexKind> = arg(&args, "--indexes")
        .unwrap_or_else(|| "FLAT,HNSW,IVF_FLAT".into())
        .split(',')
        .map(|s| s.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;

    let base = MilvusSettings::from_env()?;
    let spec = IndexSpec {
        dimension: dim,
        model: "bench".into(),
    };
    eprintln!("Milvus at {}; settings {base:?}", base.uri);

    let mut rng = Rng(2026);
    let centres: Vec<Vec<f32>> = (0..200).map(|_| rng.vector(dim)).collect();
    let queries: Vec<Vec<f32>> = (0..n_queries)
        .map(|_| clustered(&mut rng, &centres, dim, noise))
        .collect();

    let mut rows = Vec::new();
    let mut exact_checks = Vec::new();
    for &size in &sizes {
        let mut data_rng = Rng(size as u64);
        let records: Vec<ImageRecord> = (0..size)
            .map(|i| ImageRecord {
                id: format!("{:064x}", i as u128 + 1),
                embedding: clustered(&mut data_rng, &centres, dim, noise),
                locations: vec![Location::new("bench", format!("d{}/{i:07}.jpg", i % 10))],
                content_type: "image/jpeg".into(),
                width: 640,
                height: 480,
                byte_size: 100_000,
                ingested_at_ms: 0,
                model: "bench".into(),
            })
            .collect();
        // Exact top 10 computed here, to check that FLAT in Milvus is exact.
        let exact: Vec<Vec<String>> = queries
            .iter()
            .map(|q| {
                let mut scored: Vec<(f32, &str)> = records
                    .iter()
                    .map(|r| {
                        (
                            r.embedding.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(),
                            r.id.as_str(),
                        )
                    })
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.iter().take(10).map(|(_, id)| id.to_string()).collect()
            })
            .collect();
        for &kind in &kinds {
            eprintln!("{size} vectors, {}…", kind.as_str());
            let row = run_one(&base, kind, &spec, &records, &queries).await?;
            eprintln!(
                "  insert {:.0}/s, build+flush {:.1}s, p50 {} ms",
                row.insert_per_s,
                row.build.as_secs_f64(),
                ms(row.p50)
            );
            let agree = overlap(&row.results, &exact);
            eprintln!("  recall@10 vs exact (computed in the client): {agree:.3}");
            exact_checks.push((size, kind, agree));
            rows.push(row);
        }
    }

    println!(
        "| vectors | index | insert (vectors/s) | flush + index build (s) | search p50 (ms) | p95 (ms) | p99 (ms) | p50 with key prefix (ms) | recall@10 vs FLAT |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let truth = rows
            .iter()
            .find(|r| r.size == row.size && r.index == MilvusIndexKind::Flat);
        let recall = truth.map(|t| overlap(&row.results, &t.results));
        println!(
            "| {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {} |",
            row.size,
            row.index.as_str(),
            row.insert_per_s,
            row.build.as_secs_f64(),
            ms(row.p50),
            ms(row.p95),
            ms(row.p99),
            ms(row.prefix_p50),
            recall.map_or("n/a".into(), |r| format!("{r:.3}")),
        );
    }
    println!();
    println!("| vectors | index | recall@10 vs exact top 10 computed in the client |");
    println!("|---:|---|---:|");
    for (size, kind, agree) in exact_checks {
        println!("| {size} | {} | {agree:.3} |", kind.as_str());
    }
    Ok(())
}

/// Share of `want`'s ids found in `got`, over all queries.
fn overlap(got: &[Vec<String>], want: &[Vec<String>]) -> f64 {
    let mut found = 0usize;
    let mut total = 0usize;
    for (got, want) in got.iter().zip(want) {
        let want: HashSet<&String> = want.iter().collect();
        found += got.iter().filter(|id| want.contains(id)).count();
        total += want.len();
    }
    found as f64 / total.max(1) as f64
}
