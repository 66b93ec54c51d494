//! Rows (one per object) into contents (one per sha256, every location listed), and the exact
//! cosine the in-memory index and duplicate groups compare vectors with.

use super::{ImageRecord, IndexedObject, Location};

/// Cosine similarity of two vectors; 0 when either is all zeros.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Groups rows (all of one content or of several) into content records, in first-seen order
/// of content; locations sorted. Rows without a vector give records without one.
pub(crate) fn group_rows(rows: Vec<IndexedObject>) -> Vec<ImageRecord> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, ImageRecord> = std::collections::HashMap::new();
    for row in rows {
        match by_id.get_mut(&row.id) {
            Some(record) => {
                record.locations.push(row.location);
                record.ingested_at_ms = record.ingested_at_ms.min(row.ingested_at_ms);
                if record.embedding.is_empty() {
                    record.embedding = row.embedding;
                }
            }
            None => {
                order.push(row.id.clone());
                by_id.insert(
                    row.id.clone(),
                    ImageRecord {
                        id: row.id,
                        embedding: row.embedding,
                        locations: vec![row.location],
                        content_type: row.content_type,
                        width: row.width,
                        height: row.height,
                        byte_size: row.byte_size,
                        ingested_at_ms: row.ingested_at_ms,
                        model: row.model,
                        captured: row.captured,
                    },
                );
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .map(|mut r| {
            r.locations.sort();
            r.locations.dedup();
            r
        })
        .collect()
}

/// Puts the locations whose key starts with `prefix` first (stable otherwise).
pub(crate) fn matching_first(mut locations: Vec<Location>, prefix: Option<&str>) -> Vec<Location> {
    if let Some(prefix) = prefix {
        locations.sort_by_key(|l| !l.key.starts_with(prefix));
    }
    locations
}
