//! Settings from environment variables, resolved in one place. Every variable read here is
//! listed in the README's configuration table; precedence is: command-line flag (where the CLI
//! has one) > environment variable > the default written here.

use std::path::PathBuf;

use crate::{Error, Result};

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

/// Which vector index the collection gets when `ensure_collection` creates it. An existing
/// collection keeps the index it was built with (changing it means dropping the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MilvusIndexKind {
    /// Graph index: the best latency/recall trade-off in memory; the default.
    Hnsw,
    /// Inverted-file index: cheaper to build, recall tuned at query time with `nprobe`.
    IvfFlat,
    /// Let the server choose (Zilliz Cloud accepts only this).
    AutoIndex,
    /// Exact brute-force search: perfect recall, linear cost (the benchmark's ground truth).
    Flat,
}

impl std::str::FromStr for MilvusIndexKind {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "HNSW" => Ok(Self::Hnsw),
            "IVF_FLAT" | "IVFFLAT" => Ok(Self::IvfFlat),
            "AUTOINDEX" | "AUTO_INDEX" | "AUTO" => Ok(Self::AutoIndex),
            "FLAT" => Ok(Self::Flat),
            other => Err(format!(
                "unknown index {other:?} (expected HNSW, IVF_FLAT, AUTOINDEX or FLAT)"
            )),
        }
    }
}

impl MilvusIndexKind {
    /// The name Milvus and the environment variable use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hnsw => "HNSW",
            Self::IvfFlat => "IVF_FLAT",
            Self::AutoIndex => "AUTOINDEX",
            Self::Flat => "FLAT",
        }
    }
}

/// Where the Milvus image index lives and how it is built and searched.
#[derive(Clone)]
pub struct MilvusSettings {
    /// `MILVUS_URI`: `http://host:19530` (plain) or `https://…` (TLS, e.g. Zilliz Cloud).
    pub uri: String,
    /// `MILVUS_TOKEN`: an API key (Zilliz Cloud) or `user:password`; wins over user/password.
    pub token: Option<String>,
    /// `MILVUS_TOKEN_SECRET_ID`: a Secrets Manager secret (name or ARN) holding the token, read
    /// at run time when the index first connects and kept for the container's life. Wins over
    /// `MILVUS_TOKEN`: the deployed functions never hold the token in their environment.
    pub token_secret: Option<String>,
    /// `MILVUS_USER`: user name when authentication is on (with `MILVUS_PASSWORD`).
    pub user: Option<String>,
    /// `MILVUS_PASSWORD`: that user's password.
    pub password: Option<String>,
    /// `MILVUS_DB`: database name; `None` means the server's `default` database.
    pub database: Option<String>,
    /// `MILVUS_COLLECTION`: the collection holding the image records.
    pub collection: String,
    /// `MILVUS_CONNECT_TIMEOUT_SECS`: how long connecting may wait for the server.
    pub connect_timeout: std::time::Duration,
    /// `MILVUS_TIMEOUT_SECS`: deadline of each RPC attempt (and of waiting for a load).
    pub rpc_timeout: std::time::Duration,
    /// `MILVUS_SEARCH_TIMEOUT_SECS`: the longest each read serving a search (a search round, the
    /// hits' locations, a stored record) may take before Milvus counts as unavailable: a
    /// stalled Milvus costs a search this, not its whole invocation.
    pub search_timeout: std::time::Duration,
    /// `MILVUS_INDEX`: HNSW (default), IVF_FLAT, AUTOINDEX or FLAT; used when creating.
    pub index: MilvusIndexKind,
    /// `MILVUS_HNSW_M`: HNSW graph degree (build time).
    pub hnsw_m: u32,
    /// `MILVUS_HNSW_EF_CONSTRUCTION`: HNSW build-time candidate list size.
    pub hnsw_ef_construction: u32,
    /// `MILVUS_SEARCH_EF`: HNSW query-time candidate list size (raised to `top_k` if smaller).
    pub search_ef: u32,
    /// `MILVUS_IVF_NLIST`: IVF_FLAT cluster count (build time).
    pub ivf_nlist: u32,
    /// `MILVUS_IVF_NPROBE`: IVF_FLAT clusters visited per query.
    pub ivf_nprobe: u32,
}

