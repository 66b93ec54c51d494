//! The time an invocation has left, and remote calls bounded by it.
//!
//! Lambda ends an invocation at its deadline without a word: a Milvus, S3 or Secrets Manager
//! call still waiting then loses its answer (search: the client gets a bare 502/timeout) or
//! leaves a whole batch to the queue's visibility timeout (ingest). So every remote call runs
//! under [`bounded`]: it gets at most the invocation's remaining time less [`RESERVE`], and
//! running out becomes that service's *unavailable* error while there is still time to say so:
//! a 503 with `Retry-After` from search, a retried record (a `batchItemFailures` entry) from
//! ingest.
//!
//! The deadline is task-local: an adapter sets it around one invocation ([`within`]) and the
//! library reads it wherever a call is made, without threading it through every signature
//! (records of one invocation run as futures of the same task, so they all see it). Outside an
//! invocation (the CLI, tests) there is none, and the clients' own timeouts apply.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Time kept back from every call to shape and send the answer (JSON, the batch report, the
/// last log lines): milliseconds of work, with room for a slow log flush.
pub const RESERVE: Duration = Duration::from_millis(1000);

/// The longest invocation Lambda runs (15 minutes); a deadline further ahead is not Lambda's.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60 + 5);

/// The remote service a bounded call talks to: its timeout is reported as that service's
/// unavailability (each already transient, so queues retry and search answers 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Milvus,
    S3,
    /// Secrets Manager, asked for the Milvus token: without it Milvus is unreachable.
    Secrets,
}

/// Runs `work` with `deadline` as the invocation's deadline (no deadline: runs it as is).
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// Runs `work` with half of [`RESERVE`] added to the invocation's deadline: for a small
/// bookkeeping write after the work itself used up its budget (ingest's status record of a
/// record that timed out on Milvus must still say why). Half the reserve stays for answering.
pub async fn with_bookkeeping_time<F: Future>(work: F) -> F::Output {
    match DEADLINE.try_with(|deadline| *deadline) {
        Ok(deadline) => DEADLINE.scope(deadline + RESERVE / 2, work).await,
        Err(_) => work.await,
    }
}

/// The time a remote call may still take: the remaining time less [`RESERVE`]; `None`
/// outside an invocation.
pub fn budget() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(RESERVE)
        })
        .ok()
}

/// Runs one remote call, cut off when the invocation's budget runs out.
pub async fn bounded<T>(service: Service, what: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
    bounded_by(service, what, None, call).await
}

/// Runs one remote call, cut off after `limit` or when the invocation's budget runs out,
/// whichever comes first (no limit and no invocation: the call runs as is).
pub async fn bounded_by<T>(
    service: Service,
    what: &str,
    limit: Option<Duration>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let left = budget();
    // `limit_first`: the call's own limit ends it before the invocation's budget would.
    let (budget, limit_first) = match (left, limit) {
        (None, None) => return call.await,
        (Some(left), Some(limit)) if limit < left => (limit, true),
        (None, Some(limit)) => (limit, true),
        (Some(left), _) => (left, false),
    };
    // A spent budget never starts the call (tokio's timeout would still poll it once).
    let answer = if budget.is_zero() {
        None
    } else {
        tokio::time::timeout(budget, call).await.ok()
    };
    match answer {
        Some(result) => result,
        None => {
            let reason = if limit_first {
                format!("{what}: no answer within {:.1} s", budget.as_secs_f64())
            } else {
                format!(
                    "{what}: no answer within the {:.1} s the invocation had left (its deadline less {} ms \
                     to answer)",
                    budget.as_secs_f64(),
                    RESERVE.as_millis()
                )
            };
            Err(match service {
                Service::Milvus | Service::Secrets => Error::StoreUnavailable(reason),
                Service::S3 => Error::ObjectStoreUnavailable(reason),
            })
        }
    }
}

