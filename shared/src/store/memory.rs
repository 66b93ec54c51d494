//! An in-process [`ImageIndex`] with the same semantics as the Milvus one (one row per object,
//! exact cosine search grouped by content), for unit tests of ingest and search logic. Not for
//! production: no persistence.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use super::{
    cosine, group_rows, matching_first, normalize_id, validate_object, validate_search, validate_vector, IdPrefixScan,
    ImageIndex, ImageRecord, IndexSpec, IndexedObject, KeyRange, Location, SearchHit, SearchRequest,
};
use crate::{Error, Result};

#[derive(Debug)]
pub struct MemoryIndex {
    spec: IndexSpec,
    rows: Mutex<BTreeMap<Location, IndexedObject>>,
}

impl MemoryIndex {
    pub fn new(spec: IndexSpec) -> Self {
        Self {
            spec,
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Location, IndexedObject>>> {
        self.rows
            .lock()
            .map_err(|_| Error::Store("memory index poisoned".into()))
    }
}

fn without_vector(row: &IndexedObject) -> IndexedObject {
    IndexedObject {
        embedding: Vec::new(),
        ..row.clone()
    }
}

impl ImageIndex for MemoryIndex {
    async fn exists(&self, id: &str) -> Result<bool> {
        let id = normalize_id(id)?;
        Ok(self.lock()?.values().any(|r| r.id == id))
    }

    async fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        let id = normalize_id(id)?;
        let rows: Vec<IndexedObject> = self.lock()?.values().filter(|r| r.id == id).cloned().collect();
        Ok(group_rows(rows).into_iter().next())
    }

    async fn vector_of(&self, id: &str) -> Result<Option<IndexedObject>> {
        let id = normalize_id(id)?;
        Ok(self.lock()?.values().find(|r| r.id == id).cloned())
    }

    async fn object(&self, location: &Location) -> Result<Option<IndexedObject>> {
        location.validate()?;
        Ok(self.lock()?.get(location).map(without_vector))
    }

    async fn put_object(&self, object: IndexedObject) -> Result<()> {
        let row = validate_object(&object, &self.spec)?;
        self.lock()?.insert(row.location.clone(), row);
        Ok(())
    }

    async fn remove_object(&self, location: &Location) -> Result<Option<String>> {
        location.validate()?;
        Ok(self.lock()?.remove(location).map(|r| r.id))
    }

    async fn objects_in(&self, range: &KeyRange, limit: usize) -> Result<Vec<IndexedObject>> {
        let rows: Vec<IndexedObject> = self
            .lock()?
            .values()
            .filter(|r| range.contains(&r.location))
            .map(without_vector)
            .collect();
        if rows.len() > limit {
            return Err(Error::Store(format!(
                "more than {limit} index rows in one listing range"
            )));
        }
        Ok(rows)
    }

    async fn rows_with_id_prefix(&self, scan: &IdPrefixScan<'_>) -> Result<Option<Vec<IndexedObject>>> {
        let rows: Vec<IndexedObject> = self.lock()?.values().filter(|r| scan.selects(r)).cloned().collect();
        Ok((rows.len() <= scan.limit).then_some(rows))
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        validate_search(request)?;
        validate_vector(&request.vector, &self.spec)?;
        let exclude = request.exclude_id.as_deref().map(normalize_id).transpose()?;
        let prefix = request.key_prefix.as_deref().filter(|p| !p.is_empty());
        let rows = self.lock()?;
        let matching: HashSet<&str> = rows
            .values()
            .filter(|r| prefix.is_none_or(|p| r.location.key.starts_with(p)) && request.filter.matches(r))
            .map(|r| r.id.as_str())
            .collect();
        let contents = group_rows(rows.values().cloned().collect());
        let mut hits: Vec<SearchHit> = contents
            .into_iter()
            .filter(|r| matching.contains(r.id.as_str()) && exclude.as_deref() != Some(r.id.as_str()))
            .map(|r| SearchHit {
                score: cosine(&request.vector, &r.embedding),
                locations: matching_first(r.locations, prefix),
                id: r.id,
                content_type: r.content_type,
                width: r.width,
                height: r.height,
                byte_size: r.byte_size,
                captured: r.captured,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(request.top_k);
        hits.retain(|h| request.min_score.is_none_or(|min| h.score >= min));
        Ok(hits)
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.lock()?.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id_byte: char, vector: Vec<f32>, keys: &[&str]) -> ImageRecord {
        ImageRecord {
            id: id_byte.to_string().repeat(64),
            embedding: vector,
            locations: keys.iter().map(|k| Location::new("b", *k)).collect(),
            content_type: "image/jpeg".into(),
            width: 2,
            height: 3,
            byte_size: 4,
            ingested_at_ms: 5,
            captured: crate::capture::CaptureTime {
                ms: 1,
                source: crate::capture::CaptureSource::Exif,
            },
            model: "m".into(),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn behaves_like_the_index_contract() {
        block_on(async {
            let index = MemoryIndex::new(IndexSpec {
                dimension: 2,
                model: "m".into(),
                text_model: None,
            });
            index.upsert(record('a', vec![1.0, 0.0], &["x/1"])).await.unwrap();
            index.upsert(record('b', vec![0.0, 1.0], &["y/1"])).await.unwrap();
            // Same content under a second key: two rows, one content.
            index.upsert(record('a', vec![1.0, 0.0], &["x/2"])).await.unwrap();
            assert_eq!(index.count().await.unwrap(), 3);
            let a = index.get(&"a".repeat(64)).await.unwrap().unwrap();
            assert_eq!(a.locations.len(), 2);

            let search = |prefix: Option<&str>| SearchRequest {
                vector: vec![1.0, 0.1],
                top_k: 10,
                key_prefix: prefix.map(str::to_owned),
                ..Default::default()
            };
            let hits = index.search(&search(None)).await.unwrap();
            assert_eq!(hits.len(), 2, "one hit per content");
            assert_eq!(hits[0].id, "a".repeat(64));
            assert_eq!(hits[0].locations.len(), 2);
            assert_eq!(index.search(&search(Some("y/"))).await.unwrap().len(), 1);

            // A key overwritten with other bytes holds only the new content.
            index.upsert(record('c', vec![1.0, 1.0], &["y/1"])).await.unwrap();
            assert!(!index.exists(&"b".repeat(64)).await.unwrap());

            let x1 = Location::new("b", "x/1");
            assert_eq!(index.remove_object(&x1).await.unwrap(), Some("a".repeat(64)));
            assert_eq!(index.remove_object(&x1).await.unwrap(), None);
            assert_eq!(index.count().await.unwrap(), 2);
        });
    }
}
