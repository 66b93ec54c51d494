//! The settings of the other rooms (S3, search, model sources, ingest, the functions' deadlines,
//! the CLI's queue), read here so that no other module reads the environment. Their types stay
//! with the code they configure.

use std::time::Duration;

use super::{env_opt, env_or, env_parse, ClipSettings};
use crate::model_source::ModelSources;
use crate::objects::{ObjectSettings, DEFAULT_PRESIGN_EXPIRY, DEFAULT_STATUS_PREFIX, DEFAULT_UPLOAD_PREFIX};
use crate::search::{SearchSettings, DEFAULT_MAX_QUERY_IMAGE_BYTES};
use crate::{Error, Result};

impl ObjectSettings {
    pub fn from_env() -> Result<Self> {
        let endpoint = env_opt("CLIPSEARCH_S3_ENDPOINT");
        Ok(Self {
            path_style: env_parse("CLIPSEARCH_S3_PATH_STYLE", endpoint.is_some())?,
            endpoint,
            bucket: env_opt("CLIPSEARCH_BUCKET"),
            upload_prefix: env_opt("CLIPSEARCH_UPLOAD_PREFIX").unwrap_or_else(|| DEFAULT_UPLOAD_PREFIX.into()),
            presign_expiry: Duration::from_secs(env_parse(
                "CLIPSEARCH_PRESIGN_EXPIRY_SECS",
                DEFAULT_PRESIGN_EXPIRY.as_secs(),
            )?),
            status_prefix: env_or("CLIPSEARCH_STATUS_PREFIX", DEFAULT_STATUS_PREFIX),
            thumbnail_prefix: env_or(
                "CLIPSEARCH_THUMBNAIL_PREFIX",
                crate::thumbnail::DEFAULT_THUMBNAIL_PREFIX,
            ),
        })
    }
}

impl SearchSettings {
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(&ObjectSettings::from_env()?, &ClipSettings::from_env()?)
    }

    /// The search settings of the environment, with the S3 and encoder settings a caller has
    /// already read (the search function reads those for its own wiring too).
    pub fn from_env_with(objects: &ObjectSettings, clip: &ClipSettings) -> Result<Self> {
        let settings = Self {
            enable_text: env_parse("CLIPSEARCH_ENABLE_TEXT", true)?,
            enable_image: env_parse("CLIPSEARCH_ENABLE_IMAGE", true)?,
            max_query_image_bytes: env_parse("CLIPSEARCH_MAX_QUERY_IMAGE_BYTES", DEFAULT_MAX_QUERY_IMAGE_BYTES)?,
            bucket: objects.bucket.clone(),
            upload_prefix: objects.upload_prefix.clone(),
            presign_expiry: objects.presign_expiry,
            max_upload_bytes: clip.max_image_bytes,
        };
        if !settings.enable_text && !settings.enable_image {
            return Err(Error::Config(
                "CLIPSEARCH_ENABLE_TEXT and CLIPSEARCH_ENABLE_IMAGE are both false: nothing could \
                 be searched except by id, and no model would say which vectors the index holds"
                    .into(),
            ));
        }
        Ok(settings)
    }
}

impl ModelSources {
    pub fn from_env() -> Self {
        Self {
            model: env_opt("CLIPSEARCH_MODEL_S3_URI"),
            text_model: env_opt("CLIPSEARCH_TEXT_MODEL_S3_URI"),
        }
    }
}

/// `CLIPSEARCH_INGEST_CONCURRENCY`: records of one invocation (or backfill images) in flight.
pub fn ingest_concurrency(default: usize) -> Result<usize> {
    env_parse("CLIPSEARCH_INGEST_CONCURRENCY", default)
}

/// `CLIPSEARCH_MAX_REQUEST_BYTES`: the search function's largest request body.
pub fn max_request_bytes(default: usize) -> Result<usize> {
    env_parse("CLIPSEARCH_MAX_REQUEST_BYTES", default)
}

/// `CLIPSEARCH_INVOCATION_TIMEOUT_SECS`: the budget of an invocation whose runtime gives no
/// real deadline (local emulators; [`crate::deadline::invocation_deadline`]); unset means none.
/// Read once per cold start.
pub fn invocation_timeout() -> Result<Option<Duration>> {
    match env_opt("CLIPSEARCH_INVOCATION_TIMEOUT_SECS") {
        None => Ok(None),
        Some(value) => match value.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 900.0 => Ok(Some(Duration::from_secs_f64(secs))),
            _ => Err(Error::Config(format!(
                "CLIPSEARCH_INVOCATION_TIMEOUT_SECS={value:?}: expected seconds in (0, 900]"
            ))),
        },
    }
}

/// `CLIPSEARCH_SQS_ENDPOINT`, else `CLIPSEARCH_S3_ENDPOINT` (moto serves both on one port);
/// `None`: AWS.
pub fn sqs_endpoint() -> Option<String> {
    env_opt("CLIPSEARCH_SQS_ENDPOINT").or_else(|| env_opt("CLIPSEARCH_S3_ENDPOINT"))
}

/// `LAMBDA_PORT` (default 9000): the local Lambda emulator's port (`scripts/lambda.sh`), which
/// the relay invokes when `CLIPSEARCH_LAMBDA_URL` is not given.
pub fn lambda_port() -> String {
    env_opt("LAMBDA_PORT").unwrap_or_else(|| "9000".into())
}
