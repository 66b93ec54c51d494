//! The ingest use case over a fake encoder, the in-memory index and fake S3.

use super::*;
use crate::clip::{Embedding, ImageEmbedding, SniffedFormat};
use crate::events::{ObjectEvent, SqsMessage};
use crate::objects::FetchedObject;
use crate::status::StatusRecord;
use crate::store::MemoryIndex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Accepts bytes starting with "IMG", embeds them as a fixed unit vector.
struct FakeEncoder {
    calls: AtomicUsize,
}

impl Encoder for FakeEncoder {
    fn model_name(&self) -> &str {
        "fake"
    }
    fn dimension(&self) -> usize {
        2
    }
    fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !bytes.starts_with(b"IMG") {
            return Err(Error::NotAnImage("no magic".into()));
        }
        Ok(ImageEmbedding {
            embedding: vec![1.0, 0.0],
            format: SniffedFormat::Png,
            width: 3,
            height: 4,
            thumbnail: Some(b"JPEG".to_vec()),
        })
    }
    fn embed_text(&self, _: &str) -> Result<Embedding> {
        Err(Error::Config("no text".into()))
    }
}

/// Objects in a map; keys starting with "down" fail like an unreachable S3.
struct FakeObjects(
    std::sync::Mutex<HashMap<(String, String), Vec<u8>>>,
    /// Bytes that overwrite a key right after its next GET (an upload landing mid-ingest).
    std::sync::Mutex<Option<(String, Vec<u8>)>>,
    /// Status records by location.
    std::sync::Mutex<HashMap<Location, StatusRecord>>,
    /// Thumbnails by (bucket, content id), and how many were written.
    std::sync::Mutex<(std::collections::HashSet<(String, String)>, usize)>,
);

fn fake_version(bytes: &[u8]) -> ObjectVersion {
    ObjectVersion {
        etag: hex::encode(&Sha256::digest(bytes)[..8]),
        size: bytes.len() as u64,
        modified_ms: 0,
    }
}

impl FakeObjects {
    fn bytes(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        if key.starts_with("down") {
            return Err(Error::ObjectStoreUnavailable("test".into()));
        }
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned())
    }
}

