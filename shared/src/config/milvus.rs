//! Where the index lives and how it is built and searched ([`MilvusSettings`]).

use super::{env_opt, env_parse};
use crate::{Error, Result};

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
