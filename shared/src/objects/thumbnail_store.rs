//! Thumbnails on S3: `<thumbnail prefix><sha256>` in the bucket of the object that brought the
//! content in, stored as `image/jpeg`. The keys have no image suffix, so the bucket
//! notification never forwards them to ingest; listings for indexing and reconcile leave the
//! prefix out (`S3Objects::list_page`).

use super::S3Objects;
use crate::thumbnail::{ThumbnailStore, THUMBNAIL_CONTENT_TYPE};
use crate::Result;

impl ThumbnailStore for S3Objects {
    fn thumbnail_key(&self, id: &str) -> Option<String> {
        (!self.thumbnail_prefix.is_empty()).then(|| format!("{}{id}", self.thumbnail_prefix))
    }

    async fn put_thumbnail(&self, bucket: &str, id: &str, jpeg: Vec<u8>) -> Result<()> {
        match self.thumbnail_key(id) {
            Some(key) => self.put(bucket, &key, jpeg, THUMBNAIL_CONTENT_TYPE).await,
            None => Ok(()),
        }
    }

    async fn remove_thumbnail(&self, bucket: &str, id: &str) -> Result<()> {
        match self.thumbnail_key(id) {
            // DELETE of a missing key succeeds: no read first.
            Some(key) => self.delete(bucket, &key).await,
            None => Ok(()),
        }
    }

    async fn thumbnail_ids(&self, bucket: &str, start_after: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        if self.thumbnail_prefix.is_empty() {
            return Ok((Vec::new(), None));
        }
        let after = start_after.map(|id| format!("{}{id}", self.thumbnail_prefix));
        let (page, next) = self
            .list_page(bucket, &self.thumbnail_prefix, after.as_deref(), 1000)
            .await?;
        let strip = |key: &str| key.strip_prefix(&self.thumbnail_prefix).map(str::to_owned);
        let ids = page.iter().filter_map(|o| strip(&o.key)).collect();
        Ok((ids, next.as_deref().and_then(strip)))
    }
}
