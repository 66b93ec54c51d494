use super::*;
use crate::capture::{CaptureSource, CaptureTime};

fn fields(pairs: &[(&str, &str)]) -> Result<SearchOptions> {
    SearchOptions::from_fields(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
}

fn hit(n: u8, score: f32, captured_ms: i64) -> SearchHit {
    SearchHit {
        id: format!("{n:064}"),
        score,
        locations: Vec::new(),
        content_type: "image/jpeg".into(),
        width: 1,
        height: 1,
        byte_size: 1,
        captured: CaptureTime {
            ms: captured_ms,
            source: CaptureSource::Exif,
        },
    }
}

#[test]
fn fields_parse_and_bad_values_name_their_field() {
    let parsed = fields(&[
        ("top_k", "5"),
        ("offset", "10"),
        ("content_type", "image/PNG, image/jpeg"),
        ("min_width", "100"),
        ("taken_after", "2020-01-01"),
        ("taken_before", "2021-01-01T00:00:00+01:00"),
        ("sort", "newest"),
    ])
    .unwrap()
    .check()
    .unwrap();
    assert_eq!((parsed.top_k, parsed.offset, parsed.sort), (5, 10, Sort::Newest));
    assert_eq!(parsed.filter.content_types, vec!["image/png", "image/jpeg"]);
    assert_eq!(parsed.filter.min_width, Some(100));
    assert_eq!(parsed.filter.captured_from_ms, Some(1_577_836_800_000));
    assert_eq!(parsed.filter.captured_until_ms, Some(1_609_455_600_000));
    for (name, value) in [
        ("offset", "x"),
        ("offset", "-1"),
        ("offset", "991"),
        ("min_width", "0"),
        ("min_height", "tall"),
        ("taken_after", "last week"),
        ("sort", "date"),
    ] {
        let error = fields(&[(name, value)]).and_then(|o| o.check()).unwrap_err();
        assert!(error.to_string().contains(name), "{name}={value}: {error}");
    }
    let reversed = fields(&[("taken_after", "2021-01-01"), ("taken_before", "2020-01-01")]);
    assert!(reversed.unwrap().check().is_err());
}

#[test]
fn a_body_option_wins_over_the_query_string_one() {
    let body = SearchOptions {
        top_k: Some(3),
        ..Default::default()
    };
    let query = fields(&[("top_k", "7"), ("sort", "oldest")]).unwrap();
    let merged = body.or(query);
    assert_eq!((merged.top_k, merged.sort.as_deref()), (Some(3), Some("oldest")));
}

#[test]
fn pages_cover_every_hit_once_in_order() {
    let hits: Vec<SearchHit> = (0..25).map(|n| hit(n, 1.0 - n as f32 / 100.0, n as i64 % 7)).collect();
    for sort in [Sort::Relevance, Sort::Newest, Sort::Oldest] {
        let mut seen = Vec::new();
        let mut offset = Some(0);
        while let Some(o) = offset {
            let options = CheckedOptions {
                top_k: 4,
                offset: o,
                sort,
                ..Default::default()
            };
            let window = hits[..options.window().min(hits.len())].to_vec();
            let (page, next) = options.page(window);
            seen.extend(page);
            offset = next;
        }
        assert_eq!(seen.len(), 25, "{sort:?}");
        let mut ids: Vec<&str> = seen.iter().map(|h| h.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 25, "{sort:?}");
        let times: Vec<i64> = seen.iter().map(|h| h.captured.ms).collect();
        match sort {
            Sort::Newest => assert!(times.windows(2).all(|w| w[0] >= w[1])),
            Sort::Oldest => assert!(times.windows(2).all(|w| w[0] <= w[1])),
            Sort::Relevance => assert!(seen.windows(2).all(|w| w[0].score >= w[1].score)),
        }
    }
}

#[test]
fn the_relevance_cut_comes_before_the_date_order() {
    let hits = vec![hit(1, 0.9, 10), hit(2, 0.3, 99), hit(3, 0.8, 50)];
    let options = CheckedOptions {
        min_score_ratio: Some(0.5),
        sort: Sort::Newest,
        ..Default::default()
    };
    let (page, next) = options.page(hits);
    let ids: Vec<u8> = page.iter().map(|h| h.id[62..].parse().unwrap()).collect();
    assert_eq!((ids, next), (vec![3, 1], None));
}

#[test]
fn the_relative_cut_keeps_hits_near_the_best() {
    let hit = |score: f32| SearchHit {
        id: format!("{score}"),
        score,
        locations: Vec::new(),
        content_type: String::new(),
        width: 0,
        height: 0,
        byte_size: 0,
        captured: CaptureTime {
            ms: 0,
            source: CaptureSource::Modified,
        },
    };
    let scores = |hits: &[SearchHit]| hits.iter().map(|h| h.score).collect::<Vec<_>>();
    let mut hits = vec![hit(0.30), hit(0.28), hit(0.26), hit(0.20)];
    cut_relative(&mut hits, Some(0.9));
    assert_eq!(scores(&hits), [0.30, 0.28], "0.9 x 0.30 = 0.27");
    let mut none = vec![hit(0.30), hit(0.10)];
    cut_relative(&mut none, None);
    assert_eq!(none.len(), 2);
    // No share of a best score at or below 0: nothing is cut.
    let mut negative = vec![hit(-0.05), hit(-0.30)];
    cut_relative(&mut negative, Some(0.9));
    assert_eq!(negative.len(), 2);
    let mut empty = Vec::new();
    cut_relative(&mut empty, Some(0.5));
    assert!(empty.is_empty());
}
