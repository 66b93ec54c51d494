//! The Milvus image index against a real Milvus (started by `scripts/milvus.sh up`, which
//! `make test` runs first). Reads `MILVUS_URI` (default http://127.0.0.1:19530). Every test
//! works in its own collection, named after the test, process and time, and drops it at the
//! end, so tests run concurrently and repeatedly. An unreachable Milvus fails every test.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clipsearch::capture::{CaptureSource, CaptureTime};
use clipsearch::config::{MilvusIndexKind, MilvusSettings};
use clipsearch::store::{
    ImageIndex, ImageRecord, IndexSpec, IndexedObject, KeyRange, Location, MilvusIndex, RowFilter, SearchRequest,
    MAX_RESULT_WINDOW,
};
use clipsearch::Error;
use common::rng::Rng;
use sha2::{Digest, Sha256};

const DIM: usize = 512;
const MODEL: &str = "test-clip-512";
const BUCKET: &str = "photos";

fn unique_collection(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("t_{test}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn settings(collection: &str, index: MilvusIndexKind) -> MilvusSettings {
    let mut settings = MilvusSettings::from_env().expect("MILVUS_* environment");
    settings.collection = collection.to_owned();
    settings.index = index;
    settings.connect_timeout = Duration::from_secs(10);
    settings
}

async fn open_with(collection: &str, dimension: usize, model: &str) -> Result<MilvusIndex, Error> {
    open_spec(
        collection,
        IndexSpec {
            dimension,
            model: model.to_owned(),
            text_model: None,
        },
    )
    .await
}

async fn open_spec(collection: &str, spec: IndexSpec) -> Result<MilvusIndex, Error> {
    let settings = settings(collection, MilvusIndexKind::Hnsw);
    let index = MilvusIndex::connect(&settings, spec).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach Milvus at {} ({e}). Start it with `scripts/milvus.sh up` (or `make \
             milvus-up`) and point MILVUS_URI at it; these tests need a real server",
            settings.uri
        )
    });
    index.ensure_collection().await?;
    Ok(index)
}

async fn open(test: &str) -> MilvusIndex {
    open_with(&unique_collection(test), DIM, MODEL)
        .await
        .expect("ensure_collection")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn record(content: &str, embedding: Vec<f32>, keys: &[&str]) -> ImageRecord {
    ImageRecord {
        id: sha256_hex(content.as_bytes()),
        embedding,
        locations: keys.iter().map(|k| Location::new(BUCKET, *k)).collect(),
        content_type: "image/jpeg".into(),
        width: 640,
        height: 480,
        byte_size: content.len() as u64,
        ingested_at_ms: 1_700_000_000_000,
        model: MODEL.into(),
        captured: CaptureTime {
            ms: 1_600_000_000_000,
            source: CaptureSource::Exif,
        },
    }
}

const DAY_MS: i64 = 86_400_000;

fn query(vector: &[f32], top_k: usize) -> SearchRequest {
    SearchRequest {
        vector: vector.to_vec(),
        top_k,
        ..Default::default()
    }
}

/// Runs the body, then drops the collection whatever happened, then reports.
macro_rules! with_cleanup {
    ($index:expr, $body:block) => {{
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async $body)).await;
        let dropped = $index.drop_collection().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        dropped.expect("drop the test collection");
    }};
}

#[tokio::test]
async fn ensure_creates_then_reuses_the_collection() {
    let name = unique_collection("ensure");
    let index = open_with(&name, DIM, MODEL).await.expect("create");
    with_cleanup!(index, {
        assert_eq!(index.count().await.unwrap(), 0);
        // A second process (here: a second client) accepts the existing collection.
        let again = open_with(&name, DIM, MODEL).await.expect("reuse");
        again.ensure_collection().await.expect("idempotent");
        index.health().await.expect("healthy");
    });
}

