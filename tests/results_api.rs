//! What results look like, through the functions under the emulator: ingest (invoked with S3
//! events) makes upright thumbnails and records capture times; the search API pages, filters
//! and orders by them. Every search answer is checked against the OpenAPI document.
//!
//! Needs what scripts/test.sh starts and exports (moto, Milvus, the emulator with both
//! functions, one collection). Missing services fail.

mod common;
mod search_support;

use std::collections::{BTreeSet, HashMap};

use clipsearch::capture::testing::{exif_block, with_exif};
use clipsearch::events::{notification_body, ObjectEvent};
use clipsearch::objects::{ObjectSource, ObjectState};
use clipsearch::store::Location;
use clipsearch::thumbnail::ThumbnailStore;
use image::{DynamicImage, RgbImage};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use common::emulator;
use common::local_stack::{lambda_url, unique};
use search_support::api::{call, id_of, post_json, results};
use search_support::{download, encode, DAY_MS, SEEDED_FIRST_CAPTURE_MS};

/// Runs the ingest function on S3 events for these keys of `bucket`.
async fn ingest(bucket: &str, events: Vec<ObjectEvent>) -> Value {
    let url = format!("{}/2015-03-31/functions/ingest/invocations", lambda_url());
    let answer = emulator::send(emulator::client().post(&url).json(&notification_body(&events))).await;
    assert!(answer.status.is_success(), "HTTP {}: {}", answer.status, answer.text());
    let report: Value = serde_json::from_slice(&answer.body).expect("JSON report");
    for record in report["records"].as_array().expect("records") {
        assert!(record.get("error").is_none(), "{bucket}: {record}");
    }
    report
}

fn created(bucket: &str, key: &str) -> ObjectEvent {
    ObjectEvent::Created {
        location: Location::new(bucket, key),
        size: None,
    }
}

fn removed(bucket: &str, key: &str) -> ObjectEvent {
    ObjectEvent::Removed {
        location: Location::new(bucket, key),
    }
}

/// 600×400, four coloured quadrants (so any flip or turn shows), one pixel unique to the run
/// (the collection outlives runs, and a known content is not embedded again).
fn quadrants(run: u64) -> RgbImage {
    let mut image = RgbImage::from_fn(600, 400, |x, y| match (x < 300, y < 200) {
        (true, true) => image::Rgb([220, 30, 30]),
        (false, true) => image::Rgb([30, 200, 30]),
        (true, false) => image::Rgb([30, 30, 220]),
        (false, false) => image::Rgb([230, 220, 40]),
    });
    image.put_pixel(0, 0, image::Rgb([run as u8, (run >> 8) as u8, (run >> 16) as u8]));
    image
}

