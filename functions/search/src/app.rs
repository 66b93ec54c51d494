//! Routing: every route of the API, each a few lines over the use case.

use std::time::{Duration, Instant};

use clipsearch::clip::Encoder;
use clipsearch::objects::{ObjectSource, Presigner};
use clipsearch::search::{DuplicatesRequest, SearchResponse, Searcher, MAX_API_CONTENTS};
use clipsearch::status::StatusStore;
use clipsearch::store::ImageIndex;
use clipsearch::thumbnail::ThumbnailStore;
use clipsearch::{deadline, metrics};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};

use crate::assets;
use crate::body::BatchBody;
use crate::error::ApiError;
use crate::index::Health;
use crate::request;

/// Lambda's synchronous request payload limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Every route: `(method, path template)`. The OpenAPI test checks the document against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("GET", "/health"),
    ("GET", "/search"),
    ("POST", "/search"),
    ("POST", "/search/batch"),
    ("GET", "/images/{id}"),
    ("POST", "/uploads"),
    ("GET", "/status"),
    ("GET", "/duplicates"),
];

/// The search function: the use case plus what HTTP needs.
pub struct App<E, I, O> {
    searcher: Searcher<E, I, O>,
    max_body_bytes: usize,
    page: String,
    /// The budget of a request whose runtime sends no real deadline (local emulators).
    fallback_timeout: Option<Duration>,
    /// The CloudWatch namespace of each search request's EMF line; `None`: no metrics.
    metrics_namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    filename: String,
    content_type: String,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: &'a str,
    milvus: MilvusHealth,
    model: ModelHealth<'a>,
}

#[derive(Serialize)]
struct MilvusHealth {
    reachable: bool,
}

#[derive(Serialize)]
struct ModelHealth<'a> {
    name: &'a str,
    /// The model embedding text queries (a separate text tower, else `name`).
    text_model: &'a str,
    dimension: usize,
    text: bool,
    image: bool,
}

