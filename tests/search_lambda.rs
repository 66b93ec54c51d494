//! The search function through the Lambda emulator (`cargo lambda watch`, Function URL at
//! `http://127.0.0.1:$LAMBDA_PORT/lambda-url/search/…`) against the local Milvus and S3, with
//! tiny-clip and synthetic images indexed under a prefix of their own.
//!
//! Every answer is also checked against the OpenAPI document (functions/search/openapi.json):
//! its status must be documented for the route and its body must fit the documented schema,
//! so the document stays true. A missing service fails these tests.

mod common;
mod search_support;

use std::collections::BTreeSet;

use base64::Engine;
use clipsearch::clip::decode::sniff;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use common::emulator;
use search_support::api::{call, call_at, check_schema, conform, doc, id_of, post_json, results, score_of, Answer};
use search_support::{encode, lambda_base, Corpus};

/// One corpus for all tests of this binary: 48 images, each colour × shape class once.
async fn corpus() -> &'static Corpus {
    static CORPUS: OnceCell<Corpus> = OnceCell::const_new();
    CORPUS.get_or_init(|| search_support::seed("lambda", 48, 515)).await
}

// ---------------------------------------------------------------- behaviour

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_milvus_and_the_model() {
    let answer = call(Method::GET, "/health", None, vec![]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["milvus"]["reachable"], true);
    assert_eq!(answer.body["model"]["name"], "tiny-clip");
    assert!(answer.body["model"]["dimension"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_query_puts_red_circles_first() {
    let corpus = corpus().await;
    let answer = post_json(
        "/search",
        json!({"text": "a photo of a red circle", "top_k": 5, "prefix": corpus.prefix}),
    )
    .await;
    let hits = results(&answer);
    assert_eq!(hits.len(), 5);
    let first = corpus.by_id(id_of(&hits[0])).expect("a seeded image");
    assert_eq!(
        (first.colour.as_str(), first.shape.as_str()),
        ("red", "circle"),
        "{hits:?}"
    );
    assert_eq!(answer.body["model"], "tiny-clip");
    let scores: Vec<f64> = hits.iter().map(score_of).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score: {scores:?}");
    for hit in hits {
        assert!(hit["key"].as_str().unwrap().starts_with(&corpus.prefix));
        assert_eq!(hit["bucket"], corpus.bucket.as_str());
    }

    // The quick GET form answers the same.
    let get = call(
        Method::GET,
        &format!(
            "/search?q={}&top_k=5&prefix={}",
            encode("a photo of a red circle"),
            encode(&corpus.prefix)
        ),
        None,
        vec![],
    )
    .await;
    assert_eq!(id_of(&results(&get)[0]), id_of(&hits[0]));
}

/// Any Unicode query is a query: CJK, accents (composed and combining), Japanese, right-to-left
/// scripts, emoji with joiners, long text. POST JSON and the GET form answer alike; Chinese,
/// Japanese and Spanish (languages of the test function's multilingual tower) find the red
/// circles first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_unicode_query_answers_alike_through_post_and_get() {
    let corpus = corpus().await;
    let queries: [(&str, bool); 10] = [
        ("红色圆形的图片", true),
        ("一張紅色圓形的照片", true),
        ("赤い円の写真", true),
        ("una foto de un círculo rojo", true),
        ("una foto de un ci\u{301}rculo rojo", false),
        ("صورة دائرة حمراء", false),
        ("תמונה של עיגול אדום", false),
        ("🔴 👩\u{200d}🎨 ⭕️", false),
        ("\u{202e}a photo of a red circle\u{202c}", false),
        ("红色圆形 ", false),
    ];
    let long = "红色圆形的图片，".repeat(240); // 1920 characters, within the 2000 a query may have
    for (query, red_circle_first) in queries.iter().copied().chain([(long.as_str(), false)]) {
        let posted = post_json("/search", json!({"text": query, "top_k": 5, "prefix": corpus.prefix})).await;
        assert_eq!(posted.status, StatusCode::OK, "{query:?}: {:?}", posted.body);
        let hits = results(&posted);
        assert_eq!(hits.len(), 5, "{query:?}");
        let get = call(
            Method::GET,
            &format!("/search?q={}&top_k=5&prefix={}", encode(query), encode(&corpus.prefix)),
            None,
            vec![],
        )
        .await;
        assert_eq!(get.status, StatusCode::OK, "{query:?}: {:?}", get.body);
        let ids = |hits: &[Value]| hits.iter().map(|h| id_of(h).to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(results(&get)), ids(hits), "GET and POST agree for {query:?}");
        if red_circle_first {
            let first = corpus.by_id(id_of(&hits[0])).expect("a seeded image");
            assert_eq!(
                (first.colour.as_str(), first.shape.as_str()),
                ("red", "circle"),
                "{query:?}: {hits:?}"
            );
        }
    }
}

/// Several queries in one request: each answered as it would be alone, in order; a wrong one
/// gets its own error and the rest are still answered; limits are 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_query_as_alone() {
    let corpus = corpus().await;
    let prefix = corpus.prefix.as_str();
    let alone = post_json(
        "/search",
        json!({"text": "a photo of a red circle", "top_k": 3, "prefix": prefix}),
    )
    .await;
    let some_id = id_of(&results(&alone)[0]).to_owned();
    let batch = post_json(
        "/search/batch",
        json!({"queries": [
            {"text": "a photo of a red circle", "top_k": 3, "prefix": prefix},
            {"text": "红色圆形的图片", "top_k": 3, "prefix": prefix},
            {"text": "", "prefix": prefix},
            {"id": some_id, "top_k": 2, "prefix": prefix},
            {"text": "a photo of a red circle", "top_k": 3, "prefix": prefix},
            {"id": "not-an-id"},
        ]}),
    )
    .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let items = batch.body["responses"].as_array().expect("responses");
    assert_eq!(items.len(), 6);
    let ids = |item: &Value| -> Vec<String> {
        item["results"]
            .as_array()
            .unwrap_or_else(|| panic!("results in {item}"))
            .iter()
            .map(|h| id_of(h).to_owned())
            .collect()
    };
    let alone_ids: Vec<String> = results(&alone).iter().map(|h| id_of(h).to_owned()).collect();
    assert_eq!(ids(&items[0]), alone_ids, "a batched text query answers as alone");
    assert_eq!(ids(&items[4]), alone_ids, "and so does its repeat");
    let first = corpus.by_id(&ids(&items[1])[0]).expect("a seeded image");
    assert_eq!((first.colour.as_str(), first.shape.as_str()), ("red", "circle"));
    assert_eq!(items[2]["status"], 400, "{}", items[2]);
    assert_eq!(items[2]["error"]["code"], "empty_text", "{}", items[2]);
    assert_eq!(ids(&items[3]).len(), 2);
    assert!(
        !ids(&items[3]).contains(&some_id),
        "more like this leaves the image out"
    );
    assert_eq!(items[5]["status"], 400, "{}", items[5]);

    let none = post_json("/search/batch", json!({"queries": []})).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let many: Vec<Value> = (0..33).map(|i| json!({"text": format!("query {i}")})).collect();
    let too_many = post_json("/search/batch", json!({ "queries": many })).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert!(too_many.body["error"]["message"].as_str().unwrap().contains("32"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_query_finds_itself_first_in_every_body_shape() {
    let corpus = corpus().await;
    let image = corpus.by_class("blue", "star")[0];
    let mime = sniff(&image.bytes).unwrap().mime();
    let query = format!("/search?top_k=3&prefix={}", encode(&corpus.prefix));

    let raw = call(Method::POST, &query, Some(mime), image.bytes.clone()).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image.bytes);
    let json_body = post_json("/search", json!({"image": b64, "top_k": 3, "prefix": corpus.prefix})).await;

    let form = || {
        reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(image.bytes.clone())
                    .file_name("query.img")
                    .mime_str(mime)
                    .unwrap(),
            )
            .text("top_k", "3")
            .text("prefix", corpus.prefix.clone())
    };
    let url = format!("{}/search", lambda_base());
    let answer = emulator::send_with(|| emulator::client().post(&url).multipart(form())).await;
    let status = answer.status;
    let multipart_body: Value = serde_json::from_slice(&answer.body).expect("JSON");
    conform(&Method::POST, "/search", status, &multipart_body);
    let multipart = Answer {
        status,
        body: multipart_body,
        allow: None,
        took: answer.took,
    };

    for (shape, answer) in [("raw", &raw), ("json", &json_body), ("multipart", &multipart)] {
        let hits = results(answer);
        assert_eq!(id_of(&hits[0]), image.id, "{shape}: {hits:?}");
        assert!(score_of(&hits[0]) > 0.99, "{shape}: score {}", score_of(&hits[0]));
    }

    // An image already in the bucket, by its s3:// location.
    let by_url = post_json(
        "/search",
        json!({"image_url": format!("s3://{}/{}", corpus.bucket, image.key), "top_k": 3, "prefix": corpus.prefix}),
    )
    .await;
    assert_eq!(id_of(&results(&by_url)[0]), image.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_like_this_leaves_the_query_out() {
    let corpus = corpus().await;
    let image = corpus.by_class("green", "square")[0];
    let answer = post_json("/search", json!({"id": image.id, "top_k": 10, "prefix": corpus.prefix})).await;
    let hits = results(&answer);
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| id_of(h) != image.id), "{hits:?}");
    // Its nearest neighbours share its colour or its shape.
    let first = corpus.by_id(id_of(&hits[0])).expect("seeded");
    assert!(first.colour == "green" || first.shape == "square", "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_min_score_filter() {
    let corpus = corpus().await;
    let all = post_json(
        "/search",
        json!({"text": "a photo of a yellow triangle", "top_k": 100, "prefix": corpus.prefix}),
    )
    .await;
    let hits = results(&all);
    assert_eq!(
        hits.len(),
        corpus.images.len(),
        "the prefix holds exactly the seeded images"
    );
    assert!(hits
        .iter()
        .all(|h| h["key"].as_str().unwrap().starts_with(&corpus.prefix)));

    let threshold = score_of(&hits[4]);
    let filtered = post_json(
        "/search",
        json!({"text": "a photo of a yellow triangle", "top_k": 100, "prefix": corpus.prefix, "min_score": threshold}),
    )
    .await;
    let kept = results(&filtered);
    assert!(kept.len() >= 5 && kept.len() < hits.len(), "{} kept", kept.len());
    assert!(kept.iter().all(|h| score_of(h) >= threshold - 1e-4));

    // The relative cut: hits within 5 % of the best one's score, the others dropped.
    let best = score_of(&hits[0]);
    assert!(best > 0.0, "a positive best score to take a share of: {best}");
    let near = post_json(
        "/search",
        json!({"text": "a photo of a yellow triangle", "top_k": 100, "prefix": corpus.prefix, "min_score_ratio": 0.95}),
    )
    .await;
    let near = results(&near);
    let at_least = hits.iter().filter(|h| score_of(h) >= 0.95 * best + 1e-4).count();
    let at_most = hits.iter().filter(|h| score_of(h) >= 0.95 * best - 1e-4).count();
    assert!(
        (at_least.max(1)..=at_most).contains(&near.len()) && near.len() < hits.len(),
        "{} kept of {}, expected {at_least}..={at_most}",
        near.len(),
        hits.len()
    );
    assert_eq!(id_of(&near[0]), id_of(&hits[0]), "the best hit stays first");
    let out_of_range = call(
        Method::GET,
        &format!("/search?q=a+photo&min_score_ratio=1.5&prefix={}", corpus.prefix),
        None,
        vec![],
    )
    .await;
    assert_eq!(out_of_range.status, StatusCode::BAD_REQUEST, "{}", out_of_range.body);

    let nothing = post_json(
        "/search",
        json!({"text": "a photo of a yellow triangle", "prefix": format!("{}no-such-dir/", corpus.prefix)}),
    )
    .await;
    assert!(results(&nothing).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_fetch_the_right_bytes() {
    let corpus = corpus().await;
    let answer = post_json(
        "/search",
        json!({"text": "a photo of a purple cross", "top_k": 3, "prefix": corpus.prefix}),
    )
    .await;
    for hit in results(&answer) {
        let bytes = search_support::download(hit["url"].as_str().unwrap()).await;
        let seeded = corpus.by_id(id_of(hit)).unwrap();
        assert_eq!(bytes, seeded.bytes, "bytes of {}", seeded.key);
    }

    // GET /images/{id}: metadata and a working URL.
    let image = &corpus.images[7];
    let info = call(
        Method::GET,
        &format!("/images/{}", image.id.to_uppercase()),
        None,
        vec![],
    )
    .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.body["id"], image.id.as_str());
    assert_eq!(info.body["byte_size"], image.bytes.len() as u64);
    assert!(info.body["locations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["key"] == image.key.as_str()));
    let fetched = search_support::download(info.body["url"].as_str().unwrap()).await;
    assert_eq!(fetched, image.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_straight_to_s3() {
    let corpus = corpus().await;
    let image = &corpus.images[3];
    let ticket = post_json(
        "/uploads",
        json!({"filename": "holiday/beach photo.png", "content_type": "image/png"}),
    )
    .await;
    assert_eq!(ticket.status, StatusCode::OK, "{}", ticket.body);
    let key = ticket.body["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("uploads/") && key.ends_with("-beach_photo.png"),
        "{key}"
    );
    assert_eq!(ticket.body["method"], "POST");
    let fields: Vec<(String, String)> = ticket.body["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in &fields {
        form = form.text(name.clone(), value.clone());
    }
    let file = reqwest::multipart::Part::bytes(image.bytes.clone())
        .file_name("beach photo.png")
        .mime_str("image/png")
        .unwrap();
    let response = search_support::http()
        .post(ticket.body["url"].as_str().unwrap())
        .multipart(form.part("file", file))
        .send()
        .await
        .expect("presigned POST");
    assert!(response.status().is_success(), "POST answered {}", response.status());

    use clipsearch::objects::ObjectSource;
    let s3 = search_support::s3().await;
    let stored = s3.fetch(&corpus.bucket, &key, 10 << 20).await.expect("uploaded object");
    assert_eq!(stored.bytes, image.bytes);
    assert_eq!(stored.content_type.as_deref(), Some("image/png"));
    s3.delete(&corpus.bucket, &key).await.ok();
}

/// The upload form's policy, as S3 would apply it. moto accepts any POST without reading the
/// policy (checked: oversized bodies, other types, other keys, expired or tampered policies all
/// answer 204), so the conditions are tested here as a document, against S3's rules for
/// `eq`/`starts-with`/`content-length-range`, and the signature against SigV4 with the keys the
/// function signed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_policy_refuses_oversized_bodies_other_types_and_other_keys() {
    let ticket = post_json("/uploads", json!({"filename": "cat.jpg", "content_type": "image/jpeg"})).await;
    assert_eq!(ticket.status, StatusCode::OK, "{}", ticket.body);
    let fields = ticket.body["fields"].as_object().unwrap().clone();
    let field = |name: &str| fields[name].as_str().unwrap().to_owned();
    let max = ticket.body["max_bytes"].as_u64().unwrap();
    assert_eq!(max, clipsearch::config::DEFAULT_MAX_IMAGE_BYTES, "the ingest limit");
    let policy: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(field("policy"))
            .unwrap(),
    )
    .unwrap();

    // What S3 does with a form: every condition must hold, and every field sent (but the
    // signature, the policy and the file) must be covered by a condition.
    let accepts = |form: &serde_json::Map<String, Value>, size: u64| -> Result<(), String> {
        let conditions = policy["conditions"].as_array().unwrap();
        let value_of = |name: &str| -> Option<String> {
            let name = name.trim_start_matches('$');
            if name == "bucket" {
                return Some(ticket.body["bucket"].as_str().unwrap().to_owned());
            }
            form.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str().unwrap().to_owned())
        };
        let mut covered = std::collections::BTreeSet::new();
        for condition in conditions {
            match condition {
                Value::Object(pair) => {
                    let (name, want) = pair.iter().next().unwrap();
                    covered.insert(name.to_ascii_lowercase());
                    if value_of(name).as_deref() != want.as_str() {
                        return Err(format!("{name} must equal {want}"));
                    }
                }
                Value::Array(rule) if rule[0] == "content-length-range" => {
                    let (lo, hi) = (rule[1].as_u64().unwrap(), rule[2].as_u64().unwrap());
                    if !(lo..=hi).contains(&size) {
                        return Err(format!("{size} bytes is outside {lo}..={hi}"));
                    }
                }
                Value::Array(rule) => {
                    let name = rule[1].as_str().unwrap();
                    covered.insert(name.trim_start_matches('$').to_ascii_lowercase());
                    let value = value_of(name).unwrap_or_default();
                    let ok = match rule[0].as_str().unwrap() {
                        "eq" => value == rule[2].as_str().unwrap(),
                        "starts-with" => value.starts_with(rule[2].as_str().unwrap()),
                        other => return Err(format!("unknown rule {other}")),
                    };
                    if !ok {
                        return Err(format!("{name} fails {rule:?}"));
                    }
                }
                other => return Err(format!("unreadable condition {other}")),
            }
        }
        for name in form.keys() {
            let name = name.to_ascii_lowercase();
            if !["policy", "x-amz-signature", "file"].contains(&name.as_str()) && !covered.contains(&name) {
                return Err(format!("field {name} is not covered by the policy"));
            }
        }
        Ok(())
    };

    accepts(&fields, 1).expect("a one-byte upload");
    accepts(&fields, max).expect("an upload at the limit");
    let over = accepts(&fields, max + 1).unwrap_err();
    assert!(over.contains("outside"), "{over}");
    assert!(accepts(&fields, 0).is_err(), "an empty body");
    let mut html = fields.clone();
    html.insert("Content-Type".into(), json!("text/html"));
    assert!(accepts(&html, 10).unwrap_err().contains("Content-Type"));
    let mut elsewhere = fields.clone();
    elsewhere.insert("key".into(), json!("photos/overwritten.jpg"));
    assert!(accepts(&elsewhere, 10).unwrap_err().contains("key"));
    let mut extra = fields.clone();
    extra.insert("x-amz-meta-note".into(), json!("unsigned"));
    assert!(accepts(&extra, 10).unwrap_err().contains("not covered"));

    // Expiry: the presign lifetime from now.
    let expiration = policy["expiration"].as_str().unwrap();
    let expires =
        aws_sdk_s3::primitives::DateTime::from_str(expiration, aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .unwrap()
            .secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let lifetime = ticket.body["expires_in"].as_i64().unwrap();
    assert!(
        (expires - now - lifetime).abs() <= 5,
        "{expiration} vs now + {lifetime}s"
    );

    // The signature: SigV4 of the base64 policy, with the key the function holds (the test
    // credentials), the date and region of its credential scope.
    let credential = field("x-amz-credential");
    let scope: Vec<&str> = credential.split('/').collect();
    assert_eq!(scope[0], std::env::var("AWS_ACCESS_KEY_ID").unwrap());
    assert_eq!(&scope[3..], ["s3", "aws4_request"]);
    let date = aws_sdk_s3::primitives::DateTime::from_str(
        &format!("{}-{}-{}T00:00:00Z", &scope[1][..4], &scope[1][4..6], &scope[1][6..]),
        aws_sdk_s3::primitives::DateTimeFormat::DateTime,
    )
    .unwrap();
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(
        &std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
        std::time::SystemTime::try_from(date).unwrap(),
        scope[2],
        "s3",
    );
    let expected = aws_sigv4::sign::v4::calculate_signature(signing_key, field("policy").as_bytes());
    assert_eq!(field("x-amz-signature"), expected);
}

/// Every client mistake: its status, its code, the JSON error shape (checked in `call`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// One row per error case (name, method, path, content type, body, status, code) reads best flat.
#[allow(clippy::type_complexity)]
async fn errors_have_their_status_and_shape() {
    let corpus = corpus().await;
    let known = &corpus.images[0];
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Method, String, Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"text\": ".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "no query",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"top_k\": 3}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "several queries",
            Method::POST,
            "/search".into(),
            json_ct,
            json!({"text": "a", "id": known.id}).to_string().into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"txt\": \"a\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "empty text",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"text\": \"  \"}".to_vec(),
            400,
            "empty_text",
        ),
        (
            "empty GET text",
            Method::GET,
            "/search?q=".into(),
            None,
            vec![],
            400,
            "empty_text",
        ),
        (
            "bad base64",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"image\": \"***\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "not an image",
            Method::POST,
            "/search".into(),
            json_ct,
            json!({"image": b64(b"hello, this is plain text")})
                .to_string()
                .into_bytes(),
            400,
            "not_an_image",
        ),
        (
            "unsupported image",
            Method::POST,
            "/search".into(),
            Some("image/heic"),
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(),
            400,
            "unsupported_format",
        ),
        (
            "corrupt image",
            Method::POST,
            "/search".into(),
            Some("image/png"),
            known.bytes[..known.bytes.len().min(64)].to_vec(),
            400,
            "corrupt_image",
        ),
        (
            "top_k 0",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"text\": \"a\", \"top_k\": 0}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "top_k 101",
            Method::GET,
            "/search?q=a&top_k=101".into(),
            None,
            vec![],
            400,
            "invalid_request",
        ),
        (
            "top_k not a number",
            Method::GET,
            "/search?q=a&top_k=ten".into(),
            None,
            vec![],
            400,
            "invalid_request",
        ),
        (
            "min_score out of range",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"text\": \"a\", \"min_score\": 3}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "bad id",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"id\": \"xyz\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "image_url elsewhere",
            Method::POST,
            "/search".into(),
            json_ct,
            b"{\"image_url\": \"s3://someone-elses-bucket/x.jpg\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "image_url missing object",
            Method::POST,
            "/search".into(),
            json_ct,
            json!({"image_url": format!("s3://{}/{}missing.jpg", corpus.bucket, corpus.prefix)})
                .to_string()
                .into_bytes(),
            404,
            "object_missing",
        ),
        (
            "unknown id",
            Method::POST,
            "/search".into(),
            json_ct,
            json!({"id": "0".repeat(64)}).to_string().into_bytes(),
            404,
            "not_found",
        ),
        (
            "unknown image",
            Method::GET,
            format!("/images/{}", "f".repeat(64)),
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            "bad image id",
            Method::GET,
            "/images/not-a-hash".into(),
            None,
            vec![],
            400,
            "invalid_request",
        ),
        (
            "unknown route",
            Method::GET,
            "/no/such/route".into(),
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            "wrong method",
            Method::DELETE,
            "/search".into(),
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            "text body",
            Method::POST,
            "/search".into(),
            Some("text/plain"),
            b"a red circle".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "upload of a non-image",
            Method::POST,
            "/uploads".into(),
            json_ct,
            b"{\"filename\": \"a.txt\", \"content_type\": \"text/plain\"}".to_vec(),
            400,
            "unsupported_format",
        ),
        (
            "upload without filename",
            Method::POST,
            "/uploads".into(),
            json_ct,
            b"{\"content_type\": \"image/png\"}".to_vec(),
            400,
            "invalid_request",
        ),
        // Over Lambda's 6 MB payload limit: refused before anything is decoded.
        (
            "image over the limit",
            Method::POST,
            "/search".into(),
            Some("image/jpeg"),
            vec![0xFF; 6 * 1024 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            "base64 image over the limit",
            Method::POST,
            "/search".into(),
            json_ct,
            json!({"image": b64(&vec![0u8; 4_800_000])}).to_string().into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, path, ct, body, status, code) in cases {
        let answer = call(method.clone(), &path, ct, body).await;
        let got_code = answer.body["error"]["code"].as_str().unwrap_or_default().to_owned();
        if answer.status.as_u16() != status || got_code != code {
            failures.push(format!(
                "{name}: {method} {path}: expected {status} {code}, got {} {}",
                answer.status, answer.body
            ));
        }
        if status == 405 {
            assert_eq!(answer.allow.as_deref(), Some("GET, POST"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every documented route answers (none is a 404 "no route"), and the page and the document
/// are served.
/// The search function of a second emulator whose Milvus accepts connections and never answers
/// (scripts/test.sh starts it on `LAMBDA_MILVUS_DOWN_PORT`, `MILVUS_URI` at
/// scripts/lib/silent-server.py, `CLIPSEARCH_INVOCATION_TIMEOUT_SECS` playing the function
/// timeout the emulator does not send). Every answer is a 503 with `Retry-After`, naming no
/// address, before the function's timeout: the Milvus client's own timeouts (10 s to connect,
/// 30 s per call) would have let Lambda end the invocation first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_that_never_answers_is_a_503_before_the_function_times_out() {
    let port = std::env::var("LAMBDA_MILVUS_DOWN_PORT")
        .expect("LAMBDA_MILVUS_DOWN_PORT is not set: run through scripts/test.sh");
    let timeout: f64 = std::env::var("LAMBDA_MILVUS_DOWN_TIMEOUT_SECS")
        .expect("set by scripts/test.sh")
        .parse()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/lambda-url/search");
    let within_timeout = |took: std::time::Duration, what: &str| {
        let took = took.as_secs_f64();
        assert!(
            took < timeout,
            "{what} took {took:.1} s, the function's timeout is {timeout} s"
        );
    };

    let health = emulator::send(emulator::client().get(format!("{base}/health"))).await;
    within_timeout(health.took, "GET /health");
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = serde_json::from_slice(&health.body).unwrap();
    check_schema(&json!({"$ref": "#/components/schemas/Health"}), &health, "health 503");
    assert_eq!(health["status"], "unavailable", "{health}");
    assert_eq!(health["milvus"]["reachable"], false, "{health}");

    let response = emulator::send(
        emulator::client()
            .post(format!("{base}/search"))
            .json(&json!({"text": "a photo of a red circle"})),
    )
    .await;
    within_timeout(response.took, "POST /search");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header("retry-after"), Some("5"));
    let answer = call_at(
        &base,
        Method::POST,
        "/search",
        Some("application/json"),
        json!({"text": "a photo of a red circle"}).to_string().into_bytes(),
    )
    .await;
    within_timeout(answer.took, "POST /search (again)");
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["error"]["code"], "index_unavailable", "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("127.0.0.1"), "names an address: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists() {
    let served = call(Method::GET, "/openapi.json", None, vec![]).await;
    assert_eq!(&served.body, doc(), "/openapi.json serves the repository's document");
    let id = "a".repeat(64);
    let mut seen = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", &id);
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let body = if method == Method::POST { b"{}".to_vec() } else { vec![] };
            let answer = call(method.clone(), &concrete, Some("application/json"), body).await;
            let route_missing = answer.status == StatusCode::NOT_FOUND
                && answer.body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no route");
            assert!(
                !route_missing && answer.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {}",
                answer.body
            );
            seen.insert(format!("{method} {path}"));
        }
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
    let page = call(Method::GET, "/", None, vec![]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.as_str().unwrap().contains("<title>clipsearch</title>"));
}