impl ObjectSource for FakeObjects {
    async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
        let bytes = self.bytes(bucket, key)?.ok_or_else(|| Error::ObjectMissing {
            bucket: bucket.into(),
            key: key.into(),
        })?;
        if bytes.len() as u64 > max_bytes {
            return Err(Error::ImageTooLarge {
                size: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        let overwrite = self.1.lock().unwrap().take_if(|(k, _)| k == key);
        if let Some((k, newer)) = overwrite {
            self.0.lock().unwrap().insert((bucket.to_owned(), k), newer);
        }
        Ok(FetchedObject {
            version: fake_version(&bytes),
            bytes,
            content_type: None,
        })
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<crate::objects::ObjectState> {
        // What S3 answers without s3:ListBucket: a 403 whether or not the key exists.
        if key.starts_with("nolist/") && self.bytes(bucket, key)?.is_none() {
            return Ok(crate::objects::ObjectState::Unreadable("403 AccessDenied".into()));
        }
        Ok(match self.bytes(bucket, key)? {
            Some(bytes) => crate::objects::ObjectState::Present(fake_version(&bytes)),
            None => crate::objects::ObjectState::Absent,
        })
    }
}

impl StatusStore for FakeObjects {
    async fn record_status(&self, record: &StatusRecord) -> Result<()> {
        self.2.lock().unwrap().insert(record.location(), record.clone());
        Ok(())
    }
    async fn clear_status(&self, location: &Location) -> Result<()> {
        self.2.lock().unwrap().remove(location);
        Ok(())
    }
    async fn read_status(&self, location: &Location) -> Result<Option<StatusRecord>> {
        Ok(self.2.lock().unwrap().get(location).cloned())
    }
}

impl ThumbnailStore for FakeObjects {
    fn thumbnail_key(&self, id: &str) -> Option<String> {
        Some(format!("thumbs/{id}"))
    }
    async fn put_thumbnail(&self, bucket: &str, id: &str, _jpeg: Vec<u8>) -> Result<()> {
        let mut thumbnails = self.3.lock().unwrap();
        thumbnails.0.insert((bucket.to_owned(), id.to_owned()));
        thumbnails.1 += 1;
        Ok(())
    }
    async fn remove_thumbnail(&self, bucket: &str, id: &str) -> Result<()> {
        self.3.lock().unwrap().0.remove(&(bucket.to_owned(), id.to_owned()));
        Ok(())
    }
}

fn ingestor(objects: &[(&str, &[u8])]) -> Ingestor<FakeEncoder, MemoryIndex, FakeObjects> {
    let map = objects
        .iter()
        .map(|(k, v)| (("b".to_owned(), (*k).to_owned()), v.to_vec()))
        .collect();
    let spec = IndexSpec {
        dimension: 2,
        model: "fake".into(),
        text_model: None,
    };
    Ingestor::new(
        Arc::new(FakeEncoder {
            calls: AtomicUsize::new(0),
        }),
        MemoryIndex::new(spec),
        FakeObjects(
            std::sync::Mutex::new(map),
            std::sync::Mutex::new(None),
            std::sync::Mutex::default(),
            std::sync::Mutex::default(),
        ),
        1000,
    )
}

fn created(key: &str) -> ObjectEvent {
    ObjectEvent::Created {
        location: Location::new("b", key),
        size: None,
    }
}

#[tokio::test]
async fn one_thumbnail_per_content_goes_with_its_last_object() {
    let ing = ingestor(&[("a", b"IMG1"), ("b", b"IMG1"), ("c", b"IMG2")]);
    for key in ["a", "b", "c", "a"] {
        ing.handle(&created(key)).await.outcome.unwrap();
    }
    let id1 = hex::encode(Sha256::digest(b"IMG1"));
    let thumbnails = |ing: &Ingestor<FakeEncoder, MemoryIndex, FakeObjects>| ing.objects().3.lock().unwrap().clone();
    let (present, written) = thumbnails(&ing);
    assert_eq!(
        (present.len(), written),
        (2, 2),
        "one per content, made once: {present:?}"
    );
    let gone = |ing: &Ingestor<FakeEncoder, MemoryIndex, FakeObjects>, key: &str| {
        ing.objects()
            .0
            .lock()
            .unwrap()
            .remove(&("b".to_owned(), key.to_owned()));
    };
    gone(&ing, "a");
    ing.remove_object(&Location::new("b", "a")).await.unwrap();
    assert!(
        thumbnails(&ing).0.contains(&("b".to_owned(), id1.clone())),
        "b still holds IMG1"
    );
    gone(&ing, "b");
    ing.remove_object(&Location::new("b", "b")).await.unwrap();
    assert!(
        !thumbnails(&ing).0.contains(&("b".to_owned(), id1)),
        "the last object took it"
    );
    assert_eq!(thumbnails(&ing).0.len(), 1);
    // An overwrite with other bytes: the old content's thumbnail goes, the new one's comes.
    ing.objects()
        .0
        .lock()
        .unwrap()
        .insert(("b".to_owned(), "c".to_owned()), b"IMG3".to_vec());
    ing.handle(&created("c")).await.outcome.unwrap();
    let ids: Vec<String> = thumbnails(&ing).0.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, vec![hex::encode(Sha256::digest(b"IMG3"))]);
}

#[tokio::test]
async fn duplicates_and_redelivery_cost_no_inference() {
    let ing = ingestor(&[("a", b"IMG1"), ("b", b"IMG1")]);
    let reports = ing.handle_events(&[created("a"), created("b"), created("a")]).await;
    let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_ref().unwrap().as_str()).collect();
    // "a" twice in order; "b" concurrently with them, after or before the first "a".
    assert_eq!(outcomes[2], "unchanged");
    assert_eq!(ing.encoder().calls.load(Ordering::SeqCst), 1);
    assert_eq!(ing.index().count().await.unwrap(), 2, "a row per object");
    let id = reports[0].id.clone().unwrap();
    let record = ing.index().get(&id).await.unwrap().unwrap();
    assert_eq!(record.locations.len(), 2);
    assert_eq!((record.width, record.height, record.byte_size), (3, 4, 4));
}

#[tokio::test]
async fn errors_are_sorted_for_the_queue() {
    let ing = ingestor(&[("good", b"IMG2"), ("text", b"hello"), ("big", &[b'I'; 2000])]);
    let messages: Vec<SqsMessage> = ["good", "text", "big", "gone", "down"]
        .iter()
        .map(|k| SqsMessage {
            message_id: format!("m-{k}"),
            body: crate::events::notification_body(&[created(k)]).to_string(),
        })
        .chain([SqsMessage {
            message_id: "m-junk".into(),
            body: "not json".into(),
        }])
        .collect();
    let report = ing.handle_sqs(&messages).await;
    assert_eq!(report.failed_message_ids, vec!["m-down".to_string()]);
    assert_eq!(report.unreadable.len(), 1);
    let codes: Vec<_> = report
        .records
        .iter()
        .map(|r| r.outcome.as_ref().map_err(|e| e.code()).err())
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            Some("not_an_image"),
            Some("image_too_large"),
            Some("object_missing"),
            Some("object_store_unavailable")
        ]
    );
}

