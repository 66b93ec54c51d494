//! The API's error answers: `{"error": {"code", "message"}}` with the status that fits.
//!
//! Client mistakes are 4xx with the library's own message (it names what was wrong with the
//! request and nothing else). Failures of the deployment are 5xx with a fixed message: the
//! details (endpoints, bucket names, SDK messages) go to the log only.

use clipsearch::Error;
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 405: the methods the route accepts.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn route_not_found(path: &str) -> Self {
        let shown: String = path.chars().take(200).collect();
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {shown:?}; see /openapi.json"),
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route accepts {allow}"),
            )
        }
    }

    pub fn payload_too_large(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is {size} bytes, over the {limit}-byte limit"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        let shown: String = content_type.chars().take(100).collect();
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {shown:?}: send application/json, multipart/form-data or an \
                 image/* body"
            ),
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut builder = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(allow) = self.allow {
            builder = builder.header(header::ALLOW, allow);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            builder = builder.header(header::RETRY_AFTER, "5");
        }
        builder
            .body(Body::from(body.to_string()))
            .unwrap_or_else(|_| Response::new(Body::from("{\"error\":{\"code\":\"internal\"}}")))
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, message) = match &error {
            Error::ImageTooLarge { .. } | Error::TooManyPixels { .. } | Error::OverDecodeBudget { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            Error::NotFound(_) | Error::ObjectMissing { .. } => (StatusCode::NOT_FOUND, error.to_string()),
            e if e.is_bad_input() => (StatusCode::BAD_REQUEST, error.to_string()),
            Error::ObjectAccess(_) => (
                StatusCode::FORBIDDEN,
                "this deployment may not read that object".to_owned(),
            ),
            Error::StoreUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the image index is unavailable; try again shortly".to_owned(),
            ),
            Error::ObjectStoreUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "image storage is unavailable; try again shortly".to_owned(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the details are in the function's log".to_owned(),
            ),
        };
        if status.is_server_error() {
            tracing::error!(code = error.code(), error = %error, "request failed");
        } else {
            tracing::info!(code = error.code(), error = %error, "request refused");
        }
        Self::new(status, error.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_no_leaks() {
        let cases = [
            (Error::EmptyText, 400),
            (Error::NotAnImage("x".into()), 400),
            (Error::ImageTooLarge { size: 9, limit: 1 }, 413),
            (Error::OverDecodeBudget { needed: 9, budget: 1 }, 413),
            (Error::NotFound("a".into()), 404),
            (Error::StoreUnavailable("http://10.0.0.7:19530 refused".into()), 503),
            (Error::Config("MILVUS_TOKEN=secret".into()), 500),
        ];
        for (error, status) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status.as_u16(), status, "{api:?}");
            assert!(!api.message.contains("10.0.0.7") && !api.message.contains("secret"));
        }
    }
}
