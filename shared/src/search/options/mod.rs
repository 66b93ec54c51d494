//! A search's options: how many results and which page, the score cuts, the key prefix, the
//! row filters (content type, size, capture time) and the order. [`SearchOptions`] is what a
//! caller gave (the same names in a query string, a form and a JSON body); [`SearchOptions::check`]
//! turns it into [`CheckedOptions`] or a bad request naming the field.

use serde::Deserialize;

use super::DEFAULT_TOP_K;
use crate::capture::parse_time;
use crate::store::{validate_key_prefix, RowFilter, SearchHit, MAX_RESULT_WINDOW, MAX_TOP_K};
use crate::{Error, Result};

/// The order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Best match first.
    #[default]
    Relevance,
    /// The relevant results (after the score cuts), latest capture time first.
    Newest,
    /// The relevant results, earliest capture time first.
    Oldest,
}

/// The options of a search, as given (unchecked). Every field is optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct SearchOptions {
    pub top_k: Option<i64>,
    /// Results to skip (a later page: the previous answer's `next_offset`).
    pub offset: Option<i64>,
    pub min_score: Option<f64>,
    /// Keep hits scoring at least this share of the best hit's score (0..=1).
    pub min_score_ratio: Option<f64>,
    pub prefix: Option<String>,
    /// Comma-separated content types (`image/jpeg,image/png`).
    pub content_type: Option<String>,
    pub min_width: Option<i64>,
    pub min_height: Option<i64>,
    /// RFC 3339 time or `YYYY-MM-DD`: only photos taken at or after it.
    pub taken_after: Option<String>,
    /// Only photos taken before it.
    pub taken_before: Option<String>,
    /// `relevance` (default), `newest` or `oldest`.
    pub sort: Option<String>,
}

/// The checked options.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedOptions {
    pub top_k: usize,
    pub offset: usize,
    pub min_score: Option<f32>,
    pub min_score_ratio: Option<f32>,
    pub prefix: Option<String>,
    pub filter: RowFilter,
    pub sort: Sort,
}

impl Default for CheckedOptions {
    fn default() -> Self {
        Self {
            top_k: DEFAULT_TOP_K,
            offset: 0,
            min_score: None,
            min_score_ratio: None,
            prefix: None,
            filter: RowFilter::default(),
            sort: Sort::Relevance,
        }
    }
}

fn bad(message: String) -> Error {
    Error::InvalidRequest(message)
}

/// A text field's value (a query string's, a form's) as a `T`, `what` naming the kind for the
/// message; blank is absent, anything that does not parse a bad request naming the field.
pub(crate) fn parse_field<T: std::str::FromStr>(name: &str, value: Option<&str>, what: &str) -> Result<Option<T>> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| bad(format!("{name} must be {what}, got {v:?}")))
        })
        .transpose()
}

impl SearchOptions {
    /// The option names, as query-string parameters and form fields.
    pub const FIELDS: [&'static str; 11] = [
        "top_k",
        "offset",
        "min_score",
        "min_score_ratio",
        "prefix",
        "content_type",
        "min_width",
        "min_height",
        "taken_after",
        "taken_before",
        "sort",
    ];

