//! Several queries in one request (`POST /search/batch`). The text queries among them are
//! embedded together, in padded batches (one ONNX run instead of one per query, and each
//! distinct text once); then every query is searched on its own. A query that is wrong gets
//! its own error and the others are still answered.

use std::time::Instant;

use super::SearchObjects;
use super::{blocking, disabled, Query, SearchParams, SearchResponse, Searcher};
use crate::clip::{Embedding, Encoder};
use crate::store::ImageIndex;
use crate::{Error, Result};

/// Queries one request may carry.
pub const MAX_BATCH_QUERIES: usize = 32;

impl<E: Encoder + 'static, I: ImageIndex, O: SearchObjects> Searcher<E, I, O> {
    /// One answer per query, in order. The text queries' `embed_ms` is the time of their
    /// shared embedding.
    pub async fn search_many(&self, queries: Vec<Result<SearchParams>>) -> Vec<Result<SearchResponse>> {
        let started = Instant::now();
        let texts: Vec<String> = queries
            .iter()
            .filter_map(|q| match q {
                Ok(SearchParams {
                    query: Query::Text(text),
                    ..
                }) => Some(text.clone()),
                _ => None,
            })
            .collect();
        let mut vectors = self.embed_texts(texts).await.into_iter();
        let mut answers = Vec::with_capacity(queries.len());
        for query in queries {
            let answer = match query {
                Err(e) => Err(e),
                Ok(
                    params @ SearchParams {
                        query: Query::Text(_), ..
                    },
                ) => match vectors.next() {
                    Some(Ok(vector)) => self.search_vector(&params.options, vector, None, started).await,
                    Some(Err(e)) => Err(e),
                    None => Err(Error::Inference("a text query got no embedding".into())),
                },
                Ok(params) => self.search(params).await,
            };
            answers.push(answer);
        }
        answers
    }

    async fn embed_texts(&self, texts: Vec<String>) -> Vec<Result<Embedding>> {
        if texts.is_empty() {
            return Vec::new();
        }
        if !self.settings.enable_text {
            return texts.iter().map(|_| Err(disabled("text"))).collect();
        }
        let count = texts.len();
        let encoder = std::sync::Arc::clone(&self.encoder);
        match blocking(move || Ok(encoder.embed_texts(&texts))).await {
            Ok(vectors) => vectors,
            Err(e) => {
                let message = e.to_string();
                (0..count).map(|_| Err(Error::Inference(message.clone()))).collect()
            }
        }
    }
}
