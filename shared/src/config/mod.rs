//! Settings from environment variables, resolved in one place. Every variable read here is
//! listed in the README's configuration table; precedence is: command-line flag (where the CLI
//! has one) > environment variable > the default written here.

mod milvus;
mod readers;

use std::path::PathBuf;

use crate::{Error, Result};

pub use milvus::{MilvusIndexKind, MilvusSettings, DEFAULT_MILVUS_COLLECTION, DEFAULT_MILVUS_URI};
pub use readers::{ingest_concurrency, invocation_timeout, lambda_port, max_request_bytes, sqs_endpoint};

/// Every environment variable the product reads: this module's readers and the CLI's flags
/// with an environment fallback (`clap`'s `env`). The README's configuration table documents
/// exactly these, besides [`READ_BY_DEPENDENCIES`]; `tests/architecture.rs` holds the two to each
/// other and to the sources.
pub const VARIABLES: &[&str] = &[
    "CLIPSEARCH_MODEL_DIR",
    "CLIPSEARCH_TEXT_MODEL_DIR",
    "CLIPSEARCH_MODEL_S3_URI",
    "CLIPSEARCH_TEXT_MODEL_S3_URI",
    "ORT_DYLIB_PATH",
    "CLIPSEARCH_INTRA_THREADS",
    "CLIPSEARCH_INTER_THREADS",
    "CLIPSEARCH_BATCH_SIZE",
    "CLIPSEARCH_MAX_IMAGE_BYTES",
    "CLIPSEARCH_MAX_IMAGE_PIXELS",
    "CLIPSEARCH_DECODE_BUDGET_BYTES",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "CLIPSEARCH_S3_ENDPOINT",
    "CLIPSEARCH_S3_PATH_STYLE",
    "CLIPSEARCH_BUCKET",
    "CLIPSEARCH_UPLOAD_PREFIX",
    "CLIPSEARCH_PRESIGN_EXPIRY_SECS",
    "CLIPSEARCH_STATUS_PREFIX",
    "CLIPSEARCH_THUMBNAIL_PREFIX",
    "CLIPSEARCH_DECODE_THREADS",
    "CLIPSEARCH_METRICS_NAMESPACE",
    "CLIPSEARCH_QUERY_CACHE_SIZE",
    "CLIPSEARCH_INGEST_CONCURRENCY",
    "CLIPSEARCH_ENABLE_TEXT",
    "CLIPSEARCH_ENABLE_IMAGE",
    "CLIPSEARCH_MAX_QUERY_IMAGE_BYTES",
    "CLIPSEARCH_MAX_REQUEST_BYTES",
    "CLIPSEARCH_QUEUE_URL",
    "CLIPSEARCH_QUEUE",
    "CLIPSEARCH_SQS_ENDPOINT",
    "CLIPSEARCH_LAMBDA_URL",
    "LAMBDA_PORT",
    "MILVUS_URI",
    "MILVUS_TOKEN",
    "MILVUS_TOKEN_SECRET_ID",
    "CLIPSEARCH_INVOCATION_TIMEOUT_SECS",
    "MILVUS_USER",
    "MILVUS_PASSWORD",
    "MILVUS_DB",
    "MILVUS_COLLECTION",
    "MILVUS_CONNECT_TIMEOUT_SECS",
    "MILVUS_TIMEOUT_SECS",
    "MILVUS_SEARCH_TIMEOUT_SECS",
    "MILVUS_INDEX",
    "MILVUS_HNSW_M",
    "MILVUS_HNSW_EF_CONSTRUCTION",
    "MILVUS_SEARCH_EF",
    "MILVUS_IVF_NLIST",
    "MILVUS_IVF_NPROBE",
];

/// Variables the README documents that our dependencies read, not our code: the AWS SDK's
/// standard ones and `tracing`'s filter.
pub const READ_BY_DEPENDENCIES: &[&str] = &[
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "RUST_LOG",
];

/// Reads `name`; an unset or empty variable is `None`.
pub fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `name` as set, even when empty (set empty to turn a default off); `default` when unset.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Reads and parses `name`, falling back to `default` when unset; a value that does not parse
/// is a configuration error naming the variable, never a silent default.
pub fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match env_opt(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| Error::Config(format!("{name}={v:?}: {e}"))),
    }
}

/// `CLIPSEARCH_METRICS_NAMESPACE`: the CloudWatch namespace of the functions' EMF metrics
/// ([`crate::metrics`]); the template's dashboard and alarms read the same one.
pub fn metrics_namespace() -> String {
    env_opt("CLIPSEARCH_METRICS_NAMESPACE").unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned())
}

