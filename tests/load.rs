//! A loopback load test of the search function: a fixed number of requests at a fixed
//! concurrency, a mix of text, image (the raw bytes as the body) and "more like this" (`id`)
//! queries over 48 seeded images, first through the handler in this process (`App::handle`,
//! built by the same `search::from_env` as the Lambda), then through the Lambda emulator.
//!
//! Every answer must be the function's 200, and right: an image query finds itself first, a
//! "more like this" leaves the query out, every hit lies under the corpus prefix. The table of
//! latency percentiles goes to stderr (and, by `scripts/bench.d/load.sh`, to BENCHMARKS.md).
//! Timing is reported, never asserted. Knobs (the defaults keep `make test` to seconds):
//! `LOAD_REQUESTS` (per path, default 240), `LOAD_CONCURRENCY` (default 8).
//!
//! The emulator itself fails a small share of calls (tests/common/emulator.rs): those are sent
//! again and counted apart, as "emulator retries"; they are not the function's errors.

mod common;
mod search_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clipsearch::clip::decode::sniff;
use clipsearch::config::env_parse;
use lambda_http::Body;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use common::emulator;
use search_support::{lambda_base, Corpus};

/// The longest either phase may take before the test fails instead of hanging.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Text,
    Image,
    Like,
}

/// One request of the mix, as both paths send it.
struct Query {
    kind: Kind,
    /// Path and query string.
    target: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// The seeded image an image or "more like this" query is about.
    subject: Option<String>,
}

/// What one request got.
struct Outcome {
    kind: Kind,
    took: Duration,
    /// Why the answer was wrong, if it was.
    problem: Option<String>,
    emulator_retries: usize,
}

/// The `index`-th request: kinds in turn, subjects and captions cycling through the corpus.
fn query(corpus: &Corpus, index: usize) -> Query {
    let image = &corpus.images[(index * 7) % corpus.images.len()];
    match index % 3 {
        0 => {
            // Another image's class, so that text and image queries do not pair up.
            let class = &corpus.images[(index * 5 + 1) % corpus.images.len()];
            let caption = format!("a photo of a {} {}", class.colour, class.shape);
            Query {
                kind: Kind::Text,
                target: "/search".into(),
                content_type: "application/json",
                body: json!({"text": caption, "top_k": 10, "prefix": corpus.prefix})
                    .to_string()
                    .into_bytes(),
                subject: None,
            }
        }
        1 => Query {
            kind: Kind::Image,
            target: format!("/search?top_k=5&prefix={}", search_support::encode(&corpus.prefix)),
            content_type: sniff(&image.bytes).expect("a seeded image").mime(),
            body: image.bytes.clone(),
            subject: Some(image.id.clone()),
        },
        _ => Query {
            kind: Kind::Like,
            target: "/search".into(),
            content_type: "application/json",
            body: json!({"id": image.id, "top_k": 10, "prefix": corpus.prefix})
                .to_string()
                .into_bytes(),
            subject: Some(image.id.clone()),
        },
    }
}

/// `None` when the answer is the right one for `query`, else what is wrong with it.
fn check(corpus: &Corpus, query: &Query, status: u16, body: &[u8]) -> Option<String> {
    if status != 200 {
        return Some(format!("status {status}: {}", String::from_utf8_lossy(body)));
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => return Some(format!("not JSON ({e})")),
    };
    let hits = match doc["results"].as_array() {
        Some(hits) if !hits.is_empty() => hits,
        _ => return Some(format!("no results: {doc}")),
    };
    let ids: Vec<&str> = hits.iter().map(|h| h["id"].as_str().unwrap_or("")).collect();
    if let Some(stranger) = ids.iter().find(|id| corpus.by_id(id).is_none()) {
        return Some(format!("hit {stranger} is not under the corpus prefix"));
    }
    match (query.kind, query.subject.as_deref()) {
        (Kind::Image, Some(subject)) if ids[0] != subject => {
            Some(format!("image query found {} first, not itself {subject}", ids[0]))
        }
        (Kind::Like, Some(subject)) if ids.contains(&subject) => {
            Some(format!("more like {subject} returned the query itself"))
        }
        _ => None,
    }
}

