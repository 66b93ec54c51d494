//! clipsearch: serverless CLIP image search.
pub mod clip;
pub mod config;
pub mod error;
pub mod objects;
pub mod store;

pub use error::{Error, Result};
