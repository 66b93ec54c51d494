//! Reconcile: compare the index with a bucket (or a local folder) one key range at a time,
//! report every difference and, on request, repair it through the same sync that events use.
//! It is the safety net for lost events and the way to adopt or migrate an index.
//!
//! A walk lists the source in key order, a page at a time; each page covers the keys after the
//! previous page's last key up to its own last key (the last page: to the end of the prefix),
//! so consecutive pages cover every key exactly once and the index rows of the same range can be
//! compared with the listing. The last key of a finished page is a resume point.

use std::collections::HashMap;
use std::path::PathBuf;

use super::thumbnails::ThumbnailCheck;
use super::IngestObjects;
use super::{row_version, Ingestor, Outcome};
use crate::clip::Encoder;
use crate::objects::ObjectSummary;
use crate::store::{ImageIndex, IndexedObject, KeyRange, Location};
use crate::Result;

/// Most index rows one page's range may hold (stale rows included).
pub const MAX_ROWS_PER_PAGE: usize = 16_000;

/// How the index differs from the source at one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// The object exists but has no row.
    Missing,
    /// A row whose object is gone.
    Stale,
    /// The object's ETag, size or modification time differs from what its row was made from.
    Changed,
    /// An indexed content of the bucket has no thumbnail (at one of its objects).
    ThumbnailMissing,
    /// A thumbnail whose content no object holds (at the thumbnail's own key).
    ThumbnailOrphaned,
}

impl Difference {
    pub fn as_str(self) -> &'static str {
        match self {
            Difference::Missing => "missing",
            Difference::Stale => "stale",
            Difference::Changed => "changed",
            Difference::ThumbnailMissing => "thumbnail_missing",
            Difference::ThumbnailOrphaned => "thumbnail_orphaned",
        }
    }
}

/// One difference, and what repairing it did.
#[derive(Debug)]
pub struct Finding {
    pub location: Location,
    pub difference: Difference,
    /// `None` when not repairing; the sync's outcome otherwise.
    pub repair: Option<Result<Outcome>>,
}

/// Where the listed keys live.
#[derive(Debug, Clone)]
pub enum Source {
    Bucket,
    /// A local folder whose files are recorded under the bucket name of the range.
    Folder(PathBuf),
}

/// The differences between a listing (sorted, within `range`) and the index rows of `range`.
pub fn compare(range: &KeyRange, listed: &[ObjectSummary], rows: Vec<IndexedObject>, model: &str) -> Vec<Finding> {
    let mut by_key: HashMap<String, IndexedObject> = rows.into_iter().map(|r| (r.location.key.clone(), r)).collect();
    let mut findings = Vec::new();
    for object in listed {
        let difference = match by_key.remove(&object.key) {
            None => Difference::Missing,
            Some(row) if row.model != model || !row_version(&row).same_as(&object.version) => Difference::Changed,
            Some(_) => continue,
        };
        findings.push(Finding {
            location: Location::new(range.bucket.clone(), object.key.clone()),
            difference,
            repair: None,
        });
    }
    let mut stale: Vec<Finding> = by_key
        .into_values()
        .map(|row| Finding {
            location: row.location,
            difference: Difference::Stale,
            repair: None,
        })
        .collect();
    stale.sort_by(|a, b| a.location.cmp(&b.location));
    findings.extend(stale);
    findings
}

impl<E: Encoder + 'static, I: ImageIndex, S: IngestObjects> Ingestor<E, I, S> {
    /// Compares one page of a walk with the index and, with `apply`, repairs each difference:
    /// an S3 key is synced as an event would sync it (so a key that changed again since the
    /// listing ends in its newest state); a folder's file is indexed or its row forgotten.
    /// With a thumbnail check (a bucket's walk), contents without a thumbnail are found (and
    /// made again) too.
    pub async fn reconcile_page(
        &self,
        range: &KeyRange,
        listed: &[ObjectSummary],
        source: &Source,
        apply: bool,
        thumbnails: Option<&mut ThumbnailCheck>,
    ) -> Result<Vec<Finding>> {
        let rows = self.index.objects_in(range, MAX_ROWS_PER_PAGE).await?;
        let missing_thumbnails = match thumbnails {
            Some(check) => self.missing_thumbnails(&rows, listed, check, apply).await,
            None => Vec::new(),
        };
        let mut findings = compare(range, listed, rows, self.encoder.model_name());
        if apply {
            for finding in &mut findings {
                let location = &finding.location;
                let repair = match (source, finding.difference) {
                    (Source::Bucket, _) => self.reconcile_object(location).await,
                    (Source::Folder(_), Difference::Stale) => self.forget(location).await,
                    (Source::Folder(root), _) => self.ingest_file(location, &root.join(&location.key)).await,
                };
                finding.repair = Some(repair);
            }
        }
        findings.extend(missing_thumbnails);
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ObjectVersion;

    fn listed(key: &str, etag: &str) -> ObjectSummary {
        ObjectSummary {
            key: key.into(),
            size: 1,
            version: ObjectVersion {
                etag: etag.into(),
                size: 1,
                modified_ms: 0,
            },
        }
    }

    fn row(key: &str, etag: &str) -> IndexedObject {
        IndexedObject {
            location: Location::new("b", key),
            id: "a".repeat(64),
            embedding: vec![],
            content_type: "image/png".into(),
            width: 1,
            height: 1,
            byte_size: 1,
            etag: etag.into(),
            modified_ms: 5,
            ingested_at_ms: 0,
            captured: crate::capture::CaptureTime {
                ms: 5,
                source: crate::capture::CaptureSource::Modified,
            },
            model: "m".into(),
        }
    }

    #[test]
    fn every_kind_of_difference_is_found() {
        let range = KeyRange {
            bucket: "b".into(),
            ..Default::default()
        };
        let findings = compare(
            &range,
            &[listed("same", "e1"), listed("changed", "e2"), listed("missing", "e3")],
            vec![row("same", "e1"), row("changed", "old"), row("stale", "e4")],
            "m",
        );
        let got: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| (f.location.key.as_str(), f.difference.as_str()))
            .collect();
        assert_eq!(
            got,
            [("changed", "changed"), ("missing", "missing"), ("stale", "stale")]
        );
    }
}
