//! The collection's fields and the check that an existing collection is one we can use.
//!
//! Locations are two parallel arrays, `buckets[i]`/`keys[i]`, rather than one JSON list,
//! because Milvus 2.3 can filter arrays both ways we need: `array_contains(keys, "k")` finds the
//! record holding an object when only bucket/key are known (S3 delete events), and
//! `keys[i] >= "p" and keys[i] < "q"` (per slot) is a key-prefix filter at search time.

use std::collections::HashMap;

use milvus::v2::prelude::{CollectionDesc, CollectionSchema, DataType, FieldSchema};

use super::IndexSpec;
use crate::{Error, Result};

pub const ID: &str = "id";
pub const EMBEDDING: &str = "embedding";
pub const BUCKETS: &str = "buckets";
pub const KEYS: &str = "keys";
pub const CONTENT_TYPE: &str = "content_type";
pub const WIDTH: &str = "width";
pub const HEIGHT: &str = "height";
pub const BYTE_SIZE: &str = "byte_size";
pub const INGESTED_AT_MS: &str = "ingested_at_ms";
pub const MODEL: &str = "model";

/// Most locations one record tracks. It bounds the array fields and the size of the
/// key-prefix filter (one clause per slot), so it is deliberately small.
pub const MAX_LOCATIONS: usize = 16;

/// Collection property naming the model whose vectors the collection holds.
pub const MODEL_PROPERTY: &str = "clipsearch.model";
/// Collection property with the layout version of this schema.
pub const SCHEMA_VERSION_PROPERTY: &str = "clipsearch.schema_version";
pub const SCHEMA_VERSION: &str = "1";

/// Every field except the vector: what search hits and point reads return.
pub const METADATA_FIELDS: [&str; 8] = [
    ID,
    BUCKETS,
    KEYS,
    CONTENT_TYPE,
    WIDTH,
    HEIGHT,
    BYTE_SIZE,
    INGESTED_AT_MS,
];

pub fn collection_schema(spec: &IndexSpec) -> Result<CollectionSchema> {
    let dimension = u32::try_from(spec.dimension)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Error::Config(format!("invalid dimension {}", spec.dimension)))?;
    let capacity = MAX_LOCATIONS as u32;
    let string = |name: &str, max_length: u32| {
        FieldSchema::new()
            .name(name)
            .data_type(DataType::VarChar)
            .max_length(max_length)
    };
    let int = |name: &str| FieldSchema::new().name(name).data_type(DataType::Int64);
    Ok(CollectionSchema::new()
        .description(description(spec))
        .enable_dynamic_field(false)
        .add_field(
            string(ID, 64)
                .primary_key(true)
                .description("sha256 hex of the image bytes"),
        )
        .add_field(
            FieldSchema::new()
                .name(EMBEDDING)
                .data_type(DataType::FloatVector)
                .dimension(dimension),
        )
        .add_field(
            FieldSchema::new()
                .name(BUCKETS)
                .data_type(DataType::Array)
                .element_type(DataType::VarChar)
                .max_capacity(capacity)
                .max_length(super::MAX_BUCKET_BYTES as u32)
                .description("bucket of each location; parallel to keys"),
        )
        .add_field(
            FieldSchema::new()
                .name(KEYS)
                .data_type(DataType::Array)
                .element_type(DataType::VarChar)
                .max_capacity(capacity)
                .max_length(super::MAX_KEY_BYTES as u32)
                .description("object key of each location; parallel to buckets"),
        )
        .add_field(string(CONTENT_TYPE, 255))
        .add_field(int(WIDTH))
        .add_field(int(HEIGHT))
        .add_field(int(BYTE_SIZE))
        .add_field(int(INGESTED_AT_MS))
        .add_field(string(MODEL, 255)))
}

pub fn description(spec: &IndexSpec) -> String {
    format!("clipsearch images: model={} dimension={}", spec.model, spec.dimension)
}

pub fn properties(spec: &IndexSpec) -> HashMap<String, String> {
    HashMap::from([
        (MODEL_PROPERTY.to_owned(), spec.model.clone()),
        (SCHEMA_VERSION_PROPERTY.to_owned(), SCHEMA_VERSION.to_owned()),
    ])
}

/// Refuses (with [`Error::SchemaMismatch`]) a collection whose vectors could not have come
/// from the configured model, or whose fields are not the ones this module writes.
pub fn check_existing(name: &str, desc: &CollectionDesc, spec: &IndexSpec) -> Result<()> {
    let fields: HashMap<&str, &FieldSchema> = desc
        .get_schema()
        .get_fields()
        .iter()
        .map(|f| (f.get_name(), f))
        .collect();
    let mismatch = |what: String| {
        Error::SchemaMismatch(format!(
            "collection {name:?}: {what}. Use another MILVUS_COLLECTION (or drop this one and \
             re-ingest) instead of mixing vectors"
        ))
    };

    let embedding = fields
        .get(EMBEDDING)
        .ok_or_else(|| mismatch(format!("has no {EMBEDDING:?} field")))?;
    if embedding.get_data_type() != DataType::FloatVector {
        return Err(mismatch(format!(
            "field {EMBEDDING:?} is {:?}, not a float vector",
            embedding.get_data_type()
        )));
    }
    let dimension = embedding.get_dimension() as usize;
    if dimension != spec.dimension {
        return Err(mismatch(format!(
            "holds {dimension}-dimensional vectors but the configured model {:?} produces {}",
            spec.model, spec.dimension
        )));
    }

    let model = desc
        .get_properties()
        .get(MODEL_PROPERTY)
        .or_else(|| desc.get_schema().get_properties().get(MODEL_PROPERTY));
    match model {
        Some(model) if model == &spec.model => {}
        Some(model) => {
            return Err(mismatch(format!(
                "holds vectors of model {model:?} but the configured model is {:?}",
                spec.model
            )))
        }
        None => {
            return Err(mismatch(format!(
                "was not created by clipsearch (no {MODEL_PROPERTY:?} property)"
            )))
        }
    }

    let expected = [
        (ID, DataType::VarChar),
        (BUCKETS, DataType::Array),
        (KEYS, DataType::Array),
        (CONTENT_TYPE, DataType::VarChar),
        (WIDTH, DataType::Int64),
        (HEIGHT, DataType::Int64),
        (BYTE_SIZE, DataType::Int64),
        (INGESTED_AT_MS, DataType::Int64),
        (MODEL, DataType::VarChar),
    ];
    for (field, data_type) in expected {
        match fields.get(field) {
            Some(f) if f.get_data_type() == data_type => {}
            Some(f) => {
                return Err(mismatch(format!(
                    "field {field:?} is {:?}, expected {data_type:?}",
                    f.get_data_type()
                )))
            }
            None => return Err(mismatch(format!("has no {field:?} field"))),
        }
    }
    if !fields.get(ID).is_some_and(|f| f.is_primary_key()) {
        return Err(mismatch(format!("{ID:?} is not the primary key")));
    }
    Ok(())
}
