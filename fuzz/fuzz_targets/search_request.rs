//! The search function's request parsing: `GET /search?…` query strings, and `POST /search`
//! bodies as JSON (text, base64 and `data:` images, ids, object URLs), multipart forms and raw
//! image bodies, plus `POST /search/batch`. The first input byte picks the content type, the
//! next two where the query string ends and the body begins. Any request must become search
//! parameters or a 4xx error, never a panic or a 5xx.
#![no_main]

use std::sync::OnceLock;

use clipsearch::search::SearchSettings;
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use search::body::BatchBody;
use search::request::{from_body, from_query_string};

const CONTENT_TYPES: &[&str] = &[
    "",
    "application/json",
    "application/vnd.api+json",
    "multipart/form-data; boundary=X",
    "multipart/form-data; boundary=\"a b\"",
    "multipart/form-data",
    "image/jpeg",
    "application/octet-stream",
    "text/plain",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn settings() -> SearchSettings {
    SearchSettings {
        bucket: Some("images".into()),
        ..SearchSettings::default()
    }
}

fuzz_target!(|bytes: &[u8]| {
    let [kind, a, b, rest @ ..] = bytes else {
        return;
    };
    let split = (usize::from(*a) << 8 | usize::from(*b)).min(rest.len());
    let (query, body) = rest.split_at(split);
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()];
    let Ok(request) = lambda_http::http::Request::builder()
        .method(if kind & 0x80 == 0 { "POST" } else { "GET" })
        .uri(format!("/search?{query}"))
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
    else {
        return; // not a request line a client could send
    };
    let request: Request = request;
    let settings = settings();
    let status = |e: &search::error::ApiError| e.status.as_u16();
    if let Err(e) = from_query_string(&request, &settings) {
        assert!((400..500).contains(&status(&e)), "GET: {e:?}");
    }
    if let Err(e) = runtime().block_on(from_body(&request, &settings)) {
        assert!((400..500).contains(&status(&e)), "POST: {e:?}");
    }
    if let Ok(batch) = BatchBody::from_json(body) {
        let _ = batch.into_params(&settings);
    }
});
