//! Property-based API testing: schemathesis generates requests from functions/search/openapi.json
//! (valid ones, and with `--mode all` invalid ones too) and sends them to the search function
//! through the Lambda emulator, with the real Milvus and S3 emulator behind it and a small
//! corpus indexed. Every answer must be documented for its route and fit its schema
//! (`status_code_conformance`, `response_schema_conformance`, `content_type_conformance`), no
//! answer may be a 5xx but the documented 503 (`not_a_server_error`, which schemathesis reads
//! against the document), and an invalid request must not be accepted (`negative_data_rejection`).
//! The example count per operation is `SCHEMATHESIS_MAX_EXAMPLES` (default 25). A missing
//! service or venv fails the test. The emulator's own 500s (requests it cannot turn into a
//! Function URL event, refused before the function runs) are printed and set aside, and so are
//! requests that time out in the emulator, once the function's own log shows it answered every
//! invocation it received in milliseconds; any other failure fails the test.

mod common;
mod search_support;

use common::emulator;
use std::path::PathBuf;
use std::process::Command;

/// `cargo lambda watch` answers some requests itself, with this problem document and without
/// invoking the function (its log shows no request): a JSON body that is not UTF-8, a multipart
/// type without a boundary. The function's own answers never look like it (cli/src/relay.rs
/// tells the two apart the same way); the fuzz target `search_request` feeds those requests to
/// the function's parser directly.
const EMULATOR_500: &str = r#"{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}"#;

/// The failed test cases in schemathesis's JUnit report, split into the emulator's 500s and
/// everything else.
fn failures(junit: &str) -> (Vec<String>, Vec<String>) {
    let mut cases = Vec::new();
    for failure in junit.split("<failure").skip(1) {
        let text = failure.split("</failure>").next().unwrap_or_default();
        let text = text.split_once('>').map(|(_, t)| t).unwrap_or(text);
        for case in text.split("Test Case ID:").skip(1) {
            cases.push(
                case.replace("&quot;", "\"")
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">"),
            );
        }
    }
    cases
        .into_iter()
        .partition(|case| case.contains(EMULATOR_500) && case.contains("[500]") && !case.contains("ST201"))
}

/// How many requests schemathesis gave up waiting for (its "Network Error" entries: "Read timed
/// out after N seconds").
fn timed_out(stdout: &str) -> usize {
    stdout.matches("Read timed out").count()
}

/// What the search function itself logged in `lines` (its lines since the run began): how many
/// requests it answered and the slowest one's milliseconds, or the invocations it started and
/// never answered. A request schemathesis timed out on that the function never saw (or answered
/// in milliseconds) was lost in the emulator, as its own 500s are.
fn function_requests(lines: &[serde_json::Value]) -> Result<(usize, f64), Vec<String>> {
    let (mut started, mut answered) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let mut slowest = 0f64;
    for entry in lines {
        let Some(id) = emulator::request_id(entry) else {
            continue;
        };
        started.insert(id.to_owned());
        if entry["fields"]["message"] == "request" {
            answered.insert(id.to_owned());
            slowest = slowest.max(entry["fields"]["ms"].as_f64().unwrap_or(0.0));
        }
    }
    let unanswered: Vec<String> = started.difference(&answered).cloned().collect();
    if unanswered.is_empty() {
        Ok((answered.len(), slowest))
    } else {
        Err(unanswered)
    }
}