impl std::fmt::Debug for MilvusSettings {
    // Hand-written so that secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("MilvusSettings")
            .field("uri", &self.uri)
            .field("token", &redact(&self.token))
            .field("token_secret", &self.token_secret)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("search_timeout", &self.search_timeout)
            .field("index", &self.index)
            .field("hnsw_m", &self.hnsw_m)
            .field("hnsw_ef_construction", &self.hnsw_ef_construction)
            .field("search_ef", &self.search_ef)
            .field("ivf_nlist", &self.ivf_nlist)
            .field("ivf_nprobe", &self.ivf_nprobe)
            .finish()
    }
}

pub const DEFAULT_MILVUS_URI: &str = "http://127.0.0.1:19530";
pub const DEFAULT_MILVUS_COLLECTION: &str = "clipsearch_images";

impl Default for MilvusSettings {
    fn default() -> Self {
        Self {
            uri: DEFAULT_MILVUS_URI.to_owned(),
            token: None,
            token_secret: None,
            user: None,
            password: None,
            database: None,
            collection: DEFAULT_MILVUS_COLLECTION.to_owned(),
            connect_timeout: std::time::Duration::from_secs(10),
            rpc_timeout: std::time::Duration::from_secs(30),
            search_timeout: std::time::Duration::from_secs(5),
            index: MilvusIndexKind::Hnsw,
            hnsw_m: 16,
            hnsw_ef_construction: 200,
            search_ef: 64,
            ivf_nlist: 1024,
            ivf_nprobe: 32,
        }
    }
}

impl MilvusSettings {
    pub fn from_env() -> Result<Self> {
        let d = Self::default();
        let secs = |name: &str, default: std::time::Duration| -> Result<std::time::Duration> {
            let value: f64 = env_parse(name, default.as_secs_f64())?;
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::Config(format!("{name}={value}: must be > 0 seconds")));
            }
            Ok(std::time::Duration::from_secs_f64(value))
        };
        let positive = |name: &str, default: u32| -> Result<u32> {
            match env_parse(name, default)? {
                0 => Err(Error::Config(format!("{name}=0: must be at least 1"))),
                v => Ok(v),
            }
        };
        let settings = Self {
            uri: env_opt("MILVUS_URI").unwrap_or(d.uri),
            token: env_opt("MILVUS_TOKEN"),
            token_secret: env_opt("MILVUS_TOKEN_SECRET_ID"),
            user: env_opt("MILVUS_USER"),
            password: env_opt("MILVUS_PASSWORD"),
            database: env_opt("MILVUS_DB"),
            collection: env_opt("MILVUS_COLLECTION").unwrap_or(d.collection),
            connect_timeout: secs("MILVUS_CONNECT_TIMEOUT_SECS", d.connect_timeout)?,
            rpc_timeout: secs("MILVUS_TIMEOUT_SECS", d.rpc_timeout)?,
            search_timeout: secs("MILVUS_SEARCH_TIMEOUT_SECS", d.search_timeout)?,
            index: env_parse("MILVUS_INDEX", d.index)?,
            hnsw_m: positive("MILVUS_HNSW_M", d.hnsw_m)?,
            hnsw_ef_construction: positive("MILVUS_HNSW_EF_CONSTRUCTION", d.hnsw_ef_construction)?,
            search_ef: positive("MILVUS_SEARCH_EF", d.search_ef)?,
            ivf_nlist: positive("MILVUS_IVF_NLIST", d.ivf_nlist)?,
            ivf_nprobe: positive("MILVUS_IVF_NPROBE", d.ivf_nprobe)?,
        };
        if settings.password.is_some() && settings.user.is_none() {
            return Err(Error::Config("MILVUS_PASSWORD is set but MILVUS_USER is not".into()));
        }
        Ok(settings)
    }
}
