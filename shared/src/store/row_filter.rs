//! Conditions on a row's scalars that a search can add: content type, image size and capture
//! time. Each becomes a clause of the Milvus filter expression (so the index ranks only rows
//! that pass) and has the same meaning in Rust for the in-memory index.

use super::{filter, schema, IndexedObject};
use crate::Result;

/// Rows a search keeps; the default keeps every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// Only these content types (`image/jpeg`, …); empty: any.
    pub content_types: Vec<String>,
    /// Only images at least this wide / tall (upright pixels).
    pub min_width: Option<u32>,
    pub min_height: Option<u32>,
    /// Only photos taken at or after this instant (ms since the epoch).
    pub captured_from_ms: Option<i64>,
    /// Only photos taken before this instant (exclusive).
    pub captured_until_ms: Option<i64>,
}

impl RowFilter {
    pub fn matches(&self, row: &IndexedObject) -> bool {
        (self.content_types.is_empty() || self.content_types.contains(&row.content_type))
            && self.min_width.is_none_or(|w| row.width >= w)
            && self.min_height.is_none_or(|h| row.height >= h)
            && self.captured_from_ms.is_none_or(|t| row.captured.ms >= t)
            && self.captured_until_ms.is_none_or(|t| row.captured.ms < t)
    }

    /// The clauses of a Milvus filter expression meaning [`RowFilter::matches`].
    pub fn clauses(&self) -> Result<Vec<String>> {
        let mut clauses = Vec::new();
        if !self.content_types.is_empty() {
            clauses.push(filter::in_list(
                schema::CONTENT_TYPE,
                self.content_types.iter().map(String::as_str),
            )?);
        }
        if let Some(w) = self.min_width {
            clauses.push(format!("{} >= {w}", schema::WIDTH));
        }
        if let Some(h) = self.min_height {
            clauses.push(format!("{} >= {h}", schema::HEIGHT));
        }
        if let Some(t) = self.captured_from_ms {
            clauses.push(format!("{} >= {t}", schema::CAPTURED_MS));
        }
        if let Some(t) = self.captured_until_ms {
            clauses.push(format!("{} < {t}", schema::CAPTURED_MS));
        }
        Ok(clauses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureSource, CaptureTime};
    use crate::store::Location;

    fn row(content_type: &str, width: u32, height: u32, captured_ms: i64) -> IndexedObject {
        IndexedObject {
            location: Location::new("b", "k"),
            id: "a".repeat(64),
            embedding: Vec::new(),
            content_type: content_type.into(),
            width,
            height,
            byte_size: 1,
            etag: String::new(),
            modified_ms: 0,
            ingested_at_ms: 0,
            model: "m".into(),
            captured: CaptureTime {
                ms: captured_ms,
                source: CaptureSource::Exif,
            },
        }
    }

    #[test]
    fn each_condition_keeps_exactly_its_rows() {
        let jpeg = row("image/jpeg", 800, 600, 1_000);
        assert!(RowFilter::default().matches(&jpeg));
        let only_png = RowFilter {
            content_types: vec!["image/png".into()],
            ..Default::default()
        };
        assert!(!only_png.matches(&jpeg) && only_png.matches(&row("image/png", 1, 1, 0)));
        let wide = RowFilter {
            min_width: Some(800),
            min_height: Some(601),
            ..Default::default()
        };
        assert!(!wide.matches(&jpeg) && wide.matches(&row("image/jpeg", 800, 601, 0)));
        let window = RowFilter {
            captured_from_ms: Some(1_000),
            captured_until_ms: Some(2_000),
            ..Default::default()
        };
        for (t, inside) in [(999, false), (1_000, true), (1_999, true), (2_000, false)] {
            assert_eq!(window.matches(&row("image/jpeg", 1, 1, t)), inside, "{t}");
        }
    }

    #[test]
    fn clauses_name_the_schema_fields() {
        let all = RowFilter {
            content_types: vec!["image/png".into(), "image/\"x".into()],
            min_width: Some(10),
            min_height: Some(20),
            captured_from_ms: Some(-5),
            captured_until_ms: Some(7),
        };
        assert_eq!(
            all.clauses().unwrap(),
            vec![
                r#"content_type in ["image/png", "image/\"x"]"#.to_owned(),
                "width >= 10".into(),
                "height >= 20".into(),
                "captured_ms >= -5".into(),
                "captured_ms < 7".into(),
            ]
        );
        assert!(RowFilter::default().clauses().unwrap().is_empty());
    }
}
