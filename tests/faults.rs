//! The network fails between the functions and Milvus, or between the functions and S3: a
//! fault-injecting TCP proxy (tests/fault_proxy) sits in front of the real service and drops,
//! delays, resets or stalls the traffic for a while, then lets it pass again.
//!
//! - **Ingest**: a random schedule of S3 operations (tests/schedule_support) is drained by
//!   ingest workers that reach Milvus (or S3) only through the proxy; the fault strikes a third
//!   of the way through and lasts `FAULT_SECS` (default 6). The workers retry or report (the
//!   queue redelivers what they hand back) and, once the fault has ended, the index equals the
//!   bucket: every object indexed exactly once, under its key, with its bytes' vector.
//! - **Search**: the search function's handler in process, reaching Milvus and S3 only through
//!   the proxies. Under each fault a request is answered 503 (with `Retry-After`) well before
//!   the invocation's deadline, or 200 under a mere delay; once the fault ends the same
//!   handler answers 200 again by itself, without a restart.
//!
//! Each outcome is printed as a table row (timing is reported, never asserted beyond the
//! bounds that make "quickly" and "by itself" testable).

mod common;
mod fault_proxy;
mod schedule_support;
mod search_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lambda_http::Body;
use serde_json::{json, Value};

use fault_proxy::{Fault, FaultProxy};
use schedule_support::{base_seed, env_usize, run_schedule, test_milvus, Disruption, Routes};

/// The faults every test goes through.
fn faults() -> [Fault; 4] {
    [
        Fault::Drop,
        Fault::Delay(Duration::from_millis(250)),
        Fault::Reset,
        Fault::Stall,
    ]
}

/// `host:port` of an `http://host:port` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

fn interference(proxy: &FaultProxy) -> u64 {
    let s = &proxy.stats;
    s.refused.load(Ordering::Relaxed)
        + s.reset.load(Ordering::Relaxed)
        + s.closed_by_fault.load(Ordering::Relaxed)
        + s.delayed.load(Ordering::Relaxed)
        + s.held.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Milvus,
    S3,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_under_each_network_fault_indexes_every_object_exactly_once() {
    let milvus_proxy = FaultProxy::start(&authority(&test_milvus().uri)).await;
    let s3_proxy = FaultProxy::start(&authority(&common::local_stack::required_env("CLIPSEARCH_S3_ENDPOINT"))).await;
    let lasting = Duration::from_secs(env_usize("FAULT_SECS", 6) as u64);
    let seed = base_seed().wrapping_add(2_000_003);
    let mut rows = Vec::new();
    for (n, (target, fault)) in [Target::Milvus, Target::S3]
        .into_iter()
        .flat_map(|t| faults().map(|f| (t, f)))
        .enumerate()
    {
        let (proxy, mut milvus, s3_endpoint) = match target {
            Target::Milvus => (&milvus_proxy, test_milvus(), None),
            Target::S3 => (&s3_proxy, test_milvus(), Some(s3_proxy.url())),
        };
        if let Target::Milvus = target {
            milvus.uri = milvus_proxy.url();
        }
        let routes = Routes {
            milvus: &milvus,
            s3_endpoint,
        };
        let before = interference(proxy);
        let report = run_schedule(
            seed.wrapping_add(n as u64),
            &routes,
            Disruption::Fault { proxy, fault, lasting },
        )
        .await;
        let interfered = interference(proxy) - before;
        eprintln!(
            "{target:?} {}: {report:?}, {interfered} connections or chunks hit",
            fault.name()
        );
        assert!(
            interfered > 0,
            "{target:?} {}: the fault never touched the workers' traffic, so it tested nothing",
            fault.name()
        );
        rows.push(format!(
            "| {target:?} | {} | {:.0} s | {} | {} | {interfered} | {:.1} | equal |",
            fault.name(),
            lasting.as_secs_f64(),
            report.sent,
            report.retried,
            report.drain_secs
        ));
    }
    eprintln!("\n| service | fault | for | messages | handed back for retry | connections/chunks hit | drained s after the operations | index vs bucket |");
    eprintln!("|---|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        eprintln!("{row}");
    }
}

/// What one request got.
struct Answer {
    status: u16,
    took: Duration,
    retry_after: Option<String>,
    body: Value,
}

async fn ask(app: &search::SearchApp, body: &Value) -> Answer {
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/search")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let started = Instant::now();
    let response = app.handle(request).await;
    Answer {
        status: response.status().as_u16(),
        took: started.elapsed(),
        retry_after: response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null),
    }
}

