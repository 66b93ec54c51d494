//! `GET /duplicates` and `clipsearch duplicates`: the duplicate groups under a key prefix, a
//! page at a time, each member with presigned URLs of its original and thumbnail when the
//! searcher has S3.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::options::parse_field;
use super::SearchObjects;
use super::{ms, Searcher};
use crate::clip::Encoder;
use crate::duplicates::{duplicate_groups, DuplicateGroup, DEFAULT_THRESHOLD};
use crate::store::{validate_key_prefix, ImageIndex, Location};
use crate::{Error, Result};

/// Groups per page unless the caller says otherwise, and at most.
pub const DEFAULT_GROUPS_PER_PAGE: usize = 20;
pub const MAX_GROUPS_PER_PAGE: usize = 100;
/// Contents one `GET /duplicates` compares (each costs a neighbour search): a bigger prefix is
/// a 400 pointing at a narrower one or at the CLI, which has no cap.
pub const MAX_API_CONTENTS: usize = 5_000;

/// What to look for, as given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DuplicatesRequest {
    pub threshold: Option<f64>,
    pub prefix: Option<String>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// One page of groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicatesPage {
    pub groups: Vec<DuplicateGroup>,
    /// Groups in all pages.
    pub total_groups: usize,
    /// Distinct contents compared.
    pub scanned: usize,
    pub threshold: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    pub model: String,
    pub took_ms: f64,
}

impl DuplicatesRequest {
    /// From a query string's fields; a value that does not parse is a 400 naming it.
    pub fn from_fields<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self> {
        let integer = |name: &str| parse_field::<i64>(name, get(name), "an integer");
        Ok(Self {
            threshold: parse_field::<f64>("threshold", get("threshold"), "a number")?,
            prefix: get("prefix").filter(|p| !p.is_empty()).map(str::to_owned),
            offset: integer("offset")?,
            limit: integer("limit")?,
        })
    }
}

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
    /// One page of the duplicate groups under a prefix, comparing at most `max_contents`.
    pub async fn duplicates(&self, request: &DuplicatesRequest, max_contents: usize) -> Result<DuplicatesPage> {
        let started = Instant::now();
        let threshold = match request.threshold {
            None => DEFAULT_THRESHOLD,
            Some(t) if t.is_finite() && (0.0..=1.0).contains(&t) => t as f32,
            Some(t) => {
                return Err(Error::InvalidRequest(format!(
                    "threshold must be a cosine similarity in 0..=1, got {t}"
                )))
            }
        };
        let offset = match request.offset {
            None => 0,
            Some(o) if o >= 0 => o as usize,
            Some(o) => return Err(Error::InvalidRequest(format!("offset must be at least 0, got {o}"))),
        };
        let limit = match request.limit {
            None => DEFAULT_GROUPS_PER_PAGE,
            Some(l) if (1..=MAX_GROUPS_PER_PAGE as i64).contains(&l) => l as usize,
            Some(l) => {
                return Err(Error::InvalidRequest(format!(
                    "limit must be in 1..={MAX_GROUPS_PER_PAGE}, got {l}"
                )))
            }
        };
        if let Some(prefix) = &request.prefix {
            validate_key_prefix(prefix, "prefix")?;
        }
        let (all, scanned) = duplicate_groups(&self.index, request.prefix.as_deref(), threshold, max_contents).await?;
        let total_groups = all.len();
        let mut groups: Vec<DuplicateGroup> = all.into_iter().skip(offset).take(limit).collect();
        for member in groups.iter_mut().flat_map(|g| g.members.iter_mut()) {
            member.url = self.presign(&Location::new(&member.bucket, &member.key)).await?;
            member.thumbnail_url = self.presign_thumbnail(&member.bucket, &member.id).await?;
        }
        let end = offset + groups.len();
        Ok(DuplicatesPage {
            groups,
            total_groups,
            scanned,
            threshold,
            next_offset: (end < total_groups).then_some(end),
            model: self.model().to_owned(),
            took_ms: ms(started.elapsed()),
        })
    }
}
