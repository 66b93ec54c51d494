//! Calls to the search function under the emulator, each answer checked against the OpenAPI
//! document (functions/search/openapi.json): its status must be documented for the route and
//! its body must fit the documented schema, so the document stays true. Used by every test
//! that talks to the search API.

use std::sync::OnceLock;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::lambda_base;
use crate::common::emulator;

const DOC: &str = include_str!("../../functions/search/openapi.json");

pub fn doc() -> &'static Value {
    static DOC_JSON: OnceLock<Value> = OnceLock::new();
    DOC_JSON.get_or_init(|| serde_json::from_str(DOC).expect("openapi.json is JSON"))
}

pub fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                doc()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => value,
    }
}

/// A small structural JSON-schema check: type, required, properties, items, enum, oneOf.
pub fn check_schema(schema: &Value, value: &Value, at: &str) {
    if let Err(problem) = schema_fit(schema, value, at) {
        panic!("{problem}");
    }
}

pub fn schema_fit(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: expected {kind}, got {value}"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let fits: Vec<Result<(), String>> = options.iter().map(|o| schema_fit(o, value, at)).collect();
        if !fits.iter().any(Result::is_ok) {
            let why: Vec<String> = fits.into_iter().filter_map(Result::err).collect();
            return Err(format!("{at}: fits none of oneOf: {}", why.join(" / ")));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} not in {options:?}"));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required {
            let name = name.as_str().unwrap();
            if value.get(name).is_none() {
                return Err(format!("{at}: missing required {name:?} in {value}"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (schema.get("properties"), value.as_object()) {
        for (name, sub) in object {
            if let Some(sub_schema) = properties.get(name) {
                schema_fit(sub_schema, sub, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            schema_fit(items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented operation for a concrete path (`/images/abc` matches `/images/{id}`).
pub fn operation(method: &Method, path: &str) -> Option<&'static Value> {
    let paths = doc()["paths"].as_object()?;
    let path = path.split('?').next().unwrap_or(path);
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    paths.iter().find_map(|(template, item)| {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        let matches = t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b);
        if matches {
            item.get(method.as_str().to_ascii_lowercase())
        } else {
            None
        }
    })
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub allow: Option<String>,
    /// How long the function took to answer (the emulator's retried attempts not counted).
    pub took: std::time::Duration,
}

/// Calls the function and checks the answer against the document.
pub async fn call(method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    call_at(&lambda_base(), method, path, content_type, body).await
}

/// `call` against the function served at `base`.
pub async fn call_at(base: &str, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let url = format!("{base}{path}");
    let mut request = emulator::client().request(method.clone(), &url);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    let answer = emulator::send(request).await;
    let status = answer.status;
    let allow = answer.header("allow").map(str::to_owned);
    let content_type = answer.header("content-type").unwrap_or("").to_owned();
    let took = answer.took;
    let bytes = answer.body;
    let body: Value = if content_type.starts_with("application/json") {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: bad JSON ({e})"))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    conform(&method, path, status, &body);
    Answer {
        status,
        body,
        allow,
        took,
    }
}

pub fn conform(method: &Method, path: &str, status: StatusCode, body: &Value) {
    if status.is_client_error() || status.is_server_error() {
        check_schema(&json!({"$ref": "#/components/schemas/Error"}), body, "error");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        for secret in [
            "127.0.0.1",
            "http://",
            "MILVUS",
            "panicked",
            "RUST_BACKTRACE",
            "test:test",
        ] {
            assert!(
                !message.contains(secret),
                "{path}: error message leaks {secret:?}: {message}"
            );
        }
    }
    let Some(op) = operation(method, path) else {
        // An undocumented method on a documented path is a 405, anything else a 404.
        let path_documented = [Method::GET, Method::POST].iter().any(|m| operation(m, path).is_some());
        let expected = if path_documented {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(
            status, expected,
            "{method} {path} is not documented but answered {status}"
        );
        return;
    };
    let responses = &op["responses"];
    let documented = responses
        .get(status.as_str())
        .unwrap_or_else(|| panic!("{method} {path}: status {status} is not documented"));
    let documented = resolve(documented);
    if let Some(schema) = documented.pointer("/content/application~1json/schema") {
        check_schema(schema, body, &format!("{method} {path} {status}"));
    }
}

pub async fn post_json(path: &str, body: Value) -> Answer {
    call(
        Method::POST,
        path,
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

pub fn results(answer: &Answer) -> &Vec<Value> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["results"].as_array().expect("results")
}

pub fn id_of(result: &Value) -> &str {
    result["id"].as_str().unwrap()
}

pub fn score_of(result: &Value) -> f64 {
    result["score"].as_f64().unwrap()
}
