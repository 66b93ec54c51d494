//! `GET /status`: where one key stands with ingest, for the search function's callers.

use super::SearchObjects;
use super::Searcher;
use crate::clip::Encoder;
use crate::status::{status_of, IngestStatus, StatusStore};
use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
    /// Indexed, refused, failing or unknown. Only the configured bucket is answered for (the
    /// function's role reads no other); `bucket` may be left out.
    pub async fn status(&self, bucket: Option<&str>, key: &str) -> Result<IngestStatus> {
        let configured = self.settings.bucket.as_deref();
        let bucket = match (bucket.filter(|b| !b.is_empty()), configured) {
            (Some(asked), Some(ours)) if asked != ours => {
                return Err(Error::InvalidRequest(format!(
                    "bucket {asked:?} is not the indexed bucket ({ours:?})"
                )))
            }
            (Some(asked), _) => asked,
            (None, Some(ours)) => ours,
            (None, None) => return Err(Error::InvalidRequest("bucket is required".into())),
        };
        if key.is_empty() {
            return Err(Error::InvalidRequest("key is required".into()));
        }
        let location = Location::new(bucket, key);
        match &self.objects {
            Some(objects) => status_of(&self.index, objects, &location).await,
            None => status_of(&self.index, &NoStatus, &location).await,
        }
    }
}

/// No status store: the index alone answers.
struct NoStatus;
impl StatusStore for NoStatus {}