fn schemathesis() -> PathBuf {
    let bin = common::repo_root().join(".venv-schemathesis/bin/schemathesis");
    assert!(bin.is_file(), "{} is missing: run `make setup`", bin.display());
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn every_generated_request_gets_a_documented_answer() {
    let corpus = search_support::seed("schemathesis", 12, 727).await;
    let repo = common::repo_root();
    let reports = std::env::temp_dir().join(format!("clipsearch-schemathesis-{}", std::process::id()));
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "25".into());
    std::fs::create_dir_all(&reports).unwrap();
    // A real id for `GET /images/{id}`: generated ids are (rightly) always 404. The seeded
    // prefix for `GET /duplicates`: each request compares every image under its prefix, and
    // the whole shared collection would make each one a long scan.
    let config = reports.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-name = \"GET /images/{{id}}\"\nparameters = {{ id = \"{}\" }}\n\n\
             [[operations]]\ninclude-name = \"GET /duplicates\"\nparameters = {{ prefix = \"{}\" }}\n",
            corpus.images[0].id, corpus.prefix
        ),
    )
    .unwrap();
    let junit_path = reports.join("junit.xml");
    let log_start = emulator::log_mark();
    let out = Command::new(schemathesis())
        .current_dir(&repo)
        .arg("--config-file")
        .arg(&config)
        .args(["run", "functions/search/openapi.json", "--url"])
        .arg(search_support::lambda_base())
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection",
            "--mode",
            "all",
            "--max-examples",
            &examples,
            // The function answers in milliseconds; the emulator sometimes never does.
            "--request-timeout",
            "10",
            "--generation-deterministic",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&junit_path)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let junit = std::fs::read_to_string(&junit_path).unwrap_or_default();
    let cases = junit.matches("<testcase").count();
    let generated = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(" generated"))
        .map(str::trim)
        .unwrap_or("(no count printed)");
    println!(
        "schemathesis: {cases} operations, {generated}, against {} indexed images",
        corpus.images.len()
    );
    let (emulator, ours) = failures(&junit);
    for case in &emulator {
        println!("not the function's (the emulator's own 500, before any invocation):\n{case}\n");
    }
    assert!(ours.is_empty(), "schemathesis found failures:\n{}", ours.join("\n\n"));
    let (requests, slowest_ms) = function_requests(&emulator::logged_since(log_start))
        .unwrap_or_else(|unanswered| panic!("the search function never answered invocations {unanswered:?}"));
    let timeouts = timed_out(&stdout);
    println!(
        "the function answered all {requests} requests it received, the slowest in {slowest_ms:.0} ms; \
         {timeouts} timed out inside the emulator (lost before or after the function)"
    );
    assert!(slowest_ms < 5000.0, "a request took the function {slowest_ms} ms");
    assert!(
        out.status.success() || !emulator.is_empty() || timeouts > 0,
        "schemathesis failed (above)"
    );
    assert!(cases >= 8, "every operation of the document was exercised: {cases}");
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn an_invocation_the_function_never_answered_is_found_in_its_log() {
    let line = |id: &str, message: &str, ms: f64| serde_json::json!({"fields": {"message": message, "ms": ms}, "spans": [{"requestId": id, "name": "Lambda runtime invoke"}]});
    let mut lines = vec![
        line("a", "search", 0.0),
        line("a", "request", 12.5),
        line("b", "request", 3.0),
    ];
    assert_eq!(function_requests(&lines), Ok((2, 12.5)));
    lines.extend([line("c", "search", 0.0), serde_json::json!({"no": "span"})]);
    assert_eq!(function_requests(&lines), Err(vec!["c".to_owned()]));
    assert_eq!(timed_out("Network Error\n\nRead timed out after 10.0 seconds\n"), 1);
}

#[test]
fn the_emulators_own_500_is_told_apart_from_the_functions_answers() {
    let junit = format!(
        r#"<testcase name="GET /openapi.json"><failure type="failure" message="ST102">1. Test Case ID: a
- ST102 Server error on undeclared request Content-Type
[500] Internal Server Error:
    `{EMULATOR_500}`</failure></testcase>
<testcase name="GET /search"><failure type="failure" message="ST101">1. Test Case ID: b
- ST101 Server error
[500] Internal Server Error:
    `{{&quot;error&quot;:{{&quot;code&quot;:&quot;internal&quot;}}}}`

2. Test Case ID: c
- ST201 Schema-violating request accepted
[200] OK:</failure></testcase>"#
    );
    let (emulator, ours) = failures(&junit);
    assert_eq!(emulator.len(), 1, "{emulator:?}");
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours[0].contains(r#"{"error""#));
}