/// The collection records the image model and the separate text tower it was created with, as
/// Milvus itself reports them (read with the SDK, not through our own code).
#[tokio::test]
async fn the_collection_records_the_image_model_and_its_text_tower() {
    let name = unique_collection("towers");
    let spec = IndexSpec {
        dimension: DIM,
        model: MODEL.into(),
        text_model: Some("tiny-multilingual".into()),
    };
    let index = open_spec(&name, spec).await.expect("create");
    with_cleanup!(index, {
        let settings = settings(&name, MilvusIndexKind::Hnsw);
        let client =
            milvus::v2::prelude::ClientV2::new(&milvus::v2::prelude::ConnectConfig::new().uri(settings.uri.clone()))
                .await
                .expect("SDK client");
        let described = client
            .describe_collection(
                milvus::v2::prelude::DescribeCollectionRequest::builder()
                    .collection_name(&name)
                    .build()
                    .unwrap(),
            )
            .await
            .expect("describe");
        let properties = described.description().get_properties();
        assert_eq!(properties.get("clipsearch.model").map(String::as_str), Some(MODEL));
        assert_eq!(
            properties.get("clipsearch.text_model").map(String::as_str),
            Some("tiny-multilingual"),
            "{properties:?}"
        );
        // A process without the tower (ingest on Lambda) uses the same collection.
        open_with(&name, DIM, MODEL).await.expect("same image model, no tower");
    });
}

#[tokio::test]
async fn another_dimension_or_model_is_refused() {
    let name = unique_collection("mismatch");
    let index = open_with(&name, DIM, MODEL).await.expect("create");
    with_cleanup!(index, {
        let other_dim = open_with(&name, 768, MODEL).await;
        match other_dim {
            Err(Error::SchemaMismatch(message)) => {
                assert!(message.contains("512") && message.contains("768"), "{message}")
            }
            other => panic!("dimension mismatch accepted: {other:?}"),
        }
        let other_model = open_with(&name, DIM, "another-model").await;
        match other_model {
            Err(Error::SchemaMismatch(message)) => {
                assert!(message.contains("another-model"), "{message}")
            }
            other => panic!("model mismatch accepted: {other:?}"),
        }
        // A record embedded by another model is refused too.
        let mut foreign = record("foreign", Rng(1).unit_vector(DIM), &["f.jpg"]);
        foreign.model = "another-model".into();
        assert!(matches!(index.upsert(foreign).await, Err(Error::SchemaMismatch(_))));
        assert_eq!(index.count().await.unwrap(), 0);
    });
}

