//! Turns the three shapes of `POST /search` (JSON, multipart form, raw image body) and the
//! query string of `GET /search` into the use case's [`SearchParams`].

use std::collections::HashMap;

use clipsearch::search::{QueryParts, SearchOptions, SearchParams, SearchSettings};
use lambda_http::http::header;
use lambda_http::Request;

use crate::body::SearchBody;
use crate::error::ApiError;

/// Query-string parameters (first value wins).
pub fn query_params(request: &Request) -> HashMap<String, String> {
    let mut params = HashMap::new();
    if let Some(query) = request.uri().query() {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            params.entry(name.into_owned()).or_insert_with(|| value.into_owned());
        }
    }
    params
}

/// The media type of the body, lowercase, without parameters (`""` when absent).
pub fn media_type(request: &Request) -> (String, String) {
    let full = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = full.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (essence, full)
}

fn options_from(params: &HashMap<String, String>) -> Result<SearchOptions, ApiError> {
    Ok(SearchOptions::from_fields(|name| params.get(name).map(String::as_str))?)
}

/// `GET /search?q=…` (also `id=` and `image_url=`) with any of [`SearchOptions::FIELDS`].
pub fn from_query_string(request: &Request, settings: &SearchSettings) -> Result<SearchParams, ApiError> {
    let mut params = query_params(request);
    let parts = QueryParts {
        text: params.remove("q").or_else(|| params.remove("text")),
        image: None,
        image_url: params.remove("image_url"),
        id: params.remove("id"),
    };
    Ok(SearchParams::build(parts, options_from(&params)?, settings)?)
}

/// `POST /search`, by content type.
pub async fn from_body(request: &Request, settings: &SearchSettings) -> Result<SearchParams, ApiError> {
    let body: &[u8] = request.body().as_ref();
    let (essence, full) = media_type(request);
    match essence.as_str() {
        // A client that forgets the header almost always sends JSON (curl -d does).
        "" | "application/json" | "text/json" => json(body, request, settings),
        e if e.ends_with("+json") => json(body, request, settings),
        "multipart/form-data" => multipart(body, &full, request, settings).await,
        e if e.starts_with("image/") || e == "application/octet-stream" => {
            let parts = QueryParts {
                image: Some(body.to_vec()),
                ..Default::default()
            };
            Ok(SearchParams::build(
                parts,
                options_from(&query_params(request))?,
                settings,
            )?)
        }
        _ => Err(ApiError::unsupported_media_type(&full)),
    }
}

/// A JSON body; like a form, it takes the options it leaves out from the query string. An
/// invalid option there is refused even when the body gives its own, never silently ignored.
fn json(body: &[u8], request: &Request, settings: &SearchSettings) -> Result<SearchParams, ApiError> {
    let mut parsed = SearchBody::from_json(body)?;
    let query = options_from(&query_params(request))?;
    query.check()?;
    parsed.options = parsed.options.or(query);
    Ok(parsed.into_params(settings)?)
}

/// A form with an `image` file (or `text`, `image_url`, `id`) and any of
/// [`SearchOptions::FIELDS`]; options missing from the form are read from the query string.
async fn multipart(
    body: &[u8],
    content_type: &str,
    request: &Request,
    settings: &SearchSettings,
) -> Result<SearchParams, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ApiError::bad_request("multipart/form-data without a boundary"))?;
    let data = bytes::Bytes::copy_from_slice(body);
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(data) });
    let mut form = multer::Multipart::new(stream, boundary);
    let malformed = |e: multer::Error| ApiError::bad_request(format!("malformed multipart body: {e}"));

    let mut parts = QueryParts::default();
    let mut options = query_params(request);
    // As for JSON: the query string's options must hold even where the form replaces them.
    options_from(&options)?.check()?;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field.file_name().is_some();
        match name.as_str() {
            "image" | "file" => parts.image = Some(field.bytes().await.map_err(malformed)?.to_vec()),
            "text" | "q" => parts.text = Some(field.text().await.map_err(malformed)?),
            "image_url" => parts.image_url = Some(field.text().await.map_err(malformed)?),
            "id" => parts.id = Some(field.text().await.map_err(malformed)?),
            option if SearchOptions::FIELDS.contains(&option) => {
                options.insert(name, field.text().await.map_err(malformed)?);
            }
            _ if is_file && parts.image.is_none() => {
                parts.image = Some(field.bytes().await.map_err(malformed)?.to_vec())
            }
            other => {
                let shown: String = other.chars().take(60).collect();
                return Err(ApiError::bad_request(format!(
                    "unknown form field {shown:?} (expected image, text, image_url, id, {})",
                    SearchOptions::FIELDS.join(", ")
                )));
            }
        }
    }
    Ok(SearchParams::build(parts, options_from(&options)?, settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn post(query: &str, content_type: &str, body: &[u8]) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/search?{query}"))
            .header("content-type", content_type)
            .body(Body::from(body.to_vec()))
            .unwrap()
    }

    fn parse(request: &Request) -> Result<SearchParams, ApiError> {
        let settings = SearchSettings::default();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(from_body(request, &settings))
    }

    #[test]
    fn a_json_body_takes_its_missing_options_from_the_query_string() {
        let params = parse(&post("top_k=3&prefix=p/", "application/json", br#"{"text":"cat"}"#)).unwrap();
        assert_eq!(
            (params.options.top_k, params.options.prefix.as_deref()),
            (3, Some("p/"))
        );
        let params = parse(&post("top_k=3", "application/json", br#"{"text":"cat","top_k":5}"#)).unwrap();
        assert_eq!(params.options.top_k, 5, "the body's own option wins");
    }

    #[test]
    fn an_invalid_query_option_is_refused_even_when_the_body_gives_its_own() {
        let form = b"--X\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncat\r\n--X\r\n\
Content-Disposition: form-data; name=\"top_k\"\r\n\r\n5\r\n--X--\r\n";
        for request in [
            post("top_k=0", "application/json", br#"{"text":"cat"}"#),
            post("top_k=-2121", "application/json", br#"{"text":"cat","top_k":91}"#),
            post(
                "min_score=-3.9e16",
                "application/json",
                br#"{"text":"cat","min_score":0.4}"#,
            ),
            post("top_k=0", "multipart/form-data; boundary=X", form),
        ] {
            let err = parse(&request).unwrap_err();
            assert_eq!(err.status, 400, "{:?}", request.uri());
        }
    }
}