#[tokio::test]
async fn refusals_and_failures_are_recorded_until_the_key_is_indexed_or_gone() {
    use crate::status::Standing;
    let ing = ingestor(&[("text", b"hello"), ("down-1", b"IMG")]);
    ing.handle(&created("text")).await;
    ing.handle(&created("down-1")).await;
    ing.handle(&created("never-there")).await;
    let status = |key: &str| ing.objects().2.lock().unwrap().get(&Location::new("b", key)).cloned();
    let refused = status("text").expect("refusal recorded");
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (Standing::Refused, "not_an_image")
    );
    assert!(refused.at_ms > 0);
    let failing = status("down-1").expect("failure recorded");
    assert_eq!(
        (failing.status, failing.code.as_str()),
        (Standing::Failing, "object_store_unavailable")
    );
    assert_eq!(status("never-there"), None, "a missing object is no refusal");
    // Fixed: the same key now holds an image.
    ing.objects()
        .0
        .lock()
        .unwrap()
        .insert(("b".into(), "text".into()), b"IMG-fixed".to_vec());
    assert!(matches!(
        ing.handle(&created("text")).await.outcome,
        Ok(Outcome::Indexed { .. })
    ));
    assert_eq!(status("text"), None, "indexed clears the refusal");
    // A refused key that is deleted loses its record too.
    ing.objects()
        .0
        .lock()
        .unwrap()
        .insert(("b".into(), "notes".into()), b"text".to_vec());
    ing.handle(&created("notes")).await;
    assert!(status("notes").is_some());
    ing.objects()
        .0
        .lock()
        .unwrap()
        .remove(&("b".to_string(), "notes".to_string()));
    ing.handle(&ObjectEvent::Removed {
        location: Location::new("b", "notes"),
    })
    .await;
    assert_eq!(status("notes"), None);
}

#[tokio::test]
async fn a_stale_removal_leaves_the_object_indexed() {
    let ing = ingestor(&[("a", b"IMG3")]);
    ing.handle(&created("a")).await.outcome.unwrap();
    let removed = ObjectEvent::Removed {
        location: Location::new("b", "a"),
    };
    // The key still holds its object: the removal is stale and changes nothing.
    assert!(matches!(
        ing.handle(&removed).await.outcome.unwrap(),
        Outcome::Unchanged { .. }
    ));
    ing.objects().0.lock().unwrap().clear();
    assert!(matches!(
        ing.handle(&removed).await.outcome.unwrap(),
        Outcome::RecordDeleted { .. }
    ));
    assert_eq!(ing.handle(&removed).await.outcome.unwrap(), Outcome::NotIndexed);
}

#[tokio::test]
async fn events_in_any_order_end_in_the_current_state() {
    let ing = ingestor(&[("k", b"IMG-new")]);
    let removed = ObjectEvent::Removed {
        location: Location::new("b", "k"),
    };
    // A late delete of an older version, then the create, then a create again.
    for event in [removed.clone(), created("k"), removed, created("k")] {
        ing.handle(&event).await.outcome.unwrap();
    }
    let row = ing.index().object(&Location::new("b", "k")).await.unwrap().unwrap();
    assert_eq!(row.id, hex::encode(Sha256::digest(b"IMG-new")));
    assert_eq!(ing.encoder().calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_overwrite_during_ingest_is_caught_by_the_re_check() {
    let ing = ingestor(&[("k", b"IMG-v1")]);
    *ing.objects().1.lock().unwrap() = Some(("k".into(), b"IMG-v2".to_vec()));
    // The GET reads v1, then v2 lands: the row written for v1 is stale at once, and the
    // re-read after the write sees it.
    let report = ing.handle(&created("k")).await;
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    let row = ing.index().object(&Location::new("b", "k")).await.unwrap().unwrap();
    assert_eq!(
        row.id,
        hex::encode(Sha256::digest(b"IMG-v2")),
        "the row describes the newest bytes"
    );
    assert_eq!(row.etag, fake_version(b"IMG-v2").etag);
}

#[tokio::test]
async fn a_delete_answered_403_is_a_removal_and_never_retried() {
    let ing = ingestor(&[("nolist/a", b"IMG-a")]);
    ing.handle(&created("nolist/a")).await.outcome.unwrap();
    ing.objects().0.lock().unwrap().clear();
    let removed = ing
        .handle(&ObjectEvent::Removed {
            location: Location::new("b", "nolist/a"),
        })
        .await;
    assert!(
        matches!(removed.outcome, Ok(Outcome::RecordDeleted { .. })),
        "{:?}",
        removed.outcome
    );
    assert!(!removed.should_retry());
    assert_eq!(ing.index().count().await.unwrap(), 0);
    // A creation answered 403 is a permissions problem: retried (and visible in the DLQ).
    let created = ing.handle(&created("nolist/b")).await;
    assert_eq!(created.outcome.as_ref().unwrap_err().code(), "object_access_denied");
    assert!(created.should_retry());
}

#[tokio::test]
async fn an_overwrite_with_refused_bytes_removes_the_key() {
    let ing = ingestor(&[("k", b"IMG-old")]);
    ing.handle(&created("k")).await.outcome.unwrap();
    ing.objects()
        .0
        .lock()
        .unwrap()
        .insert(("b".into(), "k".into()), b"not an image".to_vec());
    let refused = ing.handle(&created("k")).await;
    assert_eq!(refused.outcome.as_ref().unwrap_err().code(), "not_an_image");
    assert!(!refused.should_retry());
    assert_eq!(
        ing.index().count().await.unwrap(),
        0,
        "the old picture is not left findable"
    );
}