    /// From text fields (a query string or a multipart form), `get` giving a field's value: a
    /// value that does not parse is a bad request naming the field, never silently the default.
    pub fn from_fields<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self> {
        let text = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());
        let integer = |name: &str| parse_field::<i64>(name, get(name), "an integer");
        let number = |name: &str| parse_field::<f64>(name, get(name), "a number");
        let owned = |name: &str| text(name).map(str::to_owned);
        Ok(Self {
            top_k: integer("top_k")?,
            offset: integer("offset")?,
            min_score: number("min_score")?,
            min_score_ratio: number("min_score_ratio")?,
            // A prefix keeps its spaces: keys may start with one.
            prefix: get("prefix").filter(|p| !p.is_empty()).map(str::to_owned),
            content_type: owned("content_type"),
            min_width: integer("min_width")?,
            min_height: integer("min_height")?,
            taken_after: owned("taken_after"),
            taken_before: owned("taken_before"),
            sort: owned("sort"),
        })
    }

    /// Each option `self` leaves out, taken from `fallback` (a JSON body's or a form's options
    /// over the query string's).
    pub fn or(self, fallback: SearchOptions) -> Self {
        Self {
            top_k: self.top_k.or(fallback.top_k),
            offset: self.offset.or(fallback.offset),
            min_score: self.min_score.or(fallback.min_score),
            min_score_ratio: self.min_score_ratio.or(fallback.min_score_ratio),
            prefix: self.prefix.or(fallback.prefix),
            content_type: self.content_type.or(fallback.content_type),
            min_width: self.min_width.or(fallback.min_width),
            min_height: self.min_height.or(fallback.min_height),
            taken_after: self.taken_after.or(fallback.taken_after),
            taken_before: self.taken_before.or(fallback.taken_before),
            sort: self.sort.or(fallback.sort),
        }
    }

    /// The options' own rules: `top_k` in 1..=100 (default 10), `offset` ≥ 0 with
    /// `offset + top_k` ≤ 1000, `min_score` a cosine in -1..=1, `min_score_ratio` a share in
    /// 0..=1, `prefix` a possible key, sizes ≥ 1, times RFC 3339 or dates in order, `sort` one
    /// of relevance, newest, oldest.
    pub fn check(&self) -> Result<CheckedOptions> {
        let top_k = match self.top_k {
            None => DEFAULT_TOP_K,
            Some(k) if (1..=MAX_TOP_K as i64).contains(&k) => k as usize,
            Some(k) => return Err(bad(format!("top_k must be in 1..={MAX_TOP_K}, got {k}"))),
        };
        let offset = match self.offset {
            None => 0,
            Some(o) if o >= 0 && o as u64 + top_k as u64 <= MAX_RESULT_WINDOW as u64 => o as usize,
            Some(o) => {
                return Err(bad(format!(
                    "offset must be at least 0 and offset + top_k at most {MAX_RESULT_WINDOW}, got offset {o} \
                     with top_k {top_k}"
                )))
            }
        };
        let min_score = match self.min_score {
            None => None,
            Some(s) if s.is_finite() && (-1.0..=1.0).contains(&s) => Some(s as f32),
            Some(s) => return Err(bad(format!("min_score must be a cosine similarity in -1..=1, got {s}"))),
        };
        let min_score_ratio = match self.min_score_ratio {
            None => None,
            Some(r) if r.is_finite() && (0.0..=1.0).contains(&r) => Some(r as f32),
            Some(r) => {
                return Err(bad(format!(
                    "min_score_ratio must be a share of the best score in 0..=1, got {r}"
                )))
            }
        };
        if let Some(prefix) = &self.prefix {
            validate_key_prefix(prefix, "prefix")?;
        }
        let sort = match self.sort.as_deref().map(str::trim) {
            None | Some("") | Some("relevance") => Sort::Relevance,
            Some("newest") => Sort::Newest,
            Some("oldest") => Sort::Oldest,
            Some(other) => {
                return Err(bad(format!(
                    "sort must be relevance, newest or oldest, got {:?}",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        Ok(CheckedOptions {
            top_k,
            offset,
            min_score,
            min_score_ratio,
            prefix: self.prefix.clone(),
            filter: self.row_filter()?,
            sort,
        })
    }

    fn row_filter(&self) -> Result<RowFilter> {
        let content_types: Vec<String> = self
            .content_type
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if content_types.len() > 16 || content_types.iter().any(|t| t.len() > 255 || t.contains('\0')) {
            return Err(bad(
                "content_type must list at most 16 types of at most 255 bytes".into()
            ));
        }
        let size = |name: &str, value: Option<i64>| match value {
            None => Ok(None),
            Some(v) if (1..=i64::from(u32::MAX)).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(bad(format!("{name} must be a positive number of pixels, got {v}"))),
        };
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    parse_time(v).ok_or_else(|| {
                        bad(format!(
                            "{name} must be an RFC 3339 time (2024-05-01T12:00:00Z) or a date (2024-05-01), got {:?}",
                            v.chars().take(40).collect::<String>()
                        ))
                    })
                })
                .transpose()
        };
        let captured_from_ms = time("taken_after", &self.taken_after)?;
        let captured_until_ms = time("taken_before", &self.taken_before)?;
        if let (Some(from), Some(until)) = (captured_from_ms, captured_until_ms) {
            if from >= until {
                return Err(bad("taken_after must be earlier than taken_before".into()));
            }
        }
        Ok(RowFilter {
            content_types,
            min_width: size("min_width", self.min_width)?,
            min_height: size("min_height", self.min_height)?,
            captured_from_ms,
            captured_until_ms,
        })
    }
}

impl CheckedOptions {
    /// How many of the most relevant contents the index is asked for: enough for this page and
    /// to tell whether another follows; a date sort orders the whole window.
    pub fn window(&self) -> usize {
        match self.sort {
            Sort::Relevance => (self.offset + self.top_k + 1).min(MAX_RESULT_WINDOW),
            Sort::Newest | Sort::Oldest => MAX_RESULT_WINDOW,
        }
    }

    /// The page of `hits` (the index's answer for [`CheckedOptions::window`], best first): the
    /// relative cut, the order, then `offset`/`top_k`; and the offset of the next page if any.
    pub fn page(&self, mut hits: Vec<SearchHit>) -> (Vec<SearchHit>, Option<usize>) {
        cut_relative(&mut hits, self.min_score_ratio);
        match self.sort {
            Sort::Relevance => {}
            // Equal times keep their relevance order (the sort is stable).
            Sort::Newest => hits.sort_by_key(|h| std::cmp::Reverse(h.captured.ms)),
            Sort::Oldest => hits.sort_by_key(|h| h.captured.ms),
        }
        let end = self.offset + self.top_k;
        let next = (hits.len() > end && end < MAX_RESULT_WINDOW).then_some(end);
        let page = hits.into_iter().skip(self.offset).take(self.top_k).collect();
        (page, next)
    }
}

/// Keeps the hits scoring at least `ratio` of the best one. A best score of 0 or less has no
/// meaningful share (cosines can be negative), so then nothing is cut.
fn cut_relative(hits: &mut Vec<SearchHit>, ratio: Option<f32>) {
    let best = hits.iter().map(|h| h.score).fold(f32::NEG_INFINITY, f32::max);
    if let Some(ratio) = ratio.filter(|_| best > 0.0) {
        hits.retain(|h| h.score >= ratio * best);
    }
}

#[cfg(test)]
mod tests;
