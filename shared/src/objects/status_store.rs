//! Ingest status records on S3: one small JSON object per refused or failing key, at
//! `<status prefix><key>.json` in the object's own bucket. The bucket notification only
//! forwards image suffixes, so writing these never triggers ingest; listings for indexing and
//! reconcile leave the prefix out (`S3Objects::list_page`). Keys too long to carry the prefix
//! (S3 keys end at 1024 bytes) get no record: the refusal is still logged and counted.

use futures::stream::{self, StreamExt, TryStreamExt};

use super::{ObjectSource, S3Objects};
use crate::status::{StatusRecord, StatusStore};
use crate::store::Location;
use crate::{Error, Result};

/// S3's longest key, in bytes.
const MAX_S3_KEY: usize = 1024;
const SUFFIX: &str = ".json";
/// Records read at once when listing.
const READS_IN_FLIGHT: usize = 16;
/// A status record is a few hundred bytes; anything bigger is not one of ours.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

impl S3Objects {
    /// The key of `key`'s status record, `None` when records are off or it would be too long.
    fn status_key(&self, key: &str) -> Option<String> {
        let status_key = format!("{}{key}{SUFFIX}", self.status_prefix);
        (!self.status_prefix.is_empty() && status_key.len() <= MAX_S3_KEY).then_some(status_key)
    }
}

impl StatusStore for S3Objects {
    async fn record_status(&self, record: &StatusRecord) -> Result<()> {
        let Some(status_key) = self.status_key(&record.key) else {
            return Ok(());
        };
        let body = serde_json::to_vec(record).map_err(|e| Error::Config(format!("status record: {e}")))?;
        self.put(&record.bucket, &status_key, body, "application/json").await
    }

    async fn clear_status(&self, location: &Location) -> Result<()> {
        match self.status_key(&location.key) {
            // DELETE of a missing key succeeds: no read first.
            Some(status_key) => self.delete(&location.bucket, &status_key).await,
            None => Ok(()),
        }
    }

    async fn read_status(&self, location: &Location) -> Result<Option<StatusRecord>> {
        let Some(status_key) = self.status_key(&location.key) else {
            return Ok(None);
        };
        match self.fetch(&location.bucket, &status_key, MAX_RECORD_BYTES).await {
            Ok(object) => parse(&object.bytes, &location.bucket, &status_key).map(Some),
            Err(Error::ObjectMissing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_statuses(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StatusRecord>, Option<String>)> {
        if self.status_prefix.is_empty() {
            return Ok((Vec::new(), None));
        }
        let list_prefix = format!("{}{prefix}", self.status_prefix);
        let after = start_after.map(|key| format!("{}{key}{SUFFIX}", self.status_prefix));
        let max_keys = limit.clamp(1, 1000) as i32;
        let (page, next) = self.list_page(bucket, &list_prefix, after.as_deref(), max_keys).await?;
        let records: Vec<Option<StatusRecord>> = stream::iter(page)
            .filter(|o| std::future::ready(o.key.ends_with(SUFFIX)))
            .map(|o| async move {
                match self.fetch(bucket, &o.key, MAX_RECORD_BYTES).await {
                    Ok(object) => parse(&object.bytes, bucket, &o.key).map(Some),
                    // Cleared between the listing and the read.
                    Err(Error::ObjectMissing { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let next = next.map(|k| original_key(&k, &self.status_prefix));
        Ok((records.into_iter().flatten().collect(), next))
    }
}

/// The object key a status record's key stands for.
fn original_key(status_key: &str, prefix: &str) -> String {
    let inner = status_key.strip_prefix(prefix).unwrap_or(status_key);
    inner.strip_suffix(SUFFIX).unwrap_or(inner).to_string()
}

fn parse(bytes: &[u8], bucket: &str, status_key: &str) -> Result<StatusRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::ObjectStoreUnavailable(format!("s3://{bucket}/{status_key} is no status record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keys_map_back_to_object_keys() {
        assert_eq!(original_key(".s/photos/a.jpg.json", ".s/"), "photos/a.jpg");
        assert_eq!(original_key(".s/x.json.json", ".s/"), "x.json");
    }
}
