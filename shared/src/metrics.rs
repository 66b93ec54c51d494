//! CloudWatch Embedded Metric Format (EMF): each ingest batch and each search request prints one
//! JSON line (more for refusals, one per reason) that CloudWatch Logs turns into metrics, with
//! no API call and no agent: Lambda sends the function's stdout to its log group. Locally the
//! lines are in the emulator's log, where the tests read them back.
//!
//! Every metric has the dimension `Function` (`ingest`, `search`); refusals also have `Reason`
//! (the error code: `not_an_image`, `too_many_pixels`, ...). The namespace is
//! `CLIPSEARCH_METRICS_NAMESPACE` (default `clipsearch`), the one the template's dashboard and
//! dead-letter alarm use.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::ingest::{BatchReport, Outcome};

pub const DEFAULT_NAMESPACE: &str = "clipsearch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: its dimensions, metric values and plain properties (not metrics, but kept
/// in the log line, e.g. the invocation's request id to find its other log lines by).
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, Unit, f64)>,
    properties: Vec<(&'static str, String)>,
}

impl Emf {
    /// Metrics of `function` (the `Function` dimension) in `namespace`.
    pub fn new(namespace: &str, function: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            dimensions: vec![("Function", function.to_owned())],
            values: Vec::new(),
            properties: Vec::new(),
        }
    }

    pub fn property(mut self, name: &'static str, value: &str) -> Self {
        self.properties.push((name, value.to_owned()));
        self
    }

    pub fn dimension(mut self, name: &'static str, value: &str) -> Self {
        self.dimensions.push((name, value.to_owned()));
        self
    }

    pub fn count(mut self, name: &'static str, value: usize) -> Self {
        self.values.push((name, Unit::Count, value as f64));
        self
    }

    pub fn millis(mut self, name: &'static str, value: f64) -> Self {
        self.values.push((name, Unit::Milliseconds, value));
        self
    }

    /// The JSON line, stamped `timestamp_ms` (ms since the Unix epoch).
    pub fn line_at(&self, timestamp_ms: u64) -> String {
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [self.dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                    "Metrics": self.values.iter()
                        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            doc.insert((*name).into(), Value::String(value.clone()));
        }
        for (name, _, value) in &self.values {
            doc.insert((*name).into(), json!(value));
        }
        for (name, value) in &self.properties {
            doc.insert((*name).into(), Value::String(value.clone()));
        }
        Value::Object(doc).to_string()
    }

    /// Prints the line now, on stdout (where Lambda's log capture and CloudWatch read it).
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        println!("{}", self.line_at(now));
    }
}

/// Error codes that mean Milvus failed (not the input).
fn is_milvus_error(code: &str) -> bool {
    matches!(code, "index_unavailable" | "index_error" | "schema_mismatch")
}

/// The documents of one ingest invocation (`request_id`): its totals, then one per refusal
/// reason.
pub fn ingest_batch(namespace: &str, request_id: &str, report: &BatchReport) -> Vec<Emf> {
    let (mut indexed, mut duplicates, mut unchanged, mut removed, mut retried, mut milvus_errors) = (0, 0, 0, 0, 0, 0);
    let mut refused: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut inference_ms = 0.0;
    for record in &report.records {
        inference_ms += record.inference_ms;
        match &record.outcome {
            Ok(Outcome::Indexed { .. }) => indexed += 1,
            Ok(Outcome::LocationAdded { .. }) => duplicates += 1,
            Ok(Outcome::Unchanged { .. }) => unchanged += 1,
            Ok(Outcome::LocationRemoved { .. } | Outcome::RecordDeleted { .. }) => removed += 1,
            Ok(
                Outcome::NotIndexed
                | Outcome::Ignored { .. }
                | Outcome::ThumbnailWritten { .. }
                | Outcome::ThumbnailRemoved { .. },
            ) => {}
            Err(e) if e.is_bad_input() => *refused.entry(e.code()).or_default() += 1,
            Err(e) => {
                retried += usize::from(record.should_retry());
                milvus_errors += usize::from(is_milvus_error(e.code()));
            }
        }
    }
    let mut docs = vec![Emf::new(namespace, "ingest")
        .count("Records", report.records.len())
        .count("ImagesIndexed", indexed)
        .count("Duplicates", duplicates)
        .count("Unchanged", unchanged)
        .count("Removed", removed)
        .count("Refused", refused.values().sum())
        .count("Retried", retried)
        .count("UnreadableMessages", report.unreadable.len())
        .count("MilvusErrors", milvus_errors)
        .millis("InferenceMs", inference_ms)];
    docs.extend(refused.into_iter().map(|(reason, n)| {
        Emf::new(namespace, "ingest")
            .dimension("Reason", reason)
            .count("RefusedByReason", n)
    }));
    docs.into_iter()
        .map(|doc| doc.property("RequestId", request_id))
        .collect()
}

