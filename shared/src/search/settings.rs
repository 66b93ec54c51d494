//! How a search deployment behaves ([`SearchSettings`]); `config` reads them from the
//! environment.

use std::time::Duration;

use crate::clip::Towers;
use crate::objects::{DEFAULT_PRESIGN_EXPIRY, DEFAULT_UPLOAD_PREFIX};
use crate::{Error, Result};

use super::DEFAULT_MAX_QUERY_IMAGE_BYTES;

/// How a search deployment behaves.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// `CLIPSEARCH_ENABLE_TEXT` (default true): load the text tower, answer text queries.
    pub enable_text: bool,
    /// `CLIPSEARCH_ENABLE_IMAGE` (default true): load the vision tower, answer image queries.
    pub enable_image: bool,
    /// `CLIPSEARCH_MAX_QUERY_IMAGE_BYTES` (default 6 MiB): largest query image.
    pub max_query_image_bytes: u64,
    /// `CLIPSEARCH_BUCKET`: the indexed bucket (`image_url` queries must point into it;
    /// uploads go there).
    pub bucket: Option<String>,
    /// `CLIPSEARCH_UPLOAD_PREFIX`: where presigned uploads land.
    pub upload_prefix: String,
    /// `CLIPSEARCH_PRESIGN_EXPIRY_SECS`: lifetime of the URLs handed out (reported to callers).
    pub presign_expiry: Duration,
    /// `CLIPSEARCH_MAX_IMAGE_BYTES`: the largest upload a form admits (ingest refuses more).
    pub max_upload_bytes: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            enable_text: true,
            enable_image: true,
            max_query_image_bytes: DEFAULT_MAX_QUERY_IMAGE_BYTES,
            bucket: None,
            upload_prefix: DEFAULT_UPLOAD_PREFIX.into(),
            presign_expiry: DEFAULT_PRESIGN_EXPIRY,
            max_upload_bytes: crate::config::DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

impl SearchSettings {
    /// The encoder towers this deployment needs: a text-only deployment never loads the
    /// vision model, so it starts faster and uses less memory.
    pub fn towers(&self) -> Towers {
        Towers {
            image: self.enable_image,
            text: self.enable_text,
        }
    }

    /// Refuses a query image of `size` bytes over the deployment's limit.
    pub fn check_query_image_size(&self, size: u64) -> Result<()> {
        if size > self.max_query_image_bytes {
            return Err(Error::ImageTooLarge {
                size,
                limit: self.max_query_image_bytes,
            });
        }
        Ok(())
    }
}
