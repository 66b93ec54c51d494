//! Duplicate groups: the same content under several keys (exact), and contents whose vectors are
//! nearly the same (near: a resized, re-encoded or slightly cropped copy), so a user can keep one
//! of each group.
//!
//! Every row under the key prefix is read with its vector, in bounded reads split by content-id
//! prefix; each content then asks the index for its nearest neighbours above the threshold (the
//! index's ANN gives candidates, the exact cosine of the two stored vectors decides), and the
//! pairs are joined into groups (connected components: a chain of near copies is one group).

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::store::{
    cosine, group_rows, IdPrefixScan, ImageIndex, ImageRecord, IndexedObject, SearchHit, SearchRequest,
};
use crate::{Error, Result};

/// Cosine above which two contents are near-duplicates unless the caller says otherwise.
/// Measured for tiny-clip on tests/duplicates.rs's planted corpus (BENCHMARKS.md); a photo
/// model wants its own measurement.
pub const DEFAULT_THRESHOLD: f32 = 0.93;
/// Rows read per query while scanning (each with its vector).
const SCAN_ROWS: usize = 2048;
/// Neighbours asked for per content: a content with more near copies than this still joins
/// them all through the copies' own neighbours.
const NEIGHBOURS: usize = 16;
/// Neighbour searches in flight.
const SEARCHES_IN_FLIGHT: usize = 8;

/// One object of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateMember {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub byte_size: u64,
    pub width: u32,
    pub height: u32,
    /// Cosine similarity to the group's first member (1 for the same content).
    pub similarity: f32,
    /// Presigned GETs of the original and the thumbnail, when the caller has S3 access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// Objects holding the same or nearly the same picture; the first member is the one to keep
/// (the most pixels, then the most bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// `exact` (one content under several keys) or `near` (several contents).
    pub kind: String,
    pub members: Vec<DuplicateMember>,
}

/// The duplicate groups of every image under `key_prefix`, largest groups first. At most
/// `max_contents` contents are scanned: a bigger set is an error naming a narrower prefix.
pub async fn duplicate_groups<I: ImageIndex>(
    index: &I,
    key_prefix: Option<&str>,
    threshold: f32,
    max_contents: usize,
) -> Result<(Vec<DuplicateGroup>, usize)> {
    if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
        return Err(Error::InvalidRequest(format!(
            "threshold must be a cosine similarity in 0..=1, got {threshold}"
        )));
    }
    let rows = scan(index, key_prefix, max_contents).await?;
    let contents = group_rows(rows);
    if contents.len() > max_contents {
        return Err(too_many(max_contents));
    }
    let position: HashMap<&str, usize> = contents.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
    // Owned requests, collected first: a stream of futures borrowing `contents` would not be
    // `Send` for every lifetime, which a Lambda handler's future must be.
    let requests: Vec<SearchRequest> = contents
        .iter()
        .map(|content| SearchRequest {
            vector: content.embedding.clone(),
            top_k: NEIGHBOURS,
            min_score: Some(threshold),
            key_prefix: key_prefix.map(str::to_owned),
            exclude_id: Some(content.id.clone()),
            filter: Default::default(),
        })
        .collect();
    let neighbours: Vec<Vec<SearchHit>> = stream::iter(requests)
        .map(|request| index.search_owned(request))
        .buffered(SEARCHES_IN_FLIGHT)
        .try_collect()
        .await?;

    let mut components = UnionFind::new(contents.len());
    for (i, found) in neighbours.iter().enumerate() {
        for j in found.iter().filter_map(|hit| position.get(hit.id.as_str())) {
            // The index is approximate: the stored vectors decide.
            if cosine(&contents[i].embedding, &contents[*j].embedding) >= threshold {
                components.join(i, *j);
            }
        }
    }
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..contents.len() {
        by_root.entry(components.root(i)).or_default().push(i);
    }
    let mut groups: Vec<DuplicateGroup> = by_root
        .into_values()
        .filter_map(|members| group_of(&contents, members))
        .collect();
    groups.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then_with(|| (&a.members[0].bucket, &a.members[0].key).cmp(&(&b.members[0].bucket, &b.members[0].key)))
    });
    Ok((groups, contents.len()))
}

fn too_many(max_contents: usize) -> Error {
    Error::InvalidRequest(format!(
        "more than {max_contents} images to compare: give a narrower prefix (or use `clipsearch duplicates`)"
    ))
}

