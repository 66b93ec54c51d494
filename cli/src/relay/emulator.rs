//! Invoking the ingest function through `cargo lambda watch`, which loses a few answers: a
//! batch it lost is sent again, and the function's own answer decides what is retried.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// Times a batch is sent when `cargo lambda watch` itself fails the call.
const EMULATOR_ATTEMPTS: usize = 3;

/// Why an invocation gave no list of failures.
enum InvokeError {
    /// The emulator, not the function, failed the call: its own 500 (a problem document whose
    /// type is `https://httpstatuses.com/500`; the function's errors never look like that) or
    /// no answer in time. cargo-lambda 1.9.2 does this to a small share of calls whose answer is
    /// large, and then the function's answer is lost.
    EmulatorLost(String),
    Function(anyhow::Error),
}

impl From<anyhow::Error> for InvokeError {
    fn from(e: anyhow::Error) -> Self {
        InvokeError::Function(e)
    }
}

/// Invokes the function, sending the batch again when the emulator lost the answer: ingest is
/// idempotent, and SQS would redeliver the batch after its visibility timeout anyway.
pub(super) async fn invoke_through_emulator(
    http: &reqwest::Client,
    url: &str,
    event: &Value,
) -> Result<HashSet<String>> {
    let mut attempt = 1;
    loop {
        match invoke(http, url, event).await {
            Ok(failures) => return Ok(failures),
            Err(InvokeError::EmulatorLost(why)) if attempt < EMULATOR_ATTEMPTS => {
                eprintln!("relay: the emulator lost the answer ({why}); sending the batch again ({attempt}/{EMULATOR_ATTEMPTS})");
                attempt += 1;
            }
            Err(InvokeError::EmulatorLost(why)) => {
                bail!("the emulator lost the answer {EMULATOR_ATTEMPTS} times; last: {why}")
            }
            Err(InvokeError::Function(e)) => return Err(e),
        }
    }
}

/// Invokes the function; returns the ids it asks to retry. A function error or a malformed
/// answer is an error (the whole batch is retried, as Lambda does).
async fn invoke(http: &reqwest::Client, url: &str, event: &Value) -> Result<HashSet<String>, InvokeError> {
    let lost = |e: reqwest::Error| match e.is_timeout() {
        true => InvokeError::EmulatorLost(format!("no answer in time ({e})")),
        false => InvokeError::Function(anyhow::Error::new(e).context("POST to the Lambda emulator")),
    };
    let response = http.post(url).json(event).send().await.map_err(lost)?;
    let status = response.status();
    let text = response.text().await.map_err(lost)?;
    if status == reqwest::StatusCode::INTERNAL_SERVER_ERROR
        && serde_json::from_str::<Value>(&text).is_ok_and(|doc| doc["type"] == "https://httpstatuses.com/500")
    {
        return Err(InvokeError::EmulatorLost(format!("its own HTTP 500: {text}")));
    }
    if !status.is_success() {
        return Err(anyhow!("HTTP {status}: {text}").into());
    }
    let answer: Value = serde_json::from_str(&text).with_context(|| format!("answer is not JSON: {text}"))?;
    if answer.get("errorType").is_some() || answer.get("errorMessage").is_some() {
        return Err(anyhow!("function error: {text}").into());
    }
    let failures = match answer.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(HashSet::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(anyhow!("batchItemFailures is not a list: {other}").into()),
    };
    Ok(failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("a batchItemFailures entry has no itemIdentifier: {f}"))
        })
        .collect::<Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{Read, Write};

    /// A one-thread HTTP server giving `answers` in turn, one per connection; returns its URL.
    fn server(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/invoke", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 8192];
                let _ = stream.read(&mut request).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
                served += 1;
            }
            served
        });
        (url, handle)
    }

    const EMULATOR_500: &str =
        r#"{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}"#;

    #[tokio::test]
    async fn a_batch_the_emulator_lost_is_sent_again_and_the_functions_answer_counts() {
        let (url, handle) = server(vec![
            (500, EMULATOR_500),
            (200, r#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#),
        ]);
        let failures = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap();
        assert_eq!(failures, HashSet::from(["m2".to_owned()]));
        assert_eq!(handle.join().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_function_error_is_not_sent_again() {
        let (url, handle) = server(vec![(200, r#"{"errorType":"Boom","errorMessage":"no"}"#)]);
        let error = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("function error"), "{error:#}");
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_emulator_that_keeps_losing_answers_is_an_error_after_three_attempts() {
        let (url, handle) = server(vec![(500, EMULATOR_500); EMULATOR_ATTEMPTS]);
        let error = invoke_through_emulator(&reqwest::Client::new(), &url, &json!({"Records": []}))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("lost the answer 3 times"), "{error:#}");
        assert_eq!(handle.join().unwrap(), EMULATOR_ATTEMPTS);
    }
}
