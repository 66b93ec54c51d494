//! Benchmark of the Milvus image index (not a test): insert throughput, search latency and
//! recall@10 of HNSW and IVF_FLAT against FLAT (exact) on the same queries, with one row per
//! object as the store writes them.
//!
//! ```text
//! scripts/milvus.sh up
//! cargo run --release -p clipsearch --example bench_store -- --sizes 10000,100000 --queries 200 \
//!     --ef 10,16,64,256 --nprobe 1,32,1024
//! ```
//!
//! Options:
//! - `--sizes N[,N…]` rows per run (default 10000,100000); `--dim D` (512); `--queries Q` (200);
//!   `--noise X` (0.8: cluster spread; larger is harder for the approximate indexes).
//! - `--indexes FLAT,HNSW,IVF_FLAT` (FLAT is the ground truth of the recall columns).
//! - `--keys-per-content K` (1): each content is stored under K keys, so a run of N rows holds
//!   N / K contents and search has to group rows by content.
//! - `--ef E[,E…]`, `--nprobe P[,P…]`: after the timed run, search the same HNSW / IVF_FLAT
//!   collection again with each `MILVUS_SEARCH_EF` / `MILVUS_IVF_NPROBE` value (recall and
//!   latency per value; the collection is not rebuilt).
//! - `--fresh-check`: also measure recall right after the inserts, before flushing and waiting
//!   for the index (what a search sees of data that is not indexed yet).
//! - `--trace-segments`: print the query node's segments (`GetQuerySegmentInfo`: state, rows,
//!   index name) whenever they change while the flush and the compaction are waited for.
//!
//! Connection settings come from the usual `MILVUS_*` variables (index parameters too:
//! `MILVUS_HNSW_M`, `MILVUS_SEARCH_EF`, `MILVUS_IVF_NLIST`, `MILVUS_IVF_NPROBE`). Vectors are
//! clustered (200 random centres plus noise), which is closer to real embeddings than uniform
//! noise and harder for IVF.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clipsearch::config::{MilvusIndexKind, MilvusSettings};
use clipsearch::store::{ImageIndex, ImageRecord, IndexSpec, Location, MilvusIndex, SearchRequest, ServedSegment};

// The splitmix64 generator the store tests use, so both make the same kind of data.
#[path = "../../tests/common/rng.rs"]
mod rng;
use rng::{normalize, Rng};

const TOP_K: usize = 10;
/// Key prefix of the filtered searches: 1 row in 10.
const PREFIX: &str = "d3/";

/// Clustered unit vectors: a random centre plus noise of comparable size.
fn clustered(rng: &mut Rng, centres: &[Vec<f32>], dim: usize, noise_scale: f32) -> Vec<f32> {
    let centre = &centres[(rng.next_u64() % centres.len() as u64) as usize];
    let noise = rng.vector(dim);
    normalize(centre.iter().zip(noise).map(|(c, n)| c + noise_scale * n).collect())
}

