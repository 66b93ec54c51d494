//! A bounded in-process cache of text embeddings. A search function sees the same few queries
//! again and again (the page's examples, an app's saved searches, retries); a repeated query
//! then costs only the index search.
//!
//! The key is the query's token ids, not its text: two texts the tokenizer cannot tell apart
//! (case or spacing a CLIP tokenizer folds, SigLIP's canonicalisation) share an entry, and two
//! it can (a cased multilingual tower) never do. Each text encoder has its own cache, so the
//! key is also per model.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;

use super::Embedding;

pub struct QueryCache {
    entries: Option<Mutex<LruCache<Vec<u32>, Embedding>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl QueryCache {
    /// Keeps the `capacity` most recently used embeddings; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn get(&self, ids: &[u32]) -> Option<Embedding> {
        let entries = self.entries.as_ref()?;
        let found = entries.lock().unwrap_or_else(|p| p.into_inner()).get(ids).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn put(&self, ids: Vec<u32>, embedding: Embedding) {
        if let Some(entries) = &self.entries {
            entries.lock().unwrap_or_else(|p| p.into_inner()).put(ids, embedding);
        }
    }

    /// (hits, misses) since the encoder was loaded.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_and_counts() {
        let cache = QueryCache::new(2);
        cache.put(vec![1], vec![1.0]);
        cache.put(vec![2], vec![2.0]);
        assert_eq!(cache.get(&[1]), Some(vec![1.0]));
        cache.put(vec![3], vec![3.0]); // evicts [2], the least recently used
        assert_eq!(cache.get(&[2]), None);
        assert_eq!(cache.get(&[3]), Some(vec![3.0]));
        assert_eq!(cache.stats(), (2, 1));
    }

    #[test]
    fn size_zero_keeps_nothing() {
        let cache = QueryCache::new(0);
        cache.put(vec![1], vec![1.0]);
        assert_eq!(cache.get(&[1]), None);
        assert_eq!(cache.stats(), (0, 0));
    }
}