/// Every row under the prefix, with vectors: reads by content-id prefix, split into the 16
/// next hex digits whenever one read would hold more than [`SCAN_ROWS`].
async fn scan<I: ImageIndex>(index: &I, key_prefix: Option<&str>, max_contents: usize) -> Result<Vec<IndexedObject>> {
    let mut pending = vec![String::new()];
    let mut rows = Vec::new();
    while let Some(id_prefix) = pending.pop() {
        let scan = IdPrefixScan {
            id_prefix: &id_prefix,
            key_prefix,
            limit: SCAN_ROWS,
        };
        match index.rows_with_id_prefix(&scan).await? {
            Some(found) => rows.extend(found),
            None if id_prefix.len() < 64 => {
                pending.extend("0123456789abcdef".chars().map(|c| format!("{id_prefix}{c}")));
            }
            None => {
                return Err(Error::InvalidRequest(format!(
                    "content {id_prefix} is stored under more than {SCAN_ROWS} keys"
                )))
            }
        }
        // Rows of one content share an id: more rows than this cannot be fewer contents than
        // the cap only when copies abound, so count contents only past it.
        if rows.len() > max_contents.saturating_mul(4) {
            return Err(too_many(max_contents));
        }
    }
    Ok(rows)
}

/// The group of these contents (indices into `contents`), `None` for a lone object.
fn group_of(contents: &[ImageRecord], mut members: Vec<usize>) -> Option<DuplicateGroup> {
    let objects: usize = members.iter().map(|&i| contents[i].locations.len()).sum();
    if objects < 2 {
        return None;
    }
    // The one to keep first: the most pixels, then the most bytes, then the key.
    let rank = |i: &usize| {
        let c = &contents[*i];
        (
            std::cmp::Reverse(c.width as u64 * c.height as u64),
            std::cmp::Reverse(c.byte_size),
            c.locations[0].clone(),
        )
    };
    members.sort_by_key(rank);
    let keep = &contents[members[0]].embedding;
    let kind = if members.len() == 1 { "exact" } else { "near" };
    let members = members
        .iter()
        .flat_map(|&i| {
            let c = &contents[i];
            let similarity = if i == members[0] {
                1.0
            } else {
                cosine(keep, &c.embedding)
            };
            c.locations.iter().map(move |l| DuplicateMember {
                id: c.id.clone(),
                bucket: l.bucket.clone(),
                key: l.key.clone(),
                byte_size: c.byte_size,
                width: c.width,
                height: c.height,
                similarity,
                url: None,
                thumbnail_url: None,
            })
        })
        .collect();
    Some(DuplicateGroup {
        kind: kind.to_owned(),
        members,
    })
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureSource, CaptureTime};
    use crate::store::{IndexSpec, Location, MemoryIndex};

    fn row(id: char, key: &str, vector: [f32; 3], pixels: u32) -> IndexedObject {
        IndexedObject {
            location: Location::new("b", key),
            id: id.to_string().repeat(64),
            embedding: vector.to_vec(),
            content_type: "image/jpeg".into(),
            width: pixels,
            height: 1,
            byte_size: 10,
            etag: String::new(),
            modified_ms: 0,
            ingested_at_ms: 0,
            model: "m".into(),
            captured: CaptureTime {
                ms: 0,
                source: CaptureSource::Modified,
            },
        }
    }

    async fn index(rows: Vec<IndexedObject>) -> MemoryIndex {
        let index = MemoryIndex::new(IndexSpec {
            dimension: 3,
            model: "m".into(),
            text_model: None,
        });
        for r in rows {
            index.put_object(r).await.unwrap();
        }
        index
    }

    #[tokio::test]
    async fn exact_copies_and_near_chains_group_and_the_rest_stays_alone() {
        let index = index(vec![
            // a: one content under two keys.
            row('a', "p/a1", [1.0, 0.0, 0.0], 10),
            row('a', "p/a2", [1.0, 0.0, 0.0], 10),
            // b ~ c ~ d: a chain of near copies (b and d are further apart than the threshold).
            row('b', "p/b", [0.0, 1.0, 0.0], 5),
            row('c', "p/c", [0.0, 0.99, 0.14], 50),
            row('d', "p/d", [0.0, 0.96, 0.28], 7),
            // e: unrelated; f: a near copy of a, outside the prefix.
            row('e', "p/e", [0.0, 0.0, 1.0], 10),
            row('f', "q/f", [0.999, 0.04, 0.0], 10),
        ])
        .await;
        let (groups, scanned) = duplicate_groups(&index, Some("p/"), 0.98, 100).await.unwrap();
        assert_eq!(scanned, 5);
        assert_eq!(groups.len(), 2, "{groups:#?}");
        let near = &groups[0];
        assert_eq!(near.kind, "near");
        let keys: Vec<&str> = near.members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["p/c", "p/d", "p/b"], "the most pixels first");
        assert_eq!(near.members[0].similarity, 1.0);
        assert!(near.members[1..].iter().all(|m| m.similarity >= 0.98 - 1e-6));
        let exact = &groups[1];
        assert_eq!(exact.kind, "exact");
        assert_eq!(
            exact.members.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["p/a1", "p/a2"]
        );

        let (everything, _) = duplicate_groups(&index, None, 0.98, 100).await.unwrap();
        assert!(
            everything.iter().any(|g| g.members.iter().any(|m| m.key == "q/f")),
            "f joins a"
        );
        assert!(matches!(
            duplicate_groups(&index, None, 0.98, 3).await,
            Err(Error::InvalidRequest(_))
        ));
        assert!(duplicate_groups(&index, None, 1.5, 100).await.is_err());
    }
}