#[derive(Clone, Copy, Default)]
struct Latency {
    p50: Duration,
    p95: Duration,
    p99: Duration,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |p: f64| {
            let rank = ((p / 100.0) * (samples.len() as f64 - 1.0)).round() as usize;
            samples[rank.min(samples.len() - 1)]
        };
        Self {
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One search setting tried on a built collection.
struct Sweep {
    label: String,
    latency: Latency,
    results: Vec<Vec<String>>,
}

struct Run {
    rows: usize,
    keys: usize,
    index: MilvusIndexKind,
    insert_rows_per_s: f64,
    build: Duration,
    compaction: Duration,
    segments: String,
    fresh_recall: Option<f64>,
    plain: Latency,
    prefix: Latency,
    /// Share of hits that list every location of their content.
    complete: f64,
    results: Vec<Vec<String>>,
    sweeps: Vec<Sweep>,
}

struct Options {
    queries: Vec<Vec<f32>>,
    fresh_check: bool,
    trace_segments: bool,
    ef: Vec<u32>,
    nprobe: Vec<u32>,
}

fn summary(segments: &[ServedSegment]) -> String {
    let mut parts: Vec<String> = segments
        .iter()
        .map(|s| {
            let index = if s.index_name.is_empty() {
                "no index".to_owned()
            } else {
                format!("index {:?}", s.index_name)
            };
            // The id's last digits tell segments apart (a compaction replaces them).
            format!("…{:04} {} {} rows, {index}", s.id % 10_000, s.state, s.rows)
        })
        .collect();
    parts.sort();
    format!("{} segments: [{}]", segments.len(), parts.join("; "))
}

/// Runs one of the index's waits and reports how long it took; prints the segments the query
/// node serves whenever they change meanwhile.
async fn traced(
    index: &MilvusIndex,
    wait: impl std::future::Future<Output = clipsearch::Result<()>>,
    trace: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    tokio::pin!(wait);
    let mut last = String::new();
    loop {
        tokio::select! {
            done = &mut wait => {
                done?;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(1000)), if trace => {
                let now = summary(&index.served_segments().await?);
                if now != last {
                    eprintln!("    t={:5.1}s {now}", started.elapsed().as_secs_f64());
                    last = now;
                }
            }
        }
    }
    Ok(started.elapsed())
}

/// Runs every query once; returns the latencies, the content ids found and the share of hits
/// that list all `keys` locations of their content.
async fn search_all(
    index: &MilvusIndex,
    queries: &[Vec<f32>],
    prefix: Option<&str>,
    keys: usize,
) -> anyhow::Result<(Latency, Vec<Vec<String>>, f64)> {
    let mut latencies = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    let (mut hits_total, mut complete) = (0usize, 0usize);
    for q in queries {
        let t = Instant::now();
        let hits = index.search(&request(q, prefix)).await?;
        latencies.push(t.elapsed());
        hits_total += hits.len();
        complete += hits.iter().filter(|h| h.locations.len() == keys).count();
        results.push(hits.into_iter().map(|h| h.id).collect());
    }
    Ok((
        Latency::of(latencies),
        results,
        complete as f64 / hits_total.max(1) as f64,
    ))
}

async fn run_one(
    base: &MilvusSettings,
    kind: MilvusIndexKind,
    spec: &IndexSpec,
    records: &[ImageRecord],
    options: &Options,
    exact: &[Vec<String>],
) -> anyhow::Result<Run> {
    let keys = records[0].locations.len();
    let rows = records.len() * keys;
    let mut settings = base.clone();
    settings.index = kind;
    settings.collection = format!("bench_{}_{rows}_k{keys}", kind.as_str().to_lowercase());
    settings.rpc_timeout = settings.rpc_timeout.max(Duration::from_secs(120));
    let index = MilvusIndex::connect(&settings, spec.clone()).await?;
    index.drop_collection().await?;
    index.ensure_collection().await?;

    let started = Instant::now();
    // Upsert calls of 5 000 rows (upsert_many sends RPCs of 1 000 rows).
    for chunk in records.chunks((5000 / keys).max(1)) {
        index.upsert_many(chunk).await?;
    }
    let insert_time = started.elapsed();

    let fresh_recall = if options.fresh_check {
        let (_, results, _) = search_all(&index, &options.queries, None, keys).await?;
        eprintln!("    before flush: {}", summary(&index.served_segments().await?));
        Some(overlap(&results, exact))
    } else {
        None
    };

    let wait = Duration::from_secs(1800);
    let build = traced(&index, index.flush_and_wait_indexed(wait), options.trace_segments).await?;
    eprintln!(
        "    indexed after {:.1}s: {}",
        build.as_secs_f64(),
        summary(&index.served_segments().await?)
    );
    // Milvus compacts a bulk load on its own a minute or two later (rewriting and re-indexing
    // every segment), which would change the segments between the runs below.
    let compaction = traced(&index, index.compact_and_wait_indexed(wait), options.trace_segments).await?;
    let segments = summary(&index.served_segments().await?);
    eprintln!(
        "    compacted and indexed after {:.1}s: {segments}",
        compaction.as_secs_f64()
    );

    // No settling time: the waits must have waited long enough (the IVF_FLAT sanity row,
    // nprobe = nlist, shows they did).
    for q in options.queries.iter().take(20) {
        index.search(&request(q, None)).await?;
    }
    let (plain, results, complete) = search_all(&index, &options.queries, None, keys).await?;
    let (prefix, _, _) = search_all(&index, &options.queries, Some(PREFIX), keys).await?;

    let mut sweeps = Vec::new();
    let values: Vec<(String, MilvusSettings)> = match kind {
        MilvusIndexKind::Hnsw => options
            .ef
            .iter()
            .map(|&ef| {
                let mut s = settings.clone();
                s.search_ef = ef;
                // The first search round asks for 2 × top_k rows, and HNSW's ef is raised to
                // at least that (MilvusIndex::search_params).
                let sent = ef.max(2 * TOP_K as u32);
                (format!("ef {ef} (sent {sent})"), s)
            })
            .collect(),
        MilvusIndexKind::IvfFlat => options
            .nprobe
            .iter()
            .map(|&nprobe| {
                let mut s = settings.clone();
                s.ivf_nprobe = nprobe;
                (format!("nprobe {nprobe} (nlist {})", s.ivf_nlist), s)
            })
            .collect(),
        _ => Vec::new(),
    };
    for (label, s) in values {
        let tuned = MilvusIndex::connect(&s, spec.clone()).await?;
        for q in options.queries.iter().take(20) {
            tuned.search(&request(q, None)).await?;
        }
        let (latency, results, _) = search_all(&tuned, &options.queries, None, keys).await?;
        eprintln!(
            "    {label}: recall@10 vs exact {:.3}, p50 {} ms; {}",
            overlap(&results, exact),
            ms(latency.p50),
            summary(&tuned.served_segments().await?)
        );
        sweeps.push(Sweep {
            label,
            latency,
            results,
        });
    }

    index.drop_collection().await?;
    Ok(Run {
        rows,
        keys,
        index: kind,
        insert_rows_per_s: rows as f64 / insert_time.as_secs_f64(),
        build,
        compaction,
        segments,
        fresh_recall,
        plain,
        prefix,
        complete,
        results,
        sweeps,
    })
}

fn request(vector: &[f32], prefix: Option<&str>) -> SearchRequest {
    SearchRequest {
        vector: vector.to_vec(),
        top_k: TOP_K,
        key_prefix: prefix.map(str::to_owned),
        ..Default::default()
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn list<T: std::str::FromStr>(args: &[String], name: &str, default: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let value = arg(args, name).unwrap_or_else(|| default.to_owned());
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|e| anyhow::anyhow!("{name} {s}: {e}")))
        .collect()
}

/// Exact top 10 content ids by cosine (the vectors are unit length), computed here.
fn exact_top(records: &[ImageRecord], queries: &[Vec<f32>]) -> Vec<Vec<String>> {
    queries
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
            scored.iter().take(TOP_K).map(|(_, id)| id.to_string()).collect()
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = list(&args, "--sizes", "10000,100000")?;
    let dim: usize = arg(&args, "--dim").map_or(Ok(512), |s| s.parse())?;
    let n_queries: usize = arg(&args, "--queries").map_or(Ok(200), |s| s.parse())?;
    let noise: f32 = arg(&args, "--noise").map_or(Ok(0.8), |s| s.parse())?;
    let keys: usize = arg(&args, "--keys-per-content").map_or(Ok(1), |s| s.parse())?;
    anyhow::ensure!(keys >= 1, "--keys-per-content must be at least 1");
    let kinds: Vec<MilvusIndexKind> = arg(&args, "--indexes")
        .unwrap_or_else(|| "FLAT,HNSW,IVF_FLAT".into())
        .split(',')
        .map(|s| s.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;

    let base = MilvusSettings::from_env()?;
    let spec = IndexSpec {
        dimension: dim,
        model: "bench".into(),
        text_model: None,
    };
    eprintln!("Milvus at {}; settings {base:?}", base.uri);

    let mut rng = Rng(2026);
    let centres: Vec<Vec<f32>> = (0..200).map(|_| rng.vector(dim)).collect();
    let options = Options {
        queries: (0..n_queries)
            .map(|_| clustered(&mut rng, &centres, dim, noise))
            .collect(),
        fresh_check: args.iter().any(|a| a == "--fresh-check"),
        trace_segments: args.iter().any(|a| a == "--trace-segments"),
        ef: list(&args, "--ef", "")?,
        nprobe: list(&args, "--nprobe", "")?,
    };

    let mut runs = Vec::new();
    let mut exact_checks = Vec::new();
    for &size in &sizes {
        let contents = (size / keys).max(1);
        let mut data_rng = Rng(size as u64);
        let records: Vec<ImageRecord> = (0..contents)
            .map(|i| ImageRecord {
                id: format!("{:064x}", i as u128 + 1),
                embedding: clustered(&mut data_rng, &centres, dim, noise),
                // Row n of the run gets key prefix d(n mod 10)/, so 1 row in 10 is under "d3/".
                locations: (0..keys)
                    .map(|j| {
                        let n = i * keys + j;
                        Location::new("bench", format!("d{}/{n:07}.jpg", n % 10))
                    })
                    .collect(),
                content_type: "image/jpeg".into(),
                width: 640,
                height: 480,
                byte_size: 100_000,
                ingested_at_ms: 0,
                captured: clipsearch::capture::CaptureTime {
                    ms: 0,
                    source: clipsearch::capture::CaptureSource::Modified,
                },
                model: "bench".into(),
            })
            .collect();
        let exact = exact_top(&records, &options.queries);
        for &kind in &kinds {
            eprintln!(
                "{} rows ({contents} contents × {keys} keys), {}…",
                contents * keys,
                kind.as_str()
            );
            let run = run_one(&base, kind, &spec, &records, &options, &exact).await?;
            let agree = overlap(&run.results, &exact);
            eprintln!(
                "  insert {:.0} rows/s, flush + index {:.1}s, p50 {} ms, prefix p50 {} ms, recall@10 vs exact {agree:.3}",
                run.insert_rows_per_s,
                run.build.as_secs_f64(),
                ms(run.plain.p50),
                ms(run.prefix.p50),
            );
            exact_checks.push((run.rows, run.keys, kind, agree, run.fresh_recall, run.segments.clone()));
            runs.push(run);
        }
    }

    let truth_of = |run: &Run| {
        runs.iter()
            .find(|r| r.rows == run.rows && r.keys == run.keys && r.index == MilvusIndexKind::Flat)
    };
    println!(
        "| rows | contents × keys | index | insert (rows/s) | flush + index (s) | compaction + re-index (s) | search p50 (ms) | p95 (ms) | p99 (ms) | key prefix p50 (ms) | p95 (ms) | p99 (ms) | hits listing all keys | recall@10 vs FLAT |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in &runs {
        let recall = truth_of(run).map(|t| overlap(&run.results, &t.results));
        println!(
            "| {} | {} × {} | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {:.3} | {} |",
            run.rows,
            run.rows / run.keys,
            run.keys,
            run.index.as_str(),
            run.insert_rows_per_s,
            run.build.as_secs_f64(),
            run.compaction.as_secs_f64(),
            ms(run.plain.p50),
            ms(run.plain.p95),
            ms(run.plain.p99),
            ms(run.prefix.p50),
            ms(run.prefix.p95),
            ms(run.prefix.p99),
            run.complete,
            recall.map_or("n/a".into(), |r| format!("{r:.3}")),
        );
    }
    if runs.iter().any(|r| !r.sweeps.is_empty()) {
        println!();
        println!("| rows | index | search setting | recall@10 vs FLAT | search p50 (ms) | p95 (ms) |");
        println!("|---:|---|---|---:|---:|---:|");
        for run in &runs {
            for sweep in &run.sweeps {
                let recall = truth_of(run).map(|t| overlap(&sweep.results, &t.results));
                println!(
                    "| {} | {} | {} | {} | {} | {} |",
                    run.rows,
                    run.index.as_str(),
                    sweep.label,
                    recall.map_or("n/a".into(), |r| format!("{r:.3}")),
                    ms(sweep.latency.p50),
                    ms(sweep.latency.p95),
                );
            }
        }
    }
    println!();
    println!("| rows | keys per content | index | recall@10 vs exact top 10 computed in the client | before flush (not indexed yet) | segments served when searched |");
    println!("|---:|---:|---|---:|---:|---|");
    for (rows, keys, kind, agree, fresh, segments) in exact_checks {
        println!(
            "| {rows} | {keys} | {} | {agree:.3} | {} | {segments} |",
            kind.as_str(),
            fresh.map_or("n/a".into(), |r| format!("{r:.3}")),
        );
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