#[tokio::test]
async fn thousand_records_search_filters_and_count() {
    let index = open("bulk").await;
    with_cleanup!(index, {
        let mut rng = Rng(42);
        let records: Vec<ImageRecord> = (0..1000)
            .map(|i| {
                let folder = if i % 2 == 0 { "even" } else { "odd" };
                let key = format!("{folder}/{i:04}.jpg");
                let mut r = record(&format!("image-{i}"), rng.unit_vector(DIM), &[&key]);
                // Scalars for the row filters: every third a PNG, widths 100..1099, a day apart.
                if i % 3 == 0 {
                    r.content_type = "image/png".into();
                }
                r.width = 100 + i as u32;
                r.captured.ms += i as i64 * DAY_MS;
                r
            })
            .collect();
        index.upsert_many(&records).await.unwrap();
        assert_eq!(index.count().await.unwrap(), 1000);

        // A record's own vector finds it first, with cosine ≈ 1.
        for r in records.iter().step_by(97) {
            let hits = index.search(&query(&r.embedding, 10)).await.unwrap();
            assert_eq!(hits.len(), 10);
            assert_eq!(hits[0].id, r.id);
            assert!((hits[0].score - 1.0).abs() < 1e-3, "score {}", hits[0].score);
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            assert_eq!(hits[0].locations, r.locations);
            assert_eq!((hits[0].width, hits[0].height), (r.width, 480));
            assert_eq!(hits[0].content_type, r.content_type);
            assert_eq!(hits[0].captured, r.captured);
            assert_eq!(hits[0].byte_size, r.byte_size);
        }

        let probe = &records[10];
        // top_k bounds.
        assert_eq!(index.search(&query(&probe.embedding, 1)).await.unwrap().len(), 1);
        assert_eq!(index.search(&query(&probe.embedding, 100)).await.unwrap().len(), 100);
        // The whole window (a date sort's), every content once.
        let all = index.search(&query(&probe.embedding, MAX_RESULT_WINDOW)).await.unwrap();
        assert_eq!(all.len(), 1000);
        assert_eq!(all.iter().map(|h| &h.id).collect::<HashSet<_>>().len(), 1000);
        for bad in [0, MAX_RESULT_WINDOW + 1] {
            assert!(matches!(
                index.search(&query(&probe.embedding, bad)).await,
                Err(Error::InvalidRequest(_))
            ));
        }
        // Wrong dimension is the caller's mistake.
        assert!(matches!(
            index.search(&query(&probe.embedding[..100], 5)).await,
            Err(Error::InvalidRequest(_))
        ));

        // min_score: random 512-d vectors are nearly orthogonal, so only the record itself
        // clears 0.9.
        let strict = SearchRequest {
            min_score: Some(0.9),
            ..query(&probe.embedding, 50)
        };
        let hits = index.search(&strict).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, probe.id);

        // Exclusion ("more like this").
        let excluded = SearchRequest {
            exclude_id: Some(probe.id.clone()),
            ..query(&probe.embedding, 20)
        };
        let hits = index.search(&excluded).await.unwrap();
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|h| h.id != probe.id));

        // Key prefix: only odd/ records, even when asking with an even record's vector.
        let odd_only = SearchRequest {
            key_prefix: Some("odd/".into()),
            ..query(&probe.embedding, 30)
        };
        let hits = index.search(&odd_only).await.unwrap();
        assert_eq!(hits.len(), 30);
        assert!(hits.iter().all(|h| h.locations[0].key.starts_with("odd/")));
        // A narrower prefix: odd/0011.jpg .. odd/0019.jpg, the five odd ones.
        let narrow = SearchRequest {
            key_prefix: Some("odd/001".into()),
            ..query(&probe.embedding, 100)
        };
        let mut keys: Vec<String> = index
            .search(&narrow)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.locations[0].key.clone())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "odd/0011.jpg",
                "odd/0013.jpg",
                "odd/0015.jpg",
                "odd/0017.jpg",
                "odd/0019.jpg"
            ]
        );
        // A prefix nothing has.
        let none = SearchRequest {
            key_prefix: Some("nothing/".into()),
            ..query(&probe.embedding, 10)
        };
        assert!(index.search(&none).await.unwrap().is_empty());

        // Row filters, each alone and together, against the records' own scalars.
        let taken = |day: i64| 1_600_000_000_000 + day * DAY_MS;
        let filters = [
            RowFilter {
                content_types: vec!["image/png".into()],
                ..Default::default()
            },
            RowFilter {
                min_width: Some(900),
                ..Default::default()
            },
            RowFilter {
                captured_from_ms: Some(taken(100)),
                captured_until_ms: Some(taken(110)),
                ..Default::default()
            },
            RowFilter {
                content_types: vec!["image/jpeg".into()],
                min_width: Some(600),
                captured_until_ms: Some(taken(700)),
                ..Default::default()
            },
        ];
        for filter in filters {
            let expected: HashSet<&str> = records
                .iter()
                .filter(|r| filter.matches(&IndexedObject::of_record(r, r.locations[0].clone())))
                .map(|r| r.id.as_str())
                .collect();
            let hits = index
                .search(&SearchRequest {
                    filter: filter.clone(),
                    ..query(&probe.embedding, MAX_RESULT_WINDOW)
                })
                .await
                .unwrap();
            let found: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            assert!(!expected.is_empty());
            assert_eq!(found, expected, "{filter:?}");
        }
    });
}

