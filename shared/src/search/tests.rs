//! The search use case over a fake encoder, the in-memory index and fake S3.

use super::*;
use crate::clip::{ImageEmbedding, SniffedFormat};
use crate::objects::FetchedObject;
use crate::store::{ImageRecord, IndexSpec, Location, MemoryIndex};

/// Text "a"…: a vector pointing along the first letter; images: along their first byte.
struct FakeEncoder;

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; 4];
    v[i % 4] = 1.0;
    v
}

impl Encoder for FakeEncoder {
    fn model_name(&self) -> &str {
        "fake"
    }
    fn dimension(&self) -> usize {
        4
    }
    fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
        if bytes.starts_with(b"nope") {
            return Err(Error::NotAnImage("text".into()));
        }
        Ok(ImageEmbedding {
            embedding: axis(bytes[0] as usize),
            format: SniffedFormat::Png,
            width: 1,
            height: 1,
            thumbnail: None,
        })
    }
    fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(axis((text.as_bytes()[0] - b'a') as usize))
    }
}

struct FakeObjects;

impl crate::status::StatusStore for FakeObjects {}
impl crate::thumbnail::ThumbnailStore for FakeObjects {
    fn thumbnail_key(&self, id: &str) -> Option<String> {
        Some(format!("thumbs/{id}"))
    }
}

impl ObjectSource for FakeObjects {
    async fn fetch(&self, bucket: &str, key: &str, _max: u64) -> Result<FetchedObject> {
        if key == "missing" {
            return Err(Error::ObjectMissing {
                bucket: bucket.into(),
                key: key.into(),
            });
        }
        Ok(FetchedObject {
            bytes: vec![2],
            content_type: None,
            version: Default::default(),
        })
    }
    async fn head(&self, _bucket: &str, _key: &str) -> Result<crate::objects::ObjectState> {
        Ok(crate::objects::ObjectState::Present(Default::default()))
    }
}

impl Presigner for FakeObjects {
    async fn presign_get(&self, bucket: &str, key: &str) -> Result<String> {
        Ok(format!("https://s3/{bucket}/{key}?sig"))
    }
    async fn presign_post(&self, c: &crate::objects::PostConditions<'_>) -> Result<crate::objects::PresignedPost> {
        Ok(crate::objects::PresignedPost {
            url: format!("https://s3/{}", c.bucket),
            fields: [
                ("key".to_owned(), c.key.to_owned()),
                ("Content-Type".to_owned(), c.content_type.to_owned()),
            ]
            .into(),
        })
    }
}

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn settings() -> SearchSettings {
    SearchSettings {
        bucket: Some("photos".into()),
        ..Default::default()
    }
}

async fn searcher(settings: SearchSettings) -> Searcher<FakeEncoder, MemoryIndex, FakeObjects> {
    let index = MemoryIndex::new(IndexSpec {
        dimension: 4,
        model: "fake".into(),
        text_model: None,
    });
    for n in 0..4u8 {
        index
            .upsert(ImageRecord {
                id: id(n),
                embedding: axis(n as usize),
                locations: vec![Location::new("photos", format!("dir{}/img{n}.png", n % 2))],
                content_type: "image/png".into(),
                width: 10,
                height: 20,
                byte_size: 3,
                ingested_at_ms: 5,
                model: "fake".into(),
                captured: crate::capture::CaptureTime {
                    ms: i64::from(n) * 1000,
                    source: crate::capture::CaptureSource::Exif,
                },
            })
            .await
            .unwrap();
    }
    Searcher::new(Arc::new(FakeEncoder), index, Some(FakeObjects), settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_rank_presign_and_exclude() {
    let s = searcher(settings()).await;
    let r = s.search(SearchParams::new(Query::Text("b".into()))).await.unwrap();
    assert_eq!(r.results[0].id, id(1));
    assert_eq!(r.results[0].url.as_deref(), Some("https://s3/photos/dir1/img1.png?sig"));
    assert_eq!(r.model, "fake");

    let more = s.search(SearchParams::new(Query::Id(id(1)))).await.unwrap();
    assert!(more.results.iter().all(|h| h.id != id(1)));
    assert_eq!(more.results.len(), 3);

    let url = s
        .search(SearchParams::new(Query::ImageUrl(Location::new("photos", "x"))))
        .await
        .unwrap();
    assert_eq!(url.results[0].id, id(2));

    let filtered = s
        .search(SearchParams {
            options: CheckedOptions {
                prefix: Some("dir0/".into()),
                min_score: Some(-0.5),
                ..Default::default()
            },
            ..SearchParams::new(Query::Image(vec![1]))
        })
        .await
        .unwrap();
    assert!(filtered.results.iter().all(|h| h.key.starts_with("dir0/")));

    assert!(matches!(
        s.search(SearchParams::new(Query::Id(id(9)))).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.search(SearchParams::new(Query::ImageUrl(Location::new("photos", "missing"))))
            .await,
        Err(Error::ObjectMissing { .. })
    ));
    assert!(matches!(
        s.search(SearchParams::new(Query::Image(b"nope".to_vec()))).await,
        Err(Error::NotAnImage(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_towers_refuse_their_queries() {
    let s = searcher(SearchSettings {
        enable_image: false,
        ..settings()
    })
    .await;
    let err = s.search(SearchParams::new(Query::Image(vec![1]))).await.unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    assert!(s.search(SearchParams::new(Query::Text("a".into()))).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_uploads() {
    let s = searcher(settings()).await;
    let info = s.image(&id(3).to_uppercase()).await.unwrap();
    assert_eq!((info.key.as_str(), info.width, info.height), ("dir1/img3.png", 10, 20));
    assert!(matches!(s.image(&id(8)).await, Err(Error::NotFound(_))));

    let t = s.upload("C:\\photos\\my cat.JPG", "image/jpeg").await.unwrap();
    assert!(
        t.key.starts_with("uploads/") && t.key.ends_with("-my_cat.JPG"),
        "{}",
        t.key
    );
    assert_eq!((t.method.as_str(), t.content_type.as_str()), ("POST", "image/jpeg"));
    assert_eq!(t.fields["key"], t.key);
    assert_eq!(t.max_bytes, crate::config::DEFAULT_MAX_IMAGE_BYTES);
    assert_ne!(
        s.upload("a.png", "image/png").await.unwrap().key,
        s.upload("a.png", "image/png").await.unwrap().key
    );
    assert!(matches!(
        s.upload("a.txt", "text/plain").await,
        Err(Error::UnsupportedFormat(_))
    ));
    assert!(matches!(s.upload("", "image/png").await, Err(Error::InvalidRequest(_))));
}
