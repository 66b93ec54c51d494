//! The collection's fields and the check that an existing collection is one we can use.
//!
//! One row per object. The primary key is the object's location (`bucket/key`: a bucket name
//! has no `/`, so the pair is unambiguous), so a write for an object replaces exactly that
//! object's row and nothing else. `id` is the content's sha256: rows of one content share it,
//! and search groups by it. `bucket` and `key` are plain scalars, so a key-prefix filter is one
//! string range and an S3 delete finds its row by primary key.

use std::collections::HashMap;

use milvus::v2::prelude::{CollectionDesc, CollectionSchema, DataType, FieldSchema};

use super::{IndexSpec, Location, MAX_BUCKET_BYTES, MAX_KEY_BYTES};
use crate::{Error, Result};

pub const LOCATION: &str = "location";
pub const BUCKET: &str = "bucket";
pub const KEY: &str = "key";
pub const ID: &str = "id";
pub const EMBEDDING: &str = "embedding";
pub const CONTENT_TYPE: &str = "content_type";
pub const WIDTH: &str = "width";
pub const HEIGHT: &str = "height";
pub const BYTE_SIZE: &str = "byte_size";
pub const ETAG: &str = "etag";
pub const MODIFIED_MS: &str = "modified_ms";
pub const INGESTED_AT_MS: &str = "ingested_at_ms";
pub const MODEL: &str = "model";
pub const CAPTURED_MS: &str = "captured_ms";
pub const CAPTURED_FROM: &str = "captured_from";

/// Collection property naming the model whose vectors the collection holds.
pub const MODEL_PROPERTY: &str = "clipsearch.model";
/// Collection property naming the separate text tower the creating process queried with (absent
/// when the model embeds its own text). Informational: any tower declaring `MODEL_PROPERTY`'s
/// image model may query the collection, which the tower's own check guarantees.
pub const TEXT_MODEL_PROPERTY: &str = "clipsearch.text_model";
/// Collection property with the layout version of this schema.
pub const SCHEMA_VERSION_PROPERTY: &str = "clipsearch.schema_version";
/// 1: one record per content with a location list (clipsearch 0.1); 2: one row per object;
/// 3: and its capture time.
pub const SCHEMA_VERSION: &str = "3";

/// Every field except the vector: what listings and point reads return.
pub const METADATA_FIELDS: [&str; 14] = [
    LOCATION,
    BUCKET,
    KEY,
    ID,
    CONTENT_TYPE,
    WIDTH,
    HEIGHT,
    BYTE_SIZE,
    ETAG,
    MODIFIED_MS,
    INGESTED_AT_MS,
    MODEL,
    CAPTURED_MS,
    CAPTURED_FROM,
];

/// The primary key of an object's row.
pub fn primary_key(location: &Location) -> String {
    format!("{}/{}", location.bucket, location.key)
}

pub fn collection_schema(spec: &IndexSpec) -> Result<CollectionSchema> {
    let dimension = u32::try_from(spec.dimension)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| Error::Config(format!("invalid dimension {}", spec.dimension)))?;
    let string = |name: &str, max_length: usize| {
        FieldSchema::new()
            .name(name)
            .data_type(DataType::VarChar)
            .max_length(max_length as u32)
    };
    let int = |name: &str| FieldSchema::new().name(name).data_type(DataType::Int64);
    Ok(CollectionSchema::new()
        .description(description(spec))
        .enable_dynamic_field(false)
        .add_field(
            string(LOCATION, MAX_BUCKET_BYTES + 1 + MAX_KEY_BYTES)
                .primary_key(true)
                .description("bucket/key of the object"),
        )
        .add_field(string(BUCKET, MAX_BUCKET_BYTES))
        .add_field(string(KEY, MAX_KEY_BYTES))
        .add_field(string(ID, 64).description("sha256 hex of the object's bytes"))
        .add_field(
            FieldSchema::new()
                .name(EMBEDDING)
                .data_type(DataType::FloatVector)
                .dimension(dimension),
        )
        .add_field(string(CONTENT_TYPE, 255))
        .add_field(int(WIDTH))
        .add_field(int(HEIGHT))
        .add_field(int(BYTE_SIZE))
        .add_field(string(ETAG, 255))
        .add_field(int(MODIFIED_MS))
        .add_field(int(INGESTED_AT_MS))
        .add_field(string(MODEL, 255))
        .add_field(int(CAPTURED_MS).description("when the photo was taken, ms since the epoch"))
        .add_field(string(CAPTURED_FROM, 16).description("exif, exif_local or modified")))
}

pub fn description(spec: &IndexSpec) -> String {
    match &spec.text_model {
        Some(text_model) => format!(
            "clipsearch images: model={} text_model={text_model} dimension={}",
            spec.model, spec.dimension
        ),
        None => format!("clipsearch images: model={} dimension={}", spec.model, spec.dimension),
    }
}

pub fn properties(spec: &IndexSpec) -> HashMap<String, String> {
    let mut properties = HashMap::from([
        (MODEL_PROPERTY.to_owned(), spec.model.clone()),
        (SCHEMA_VERSION_PROPERTY.to_owned(), SCHEMA_VERSION.to_owned()),
    ]);
    if let Some(text_model) = &spec.text_model {
        properties.insert(TEXT_MODEL_PROPERTY.to_owned(), text_model.clone());
    }
    properties
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

    let version = desc
        .get_properties()
        .get(SCHEMA_VERSION_PROPERTY)
        .map(String::as_str)
        .unwrap_or("1");
    if version == "2" {
        return Err(Error::SchemaMismatch(format!(
            "collection {name:?} has schema version 2, without capture times. Point \
             MILVUS_COLLECTION at a new name and run `clipsearch reconcile s3://BUCKET/PREFIX \
             --apply` (or `clipsearch index`) to fill it from the bucket, then drop the old \
             collection"
        )));
    }
    if version != SCHEMA_VERSION || !fields.contains_key(LOCATION) {
        return Err(Error::SchemaMismatch(format!(
            "collection {name:?} has the layout of clipsearch 0.1 (one record per content with a \
             list of locations, schema version {version}), which concurrent ingest cannot keep \
             correct. Migrate: point MILVUS_COLLECTION at a new name and run `clipsearch reconcile \
             s3://BUCKET/PREFIX --apply` (or `clipsearch index`) to fill it from the bucket, then \
             drop the old collection"
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
        (LOCATION, DataType::VarChar),
        (BUCKET, DataType::VarChar),
        (KEY, DataType::VarChar),
        (ID, DataType::VarChar),
        (CONTENT_TYPE, DataType::VarChar),
        (WIDTH, DataType::Int64),
        (HEIGHT, DataType::Int64),
        (BYTE_SIZE, DataType::Int64),
        (ETAG, DataType::VarChar),
        (MODIFIED_MS, DataType::Int64),
        (INGESTED_AT_MS, DataType::Int64),
        (MODEL, DataType::VarChar),
        (CAPTURED_MS, DataType::Int64),
        (CAPTURED_FROM, DataType::VarChar),
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
    if !fields.get(LOCATION).is_some_and(|f| f.is_primary_key()) {
        return Err(mismatch(format!("{LOCATION:?} is not the primary key")));
    }
    Ok(())
}
