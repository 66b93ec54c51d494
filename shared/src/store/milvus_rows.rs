//! The Milvus column codec (rows of [`IndexedObject`] to and from column-oriented
//! `FieldData`) and the classification of SDK errors into ours.

use std::collections::HashMap;

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::FieldData;

use super::schema;
use super::{IndexedObject, Location};
use crate::capture::{CaptureSource, CaptureTime};
use crate::{Error, Result};

pub(crate) fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Column-oriented results by field name.
pub(crate) struct Columns<'a> {
    by_name: HashMap<&'a str, &'a FieldData>,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(fields: &'a [FieldData]) -> Self {
        let by_name = fields.iter().map(|f| (field_name(f), f)).collect();
        Self { by_name }
    }

    fn field(&self, name: &str) -> Result<&'a FieldData> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::Store(format!("Milvus response lacks field {name:?}")))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<&'a [String]> {
        match self.field(name) {
            Ok(FieldData::VarChar { values, .. }) => Ok(values),
            Ok(other) => Err(unexpected(name, other)),
            // A query with no match may come back without any column.
            Err(_) if self.by_name.is_empty() => Ok(&[]),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn string(&self, name: &str, row: usize) -> Result<String> {
        self.strings(name)?.get(row).cloned().ok_or_else(|| short(name, row))
    }

    pub(crate) fn int(&self, name: &str, row: usize) -> Result<i64> {
        match self.field(name)? {
            FieldData::Int64 { values, .. } => values.get(row).copied().ok_or_else(|| short(name, row)),
            FieldData::Int32 { values, .. } => values.get(row).map(|v| i64::from(*v)).ok_or_else(|| short(name, row)),
            other => Err(unexpected(name, other)),
        }
    }

    fn vector(&self, name: &str, row: usize) -> Result<Vec<f32>> {
        match self.field(name)? {
            FieldData::FloatVector { values, .. } => values.get(row).cloned().ok_or_else(|| short(name, row)),
            other => Err(unexpected(name, other)),
        }
    }

    /// Number of rows (by the primary-key column, which every read asks for).
    pub(crate) fn len(&self) -> Result<usize> {
        Ok(self.strings(schema::LOCATION)?.len())
    }

    pub(crate) fn location(&self, row: usize) -> Result<Location> {
        Ok(Location::new(
            self.string(schema::BUCKET, row)?,
            self.string(schema::KEY, row)?,
        ))
    }

    pub(crate) fn object(&self, row: usize, with_embedding: bool) -> Result<IndexedObject> {
        Ok(IndexedObject {
            location: self.location(row)?,
            id: self.string(schema::ID, row)?,
            embedding: if with_embedding {
                self.vector(schema::EMBEDDING, row)?
            } else {
                Vec::new()
            },
            content_type: self.string(schema::CONTENT_TYPE, row)?,
            width: clamp_u32(self.int(schema::WIDTH, row)?),
            height: clamp_u32(self.int(schema::HEIGHT, row)?),
            byte_size: u64::try_from(self.int(schema::BYTE_SIZE, row)?).unwrap_or(0),
            etag: self.string(schema::ETAG, row)?,
            modified_ms: self.int(schema::MODIFIED_MS, row)?,
            ingested_at_ms: self.int(schema::INGESTED_AT_MS, row)?,
            model: self.string(schema::MODEL, row)?,
            captured: CaptureTime {
                ms: self.int(schema::CAPTURED_MS, row)?,
                source: CaptureSource::parse(&self.string(schema::CAPTURED_FROM, row)?),
            },
        })
    }

    pub(crate) fn objects(&self, with_embedding: bool) -> Result<Vec<IndexedObject>> {
        (0..self.len()?).map(|row| self.object(row, with_embedding)).collect()
    }
}

/// The columns of an upsert of `rows` (already validated).
pub(crate) fn encode(rows: &[IndexedObject]) -> Vec<FieldData> {
    let strings = |name: &str, get: &dyn Fn(&IndexedObject) -> String| FieldData::VarChar {
        name: name.into(),
        values: rows.iter().map(get).collect(),
    };
    let ints = |name: &str, get: &dyn Fn(&IndexedObject) -> i64| FieldData::Int64 {
        name: name.into(),
        values: rows.iter().map(get).collect(),
    };
    vec![
        strings(schema::LOCATION, &|r| schema::primary_key(&r.location)),
        strings(schema::BUCKET, &|r| r.location.bucket.clone()),
        strings(schema::KEY, &|r| r.location.key.clone()),
        strings(schema::ID, &|r| r.id.clone()),
        FieldData::FloatVector {
            name: schema::EMBEDDING.into(),
            values: rows.iter().map(|r| r.embedding.clone()).collect(),
        },
        strings(schema::CONTENT_TYPE, &|r| r.content_type.clone()),
        ints(schema::WIDTH, &|r| i64::from(r.width)),
        ints(schema::HEIGHT, &|r| i64::from(r.height)),
        ints(schema::BYTE_SIZE, &|r| i64::try_from(r.byte_size).unwrap_or(i64::MAX)),
        strings(schema::ETAG, &|r| r.etag.clone()),
        ints(schema::MODIFIED_MS, &|r| r.modified_ms),
        ints(schema::INGESTED_AT_MS, &|r| r.ingested_at_ms),
        strings(schema::MODEL, &|r| r.model.clone()),
        ints(schema::CAPTURED_MS, &|r| r.captured.ms),
        strings(schema::CAPTURED_FROM, &|r| r.captured.source.as_str().to_owned()),
    ]
}

fn field_name(field: &FieldData) -> &str {
    match field {
        FieldData::Bool { name, .. }
        | FieldData::Int8 { name, .. }
        | FieldData::Int16 { name, .. }
        | FieldData::Int32 { name, .. }
        | FieldData::Int64 { name, .. }
        | FieldData::Float { name, .. }
        | FieldData::Double { name, .. }
        | FieldData::VarChar { name, .. }
        | FieldData::Json { name, .. }
        | FieldData::ArrayVarChar { name, .. }
        | FieldData::FloatVector { name, .. } => name,
        _ => "",
    }
}

fn unexpected(name: &str, field: &FieldData) -> Error {
    let kind = format!("{field:?}");
    let kind = kind.split([' ', '{']).next().unwrap_or_default();
    Error::Store(format!("field {name:?} came back as {kind}"))
}

fn short(name: &str, row: usize) -> Error {
    Error::Store(format!("field {name:?} has no row {row}"))
}

/// A request the SDK refused to build: our bug or bad input, never transient.
pub(crate) fn sdk_store(e: SdkError) -> Error {
    Error::Store(e.to_string())
}

/// Maps SDK errors to ours: anything a retry may fix (transport down, timeouts, throttling,
/// server not ready) becomes [`Error::StoreUnavailable`]; the rest [`Error::Store`].
pub(crate) fn classify(context: &str, e: SdkError) -> Error {
    let message = format!("{context}: {e}");
    if is_transient(&e) {
        Error::StoreUnavailable(message)
    } else {
        Error::Store(message)
    }
}

/// Whether `describe_index` answered "this collection has no index" rather than failed: Milvus
/// 2.3 says "index not found" (legacy code), 2.4+ and Milvus Lite send code 700 (`merr`'s
/// IndexNotFound; Lite's text is "no index on collection …").
pub(crate) fn no_index(code: i32, reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    code == 700
        || ["not found", "not exist", "no index"]
            .iter()
            .any(|n| reason.contains(n))
}

fn is_transient(e: &SdkError) -> bool {
    match e {
        SdkError::Grpc(status) => is_transient_grpc_code(status.code() as i32),
        SdkError::Timeout(_) => true,
        SdkError::RetryExhausted { source, .. } => is_transient(source),
        SdkError::Server(server) => {
            let reason = server.reason().to_ascii_lowercase();
            [
                "rate limit",
                "not ready",
                "unavailable",
                "timeout",
                "deadline",
                "too many",
                "service not healthy",
                "not loaded",
                "collection not loaded",
            ]
            .iter()
            .any(|needle| reason.contains(needle))
        }
        _ => false,
    }
}

/// gRPC status codes (numbering fixed by the gRPC spec) that mean "try again later":
/// CANCELLED, UNKNOWN (how tonic reports a broken transport), DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
fn is_transient_grpc_code(code: i32) -> bool {
    matches!(code, 1 | 2 | 4 | 8 | 10 | 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_transient() {
        let slow = SdkError::Timeout("connecting".into());
        assert!(matches!(classify("x", slow), Error::StoreUnavailable(_)));
        let exhausted = SdkError::RetryExhausted {
            attempts: 3,
            source: Box::new(SdkError::Timeout("x".into())),
        };
        assert!(matches!(classify("x", exhausted), Error::StoreUnavailable(_)));
        for unavailable_or_deadline in [14, 4] {
            assert!(is_transient_grpc_code(unavailable_or_deadline));
        }
    }

    #[test]
    fn rejections_are_not_transient() {
        // INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED
        for code in [3, 5, 7, 16, 12] {
            assert!(!is_transient_grpc_code(code));
        }
        let unexpected = SdkError::Unexpected("bug".into());
        assert!(matches!(classify("x", unexpected), Error::Store(_)));
    }

    #[test]
    fn each_engines_no_index_answer_is_recognised() {
        assert!(no_index(0, "index not found[collection=c]")); // 2.3.5
        assert!(no_index(700, "no index on collection 'c'")); // Milvus Lite 3.2
        assert!(no_index(700, "something else"));
        assert!(!no_index(65535, "collection not loaded"));
        assert!(!no_index(0, "permission denied"));
    }

    #[test]
    fn encoded_rows_decode_back() {
        let row = IndexedObject {
            location: Location::new("b", "k/é.png"),
            id: "a".repeat(64),
            embedding: vec![0.5, 0.5],
            content_type: "image/png".into(),
            width: 3,
            height: 4,
            byte_size: 5,
            etag: "\"x\"".into(),
            modified_ms: 6,
            ingested_at_ms: 7,
            captured: crate::capture::CaptureTime {
                ms: 1,
                source: crate::capture::CaptureSource::Exif,
            },
            model: "m".into(),
        };
        let columns = encode(std::slice::from_ref(&row));
        let decoded = Columns::new(&columns).objects(true).unwrap();
        assert_eq!(decoded, vec![row]);
    }
}