/// The deadline of an invocation whose runtime says `deadline_ms` (ms since the Unix epoch, the
/// `Lambda-Runtime-Deadline-Ms` header). A deadline that has passed or lies further ahead than
/// any Lambda invocation runs is not a real one (`cargo lambda watch` sends a fixed 600000):
/// then `fallback` (`CLIPSEARCH_INVOCATION_TIMEOUT_SECS`, read by [`crate::config::invocation_timeout`]) from
/// now, or none.
pub fn invocation_deadline(deadline_ms: u64, fallback: Option<Duration>) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    if deadline_ms > now_ms && left <= LONGEST_INVOCATION {
        Some(Instant::now() + left)
    } else {
        fallback.map(|timeout| Instant::now() + timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms_in(d: Duration) -> u64 {
        (SystemTime::now() + d).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn a_real_deadline_is_used_and_an_implausible_one_falls_back() {
        let real = invocation_deadline(epoch_ms_in(Duration::from_secs(30)), None).unwrap();
        let left = real.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(29) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        // cargo lambda watch's fixed value, and one past.
        assert_eq!(invocation_deadline(600_000, None), None);
        let fallback = invocation_deadline(600_000, Some(Duration::from_secs(6))).unwrap();
        assert!(fallback.saturating_duration_since(Instant::now()) > Duration::from_secs(5));
        let hours = epoch_ms_in(Duration::from_secs(3 * 3600));
        assert!(invocation_deadline(hours, Some(Duration::from_secs(2)))
            .unwrap()
            .saturating_duration_since(Instant::now())
            .le(&Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn a_call_that_never_answers_fails_inside_the_deadline_as_unavailable() {
        let started = Instant::now();
        let deadline = Some(started + RESERVE + Duration::from_millis(300));
        let hung = std::future::pending::<Result<()>>();
        let err = within(deadline, bounded(Service::Milvus, "search", hung))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < RESERVE + Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, Error::StoreUnavailable(_)) && err.is_transient(), "{err}");
        assert!(err.to_string().contains("search: no answer within"), "{err}");
        let s3 = within(
            deadline,
            bounded(Service::S3, "HEAD", std::future::pending::<Result<()>>()),
        )
        .await
        .unwrap_err();
        assert_eq!(s3.code(), "object_store_unavailable");
        // A past deadline leaves no budget: the call is not even started.
        let late = within(Some(Instant::now()), bounded(Service::S3, "GET", async { Ok(1) })).await;
        assert!(late.is_err());
    }

    #[tokio::test]
    async fn a_call_limit_shorter_than_the_budget_ends_the_call_first() {
        let hung = || std::future::pending::<Result<()>>();
        let limit = Some(Duration::from_millis(200));
        let started = Instant::now();
        let far = Some(started + Duration::from_secs(60));
        let err = within(far, bounded_by(Service::Milvus, "search", limit, hung()))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(err, Error::StoreUnavailable(_)), "{err}");
        assert!(err.to_string().contains("search: no answer within 0.2 s"), "{err}");
        // Outside an invocation the limit still holds.
        let alone = bounded_by(Service::Milvus, "query", limit, hung()).await.unwrap_err();
        assert_eq!(alone.code(), err.code());
        // A budget shorter than the limit wins, and says so.
        let near = Some(Instant::now() + RESERVE + Duration::from_millis(100));
        let long = Some(Duration::from_secs(60));
        let err = within(near, bounded_by(Service::Milvus, "search", long, hung()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the invocation had left"), "{err}");
        // A call that answers in time is untouched.
        assert_eq!(bounded_by(Service::S3, "GET", limit, async { Ok(3) }).await.unwrap(), 3);
    }

    #[test]
    fn the_fallback_timeout_is_checked() {
        // Only this test sets the variable.
        let read = |value: &str| {
            std::env::set_var("CLIPSEARCH_INVOCATION_TIMEOUT_SECS", value);
            let read = crate::config::invocation_timeout();
            std::env::remove_var("CLIPSEARCH_INVOCATION_TIMEOUT_SECS");
            read
        };
        assert_eq!(read("2.5").unwrap(), Some(Duration::from_millis(2500)));
        assert_eq!(read(" ").unwrap(), None);
        for bad in ["0", "-1", "901", "abc", "NaN", "inf"] {
            let err = read(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
            assert!(err.to_string().contains("CLIPSEARCH_INVOCATION_TIMEOUT_SECS"), "{err}");
        }
    }

    #[tokio::test]
    async fn without_a_deadline_calls_run_unbounded() {
        assert_eq!(budget(), None);
        assert_eq!(bounded(Service::S3, "GET", async { Ok(7) }).await.unwrap(), 7);
        let inside = within(Some(Instant::now() + Duration::from_secs(60)), async { budget() }).await;
        assert!(inside.unwrap() > Duration::from_secs(58));
    }

    #[tokio::test]
    async fn bookkeeping_gets_half_the_reserve_after_the_budget_is_spent() {
        // A deadline whose budget is spent: ordinary calls are refused at once.
        let deadline = Instant::now() + RESERVE;
        within(Some(deadline), async {
            let call = || async { Ok::<_, Error>(()) };
            assert!(bounded(Service::S3, "spent", call()).await.is_err());
            assert!(with_bookkeeping_time(bounded(Service::S3, "status", call()))
                .await
                .is_ok());
            let left = with_bookkeeping_time(async { budget() }).await.unwrap();
            assert!(left <= RESERVE / 2, "{left:?}");
        })
        .await;
        // Outside an invocation it changes nothing.
        assert!(with_bookkeeping_time(async { budget() }).await.is_none());
    }
}