#[tokio::test]
async fn same_content_under_two_keys_is_one_content_with_two_rows() {
    let index = open("dupes").await;
    with_cleanup!(index, {
        let mut rng = Rng(7);
        let vector = rng.unit_vector(DIM);
        let first = record("cat", vector.clone(), &["a/cat.jpg"]);
        let id = first.id.clone();
        assert!(!index.exists(&id).await.unwrap());
        index.upsert(first.clone()).await.unwrap();
        assert!(index.exists(&id).await.unwrap());
        // The same bytes under another key: a row of its own, the same content.
        index
            .upsert(record("cat", vector.clone(), &["b/cat copy.jpg"]))
            .await
            .unwrap();
        assert_eq!(index.count().await.unwrap(), 2, "one row per object");
        let stored = index.get(&id).await.unwrap().expect("record");
        assert_eq!(
            stored.locations,
            vec![
                Location::new(BUCKET, "a/cat.jpg"),
                Location::new(BUCKET, "b/cat copy.jpg")
            ]
        );
        assert_eq!(stored.embedding.len(), DIM);
        assert!(stored.embedding.iter().zip(&vector).all(|(a, b)| (a - b).abs() < 1e-6));
        assert_eq!(stored.model, MODEL);
        let copied = index.vector_of(&id).await.unwrap().expect("a row with the vector");
        assert_eq!(copied.embedding.len(), DIM);

        let third = Location::new("archive", "c/cat.jpg");
        index
            .put_object(IndexedObject::of_record(&stored, third.clone()))
            .await
            .unwrap();
        index
            .put_object(IndexedObject::of_record(&stored, third.clone()))
            .await
            .unwrap();
        assert_eq!(index.get(&id).await.unwrap().unwrap().locations.len(), 3, "idempotent");
        // Upper-case ids are the same id.
        assert!(index.exists(&id.to_uppercase()).await.unwrap());
        // One search hit for the content, listing all three.
        let hits = index.search(&query(&vector, 5)).await.unwrap();
        assert_eq!(hits[0].locations.len(), 3);
        assert_eq!(hits.iter().filter(|h| h.id == id).count(), 1);

        // Same key in another bucket is a different object.
        assert_eq!(
            index
                .remove_object(&Location::new("elsewhere", "a/cat.jpg"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            index.remove_object(&Location::new(BUCKET, "a/cat.jpg")).await.unwrap(),
            Some(id.clone())
        );
        index
            .remove_object(&Location::new(BUCKET, "b/cat copy.jpg"))
            .await
            .unwrap();
        assert_eq!(index.count().await.unwrap(), 1);
        let hits = index.search(&query(&vector, 5)).await.unwrap();
        assert_eq!(hits[0].locations, vec![third.clone()]);

        assert_eq!(index.remove_object(&third).await.unwrap(), Some(id.clone()));
        assert!(!index.exists(&id).await.unwrap());
        assert!(index.get(&id).await.unwrap().is_none());
        assert_eq!(index.count().await.unwrap(), 0);
        assert_eq!(index.remove_object(&third).await.unwrap(), None);
    });
}

#[tokio::test]
async fn an_overwritten_key_holds_only_the_new_content() {
    let index = open("moves").await;
    with_cleanup!(index, {
        let mut rng = Rng(9);
        let old = record("old bytes", rng.unit_vector(DIM), &["same/key.jpg"]);
        let kept = record("kept bytes", rng.unit_vector(DIM), &["same/key.jpg", "other.jpg"]);
        index.upsert(old.clone()).await.unwrap();
        // New bytes written to the same key replace that object's row, and only that row.
        let new = record("new bytes", rng.unit_vector(DIM), &["same/key.jpg"]);
        index.upsert(new.clone()).await.unwrap();
        assert!(!index.exists(&old.id).await.unwrap());
        assert!(index.exists(&new.id).await.unwrap());
        index.upsert(kept.clone()).await.unwrap();
        assert!(!index.exists(&new.id).await.unwrap());
        assert_eq!(index.get(&kept.id).await.unwrap().unwrap().locations.len(), 2);
        assert_eq!(index.count().await.unwrap(), 2);
        let row = index
            .object(&Location::new(BUCKET, "same/key.jpg"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.id, kept.id);
        assert!(row.embedding.is_empty(), "point reads leave the vector out");
    });
}

#[tokio::test]
async fn hostile_keys_are_stored_and_matched_literally() {
    let index = open("hostile").await;
    with_cleanup!(index, {
        let hostile = [
            r#"quote"inside.jpg"#,
            r"back\slash\",
            r#"" or 1==1"#,
            r#"x" or id != "y"#,
            r#"") or (id != ""#,
            "100%_off.jpg",
            "line\nbreak\ttab.jpg",
            "unicodé/😀.png",
            "keys[0] >= \"\"",
            // Raw in the literal on every engine but the line breaks, which are escaped.
            "ctrl\r\u{1}\u{1b}[0m\u{7f}.jpg",
            "wide\u{2028}\u{10FFFF}.jpg",
        ];
        let mut rng = Rng(11);
        let mut records = Vec::new();
        for (i, key) in hostile.iter().enumerate() {
            let r = record(&format!("hostile-{i}"), rng.unit_vector(DIM), &[key]);
            index.upsert(r.clone()).await.unwrap();
            records.push(r);
        }
        let plain = record("plain", rng.unit_vector(DIM), &["plain.jpg"]);
        index.upsert(plain.clone()).await.unwrap();
        assert_eq!(index.count().await.unwrap(), hostile.len() as u64 + 1);

        // Stored byte for byte.
        for (r, key) in records.iter().zip(hostile) {
            let stored = index.get(&r.id).await.unwrap().expect("stored");
            assert_eq!(stored.locations, vec![Location::new(BUCKET, key)]);
        }
        // A prefix is a literal prefix: it matches only its own record, never everything.
        for (r, key) in records.iter().zip(hostile) {
            let request = SearchRequest {
                key_prefix: Some(key.to_string()),
                ..query(&plain.embedding, 100)
            };
            let hits = index.search(&request).await.unwrap();
            assert_eq!(hits.len(), 1, "prefix {key:?} matched {hits:?}");
            assert_eq!(hits[0].id, r.id);
        }
        let percent = SearchRequest {
            key_prefix: Some("100%".into()),
            ..query(&plain.embedding, 100)
        };
        assert_eq!(index.search(&percent).await.unwrap().len(), 1);
        let underscore = SearchRequest {
            key_prefix: Some("100_".into()),
            ..query(&plain.embedding, 100)
        };
        assert!(index.search(&underscore).await.unwrap().is_empty());

        // Hostile ids are refused before reaching Milvus.
        for bad_id in [r#"" or 1==1"#, "*", ""] {
            assert!(matches!(index.exists(bad_id).await, Err(Error::InvalidRequest(_))));
            let request = SearchRequest {
                exclude_id: Some(bad_id.to_string()),
                ..query(&plain.embedding, 5)
            };
            assert!(matches!(index.search(&request).await, Err(Error::InvalidRequest(_))));
        }

        // A listing range bounded by hostile keys is literal too.
        for key in hostile {
            let range = KeyRange {
                bucket: BUCKET.into(),
                prefix: key.to_string(),
                ..Default::default()
            };
            let rows = index.objects_in(&range, 100).await.unwrap();
            assert!(
                rows.iter().all(|r| r.location.key.starts_with(key)),
                "{key:?}: {rows:?}"
            );
            assert!(rows.iter().any(|r| r.location.key == key), "{key:?}");
        }

        // Removing a hostile key touches its row only.
        for (i, (r, key)) in records.iter().zip(hostile).enumerate() {
            assert_eq!(
                index.remove_object(&Location::new(BUCKET, key)).await.unwrap(),
                Some(r.id.clone())
            );
            assert_eq!(
                index.count().await.unwrap(),
                (hostile.len() - i) as u64,
                "after removing {key:?}"
            );
        }
        assert!(index.exists(&plain.id).await.unwrap());
    });
}

#[tokio::test]
async fn many_keys_of_one_content_are_one_hit_and_top_k_stays_distinct() {
    let index = open("popular").await;
    with_cleanup!(index, {
        let mut rng = Rng(3);
        // One content under 300 keys (far more than the 16 the old layout allowed), and 40
        // other contents: the popular one is nearest to the probe, its copies must not crowd
        // the others out of the top 10.
        let keys: Vec<String> = (0..300).map(|i| format!("copy/{i:03}.jpg")).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let popular = record("popular", rng.unit_vector(DIM), &key_refs);
        let others: Vec<ImageRecord> = (0..40)
            .map(|i| {
                // Near the popular vector, so they rank right after its copies.
                let noise = rng.unit_vector(DIM);
                let mixed: Vec<f32> = popular.embedding.iter().zip(&noise).map(|(p, n)| p + 0.6 * n).collect();
                record(&format!("other-{i}"), mixed, &[&format!("other/{i:02}.jpg")])
            })
            .collect();
        let mut all = vec![popular.clone()];
        all.extend(others.iter().cloned());
        index.upsert_many(&all).await.unwrap();
        assert_eq!(index.count().await.unwrap(), 340);

        let hits = index.search(&query(&popular.embedding, 10)).await.unwrap();
        assert_eq!(hits.len(), 10, "top_k distinct contents");
        let ids: std::collections::HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids.len(), 10, "no content twice");
        assert_eq!(hits[0].id, popular.id);
        assert_eq!(hits[0].locations.len(), 300, "every location of the content");
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

        // A prefix matching only the last copy still finds the content, that key first.
        let last = SearchRequest {
            key_prefix: Some("copy/299.".into()),
            ..query(&popular.embedding, 5)
        };
        let hits = index.search(&last).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].locations[0].key, "copy/299.jpg");
        assert_eq!(hits[0].locations.len(), 300);

        // "More like this" on the popular content: its copies are all left out.
        let more = SearchRequest {
            exclude_id: Some(popular.id.clone()),
            ..query(&popular.embedding, 10)
        };
        let hits = index.search(&more).await.unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.id != popular.id));

        // Many contents each under many keys: still top_k distinct contents.
        let crowd: Vec<ImageRecord> = (0..15)
            .map(|i| {
                let keys: Vec<String> = (0..30).map(|k| format!("crowd/{i:02}/{k:02}.jpg")).collect();
                let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let noise = rng.unit_vector(DIM);
                let mixed: Vec<f32> = popular.embedding.iter().zip(&noise).map(|(p, n)| p + 0.3 * n).collect();
                record(&format!("crowd-{i}"), mixed, &key_refs)
            })
            .collect();
        index.upsert_many(&crowd).await.unwrap();
        let crowded = SearchRequest {
            key_prefix: Some("crowd/".into()),
            ..query(&popular.embedding, 10)
        };
        let hits = index.search(&crowded).await.unwrap();
        assert_eq!(hits.len(), 10, "10 distinct contents out of 15 × 30 rows");
        assert!(hits.iter().all(|h| h.locations.len() == 30));

        // A listing range sees exactly its keys.
        let range = KeyRange {
            bucket: BUCKET.into(),
            prefix: "copy/".into(),
            after: Some("copy/099.jpg".into()),
            through: Some("copy/199.jpg".into()),
        };
        let rows = index.objects_in(&range, 1000).await.unwrap();
        assert_eq!(rows.len(), 100);
        assert!(
            matches!(index.objects_in(&range, 50).await, Err(Error::Store(_))),
            "a range over the limit is an error, not a cut"
        );
    });
}

