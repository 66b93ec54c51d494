//! The JSON bodies of `POST /search` ([`SearchBody`]) and `POST /search/batch` ([`BatchBody`]),
//! base64 and `data:` URL images among them: HTTP's shapes, turned into the use case's
//! [`QueryParts`] and [`SearchOptions`] here and nowhere else.

use base64::Engine;
use clipsearch::search::{QueryParts, SearchOptions, SearchParams, SearchSettings, MAX_BATCH_QUERIES};
use clipsearch::{Error, Result};
use serde::Deserialize;

/// The JSON body of `POST /search`: the query fields and every option of [`SearchOptions`].
/// Unknown fields are refused so that a typo (`"txt"`) is a 400 naming it rather than a
/// confusing "no query".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct SearchBody {
    pub text: Option<String>,
    /// Base64 (standard or URL-safe alphabet, padding optional; a `data:` URL prefix is
    /// accepted, as browsers produce it).
    pub image: Option<String>,
    pub image_url: Option<String>,
    pub id: Option<String>,
    pub options: SearchOptions,
}

/// The query fields of a body; the options are [`SearchOptions::FIELDS`].
const QUERY_FIELDS: [&str; 4] = ["text", "image", "image_url", "id"];

#[derive(Deserialize)]
struct BodyFields {
    text: Option<String>,
    image: Option<String>,
    image_url: Option<String>,
    id: Option<String>,
    #[serde(flatten)]
    options: SearchOptions,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for SearchBody {
    type Error = String;

    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> std::result::Result<Self, String> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !QUERY_FIELDS.contains(&k.as_str()) && !SearchOptions::FIELDS.contains(&k.as_str()))
        {
            let shown: String = unknown.chars().take(60).collect();
            return Err(format!(
                "unknown field `{shown}`, expected one of {}",
                QUERY_FIELDS
                    .iter()
                    .chain(SearchOptions::FIELDS.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let fields: BodyFields = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        Ok(Self {
            text: fields.text,
            image: fields.image,
            image_url: fields.image_url,
            id: fields.id,
            options: fields.options,
        })
    }
}

impl SearchBody {
    /// Parses a JSON body; malformed JSON is a bad request.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidRequest(format!("malformed JSON body: {e}")))
    }

    pub fn into_params(self, settings: &SearchSettings) -> Result<SearchParams> {
        let image = self.image.map(|b64| decode_base64_image(&b64, settings)).transpose()?;
        SearchParams::build(
            QueryParts {
                text: self.text,
                image,
                image_url: self.image_url,
                id: self.id,
            },
            self.options,
            settings,
        )
    }
}

/// Decodes a base64 image, refusing one over the limit from its length before decoding.
pub fn decode_base64_image(b64: &str, settings: &SearchSettings) -> Result<Vec<u8>> {
    let mut data = b64.trim();
    if let Some(rest) = data.strip_prefix("data:") {
        data = rest
            .split_once(',')
            .map(|(_, d)| d)
            .ok_or_else(|| Error::InvalidRequest("image: a data: URL without a comma".into()))?;
    }
    settings.check_query_image_size(data.len() as u64 / 4 * 3)?;
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = if cleaned.contains(['-', '_']) {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine
        .decode(cleaned.trim_end_matches('='))
        .map_err(|e| Error::InvalidRequest(format!("image is not valid base64: {e}")))
}

/// The JSON body of `POST /search/batch`: each query is a `POST /search` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub queries: Vec<SearchBody>,
}

impl BatchBody {
    /// Parses a JSON body; malformed JSON, no query or too many are a bad request.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let body: Self =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidRequest(format!("malformed JSON body: {e}")))?;
        match body.queries.len() {
            0 => Err(Error::InvalidRequest("queries is empty".into())),
            n if n > MAX_BATCH_QUERIES => Err(Error::InvalidRequest(format!(
                "{n} queries: at most {MAX_BATCH_QUERIES} per request"
            ))),
            _ => Ok(body),
        }
    }

    /// Each query validated on its own.
    pub fn into_params(self, settings: &SearchSettings) -> Vec<Result<SearchParams>> {
        self.queries.into_iter().map(|q| q.into_params(settings)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clipsearch::search::{Query, Sort, DEFAULT_TOP_K};

    fn settings() -> SearchSettings {
        SearchSettings {
            bucket: Some("photos".into()),
            ..Default::default()
        }
    }

    fn body(json: &str) -> Result<SearchParams> {
        SearchBody::from_json(json.as_bytes())?.into_params(&settings())
    }

    #[test]
    fn exactly_one_query_kind() {
        assert!(matches!(body("{}"), Err(Error::InvalidRequest(m)) if m.contains("no query")));
        assert!(matches!(body(r#"{"text":"a","id":"x"}"#), Err(Error::InvalidRequest(m)) if m.contains("several")));
        assert!(matches!(body(r#"{"text":"  "}"#), Err(Error::EmptyText)));
        assert!(matches!(body(r#"{"txt":"a"}"#), Err(Error::InvalidRequest(m)) if m.contains("txt")));
        assert!(matches!(body("{"), Err(Error::InvalidRequest(m)) if m.contains("malformed")));
        assert_eq!(body(r#"{"text":" red "}"#).unwrap().query, Query::Text("red".into()));
    }

    #[test]
    fn options_are_checked() {
        for bad in [
            r#"{"text":"a","top_k":0}"#,
            r#"{"text":"a","top_k":101}"#,
            r#"{"text":"a","min_score":2}"#,
            r#"{"text":"a","min_score_ratio":1.5}"#,
            r#"{"text":"a","min_score_ratio":-0.1}"#,
        ] {
            assert!(matches!(body(bad), Err(Error::InvalidRequest(_))), "{bad}");
        }
        let p = body(r#"{"text":"a","top_k":100,"min_score":0.5,"prefix":"x/"}"#).unwrap();
        assert_eq!(
            (p.options.top_k, p.options.min_score, p.options.prefix.as_deref()),
            (100, Some(0.5), Some("x/"))
        );
        assert_eq!(body(r#"{"text":"a"}"#).unwrap().options.top_k, DEFAULT_TOP_K);
        let p = body(r#"{"text":"a","min_score_ratio":0.9,"offset":20,"sort":"oldest","min_width":5}"#).unwrap();
        assert_eq!(
            (
                p.options.min_score_ratio,
                p.options.offset,
                p.options.sort,
                p.options.filter.min_width
            ),
            (Some(0.9), 20, Sort::Oldest, Some(5))
        );
        assert!(body(r#"{"text":"a","txt":"b"}"#)
            .unwrap_err()
            .to_string()
            .contains("txt"));
        assert!(body(r#"{"text":"a","offset":"ten"}"#).is_err());
        let field = |name: &str, value: &'static str| SearchOptions::from_fields(move |n| (n == name).then_some(value));
        assert!(field("top_k", "ten").is_err());
        assert!(field("min_score", "x").is_err());
        assert!(field("min_score_ratio", "most").is_err());
        let parsed = field("min_score_ratio", " 0.8 ").unwrap();
        assert_eq!(parsed.check().unwrap().min_score_ratio, Some(0.8));
    }

    #[test]
    fn base64_images() {
        let p = body(r#"{"image":"iVBORw=="}"#).unwrap();
        assert_eq!(p.query, Query::Image(vec![0x89, 0x50, 0x4e, 0x47]));
        let p = body(r#"{"image":"data:image/png;base64,iVBORw"}"#).unwrap();
        assert_eq!(p.query, Query::Image(vec![0x89, 0x50, 0x4e, 0x47]));
        assert!(matches!(
            body(r#"{"image":"not base64!"}"#),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(body(r#"{"image":""}"#), Err(Error::EmptyImage)));
        let small = SearchSettings {
            max_query_image_bytes: 3,
            ..settings()
        };
        let big = SearchBody {
            image: Some("iVBORw0KGgo=".into()),
            ..Default::default()
        };
        assert!(matches!(big.into_params(&small), Err(Error::ImageTooLarge { .. })));
    }

    #[test]
    fn image_urls_stay_in_the_bucket() {
        assert!(matches!(
            body(r#"{"image_url":"s3://photos/a.png"}"#).unwrap().query,
            Query::ImageUrl(l) if l.key == "a.png"
        ));
        assert!(body(r#"{"image_url":"s3://other/a.png"}"#).is_err());
        assert!(body(r#"{"image_url":"https://photos/a.png"}"#).is_err());
        assert!(body(r#"{"image_url":"s3://photos/"}"#).is_err());
        assert!(body(r#"{"id":"abc"}"#).is_err());
    }
}
