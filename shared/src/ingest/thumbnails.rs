//! Reconcile's thumbnail pass: every indexed content of the bucket gets its thumbnail back (made
//! again from one of its objects) and every thumbnail whose content left the index goes. The
//! thumbnails present are listed once per walk; the walk's own index rows say which contents
//! it saw.

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::reconcile::{Difference, Finding};
use super::IngestObjects;
use super::{Ingestor, Outcome};
use crate::clip::Encoder;
use crate::objects::ObjectSummary;
use crate::store::{ImageIndex, IndexedObject, Location};
use crate::{Error, Result};

/// The thumbnails of one bucket, and the contents a walk has seen in it so far.
#[derive(Debug, Default)]
pub struct ThumbnailCheck {
    present: HashSet<String>,
    seen: HashSet<String>,
}

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
    /// The thumbnails of `bucket` (every page of their listing); `None` with thumbnails off.
    pub async fn thumbnail_check(&self, bucket: &str) -> Result<Option<ThumbnailCheck>> {
        if self.objects.thumbnail_key("0").is_none() {
            return Ok(None);
        }
        let mut check = ThumbnailCheck::default();
        let mut after: Option<String> = None;
        loop {
            let (ids, next) = self.objects.thumbnail_ids(bucket, after.as_deref()).await?;
            check.present.extend(ids);
            match next {
                Some(id) => after = Some(id),
                None => return Ok(Some(check)),
            }
        }
    }

    /// The rows of one page whose content has no thumbnail (one finding per content, at one of
    /// its listed objects), made again with `apply`. Rows of objects not listed are stale: the
    /// walk removes them instead.
    pub(crate) async fn missing_thumbnails(
        &self,
        rows: &[IndexedObject],
        listed: &[ObjectSummary],
        check: &mut ThumbnailCheck,
        apply: bool,
    ) -> Vec<Finding> {
        let listed: HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        let mut findings = Vec::new();
        for row in rows.iter().filter(|r| listed.contains(r.location.key.as_str())) {
            if !check.seen.insert(row.id.clone()) || check.present.contains(&row.id) {
                continue;
            }
            let repair = if apply {
                Some(self.remake_thumbnail(&row.location).await)
            } else {
                None
            };
            findings.push(Finding {
                location: row.location.clone(),
                difference: Difference::ThumbnailMissing,
                repair,
            });
        }
        findings
    }

    /// Thumbnails of `bucket` whose content no object in the index holds any more (deleted
    /// with `apply`), listed afresh (repairs during the walk may have removed some). Contents
    /// the walk saw are held; the others are asked of the index, since a walk of one prefix
    /// does not see the whole bucket. Only meaningful once the index holds every object: a
    /// key whose row is missing would make its content's thumbnail look orphaned.
    pub async fn orphaned_thumbnails(&self, bucket: &str, check: &ThumbnailCheck, apply: bool) -> Result<Vec<Finding>> {
        let Some(now) = self.thumbnail_check(bucket).await? else {
            return Ok(Vec::new());
        };
        let mut unseen: Vec<&String> = now.present.difference(&check.seen).collect();
        unseen.sort();
        let mut findings = Vec::new();
        for id in unseen {
            if self.index.exists(id).await? {
                continue;
            }
            let key = self.objects.thumbnail_key(id).unwrap_or_default();
            let repair = if apply {
                Some(
                    self.objects
                        .remove_thumbnail(bucket, id)
                        .await
                        .map(|()| Outcome::ThumbnailRemoved { id: id.clone() }),
                )
            } else {
                None
            };
            findings.push(Finding {
                location: Location::new(bucket, key),
                difference: Difference::ThumbnailOrphaned,
                repair,
            });
        }
        Ok(findings)
    }

    /// Makes the thumbnail of the object at `location` again, from its bytes.
    async fn remake_thumbnail(&self, location: &Location) -> Result<Outcome> {
        let fetched = self
            .objects
            .fetch(&location.bucket, &location.key, self.max_image_bytes)
            .await?;
        let id = hex::encode(Sha256::digest(&fetched.bytes));
        let encoder = Arc::clone(&self.encoder);
        let embedded = tokio::task::spawn_blocking(move || encoder.embed_image(&fetched.bytes))
            .await
            .map_err(|e| Error::Inference(format!("the thumbnail task failed: {e}")))??;
        let jpeg = embedded
            .thumbnail
            .ok_or_else(|| Error::Config("this encoder makes no thumbnails".into()))?;
        self.objects.put_thumbnail(&location.bucket, &id, jpeg).await?;
        Ok(Outcome::ThumbnailWritten { id })
    }
}