/// Sends every query with at most `concurrency` in flight; `send` answers one.
async fn run<F, Fut>(queries: Vec<Arc<Query>>, concurrency: usize, send: F) -> (Vec<Outcome>, Duration)
where
    F: Fn(Arc<Query>) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(queries.len());
    for query in queries {
        let permit = gate.clone().acquire_owned().await.expect("the gate stays open");
        let answer = send(query);
        tasks.push(tokio::spawn(async move {
            let outcome = answer.await;
            drop(permit);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a request task panicked"));
    }
    (outcomes, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Prints the table rows of one path (all kinds, then each kind) and fails on any wrong answer.
fn report(path: &str, concurrency: usize, outcomes: &[Outcome], wall: Duration) {
    let retries: usize = outcomes.iter().map(|o| o.emulator_retries).sum();
    let errors: Vec<&str> = outcomes.iter().filter_map(|o| o.problem.as_deref()).collect();
    eprintln!("\n| path | queries | requests | concurrency | p50 ms | p95 ms | p99 ms | max ms | requests/s | errors | emulator retries |");
    eprintln!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in [None, Some(Kind::Text), Some(Kind::Image), Some(Kind::Like)] {
        let chosen: Vec<&Outcome> = outcomes.iter().filter(|o| kind.is_none_or(|k| o.kind == k)).collect();
        let mut took: Vec<Duration> = chosen.iter().map(|o| o.took).collect();
        took.sort();
        let name = match kind {
            None => "mixed",
            Some(Kind::Text) => "text",
            Some(Kind::Image) => "image (raw body)",
            Some(Kind::Like) => "more like this",
        };
        let rate = if kind.is_none() {
            format!("{:.0}", outcomes.len() as f64 / wall.as_secs_f64())
        } else {
            String::new()
        };
        eprintln!(
            "| {path} | {name} | {} | {concurrency} | {} | {} | {} | {} | {rate} | {} | {} |",
            took.len(),
            ms(percentile(&took, 50.0)),
            ms(percentile(&took, 95.0)),
            ms(percentile(&took, 99.0)),
            ms(*took.last().expect("requests")),
            chosen.iter().filter(|o| o.problem.is_some()).count(),
            chosen.iter().map(|o| o.emulator_retries).sum::<usize>(),
        );
    }
    eprintln!(
        "{path}: {} requests in {:.1} s, {retries} emulator retries",
        outcomes.len(),
        wall.as_secs_f64()
    );
    assert!(
        errors.is_empty(),
        "{path}: {} of {} answers wrong, first: {}",
        errors.len(),
        outcomes.len(),
        errors[0]
    );
}

fn settings() -> (usize, usize) {
    let requests: usize = env_parse("LOAD_REQUESTS", 240).expect("LOAD_REQUESTS is a count");
    let concurrency: usize = env_parse("LOAD_CONCURRENCY", 8).expect("LOAD_CONCURRENCY is a count");
    assert!(
        requests >= 3 && concurrency >= 1,
        "LOAD_REQUESTS ≥ 3, LOAD_CONCURRENCY ≥ 1"
    );
    (requests, concurrency)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_queries_under_load_all_answer_right() {
    let (requests, concurrency) = settings();
    let corpus = Arc::new(search_support::seed("load", 48, 8_191).await);

    // In process: the handler the Lambda runtime calls, without the emulator's HTTP in between.
    let app = Arc::new(search::from_env().await.expect("the search function starts"));
    let queries: Vec<Arc<Query>> = (0..requests).map(|i| Arc::new(query(&corpus, i))).collect();
    let (outcomes, wall) = tokio::time::timeout(
        PHASE_LIMIT,
        run(queries.clone(), concurrency, |query| {
            let (app, corpus) = (app.clone(), corpus.clone());
            async move {
                let request = lambda_http::http::Request::builder()
                    .method("POST")
                    .uri(query.target.as_str())
                    .header("content-type", query.content_type)
                    .body(Body::from(query.body.clone()))
                    .expect("request");
                let started = Instant::now();
                let response = app.handle(request).await;
                let took = started.elapsed();
                let status = response.status().as_u16();
                let problem = check(&corpus, &query, status, response.body().as_ref());
                Outcome {
                    kind: query.kind,
                    took,
                    problem,
                    emulator_retries: 0,
                }
            }
        }),
    )
    .await
    .expect("the in-process phase ends within its limit");
    report("handler in process", concurrency, &outcomes, wall);

    // Through the emulator: HTTP to the Function URL, the runtime API, the function process.
    let base = lambda_base();
    let client = emulator::client();
    let (outcomes, wall) = tokio::time::timeout(
        PHASE_LIMIT,
        run(queries, concurrency, |query| {
            let (client, corpus, url) = (client.clone(), corpus.clone(), format!("{base}{}", query.target));
            async move {
                let attempts = AtomicUsize::new(0);
                let answer = emulator::send_with(|| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    client
                        .post(&url)
                        .header("content-type", query.content_type)
                        .body(query.body.clone())
                })
                .await;
                let problem = check(&corpus, &query, answer.status.as_u16(), &answer.body);
                let emulator_retries = attempts.into_inner() - 1;
                Outcome {
                    kind: query.kind,
                    took: answer.took,
                    problem,
                    emulator_retries,
                }
            }
        }),
    )
    .await
    .expect("the emulator phase ends within its limit");
    report("Lambda emulator", concurrency, &outcomes, wall);
}