#[tokio::test]
async fn a_collection_of_the_old_layout_is_refused_with_the_migration() {
    use milvus::v2::prelude::{
        ClientV2, CollectionSchema, ConnectConfig, CreateCollectionRequest, DataType, DropCollectionRequest,
        FieldSchema,
    };
    let name = unique_collection("oldlayout");
    let settings = settings(&name, MilvusIndexKind::Hnsw);
    let client = ClientV2::new(&ConnectConfig::new().uri(settings.uri.clone()))
        .await
        .unwrap();
    let schema = CollectionSchema::new()
        .add_field(
            FieldSchema::new()
                .name("id")
                .data_type(DataType::VarChar)
                .max_length(64)
                .primary_key(true),
        )
        .add_field(
            FieldSchema::new()
                .name("embedding")
                .data_type(DataType::FloatVector)
                .dimension(DIM as u32),
        );
    client
        .create_collection(
            CreateCollectionRequest::builder()
                .collection_name(&name)
                .schema(schema)
                .properties(std::collections::HashMap::from([
                    ("clipsearch.model".to_owned(), MODEL.to_owned()),
                    ("clipsearch.schema_version".to_owned(), "1".to_owned()),
                ]))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let refused = open_with(&name, DIM, MODEL).await;
    client
        .drop_collection(DropCollectionRequest::builder().collection_name(&name).build().unwrap())
        .await
        .unwrap();
    match refused {
        Err(clipsearch::Error::SchemaMismatch(message)) => {
            assert!(
                message.contains("reconcile") && message.contains("--apply"),
                "{message}"
            )
        }
        other => panic!("an old-layout collection was accepted: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let mut settings = settings("unused", MilvusIndexKind::Hnsw);
    settings.uri = "http://127.0.0.1:9".into();
    settings.connect_timeout = Duration::from_secs(2);
    let spec = IndexSpec {
        dimension: DIM,
        model: MODEL.into(),
        text_model: None,
    };
    match MilvusIndex::connect(&settings, spec).await {
        Err(e) => assert!(e.is_transient(), "{e:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}
