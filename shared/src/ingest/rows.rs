//! Writing one key's row: embedding new bytes (or copying the vector of a content already
//! indexed), refusing oversized objects, removing a key's row, and the content's thumbnail
//! with it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::now_ms;
use super::IngestObjects;
use super::{Ingestor, Outcome, Thumbnails, Trace};
use crate::capture::CaptureTime;
use crate::clip::Encoder;
use crate::objects::ObjectVersion;
use crate::store::IndexedObject;
use crate::store::{ImageIndex, Location};
use crate::{Error, Result};

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
    pub(super) async fn ingest_file_traced(
        &self,
        location: &Location,
        path: &Path,
        trace: &mut Trace,
    ) -> Result<Outcome> {
        location.validate()?;
        let context = || path.display().to_string();
        let metadata = tokio::fs::metadata(path).await.map_err(|e| Error::io(context(), e))?;
        let version = file_version(&metadata);
        if version.size > self.max_image_bytes {
            return self.refuse_oversized(location, version.size, Thumbnails::None).await;
        }
        let row = self.index.object(location).await?;
        if let Some(row) = &row {
            if row.model == self.encoder.model_name() && row_version(row).same_as(&version) {
                trace.id = Some(row.id.clone());
                return Ok(Outcome::Unchanged { id: row.id.clone() });
            }
        }
        let bytes = tokio::fs::read(path).await.map_err(|e| Error::io(context(), e))?;
        let previous = row.map(|r| r.id);
        self.index_bytes(location, bytes, &version, previous, Thumbnails::None, trace)
            .await
    }

    /// Writes the row of `location` for these bytes (of `version`): the vector of a content the
    /// index already holds is copied, a new content is embedded. Refused bytes remove the row,
    /// so an overwrite with a non-image does not leave the old picture findable. `previous` is
    /// the content the object's row held before, if any.
    pub(super) async fn index_bytes(
        &self,
        location: &Location,
        bytes: Vec<u8>,
        version: &ObjectVersion,
        previous: Option<String>,
        thumbnails: Thumbnails,
        trace: &mut Trace,
    ) -> Result<Outcome> {
        location.validate()?;
        let byte_size = bytes.len() as u64;
        if byte_size > self.max_image_bytes {
            return self.refuse_oversized(location, byte_size, thumbnails).await;
        }
        let id = hex::encode(Sha256::digest(&bytes));
        trace.id = Some(id.clone());
        // Bytes handed over without an object (tests, tooling) have no last-modified time.
        let modified_ms = Some(version.modified_ms).filter(|ms| *ms > 0).unwrap_or_else(now_ms);
        let captured = CaptureTime::of(&bytes, modified_ms);
        let model = self.encoder.model_name();
        let row_of = |embedding, content_type: String, width, height| IndexedObject {
            location: location.clone(),
            id: id.clone(),
            embedding,
            content_type,
            width,
            height,
            byte_size,
            etag: version.etag.clone(),
            modified_ms: version.modified_ms,
            ingested_at_ms: now_ms(),
            model: model.to_owned(),
            captured,
        };

        // Serialise work on one content in this process so that two keys with the same bytes
        // in one batch embed once; the second finds the first's row.
        let _guard = self.content_lock(&id).lock().await;
        if let Some(known) = self.index.vector_of(&id).await? {
            if known.model == model {
                let row = row_of(known.embedding, known.content_type, known.width, known.height);
                self.index.put_object(row).await?;
                self.drop_replaced_thumbnail(location, previous.as_deref(), &id, thumbnails)
                    .await?;
                return Ok(if previous.as_deref() == Some(id.as_str()) {
                    Outcome::Unchanged { id }
                } else {
                    Outcome::LocationAdded { id }
                });
            }
        }
        let encoder = Arc::clone(&self.encoder);
        let embedding = Instant::now();
        let embedded = tokio::task::spawn_blocking(move || encoder.embed_image(&bytes))
            .await
            .map_err(|e| Error::Inference(format!("the embedding task failed: {e}")))?;
        trace.inference_ms += embedding.elapsed().as_secs_f64() * 1000.0;
        let mut embedded = match embedded {
            Ok(embedded) => embedded,
            Err(e) => {
                if e.is_bad_input() {
                    self.remove_row(location, thumbnails).await?;
                }
                return Err(e);
            }
        };
        if let Some(jpeg) = embedded.thumbnail.take().filter(|_| thumbnails == Thumbnails::InBucket) {
            // Written before the row, so a row found by search has its thumbnail. A failure
            // costs only the tile (the page shows the original instead; reconcile redoes it),
            // never the record.
            if let Err(e) = self.objects.put_thumbnail(&location.bucket, &id, jpeg).await {
                tracing::warn!(%location, error = %e, "the thumbnail was not written");
            }
        }
        let row = row_of(
            embedded.embedding,
            embedded.format.mime().to_owned(),
            embedded.width,
            embedded.height,
        );
        // One row written in one call: a failure leaves no partial row behind.
        self.index.put_object(row).await?;
        self.drop_replaced_thumbnail(location, previous.as_deref(), &id, thumbnails)
            .await?;
        Ok(Outcome::Indexed { id })
    }

    /// After an overwrite, the thumbnail of the content the object held before goes when no
    /// object holds that content any more.
    pub(super) async fn drop_replaced_thumbnail(
        &self,
        location: &Location,
        previous: Option<&str>,
        id: &str,
        thumbnails: Thumbnails,
    ) -> Result<()> {
        match previous {
            Some(old) if thumbnails == Thumbnails::InBucket && old != id && !self.index.exists(old).await? => {
                self.remove_thumbnail(location, old).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Deletes a content's thumbnail; a failure costs only a stray file that reconcile removes,
    /// never the record.
    pub(super) async fn remove_thumbnail(&self, location: &Location, id: &str) {
        if let Err(e) = self.objects.remove_thumbnail(&location.bucket, id).await {
            tracing::warn!(%location, id, error = %e, "the thumbnail was not deleted");
        }
    }

    /// Refuses an object over the byte limit: its row (an older, smaller version's) goes, so the
    /// key does not keep showing a picture it no longer holds.
    pub(super) async fn refuse_oversized(
        &self,
        location: &Location,
        size: u64,
        thumbnails: Thumbnails,
    ) -> Result<Outcome> {
        self.remove_row(location, thumbnails).await?;
        Err(Error::ImageTooLarge {
            size,
            limit: self.max_image_bytes,
        })
    }

    /// Deletes the row of `location`, saying whether its content is still held elsewhere; the
    /// last object of a content takes the content's thumbnail (in its bucket) with it.
    pub(super) async fn remove_row(&self, location: &Location, thumbnails: Thumbnails) -> Result<Outcome> {
        Ok(match self.index.remove_object(location).await? {
            None => Outcome::NotIndexed,
            Some(id) if self.index.exists(&id).await? => Outcome::LocationRemoved { id },
            Some(id) => {
                if thumbnails == Thumbnails::InBucket {
                    self.remove_thumbnail(location, &id).await;
                }
                Outcome::RecordDeleted { id }
            }
        })
    }
}

/// The version a row was written for.
pub(super) fn row_version(row: &IndexedObject) -> ObjectVersion {
    ObjectVersion {
        etag: row.etag.clone(),
        size: row.byte_size,
        modified_ms: row.modified_ms,
    }
}

/// A local file's version: size and modification time (files have no ETag).
pub fn file_version(metadata: &std::fs::Metadata) -> ObjectVersion {
    let modified_ms = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ObjectVersion {
        etag: String::new(),
        size: metadata.len(),
        modified_ms,
    }
}