fn png(width: u32, height: u32, run: u64) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 3) as u8, run as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The colours at the centres of the four quadrants, clockwise from the top left.
fn corners(rgb: &[u8], width: usize, height: usize) -> [[u8; 3]; 4] {
    let at = |fx: usize, fy: usize| {
        let (x, y) = (width * fx / 4, height * fy / 4);
        let i = (y * width + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    [at(1, 1), at(3, 1), at(3, 3), at(1, 3)]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 40)
}

struct Photo {
    key: String,
    bytes: Vec<u8>,
    /// EXIF orientation (1..=8) for the JPEGs.
    orientation: Option<u16>,
    /// Expected capture time and source; `None`: the object's last-modified.
    captured: Option<(&'static str, &'static str)>,
    /// The thumbnail's expected size.
    thumbnail: (usize, usize),
}

fn id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The 8 EXIF orientations with dates (with and without offsets, and none), and two PNGs.
fn photos(prefix: &str, run: u64) -> Vec<Photo> {
    let stored = common::jpeg(&quadrants(run), 92);
    // (DateTimeOriginal, OffsetTimeOriginal, expected captured_at and captured_from)
    type Dated = (
        Option<&'static str>,
        Option<&'static str>,
        Option<(&'static str, &'static str)>,
    );
    let dates: [Dated; 8] = [
        (
            Some("2021:06:15 14:30:00"),
            Some("+02:00"),
            Some(("2021-06-15T12:30:00.000Z", "exif")),
        ),
        (
            Some("2021:06:15 14:30:00"),
            None,
            Some(("2021-06-15T14:30:00.000Z", "exif_local")),
        ),
        (None, None, None),
        (
            Some("2019:01:01 00:00:00"),
            Some("+00:00"),
            Some(("2019-01-01T00:00:00.000Z", "exif")),
        ),
        (
            Some("2020:03:01 10:00:00"),
            Some("-05:00"),
            Some(("2020-03-01T15:00:00.000Z", "exif")),
        ),
        (
            Some("2022:12:25 09:00:00"),
            Some("+09:00"),
            Some(("2022-12-25T00:00:00.000Z", "exif")),
        ),
        (
            Some("2018:07:04 12:00:00"),
            None,
            Some(("2018-07-04T12:00:00.000Z", "exif_local")),
        ),
        (
            Some("2023:02:02 08:00:00"),
            Some("+01:00"),
            Some(("2023-02-02T07:00:00.000Z", "exif")),
        ),
    ];
    let mut out: Vec<Photo> = dates
        .into_iter()
        .enumerate()
        .map(|(i, (date, offset, captured))| {
            let orientation = i as u16 + 1;
            Photo {
                key: format!("{prefix}o{orientation}.jpg"),
                bytes: with_exif(&stored, &exif_block(date, offset, Some(orientation))),
                orientation: Some(orientation),
                captured,
                // 5..=8 turn the 600×400 picture upright to 400×600.
                thumbnail: if orientation >= 5 { (256, 384) } else { (384, 256) },
            }
        })
        .collect();
    out.push(Photo {
        key: format!("{prefix}wide.png"),
        bytes: png(800, 100, run),
        orientation: None,
        captured: None,
        thumbnail: (384, 48),
    });
    out.push(Photo {
        key: format!("{prefix}tall.png"),
        bytes: png(50, 900, run),
        orientation: None,
        captured: None,
        thumbnail: (21, 384),
    });
    out
}

/// Ids of a search under `prefix` with these extra options, in answer order.
async fn ids_with(prefix: &str, options: Value) -> Vec<String> {
    let mut body = json!({ "text": "a photo", "prefix": prefix, "top_k": 20 });
    body.as_object_mut()
        .unwrap()
        .extend(options.as_object().unwrap().clone());
    let answer = post_json("/search", body).await;
    results(&answer).iter().map(|r| id_of(r).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_makes_upright_thumbnails_and_capture_times_that_search_filters_and_orders() {
    let s3 = search_support::s3().await;
    let bucket = unique("t-results");
    search_support::ensure_bucket(&s3, &bucket).await;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let prefix = format!("results/{run}/");
    let photos = photos(&prefix, run);
    for photo in &photos {
        let kind = if photo.key.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        s3.put(&bucket, &photo.key, photo.bytes.clone(), kind).await.unwrap();
    }
    let report = ingest(&bucket, photos.iter().map(|p| created(&bucket, &p.key)).collect()).await;
    assert_eq!(report["records"].as_array().unwrap().len(), photos.len(), "{report}");

    // One thumbnail per content, keyed by its hash, and nothing else under the prefix.
    let (listed, _) = s3.thumbnail_ids(&bucket, None).await.unwrap();
    let expected: BTreeSet<String> = photos.iter().map(|p| id(&p.bytes)).collect();
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), expected);

    // Search: every photo once, with its capture time and an upright thumbnail of bounded size.
    // The search function reads with bounded staleness: another process's writes show within
    // moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let found: HashMap<String, Value> = loop {
        let answer = post_json("/search", json!({ "text": "a photo", "prefix": prefix, "top_k": 20 })).await;
        let found: HashMap<String, Value> = results(&answer)
            .iter()
            .map(|r| (id_of(r).to_owned(), r.clone()))
            .collect();
        if found.len() == photos.len() {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} searchable: {}",
            found.len(),
            photos.len(),
            answer.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    for photo in &photos {
        let hit = &found[&id(&photo.bytes)];
        let what = &photo.key;
        match photo.captured {
            Some((at, from)) => {
                assert_eq!(
                    (hit["captured_at"].as_str(), hit["captured_from"].as_str()),
                    (Some(at), Some(from)),
                    "{what}"
                );
            }
            None => {
                // No EXIF date: the object's last-modified time, and it says so.
                let ObjectState::Present(version) = s3.head(&bucket, &photo.key).await.unwrap() else {
                    panic!("{what} is in the bucket");
                };
                let expected = clipsearch::capture::rfc3339(version.modified_ms);
                assert_eq!(hit["captured_from"], "modified", "{what}");
                assert_eq!(hit["captured_at"].as_str(), Some(expected.as_str()), "{what}");
            }
        }
        let thumbnail_url = hit["thumbnail_url"].as_str().expect("thumbnail_url");
        assert!(
            thumbnail_url.contains(&format!(".clipsearch/thumbnails/{}", id(&photo.bytes))),
            "{what}: {thumbnail_url}"
        );
        let thumbnail = download(thumbnail_url).await;
        assert!(thumbnail.len() < 40_000, "{what}: a {} byte thumbnail", thumbnail.len());
        let decoded = turbojpeg::decompress(&thumbnail, turbojpeg::PixelFormat::RGB).expect("a JPEG");
        assert_eq!((decoded.width, decoded.height), photo.thumbnail, "{what}");
        if let Some(orientation) = photo.orientation {
            let mut upright = DynamicImage::ImageRgb8(quadrants(run));
            upright.apply_orientation(image::metadata::Orientation::from_exif(orientation as u8).unwrap());
            let upright = upright.into_rgb8();
            let want = corners(upright.as_raw(), upright.width() as usize, upright.height() as usize);
            let got = corners(&decoded.pixels, decoded.width, decoded.height);
            assert!(
                want.iter().zip(got).all(|(w, g)| close(*w, g)),
                "orientation {orientation}: corners {got:?}, upright {want:?}"
            );
        }
    }

    // Filters, through the API, each against what the photos are.
    let ids_of = |keep: &dyn Fn(&Photo) -> bool| -> BTreeSet<String> {
        photos.iter().filter(|p| keep(p)).map(|p| id(&p.bytes)).collect()
    };
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        set(ids_with(&prefix, json!({ "content_type": "image/png" })).await),
        ids_of(&|p| p.key.ends_with(".png"))
    );
    assert_eq!(
        set(ids_with(&prefix, json!({ "min_width": 500 })).await),
        ids_of(&|p| p.thumbnail.0 > p.thumbnail.1),
        "upright width: the turned photos are 400 wide"
    );
    assert_eq!(
        set(ids_with(&prefix, json!({ "min_height": 500 })).await),
        ids_of(&|p| p.thumbnail.1 > p.thumbnail.0)
    );
    let in_2020_and_2021 = ids_of(&|p| {
        p.captured
            .is_some_and(|(at, _)| at.starts_with("2020") || at.starts_with("2021"))
    });
    assert_eq!(in_2020_and_2021.len(), 3);
    assert_eq!(
        set(ids_with(
            &prefix,
            json!({ "taken_after": "2020-01-01", "taken_before": "2022-01-01T00:00:00+00:00" })
        )
        .await),
        in_2020_and_2021
    );

    // Date orders: the same photos, by capture time.
    let times = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|i| found[i]["captured_at"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest = ids_with(&prefix, json!({ "sort": "newest" })).await;
    let oldest = ids_with(&prefix, json!({ "sort": "oldest" })).await;
    assert_eq!(set(newest.clone()), expected);
    let newest_times = times(&newest);
    assert!(newest_times.windows(2).all(|w| w[0] >= w[1]), "{newest_times:?}");
    let oldest_times = times(&oldest);
    assert!(oldest_times.windows(2).all(|w| w[0] <= w[1]), "{oldest_times:?}");
    assert_eq!(oldest_times[0], "2018-07-04T12:00:00.000Z");

    // Same content under a second key: no second thumbnail is made (a marker put in its place
    // stays), and the thumbnail goes only with the content's last object.
    let first = &photos[0];
    let first_id = id(&first.bytes);
    let copy = format!("{prefix}copy-of-o1.jpg");
    s3.put(&bucket, &copy, first.bytes.clone(), "image/jpeg").await.unwrap();
    s3.put_thumbnail(&bucket, &first_id, b"marker".to_vec()).await.unwrap();
    let report = ingest(&bucket, vec![created(&bucket, &copy)]).await;
    assert_eq!(report["records"][0]["outcome"], "location_added", "{report}");
    let thumbnail_key = s3.thumbnail_key(&first_id).unwrap();
    let thumbnail_state = || async { s3.head(&bucket, &thumbnail_key).await.unwrap() };
    let ObjectState::Present(kept) = thumbnail_state().await else {
        panic!("the thumbnail is there");
    };
    assert_eq!(kept.size, 6, "the duplicate made no new thumbnail");
    s3.delete(&bucket, &first.key).await.unwrap();
    ingest(&bucket, vec![removed(&bucket, &first.key)]).await;
    assert!(
        matches!(thumbnail_state().await, ObjectState::Present(_)),
        "the copy still holds it"
    );
    s3.delete(&bucket, &copy).await.unwrap();
    ingest(&bucket, vec![removed(&bucket, &copy)]).await;
    assert_eq!(
        thumbnail_state().await,
        ObjectState::Absent,
        "gone with the last object"
    );
    let (left, _) = s3.thumbnail_ids(&bucket, None).await.unwrap();
    assert_eq!(left.len(), photos.len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_return_every_result_exactly_once_in_every_order() {
    let corpus = search_support::seed("pages", 48, 4242).await;
    let prefix = encode(&corpus.prefix);
    let all = |sort: &str| {
        let path = format!("/search?q=a+photo&prefix={prefix}&top_k=48&sort={sort}");
        async move {
            let answer = call(Method::GET, &path, None, Vec::new()).await;
            assert!(answer.body.get("next_offset").is_none(), "48 of 48: {}", answer.body);
            results(&answer).iter().map(|r| id_of(r).to_owned()).collect::<Vec<_>>()
        }
    };
    for sort in ["relevance", "newest", "oldest"] {
        let whole = all(sort).await;
        assert_eq!(whole.len(), 48, "{sort}");
        let mut paged = Vec::new();
        let mut offset = Some(0);
        while let Some(at) = offset {
            // Through the query string (GET) and a JSON body (POST) alike.
            let answer = if paged.len() % 2 == 0 {
                call(
                    Method::GET,
                    &format!("/search?q=a+photo&prefix={prefix}&top_k=7&offset={at}&sort={sort}"),
                    None,
                    Vec::new(),
                )
                .await
            } else {
                post_json(
                    "/search",
                    json!({ "text": "a photo", "prefix": corpus.prefix, "top_k": 7, "offset": at, "sort": sort }),
                )
                .await
            };
            paged.extend(results(&answer).iter().map(|r| id_of(r).to_owned()));
            offset = answer.body.get("next_offset").and_then(Value::as_u64);
            assert!(paged.len() <= 48, "{sort}: pages never end");
        }
        assert_eq!(
            paged, whole,
            "{sort}: the pages, joined, are the whole answer in its order"
        );
        let captured = |id: &String| corpus.by_id(id).unwrap().captured_ms;
        match sort {
            "newest" => assert!(whole.windows(2).all(|w| captured(&w[0]) > captured(&w[1]))),
            "oldest" => assert!(whole.windows(2).all(|w| captured(&w[0]) < captured(&w[1]))),
            _ => {}
        }
    }

    // A capture-time window holds exactly the images taken in it (a day apart from the first).
    let at = |day: i64| clipsearch::capture::rfc3339(SEEDED_FIRST_CAPTURE_MS + day * DAY_MS);
    let answer = post_json(
        "/search",
        json!({ "text": "a photo", "prefix": corpus.prefix, "top_k": 48, "taken_after": at(10), "taken_before": at(20) }),
    )
    .await;
    let found: BTreeSet<&str> = results(&answer).iter().map(id_of).collect();
    let expected: BTreeSet<&str> = corpus
        .images
        .iter()
        .filter(|i| (at(10)..at(20)).contains(&clipsearch::capture::rfc3339(i.captured_ms)))
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(expected.len(), 10);
    assert_eq!(found, expected);

    // Bad options are 400s naming them.
    for (query, name) in [
        ("offset=-1", "offset"),
        ("offset=995", "offset"),
        ("sort=date", "sort"),
        ("taken_after=yesterday", "taken_after"),
        ("min_width=0", "min_width"),
        ("taken_after=2021-01-01&taken_before=2020-01-01", "taken_after"),
    ] {
        let answer = call(Method::GET, &format!("/search?q=x&{query}"), None, Vec::new()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(name), "{query}: {message}");
    }
    let long_prefix = "p".repeat(1025);
    for (query, name) in [
        ("threshold=2".to_owned(), "threshold"),
        ("threshold=most".to_owned(), "threshold"),
        ("limit=0".to_owned(), "limit"),
        ("limit=101".to_owned(), "limit"),
        ("offset=-1".to_owned(), "offset"),
        ("prefix=a%00b".to_owned(), "prefix"),
        (format!("prefix={long_prefix}"), "prefix"),
    ] {
        let answer = call(Method::GET, &format!("/duplicates?{query}"), None, Vec::new()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(name), "{query}: {message}");
    }
}