/// The invocation's budget the handler gets here (as `CLIPSEARCH_INVOCATION_TIMEOUT_SECS`): a
/// third of the template's default search timeout, to keep the test short.
const INVOCATION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_answers_503_quickly_under_each_fault_and_recovers_by_itself() {
    let corpus = search_support::seed("faults", 6, 4099).await;
    let mut config = search::SearchConfig::from_env().expect("search configuration");
    let milvus_proxy = FaultProxy::start(&authority(&config.milvus.uri)).await;
    let s3_proxy = FaultProxy::start(&authority(
        config.objects.endpoint.as_deref().expect("CLIPSEARCH_S3_ENDPOINT"),
    ))
    .await;
    config.milvus.uri = milvus_proxy.url();
    config.objects.endpoint = Some(s3_proxy.url());
    config.objects.bucket = Some(corpus.bucket.clone());
    config.clip = common::settings();
    config.fallback_timeout = Some(INVOCATION);
    let search_timeout = config.milvus.search_timeout;
    assert!(
        search_timeout + Duration::from_secs(2) < INVOCATION,
        "MILVUS_SEARCH_TIMEOUT_SECS must be well under the {INVOCATION:?} budget for this test"
    );
    let app = search::build(config).await.expect("the search function starts");

    let subject = &corpus.images[0];
    let text = json!({"text": format!("a photo of a {} {}", subject.colour, subject.shape), "prefix": corpus.prefix});
    let by_object = json!({"image_url": format!("s3://{}/{}", corpus.bucket, subject.key), "prefix": corpus.prefix});
    let mut rows = Vec::new();
    for (target, proxy, query) in [
        (Target::Milvus, &milvus_proxy, &text),
        (Target::S3, &s3_proxy, &by_object),
    ] {
        let warm = ask(&app, query).await;
        assert_eq!(warm.status, 200, "{target:?}: before any fault: {}", warm.body);
        for fault in faults() {
            proxy.set(fault);
            let mut during = Vec::new();
            for _ in 0..2 {
                during.push(ask(&app, query).await);
            }
            proxy.set(Fault::Pass);
            let cleared = Instant::now();
            let mut attempts = 0;
            let recovered = loop {
                attempts += 1;
                let answer = ask(&app, query).await;
                if answer.status == 200 {
                    break answer;
                }
                assert!(
                    cleared.elapsed() < Duration::from_secs(60),
                    "{target:?} {}: still {} a minute after the fault ended: {}",
                    fault.name(),
                    answer.status,
                    answer.body
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            let recovery = cleared.elapsed();
            let statuses: Vec<String> = during.iter().map(|a| a.status.to_string()).collect();
            let slowest = during.iter().map(|a| a.took).max().unwrap_or_default();
            for answer in &during {
                let expected: &[u16] = match fault {
                    Fault::Delay(_) => &[200],
                    _ => &[503],
                };
                assert!(
                    expected.contains(&answer.status),
                    "{target:?} {}: answered {} ({}), expected {expected:?}",
                    fault.name(),
                    answer.status,
                    answer.body
                );
                if answer.status == 503 {
                    assert!(
                        answer.retry_after.is_some(),
                        "{target:?} {}: a 503 without Retry-After",
                        fault.name()
                    );
                    // A Milvus that never answers costs a search its read limit, not the
                    // whole invocation (S3 reads keep the invocation's budget: an object
                    // query may fetch tens of megabytes).
                    let limit = match target {
                        Target::Milvus => search_timeout + Duration::from_secs(2),
                        Target::S3 => INVOCATION,
                    };
                    assert!(
                        answer.took < limit,
                        "{target:?} {}: the 503 took {:?}, over {limit:?}",
                        fault.name(),
                        answer.took
                    );
                }
            }
            assert!(
                recovered.body["results"][0]["id"].as_str().is_some(),
                "{target:?} {}: the answer after recovery has no hits: {}",
                fault.name(),
                recovered.body
            );
            rows.push(format!(
                "| {target:?} | {} | {} | {:.0} | {:.0} | {:.1} | {attempts} |",
                fault.name(),
                statuses.join(", "),
                during.first().map_or(0.0, |a| a.took.as_secs_f64() * 1000.0),
                slowest.as_secs_f64() * 1000.0,
                recovery.as_secs_f64(),
            ));
        }
    }
    eprintln!(
        "\n| service | fault | 2 answers during | first ms | slowest ms | recovered s after | requests to recover |"
    );
    eprintln!("|---|---|---|---:|---:|---:|---:|");
    for row in &rows {
        eprintln!("{row}");
    }
}
