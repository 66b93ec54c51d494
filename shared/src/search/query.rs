//! The typed query the use case takes ([`Query`], [`SearchParams`]) and the one check that
//! turns a transport's loose fields ([`QueryParts`]) into it. The adapters (the Lambda's
//! request parsing, the CLI's flags) fill [`QueryParts`]; nothing here knows HTTP.

use super::{CheckedOptions, SearchOptions, SearchSettings, MAX_TEXT_CHARS};
use crate::objects::parse_s3_url;
use crate::store::{normalize_id, Location};
use crate::{Error, Result};

/// What to search with.
#[derive(Clone, PartialEq)]
pub enum Query {
    Text(String),
    /// Encoded image bytes (JPEG, PNG, WebP, GIF, TIFF or BMP).
    Image(Vec<u8>),
    /// An object in the indexed bucket.
    ImageUrl(Location),
    /// An indexed image: "more like this", the image itself left out.
    Id(String),
}

impl std::fmt::Debug for Query {
    // Image bytes would flood a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Query::Image(b) => write!(f, "Image({} bytes)", b.len()),
            Query::ImageUrl(l) => write!(f, "ImageUrl({l})"),
            Query::Id(id) => f.debug_tuple("Id").field(id).finish(),
        }
    }
}

impl Query {
    /// `text`, `image`, `image_url` or `id`: the name of the request field, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Query::Text(_) => "text",
            Query::Image(_) => "image",
            Query::ImageUrl(_) => "image_url",
            Query::Id(_) => "id",
        }
    }
}

/// The query fields of a request as a transport delivered them, before validation. Exactly
/// one must be present.
#[derive(Debug, Default, Clone)]
pub struct QueryParts {
    pub text: Option<String>,
    /// Raw image bytes (already base64-decoded, or a multipart file / raw body).
    pub image: Option<Vec<u8>>,
    /// `s3://bucket/key`.
    pub image_url: Option<String>,
    pub id: Option<String>,
}

impl QueryParts {
    /// Checks that exactly one kind is given and that it is usable.
    pub fn into_query(self, settings: &SearchSettings) -> Result<Query> {
        let given: Vec<&str> = [
            ("text", self.text.is_some()),
            ("image", self.image.is_some()),
            ("image_url", self.image_url.is_some()),
            ("id", self.id.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
        match given.len() {
            0 => {
                return Err(Error::InvalidRequest(
                    "no query: give exactly one of text, image, image_url or id".into(),
                ))
            }
            1 => {}
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "several queries ({}): give exactly one of text, image, image_url or id",
                    given.join(", ")
                )))
            }
        }
        if let Some(text) = self.text {
            let text = text.trim();
            if text.is_empty() {
                return Err(Error::EmptyText);
            }
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(Error::InvalidRequest(format!(
                    "text is longer than {MAX_TEXT_CHARS} characters"
                )));
            }
            return Ok(Query::Text(text.to_owned()));
        }
        if let Some(bytes) = self.image {
            settings.check_query_image_size(bytes.len() as u64)?;
            if bytes.is_empty() {
                return Err(Error::EmptyImage);
            }
            return Ok(Query::Image(bytes));
        }
        if let Some(url) = self.image_url {
            let (bucket, key) = parse_s3_url(url.trim())
                .ok_or_else(|| Error::InvalidRequest("image_url must look like s3://bucket/key".into()))?;
            let location = Location::new(bucket, key);
            location.validate()?;
            if let Some(indexed) = &settings.bucket {
                // The function's role may read other buckets; a query must not be a way in.
                if &location.bucket != indexed {
                    return Err(Error::InvalidRequest(format!(
                        "image_url must be in the indexed bucket s3://{indexed}/"
                    )));
                }
            }
            return Ok(Query::ImageUrl(location));
        }
        let id = self.id.unwrap_or_default();
        Ok(Query::Id(normalize_id(id.trim())?))
    }
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub query: Query,
    pub options: CheckedOptions,
}

impl SearchParams {
    /// A search with the default options.
    pub fn new(query: Query) -> Self {
        Self {
            query,
            options: CheckedOptions::default(),
        }
    }

    /// Checks the query parts and the options together.
    pub fn build(parts: QueryParts, options: SearchOptions, settings: &SearchSettings) -> Result<Self> {
        let options = options.check()?;
        Ok(Self {
            query: parts.into_query(settings)?,
            options,
        })
    }
}
