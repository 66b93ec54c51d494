//! What the index accepts: ids, vectors, key prefixes, searches and rows are checked here
//! before any backend sees them, so the in-memory and Milvus indexes refuse alike.

use super::{IndexSpec, IndexedObject, SearchRequest, MAX_KEY_BYTES, MAX_RESULT_WINDOW};
use crate::{Error, Result};

/// Accepts a sha256 hex id (either case) and returns it lowercase; anything else is a bad
/// request, which also keeps ids trivially safe inside filter expressions.
pub fn normalize_id(id: &str) -> Result<String> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Error::InvalidRequest(format!(
            "image id must be 64 hex characters (a sha256), got {:?}",
            truncate_for_message(id)
        )))
    }
}

/// Checks a vector against the spec: right dimension, finite, not all zero (cosine of a zero
/// vector is undefined).
pub fn validate_vector(vector: &[f32], spec: &IndexSpec) -> Result<()> {
    if vector.len() != spec.dimension {
        return Err(Error::InvalidRequest(format!(
            "vector has dimension {}, the index holds {} ({})",
            vector.len(),
            spec.dimension,
            spec.model
        )));
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidRequest("vector contains NaN or infinity".into()));
    }
    if vector.iter().all(|v| *v == 0.0) {
        return Err(Error::InvalidRequest("vector is all zeros".into()));
    }
    Ok(())
}

/// Checks a key prefix a caller gave (`name` is what the caller calls it): a possible key.
pub fn validate_key_prefix(prefix: &str, name: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_BYTES || prefix.contains('\0') {
        return Err(Error::InvalidRequest(format!(
            "{name} must be at most {MAX_KEY_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

/// Checks a search request's parameters (not the vector).
pub fn validate_search(request: &SearchRequest) -> Result<()> {
    if !(1..=MAX_RESULT_WINDOW).contains(&request.top_k) {
        return Err(Error::InvalidRequest(format!(
            "top_k must be in 1..={MAX_RESULT_WINDOW}, got {}",
            request.top_k
        )));
    }
    if let Some(min) = request.min_score {
        if !min.is_finite() {
            return Err(Error::InvalidRequest("min_score must be finite".into()));
        }
    }
    if let Some(prefix) = &request.key_prefix {
        validate_key_prefix(prefix, "key_prefix")?;
    }
    Ok(())
}

/// Checks a row before it is written.
pub fn validate_object(object: &IndexedObject, spec: &IndexSpec) -> Result<IndexedObject> {
    let mut object = object.clone();
    object.id = normalize_id(&object.id)?;
    object.location.validate()?;
    validate_vector(&object.embedding, spec)?;
    if object.model != spec.model {
        return Err(Error::SchemaMismatch(format!(
            "{} was embedded by {:?} but the index holds {:?}",
            object.location, object.model, spec.model
        )));
    }
    if object.content_type.len() > 255 || object.etag.len() > 255 {
        return Err(Error::InvalidRequest(
            "content type or ETag longer than 255 bytes".into(),
        ));
    }
    if i64::try_from(object.byte_size).is_err() {
        return Err(Error::InvalidRequest("byte size out of range".into()));
    }
    Ok(object)
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(80).collect()
}