impl<E, I, O> App<E, I, O>
where
    E: Encoder + 'static,
    I: ImageIndex + Health,
    O: ObjectSource + Presigner + StatusStore + ThumbnailStore,
{
    pub fn new(searcher: Searcher<E, I, O>, max_body_bytes: usize) -> Self {
        Self {
            searcher,
            max_body_bytes,
            page: assets::page(),
            fallback_timeout: None,
            metrics_namespace: None,
        }
    }

    /// Prints an EMF metrics line (`clipsearch::metrics`) for every search request.
    pub fn with_metrics(mut self, namespace: String) -> Self {
        self.metrics_namespace = Some(namespace);
        self
    }

    /// `CLIPSEARCH_INVOCATION_TIMEOUT_SECS`: see [`deadline::invocation_deadline`].
    pub fn with_fallback_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.fallback_timeout = timeout;
        self
    }

    pub fn searcher(&self) -> &Searcher<E, I, O> {
        &self.searcher
    }

    /// Answers one request; never fails (errors become JSON error answers). Every remote call
    /// it makes is bounded by the invocation's deadline, so a dependency that hangs is a 503
    /// before Lambda would end the invocation.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let context = request.lambda_context_ref();
        let request_id = context.map(|c| c.request_id.clone()).unwrap_or_default();
        let deadline = deadline::invocation_deadline(context.map_or(0, |c| c.deadline), self.fallback_timeout);
        let (response, error_code) = match deadline::within(deadline, self.route(request)).await {
            Ok(response) => (response, None),
            Err(error) => {
                let code = error.code;
                (error.into_response(), Some(code))
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(method = %method, path, status = response.status().as_u16(), ms, "request");
        let route = normalize(&path);
        if let (Some(namespace), "/search" | "/search/batch") = (&self.metrics_namespace, route.as_str()) {
            let answered = metrics::Answered {
                route: &route,
                status: response.status().as_u16(),
                error_code,
                millis: ms,
                request_id: &request_id,
            };
            metrics::search_request(namespace, &answered).emit();
        }
        response
    }

    async fn route(&self, request: Request) -> Result<Response<Body>, ApiError> {
        let path = normalize(request.uri().path());
        let method = request.method();
        let get_only = |m: &Method| {
            if m == Method::GET || m == Method::HEAD {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed("GET"))
            }
        };
        match path.as_str() {
            "/" | "/index.html" => {
                get_only(method)?;
                Ok(html(&self.page))
            }
            "/openapi.json" => {
                get_only(method)?;
                Ok(raw_json(StatusCode::OK, assets::OPENAPI.to_owned()))
            }
            "/health" => {
                get_only(method)?;
                Ok(self.health().await)
            }
            "/search" => {
                let params = match *method {
                    Method::GET => request::from_query_string(&request, self.searcher.settings())?,
                    Method::POST => {
                        self.check_size(&request)?;
                        request::from_body(&request, self.searcher.settings()).await?
                    }
                    _ => return Err(ApiError::method_not_allowed("GET, POST")),
                };
                tracing::info!(kind = params.query.kind(), top_k = params.options.top_k, "search");
                let answer = self.searcher.search(params).await?;
                Ok(json(StatusCode::OK, &answer))
            }
            "/search/batch" => {
                let body = self.json_post_body(&request)?;
                let queries = BatchBody::from_json(body)?.into_params(self.searcher.settings());
                tracing::info!(queries = queries.len(), "batch search");
                let answers = self.searcher.search_many(queries).await;
                Ok(json(StatusCode::OK, &batch_answer(answers)))
            }
            "/uploads" => {
                let body = self.json_post_body(&request)?;
                let body: UploadBody = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
                let ticket = self.searcher.upload(&body.filename, &body.content_type).await?;
                Ok(json(StatusCode::OK, &ticket))
            }
            "/status" => {
                get_only(method)?;
                let params = request::query_params(&request);
                let key = params.get("key").map(String::as_str).unwrap_or_default();
                let status = self
                    .searcher
                    .status(params.get("bucket").map(String::as_str), key)
                    .await?;
                Ok(json(StatusCode::OK, &status))
            }
            "/duplicates" => {
                get_only(method)?;
                let params = request::query_params(&request);
                let asked = DuplicatesRequest::from_fields(|name| params.get(name).map(String::as_str))?;
                let page = self.searcher.duplicates(&asked, MAX_API_CONTENTS).await?;
                Ok(json(StatusCode::OK, &page))
            }
            p => match p.strip_prefix("/images/") {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    get_only(method)?;
                    let info = self.searcher.image(id).await?;
                    Ok(json(StatusCode::OK, &info))
                }
                _ => Err(ApiError::route_not_found(p)),
            },
        }
    }

    /// The body of a POST route that takes JSON only (a missing content type counts as JSON).
    fn json_post_body<'r>(&self, request: &'r Request) -> Result<&'r [u8], ApiError> {
        if request.method() != Method::POST {
            return Err(ApiError::method_not_allowed("POST"));
        }
        self.check_size(request)?;
        let (essence, full) = request::media_type(request);
        if !(essence.is_empty() || essence == "application/json") {
            return Err(ApiError::unsupported_media_type(&full));
        }
        Ok(request.body().as_ref())
    }

    fn check_size(&self, request: &Request) -> Result<(), ApiError> {
        let size = request.body().len();
        if size > self.max_body_bytes {
            return Err(ApiError::payload_too_large(size, self.max_body_bytes));
        }
        Ok(())
    }

    async fn health(&self) -> Response<Body> {
        let reachable = match self.searcher.index().health().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "health: index unavailable");
                false
            }
        };
        let settings = self.searcher.settings();
        let body = HealthBody {
            status: if reachable { "ok" } else { "unavailable" },
            milvus: MilvusHealth { reachable },
            model: ModelHealth {
                name: self.searcher.model(),
                text_model: self.searcher.encoder().text_model_name(),
                dimension: self.searcher.encoder().dimension(),
                text: settings.enable_text,
                image: settings.enable_image,
            },
        };
        let status = if reachable {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(status, &body)
    }
}

/// One item per query: its answer, or its error as `{"error": {code, message}, "status"}` (the
/// status it would have had alone).
fn batch_answer(answers: Vec<clipsearch::Result<SearchResponse>>) -> serde_json::Value {
    let items: Vec<serde_json::Value> = answers
        .into_iter()
        .map(|answer| match answer {
            Ok(response) => serde_json::to_value(response).unwrap_or_default(),
            Err(error) => {
                let api = ApiError::from(error);
                serde_json::json!({
                    "error": {"code": api.code, "message": api.message},
                    "status": api.status.as_u16(),
                })
            }
        })
        .collect();
    serde_json::json!({ "responses": items })
}

/// `/search/` and `/search` are the same route; `//x` is `/x`.
fn normalize(path: &str) -> String {
    let joined = path.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
    format!("/{joined}")
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => raw_json(status, text),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
        }
    }
}

fn raw_json(status: StatusCode, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

fn html(page: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        // Inline script and style only; images and uploads go to S3 (any host: AWS or the
        // local emulator), API calls to this origin.
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src * data: blob:; connect-src *; base-uri 'none'; form-action 'none'",
        )
        .body(Body::from(page.to_owned()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's table and the OpenAPI document list the same routes.
    #[test]
    fn openapi_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(assets::OPENAPI).expect("JSON");
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .map(move |m| (m.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize("/search/"), "/search");
        assert_eq!(normalize("//images//ab"), "/images/ab");
        assert_eq!(normalize(""), "/");
    }
}
