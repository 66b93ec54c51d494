//! clipsearch: serverless CLIP image search.
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
