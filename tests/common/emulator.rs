//! Calls through the Lambda emulator (`cargo lambda watch`, run by scripts/lambda.sh).
//!
//! The emulator itself now and then fails a call the function answered (measured with
//! cargo-lambda 1.9.2 on these machines: 0.2–0.7 % of sequential search calls whose answer is
//! ~48 KB, none below ~13 KB; more under CPU load): the caller gets the emulator's own 500, a
//! problem document `{"type":"https://httpstatuses.com/500",…}`, or no answer at all. Without a
//! timeout such a call waits forever, which is how a CI run once hung. So every call here has
//! a timeout, and a call the emulator failed (its problem document, or no answer in time) is
//! sent again, at most [`ATTEMPTS`] times in all. Every answer of the function itself, error
//! or not, is returned as it came: our errors are `{"error":{…}}` documents, never that one.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

/// How long one call may take. The slowest call the tests make (the first image search on a
/// cold function under a loaded CI machine) takes a few seconds.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per call when the emulator, not the function, failed it.
pub const ATTEMPTS: usize = 3;

/// A client for the emulated functions (and for the presigned URLs they hand out).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// The function's answer to one call.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// How long the attempt that got this answer took.
    pub took: Duration,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Whether an answer is the emulator's own failure rather than the function's.
pub fn is_emulator_failure(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::INTERNAL_SERVER_ERROR
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|doc| doc["type"] == "https://httpstatuses.com/500")
}

/// Sends `request` (a buffered body) and returns the function's answer: see [`send_with`].
pub async fn send(request: RequestBuilder) -> Answer {
    send_with(|| {
        request
            .try_clone()
            .expect("a buffered body (use send_with for a streamed one)")
    })
    .await
}

/// Sends the request `make` builds (again for each attempt: multipart bodies cannot be
/// cloned) and returns the function's answer; panics when the emulator is not running or
/// fails the call [`ATTEMPTS`] times.
pub async fn send_with(make: impl Fn() -> RequestBuilder) -> Answer {
    let mut last_failure = String::new();
    for attempt in 1..=ATTEMPTS {
        let started = Instant::now();
        let failure = match make().send().await {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) if !is_emulator_failure(status, &body) => {
                        return Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                            took: started.elapsed(),
                        }
                    }
                    Ok(body) => format!("the emulator's own 500: {}", String::from_utf8_lossy(&body)),
                    Err(e) if e.is_timeout() => format!("no answer within {CALL_TIMEOUT:?} ({e})"),
                    Err(e) => panic!("reading the function's answer: {e}"),
                }
            }
            Err(e) if e.is_timeout() => format!("no answer within {CALL_TIMEOUT:?} ({e})"),
            Err(e) => panic!("the Lambda emulator does not answer ({e}); start it (scripts/lambda.sh up)"),
        };
        eprintln!("emulator call, attempt {attempt}/{ATTEMPTS}: {failure}");
        last_failure = failure;
    }
    panic!("the emulator failed the call {ATTEMPTS} times; last: {last_failure}")
}

/// The emulator's log (`scripts/lambda.sh`: the functions' stdout and stderr), where CloudWatch
/// would read a deployed function's lines.
pub fn log_path() -> std::path::PathBuf {
    let port = std::env::var("LAMBDA_PORT").unwrap_or_else(|_| "9000".into());
    super::repo_root().join(format!(".local/lambda/{port}/lambda.log"))
}

/// The log's length now: pass it to [`logged_since`] to read only what comes after.
pub fn log_mark() -> usize {
    std::fs::metadata(log_path()).map_or(0, |m| m.len() as usize)
}

/// The JSON lines the functions printed to the emulator's log after byte `mark`.
pub fn logged_since(mark: usize) -> Vec<serde_json::Value> {
    let log = std::fs::read(log_path()).expect("the emulator's log");
    String::from_utf8_lossy(&log[mark.min(log.len())..])
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The invocation's request id of a function log line (its runtime span's).
pub fn request_id(line: &serde_json::Value) -> Option<&str> {
    line["spans"].as_array()?.iter().find_map(|s| s["requestId"].as_str())
}