/// What one search request answered, for [`search_request`].
pub struct Answered<'a> {
    pub route: &'a str,
    pub status: u16,
    /// The error's code when the answer is an error.
    pub error_code: Option<&'a str>,
    pub millis: f64,
    pub request_id: &'a str,
}

/// The document of one search request: its latency and what it answered.
pub fn search_request(namespace: &str, answered: &Answered) -> Emf {
    let Answered {
        route,
        status,
        error_code,
        millis,
        request_id,
    } = *answered;
    Emf::new(namespace, "search")
        .dimension("Route", route)
        .count("Requests", 1)
        .count("ServerErrors", usize::from(status >= 500))
        .count("ClientErrors", usize::from((400..500).contains(&status)))
        .count("MilvusErrors", usize::from(error_code.is_some_and(is_milvus_error)))
        .millis("SearchLatencyMs", millis)
        .property("RequestId", request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::RecordReport;
    use crate::store::Location;
    use crate::{Error, Result};

    fn record(outcome: Result<Outcome>, inference_ms: f64) -> RecordReport {
        RecordReport {
            location: Location::new("b", "k"),
            id: None,
            outcome,
            millis: 1,
            inference_ms,
        }
    }

    fn parse(doc: &Emf) -> Value {
        serde_json::from_str(&doc.line_at(1_700_000_000_000)).unwrap()
    }

    /// The EMF contract: the directive names each metric, which stands as a number at the top
    /// level, and each dimension, which stands there as a string.
    fn assert_emf(doc: &Value, namespace: &str) {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], namespace);
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name} in {doc}");
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
        }
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dimension.as_str().unwrap()].is_string(), "{dimension} in {doc}");
        }
    }

    #[test]
    fn an_ingest_batch_counts_each_outcome_and_each_refusal_reason() {
        let report = BatchReport {
            records: vec![
                record(Ok(Outcome::Indexed { id: "a".into() }), 12.5),
                record(Ok(Outcome::Indexed { id: "b".into() }), 7.5),
                record(Ok(Outcome::LocationAdded { id: "a".into() }), 0.0),
                record(Ok(Outcome::RecordDeleted { id: "c".into() }), 0.0),
                record(Err(Error::NotAnImage("text".into())), 0.0),
                record(Err(Error::NotAnImage("pdf".into())), 0.0),
                record(Err(Error::EmptyImage), 0.0),
                record(Err(Error::StoreUnavailable("down".into())), 0.0),
            ],
            unreadable: vec![("m9".into(), "not json".into())],
            ..BatchReport::default()
        };
        let docs: Vec<Value> = ingest_batch("clipsearch/test", "req-1", &report)
            .iter()
            .map(parse)
            .collect();
        for doc in &docs {
            assert_emf(doc, "clipsearch/test");
            assert_eq!(doc["Function"], "ingest");
            assert_eq!(doc["RequestId"], "req-1");
        }
        let totals = &docs[0];
        for (name, value) in [
            ("Records", 8.0),
            ("ImagesIndexed", 2.0),
            ("Duplicates", 1.0),
            ("Unchanged", 0.0),
            ("Removed", 1.0),
            ("Refused", 3.0),
            ("Retried", 1.0),
            ("UnreadableMessages", 1.0),
            ("MilvusErrors", 1.0),
            ("InferenceMs", 20.0),
        ] {
            assert_eq!(totals[name], value, "{name}: {totals}");
        }
        let reasons: Vec<(&str, f64)> = docs[1..]
            .iter()
            .map(|d| (d["Reason"].as_str().unwrap(), d["RefusedByReason"].as_f64().unwrap()))
            .collect();
        assert_eq!(reasons, [("empty_image", 1.0), ("not_an_image", 2.0)]);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
    }

    #[test]
    fn a_search_request_reports_its_latency_and_its_kind_of_error() {
        let answered = |status, error_code| Answered {
            route: "/search",
            status,
            error_code,
            millis: 42.5,
            request_id: "r",
        };
        let ok = parse(&search_request("ns", &answered(200, None)));
        assert_emf(&ok, "ns");
        assert_eq!(
            (ok["Requests"].as_f64(), ok["ServerErrors"].as_f64()),
            (Some(1.0), Some(0.0))
        );
        assert_eq!(ok["SearchLatencyMs"], 42.5);
        assert_eq!(ok["Route"], "/search");
        let down = parse(&search_request("ns", &answered(503, Some("index_unavailable"))));
        assert_eq!(
            (down["ServerErrors"].as_f64(), down["MilvusErrors"].as_f64()),
            (Some(1.0), Some(1.0))
        );
        let bad = parse(&search_request("ns", &answered(400, Some("invalid_request"))));
        assert_eq!(
            (bad["ClientErrors"].as_f64(), bad["MilvusErrors"].as_f64()),
            (Some(1.0), Some(0.0))
        );
    }
}
