//! Presigned uploads ([`Searcher::upload`]): a browser posts a file straight to the bucket's
//! upload prefix under a fresh, safe key, and ingest takes it from there.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SearchObjects;
use super::Searcher;
use crate::clip::Encoder;
use crate::objects::PostConditions;
use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

/// Longest upload file name kept in the key (characters).
const MAX_UPLOAD_NAME_CHARS: usize = 100;

/// The image types ingest can embed, which are therefore the ones worth uploading.
pub const UPLOAD_CONTENT_TYPES: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/tiff",
    "image/bmp",
];

/// A presigned upload form: POST `multipart/form-data` to `url` with every one of `fields`,
/// then the file as the last part, named `file`. S3 refuses the upload unless it is this key,
/// this content type and 1..=`max_bytes` bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadTicket {
    pub method: String,
    pub url: String,
    pub bucket: String,
    pub key: String,
    /// Form fields, the signed policy among them.
    pub fields: std::collections::BTreeMap<String, String>,
    pub content_type: String,
    pub max_bytes: u64,
    pub expires_in: u64,
}

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
    /// A presigned upload form into the bucket's upload prefix under a fresh key, so a browser
    /// uploads straight to S3 and ingest takes it from there.
    pub async fn upload(&self, filename: &str, content_type: &str) -> Result<UploadTicket> {
        let content_type = content_type.trim().to_ascii_lowercase();
        if !UPLOAD_CONTENT_TYPES.contains(&content_type.as_str()) {
            return Err(Error::UnsupportedFormat(format!(
                "content type {:?} (uploads accept {})",
                truncate(&content_type, 80),
                UPLOAD_CONTENT_TYPES.join(", ")
            )));
        }
        let name = upload_name(filename)?;
        let bucket = self
            .settings
            .bucket
            .clone()
            .ok_or_else(|| Error::Config("uploads need CLIPSEARCH_BUCKET (the indexed bucket)".into()))?;
        let key = format!("{}{}-{name}", self.settings.upload_prefix, unique_token());
        Location::new(bucket.as_str(), key.as_str()).validate()?;
        let conditions = PostConditions {
            bucket: &bucket,
            key: &key,
            content_type: &content_type,
            max_bytes: self.settings.max_upload_bytes,
            expires_in: self.settings.presign_expiry,
        };
        let form = self.objects()?.presign_post(&conditions).await?;
        Ok(UploadTicket {
            method: "POST".into(),
            url: form.url,
            fields: form.fields,
            max_bytes: self.settings.max_upload_bytes,
            expires_in: self.settings.presign_expiry.as_secs(),
            bucket,
            key,
            content_type,
        })
    }
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// The last path component of a client's file name, reduced to characters that need no
/// escaping anywhere (URLs, filters, shells).
fn upload_name(filename: &str) -> Result<String> {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() {
        return Err(Error::InvalidRequest("filename is empty".into()));
    }
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    // Keep the extension when shortening: it is what people recognise.
    let chars: Vec<char> = cleaned.chars().collect();
    let name: String = if chars.len() > MAX_UPLOAD_NAME_CHARS {
        chars[chars.len() - MAX_UPLOAD_NAME_CHARS..].iter().collect()
    } else {
        cleaned.to_owned()
    };
    Ok(if name.is_empty() { "image".into() } else { name })
}

/// 16 hex characters, unique per call in practice (time, process and a counter hashed), so
/// two uploads of `photo.jpg` never overwrite each other.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&hasher.finalize()[..8])
}
