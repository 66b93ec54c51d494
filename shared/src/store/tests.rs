//! Validation and the in-memory index's grouping, ordering and filters.

use super::*;

fn spec() -> IndexSpec {
    IndexSpec {
        dimension: 3,
        model: "m".into(),
        text_model: None,
    }
}

#[test]
fn ids_are_sha256_hex() {
    let upper = "A".repeat(64);
    assert_eq!(normalize_id(&upper).unwrap(), "a".repeat(64));
    for bad in ["", "abc", &"g".repeat(64), &format!("{}\"", "a".repeat(63))] {
        assert!(matches!(normalize_id(bad), Err(Error::InvalidRequest(_))));
    }
}

#[test]
fn vectors_are_checked() {
    assert!(validate_vector(&[1.0, 0.0, 0.0], &spec()).is_ok());
    for bad in [vec![1.0, 0.0], vec![f32::NAN, 0.0, 0.0], vec![0.0; 3]] {
        assert!(matches!(validate_vector(&bad, &spec()), Err(Error::InvalidRequest(_))));
    }
}

#[test]
fn top_k_bounds() {
    let mut request = SearchRequest {
        vector: vec![1.0, 0.0, 0.0],
        top_k: 1,
        ..Default::default()
    };
    assert!(validate_search(&request).is_ok());
    request.top_k = MAX_RESULT_WINDOW;
    assert!(validate_search(&request).is_ok());
    for bad in [0, MAX_RESULT_WINDOW + 1] {
        request.top_k = bad;
        assert!(matches!(validate_search(&request), Err(Error::InvalidRequest(_))));
    }
}

fn row(id: &str, key: &str) -> IndexedObject {
    IndexedObject {
        location: Location::new("b", key),
        id: id.into(),
        embedding: vec![1.0, 0.0, 0.0],
        content_type: "image/png".into(),
        width: 1,
        height: 1,
        byte_size: 10,
        etag: "\"e\"".into(),
        modified_ms: 0,
        ingested_at_ms: 7,
        model: "m".into(),
        captured: CaptureTime {
            ms: 0,
            source: crate::capture::CaptureSource::Modified,
        },
    }
}

#[test]
fn rows_are_normalised_and_checked() {
    let checked = validate_object(&row(&"AB".repeat(32), "k"), &spec()).unwrap();
    assert_eq!(checked.id, "ab".repeat(32));
    let other_model = IndexedObject {
        model: "other".into(),
        ..row(&"ab".repeat(32), "k")
    };
    assert!(matches!(
        validate_object(&other_model, &spec()),
        Err(Error::SchemaMismatch(_))
    ));
    assert!(validate_object(&row("nothex", "k"), &spec()).is_err());
    assert!(validate_object(&row(&"ab".repeat(32), ""), &spec()).is_err());
}

#[test]
fn rows_group_by_content() {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let mut late = row(&a, "z");
    late.ingested_at_ms = 3;
    let records = group_rows(vec![row(&b, "y"), late, row(&a, "x"), row(&a, "x")]);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].id, b);
    assert_eq!(
        records[1].locations,
        vec![Location::new("b", "x"), Location::new("b", "z")]
    );
    assert_eq!(records[1].ingested_at_ms, 3);
}

#[test]
fn key_ranges_are_half_open_on_the_left() {
    let range = KeyRange {
        bucket: "b".into(),
        prefix: "p/".into(),
        after: Some("p/b".into()),
        through: Some("p/d".into()),
    };
    for (key, inside) in [
        ("p/b", false),
        ("p/c", true),
        ("p/d", true),
        ("p/e", false),
        ("q/c", false),
    ] {
        assert_eq!(range.contains(&Location::new("b", key)), inside, "{key}");
    }
    assert!(!range.contains(&Location::new("other", "p/c")));
}

#[test]
fn matching_locations_come_first() {
    let locations = vec![Location::new("b", "x/1"), Location::new("b", "y/2")];
    let sorted = matching_first(locations.clone(), Some("y/"));
    assert_eq!(sorted[0].key, "y/2");
    assert_eq!(matching_first(locations.clone(), None), locations);
}
