//! The index equals the bucket, whatever the cloud does with the events.
//!
//! Each schedule is a random sequence of S3 operations on a few keys (uploads of a handful of
//! contents, the same content under many keys, overwrites with other content or with bytes
//! that are no image, deletions, re-uploads after deletion), applied to the S3 emulator for
//! real. Their events go to an SQS queue duplicated, shuffled and delayed, and several ingest
//! workers (`clipsearch relay --in-process`: separate OS processes running the Lambda's own
//! ingest code, as separate Lambdas would) drain it concurrently with the operations, against
//! the real Milvus. At the end every object present is found under its key with the vector of
//! its current bytes, and nothing else is in the index.
//!
//! `SCHEDULES` (default 2) schedules from `SCHEDULE_SEED` (default: the clock) with
//! `SCHEDULE_WORKERS` (3) workers; every schedule prints its seed first, so a failure names the
//! seed that reproduces it. `make soak` runs many more. The second test restarts a private
//! Milvus in the middle of a schedule (kept data).

mod common;
mod fault_proxy;
mod schedule_support;

use schedule_support::*;

/// One schedule at a time: the workers of two would fight over two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_over_random_schedules_leave_the_index_equal_to_the_bucket() {
    let _serial = SERIAL.lock().await;
    let schedules = env_usize("SCHEDULES", 2);
    let seed = base_seed();
    let mut messages = 0;
    for n in 0..schedules as u64 {
        let milvus = test_milvus();
        let routes = Routes {
            milvus: &milvus,
            s3_endpoint: None,
        };
        messages += run_schedule(seed.wrapping_add(n), &routes, Disruption::None).await.sent;
    }
    eprintln!("{schedules} schedules from seed {seed}: {messages} messages, index equal to the bucket each time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_restart_mid_schedule_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let private = PrivateMilvus {
        port: std::env::var("SCHEDULE_MILVUS_PORT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(19_660),
    };
    private.run(&["up", "--fresh"]);
    let mut settings = test_milvus();
    settings.uri = private.uri();
    let seed = base_seed().wrapping_add(1_000_003);
    let routes = Routes {
        milvus: &settings,
        s3_endpoint: None,
    };
    run_schedule(seed, &routes, Disruption::Restart(&private)).await;
}