/// Everything the CLIP encoders need.
#[derive(Debug, Clone)]
pub struct ClipSettings {
    /// `CLIPSEARCH_MODEL_DIR`: a Hugging Face export layout directory.
    pub model_dir: Option<PathBuf>,
    /// `CLIPSEARCH_TEXT_MODEL_DIR`: a separate (e.g. multilingual) text tower that maps into
    /// the image space of `model_dir`; text queries use it instead of the model's own.
    pub text_model_dir: Option<PathBuf>,
    /// `ORT_DYLIB_PATH`: path of libonnxruntime.so; `None` means the default search.
    pub ort_library: Option<PathBuf>,
    /// `CLIPSEARCH_INTRA_THREADS`: ONNX Runtime intra-op threads (0 = ORT's default: all cores).
    pub intra_threads: usize,
    /// `CLIPSEARCH_INTER_THREADS`: inter-op threads (0 = ORT's default).
    pub inter_threads: usize,
    /// `CLIPSEARCH_MAX_IMAGE_BYTES`: encoded size limit.
    pub max_image_bytes: u64,
    /// `CLIPSEARCH_MAX_IMAGE_PIXELS`: width × height limit, checked from the header before decoding.
    pub max_image_pixels: u64,
    /// `CLIPSEARCH_BATCH_SIZE`: images per ONNX run.
    pub batch_size: usize,
    /// `CLIPSEARCH_DECODE_THREADS`: threads decoding images in `embed_many` (0 = all cores).
    pub decode_threads: usize,
    /// `CLIPSEARCH_QUERY_CACHE_SIZE`: text embeddings kept per text model (0 = no cache).
    pub query_cache_entries: usize,
    /// `CLIPSEARCH_DECODE_BUDGET_BYTES`: bytes that all images decoding at once may hold
    /// together (`clip::budget`); `None` derives it from `memory_bytes`.
    pub decode_budget_bytes: Option<u64>,
    /// The memory this process may use: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (MB, set by Lambda),
    /// else the machine's (`MemTotal` of /proc/meminfo); `None` when neither is known, and
    /// then without `decode_budget_bytes` decoding has no shared bound.
    pub memory_bytes: Option<u64>,
}

/// 1024 embeddings of 512–768 floats: 2–3 MB.
pub const DEFAULT_QUERY_CACHE_ENTRIES: usize = 1024;

pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 50 * 1024 * 1024;
/// Pillow's own decompression-bomb threshold is ~89 MP; 100 MP admits every real camera.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 100_000_000;

impl ClipSettings {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            model_dir: env_opt("CLIPSEARCH_MODEL_DIR").map(PathBuf::from),
            text_model_dir: env_opt("CLIPSEARCH_TEXT_MODEL_DIR").map(PathBuf::from),
            ort_library: env_opt("ORT_DYLIB_PATH").map(PathBuf::from),
            intra_threads: env_parse("CLIPSEARCH_INTRA_THREADS", 0)?,
            inter_threads: env_parse("CLIPSEARCH_INTER_THREADS", 0)?,
            max_image_bytes: env_parse("CLIPSEARCH_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES)?,
            max_image_pixels: env_parse("CLIPSEARCH_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)?,
            batch_size: env_parse("CLIPSEARCH_BATCH_SIZE", 8usize)?.max(1),
            decode_threads: env_parse("CLIPSEARCH_DECODE_THREADS", 0usize)?,
            query_cache_entries: env_parse("CLIPSEARCH_QUERY_CACHE_SIZE", DEFAULT_QUERY_CACHE_ENTRIES)?,
            decode_budget_bytes: match env_opt("CLIPSEARCH_DECODE_BUDGET_BYTES") {
                None => None,
                Some(_) => match env_parse("CLIPSEARCH_DECODE_BUDGET_BYTES", 0u64)? {
                    0 => {
                        return Err(Error::Config(
                            "CLIPSEARCH_DECODE_BUDGET_BYTES=0 would refuse every image; unset it \
                             to derive the budget from the memory size"
                                .into(),
                        ))
                    }
                    bytes => Some(bytes),
                },
            },
            memory_bytes: match env_opt("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
                Some(_) => Some(env_parse("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0u64)? << 20),
                None => machine_memory_bytes(),
            },
        })
    }
}

/// `MemTotal` from /proc/meminfo (Linux), in bytes.
fn machine_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

impl Default for ClipSettings {
    fn default() -> Self {
        Self {
            model_dir: None,
            text_model_dir: None,
            ort_library: None,
            intra_threads: 0,
            inter_threads: 0,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            batch_size: 8,
            decode_threads: 0,
            query_cache_entries: DEFAULT_QUERY_CACHE_ENTRIES,
            decode_budget_bytes: None,
            memory_bytes: None,
        }
    }
}
