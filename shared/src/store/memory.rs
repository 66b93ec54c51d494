//! An in-process [`ImageIndex`] with the same semantics as the Milvus one (exact cosine
//! search), for unit tests of ingest and search logic. Not for production: no persistence.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    dedup_locations, matching_first, normalize_id, too_many_locations, validate_record, validate_search,
    validate_vector, ImageIndex, ImageRecord, IndexSpec, Location, RemoveOutcome, SearchHit, SearchRequest,
    MAX_LOCATIONS,
};
use crate::{Error, Result};

#[derive(Debug)]
pub struct MemoryIndex {
    spec: IndexSpec,
    records: Mutex<BTreeMap<String, ImageRecord>>,
}

impl MemoryIndex {
    pub fn new(spec: IndexSpec) -> Self {
        Self {
            spec,
            records: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, ImageRecord>>> {
        self.records
            .lock()
            .map_err(|_| Error::Store("memory index poisoned".into()))
    }

    /// Removes `location` from every record but `owner`, deleting records left empty.
    fn detach(records: &mut BTreeMap<String, ImageRecord>, location: &Location, owner: &str) {
        records.retain(|id, record| {
            if id != owner {
                record.locations.retain(|l| l != location);
            }
            !record.locations.is_empty()
        });
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl ImageIndex for MemoryIndex {
    async fn exists(&self, id: &str) -> Result<bool> {
        let id = normalize_id(id)?;
        Ok(self.lock()?.contains_key(&id))
    }

    async fn get(&self, id: &str) -> Result<Option<ImageRecord>> {
        let id = normalize_id(id)?;
        Ok(self.lock()?.get(&id).cloned())
    }

    async fn upsert(&self, record: ImageRecord) -> Result<()> {
        let mut record = validate_record(&record, &self.spec)?;
        let mut records = self.lock()?;
        if let Some(old) = records.get(&record.id) {
            let mut merged = old.locations.clone();
            merged.extend(record.locations);
            record.locations = dedup_locations(merged);
            record.ingested_at_ms = record.ingested_at_ms.min(old.ingested_at_ms);
            if record.locations.len() > MAX_LOCATIONS {
                return Err(too_many_locations(&record.id));
            }
        }
        for location in &record.locations {
            Self::detach(&mut records, location, &record.id);
        }
        records.insert(record.id.clone(), record);
        Ok(())
    }

    async fn add_location(&self, id: &str, location: &Location) -> Result<bool> {
        let id = normalize_id(id)?;
        location.validate()?;
        let mut records = self.lock()?;
        let Some(record) = records.get_mut(&id) else {
            return Ok(false);
        };
        if !record.locations.contains(location) {
            if record.locations.len() >= MAX_LOCATIONS {
                return Err(too_many_locations(&id));
            }
            record.locations.push(location.clone());
        }
        Self::detach(&mut records, location, &id);
        Ok(true)
    }

    async fn remove_location(&self, location: &Location) -> Result<RemoveOutcome> {
        location.validate()?;
        let mut records = self.lock()?;
        let Some(id) = records
            .iter()
            .find(|(_, r)| r.locations.contains(location))
            .map(|(id, _)| id.clone())
        else {
            return Ok(RemoveOutcome::NotIndexed);
        };
        let Some(record) = records.get_mut(&id) else {
            return Ok(RemoveOutcome::NotIndexed);
        };
        record.locations.retain(|l| l != location);
        if record.locations.is_empty() {
            records.remove(&id);
            Ok(RemoveOutcome::RecordDeleted { id })
        } else {
            Ok(RemoveOutcome::LocationRemoved { id })
        }
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        validate_search(request)?;
        validate_vector(&request.vector, &self.spec)?;
        let exclude = request.exclude_id.as_deref().map(normalize_id).transpose()?;
        let prefix = request.key_prefix.as_deref().filter(|p| !p.is_empty());
        let records = self.lock()?;
        let mut hits: Vec<SearchHit> = records
            .values()
            .filter(|r| exclude.as_deref() != Some(r.id.as_str()))
            .filter(|r| prefix.is_none_or(|p| r.locations.iter().any(|l| l.key.starts_with(p))))
            .map(|r| SearchHit {
                id: r.id.clone(),
                score: cosine(&request.vector, &r.embedding),
                locations: matching_first(r.locations.clone(), prefix),
                content_type: r.content_type.clone(),
                width: r.width,
                height: r.height,
                byte_size: r.byte_size,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
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
            });
            index.upsert(record('a', vec![1.0, 0.0], &["x/1"])).await.unwrap();
            index.upsert(record('b', vec![0.0, 1.0], &["y/1"])).await.unwrap();
            // Same content under a second key: one record, two locations.
            index.upsert(record('a', vec![1.0, 0.0], &["x/2"])).await.unwrap();
            assert_eq!(index.count().await.unwrap(), 2);
            let a = index.get(&"a".repeat(64)).await.unwrap().unwrap();
            assert_eq!(a.locations.len(), 2);

            let hits = index
                .search(&SearchRequest {
                    vector: vec![1.0, 0.1],
                    top_k: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(hits[0].id, "a".repeat(64));
            let hits = index
                .search(&SearchRequest {
                    vector: vec![1.0, 0.1],
                    top_k: 10,
                    key_prefix: Some("y/".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(hits.len(), 1);

            // A key overwritten with other bytes moves to the new record.
            index.upsert(record('c', vec![1.0, 1.0], &["y/1"])).await.unwrap();
            assert!(!index.exists(&"b".repeat(64)).await.unwrap());

            let x1 = Location::new("b", "x/1");
            let x2 = Location::new("b", "x/2");
            assert!(matches!(
                index.remove_location(&x1).await.unwrap(),
                RemoveOutcome::LocationRemoved { .. }
            ));
            assert!(matches!(
                index.remove_location(&x2).await.unwrap(),
                RemoveOutcome::RecordDeleted { .. }
            ));
            assert_eq!(index.remove_location(&x2).await.unwrap(), RemoveOutcome::NotIndexed);
            assert_eq!(index.count().await.unwrap(), 1);
        });
    }
}
