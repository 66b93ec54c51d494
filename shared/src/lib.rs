//! clipsearch: serverless CLIP image search. The rooms and what never imports what:
//! docs/ARCHITECTURE.md.
pub mod capture;
pub mod clip;
pub mod config;
pub mod deadline;
pub mod duplicates;
pub mod error;
pub mod events;
pub mod ingest;
pub mod metrics;
pub mod model_source;
pub mod objects;
pub mod search;
pub mod secrets;
pub mod status;
pub mod store;
pub mod thumbnail;

pub use error::{Error, Result};

/// Where an encoder meets the index, in neither room (`clip` and `store` do not know each
/// other): the spec of whatever the encoder writes and queries with.
impl store::IndexSpec {
    pub fn of(encoder: &impl clip::Encoder) -> Self {
        let model = encoder.model_name().to_owned();
        let text_model = Some(encoder.text_model_name().to_owned()).filter(|t| *t != model);
        Self {
            dimension: encoder.dimension(),
            model,
            text_model,
        }
    }
}
