//! One error type for the whole library. Every variant knows whether trying again can help
//! ([`Error::is_transient`]) and whether the caller sent something wrong
//! ([`Error::is_bad_input`]): ingest uses the first to decide what the queue retries, search
//! uses the second to answer 4xx instead of 5xx.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- bad input (permanent: the same bytes will fail the same way) ----
    #[error("empty input: zero bytes")]
    EmptyImage,
    #[error("image is {size} bytes, over the {limit}-byte limit")]
    ImageTooLarge { size: u64, limit: u64 },
    #[error(
        "image is {width}x{height} ({pixels} pixels), over the {limit}-pixel limit \
         (refused before decoding: decompression bomb guard)"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error(
        "decoding this image needs about {needed} bytes, more than the whole decode budget of \
         {budget} bytes (CLIPSEARCH_DECODE_BUDGET_BYTES, by default derived from the function's \
         memory): give the function more memory or lower CLIPSEARCH_MAX_IMAGE_PIXELS"
    )]
    OverDecodeBudget { needed: u64, budget: u64 },
    #[error("unsupported image format: {0} (supported: JPEG, PNG, WebP, GIF, TIFF, BMP)")]
    UnsupportedFormat(String),
    #[error("not an image: {0}")]
    NotAnImage(String),
    #[error("corrupt or truncated {format} image: {reason}")]
    CorruptImage { format: &'static str, reason: String },
    #[error("empty text: a query needs at least one character")]
    EmptyText,
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    // ---- configuration and model (permanent until someone fixes the deployment) ----
    #[error(
        "ONNX Runtime library not found; looked in: {looked_in}. Set ORT_DYLIB_PATH to \
         libonnxruntime.so.1.31.1 (`make setup` puts it in vendor/onnxruntime/; on Lambda ship \
         it beside `bootstrap` or in a layer under /opt/lib)"
    )]
    RuntimeMissing { looked_in: String },
    #[error("ONNX Runtime could not be loaded from {path}: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model directory {dir}: {reason}")]
    Model { dir: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("configuration: {0}")]
    Config(String),

    // ---- the vector index ----
    #[error("Milvus is unreachable or failing: {0}")]
    StoreUnavailable(String),
    #[error("the collection does not fit the configured model: {0}")]
    SchemaMismatch(String),
    #[error("Milvus rejected the request: {0}")]
    Store(String),
    #[error("no image with id {0}")]
    NotFound(String),

    // ---- the object store ----
    #[error("object s3://{bucket}/{key} does not exist")]
    ObjectMissing { bucket: String, key: String },
    #[error("S3 is unreachable or failing: {0}")]
    ObjectStoreUnavailable(String),
    #[error("S3 refused access: {0}")]
    ObjectAccess(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the same request may succeed later (a service was down or throttled);
    /// a queue should retry these and drop the rest.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::StoreUnavailable(_) | Error::ObjectStoreUnavailable(_) | Error::Inference(_)
        )
    }

    /// True when the caller sent something unusable (HTTP 4xx, not a 500).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::EmptyImage
                | Error::ImageTooLarge { .. }
                | Error::TooManyPixels { .. }
                | Error::OverDecodeBudget { .. }
                | Error::UnsupportedFormat(_)
                | Error::NotAnImage(_)
                | Error::CorruptImage { .. }
                | Error::EmptyText
                | Error::InvalidRequest(_)
        )
    }

    /// A short stable name for logs and API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyImage => "empty_image",
            Error::ImageTooLarge { .. } => "image_too_large",
            Error::TooManyPixels { .. } => "too_many_pixels",
            Error::OverDecodeBudget { .. } => "over_decode_budget",
            Error::UnsupportedFormat(_) => "unsupported_format",
            Error::NotAnImage(_) => "not_an_image",
            Error::CorruptImage { .. } => "corrupt_image",
            Error::EmptyText => "empty_text",
            Error::InvalidRequest(_) => "invalid_request",
            Error::RuntimeMissing { .. } | Error::RuntimeLoad { .. } => "runtime_unavailable",
            Error::Model { .. } => "model_error",
            Error::Inference(_) => "inference_failed",
            Error::Config(_) => "configuration",
            Error::StoreUnavailable(_) => "index_unavailable",
            Error::SchemaMismatch(_) => "schema_mismatch",
            Error::Store(_) => "index_error",
            Error::NotFound(_) => "not_found",
            Error::ObjectMissing { .. } => "object_missing",
            Error::ObjectStoreUnavailable(_) => "object_store_unavailable",
            Error::ObjectAccess(_) => "object_access_denied",
            Error::Io { .. } => "io",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
