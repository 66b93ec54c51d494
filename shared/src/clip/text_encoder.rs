//! The text tower: text → CLIP BPE tokens → ONNX → unit vector.

use std::sync::Mutex;

use ort::session::Session;
use ort::value::{Tensor, TensorElementType};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::image_encoder::rows;
use super::model_dir::ModelDir;
use super::runtime::{self, Threads};
use super::{pick_output, Embedding};
use crate::config::ClipSettings;
use crate::{Error, Result};

pub struct TextEncoder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    ids_name: String,
    ids_are_i32: bool,
    mask_name: Option<String>,
    output_name: String,
    dimension: usize,
    pad_id: u32,
    /// Exported with a fixed sequence length: every row is padded to it.
    fixed_len: Option<usize>,
    batch_size: usize,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("ids", &self.ids_name)
            .field("mask", &self.mask_name)
            .field("output", &self.output_name)
            .field("dimension", &self.dimension)
            .finish()
    }
}

impl TextEncoder {
    pub fn load(model: &ModelDir, settings: &ClipSettings) -> Result<Self> {
        let model_err = |path: &std::path::Path, reason: String| Error::Model {
            dir: path.to_path_buf(),
            reason,
        };
        let mut tokenizer =
            Tokenizer::from_file(&model.tokenizer).map_err(|e| model_err(&model.tokenizer, e.to_string()))?;
        // Truncation keeps the post-processor's special tokens, so the last id stays
        // <|endoftext|>; padding is done per batch below.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: model.text.context_length,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
                stride: 0,
            }))
            .map_err(|e| model_err(&model.tokenizer, e.to_string()))?;
        tokenizer.with_padding(None);

        let text_model = model.text_model()?;
        let env = runtime::environment(settings.ort_library.as_deref())?;
        let session = runtime::session(
            env,
            text_model,
            Threads {
                intra: settings.intra_threads,
                inter: settings.inter_threads,
            },
        )?;
        let tm = text_model;
        let inputs = session.inputs();
        let ids = inputs
            .iter()
            .find(|i| i.name() == "input_ids")
            .or_else(|| inputs.iter().find(|i| !i.name().contains("mask")))
            .ok_or_else(|| model_err(tm, "no token-id input".into()))?;
        let ids_are_i32 = match ids.dtype().tensor_type() {
            Some(TensorElementType::Int64) => false,
            Some(TensorElementType::Int32) => true,
            other => {
                return Err(model_err(
                    tm,
                    format!("token ids must be int64 or int32, not {other:?}"),
                ))
            }
        };
        let ids_shape: Vec<i64> = ids.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        let mask_name = inputs
            .iter()
            .find(|i| i.name().contains("mask"))
            .map(|i| i.name().to_string());
        if inputs.len() > 1 + mask_name.is_some() as usize {
            return Err(model_err(
                tm,
                format!(
                    "unexpected inputs {:?} (expected input_ids and optionally attention_mask)",
                    inputs.iter().map(|i| i.name()).collect::<Vec<_>>()
                ),
            ));
        }
        let fixed_len = match ids_shape.get(1) {
            Some(&n) if n > 0 => Some(n as usize),
            _ => None,
        };
        let batch_size = match ids_shape.first() {
            Some(&n) if n > 0 => n as usize,
            _ => settings.batch_size.max(16),
        };
        let (output_name, dimension) = pick_output(&session, "text_embeds").map_err(|e| model_err(tm, e))?;
        let ids_name = ids.name().to_string();
        let eos = tokenizer
            .token_to_id("<|endoftext|>")
            .or_else(|| tokenizer.get_padding().map(|p| p.pad_id));
        let pad_id = model
            .text
            .pad_id
            .or(eos)
            .ok_or_else(|| model_err(tm, "cannot tell the padding id".into()))?;
        let mut encoder = Self {
            session: Mutex::new(session),
            tokenizer,
            ids_name,
            ids_are_i32,
            mask_name,
            output_name,
            dimension: dimension.unwrap_or(0),
            pad_id,
            fixed_len,
            batch_size,
        };
        if encoder.dimension == 0 {
            encoder.dimension = encoder.embed("a photo")?.len();
        }
        Ok(encoder)
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Token ids exactly as the reference produces them (no emptiness check, no padding).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::InvalidRequest(format!("cannot tokenize: {e}")))
    }

    /// Pads `ids` with the model's pad id; the mask is 1 over the real tokens.
    pub fn pad(&self, ids: &[u32], len: usize) -> (Vec<u32>, Vec<u32>) {
        let mut padded = ids.to_vec();
        padded.resize(len.max(ids.len()), self.pad_id);
        let mut mask = vec![1u32; ids.len()];
        mask.resize(len.max(ids.len()), 0);
        (padded, mask)
    }

    pub fn embed(&self, text: &str) -> Result<Embedding> {
        self.embed_many(&[text])
            .pop()
            .unwrap_or_else(|| Err(Error::Inference("no embedding".into())))
    }

    /// One result per text, in order; empty (or whitespace-only) texts are errors, the rest
    /// are embedded in padded batches.
    pub fn embed_many<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Result<Embedding>> {
        let tokenized: Vec<Result<Vec<u32>>> = texts
            .iter()
            .map(|t| {
                if t.as_ref().trim().is_empty() {
                    Err(Error::EmptyText)
                } else {
                    self.tokenize(t.as_ref())
                }
            })
            .collect();
        let ok: Vec<&Vec<u32>> = tokenized.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut vectors = Vec::with_capacity(ok.len());
        for chunk in ok.chunks(self.batch_size) {
            match self.run(chunk) {
                Ok(v) => vectors.extend(v),
                Err(e) => {
                    let msg = e.to_string();
                    return tokenized
                        .into_iter()
                        .map(|r| r.and(Err(Error::Inference(msg.clone()))))
                        .collect();
                }
            }
        }
        let mut vectors = vectors.into_iter();
        tokenized
            .into_iter()
            .map(|r| {
                r?;
                vectors
                    .next()
                    .ok_or_else(|| Error::Inference("the model returned too few embeddings".into()))
            })
            .collect()
    }

    fn run(&self, batch: &[&Vec<u32>]) -> Result<Vec<Embedding>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let len = self.fixed_len.unwrap_or(longest).max(longest);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for row in batch {
            let (p, m) = self.pad(row, len);
            ids.extend(p);
            mask.extend(m);
        }
        let shape = [batch.len() as i64, len as i64];
        let tensor = |v: Vec<u32>| -> Result<ort::value::DynValue> {
            let t = if self.ids_are_i32 {
                Tensor::from_array((shape, v.into_iter().map(|x| x as i32).collect::<Vec<_>>())).map(|t| t.into_dyn())
            } else {
                Tensor::from_array((shape, v.into_iter().map(i64::from).collect::<Vec<_>>())).map(|t| t.into_dyn())
            };
            t.map_err(|e| Error::Inference(e.to_string()))
        };
        let mut inputs = vec![(self.ids_name.clone(), tensor(ids)?)];
        if let Some(mask_name) = &self.mask_name {
            inputs.push((mask_name.clone(), tensor(mask)?));
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(inputs).map_err(|e| Error::Inference(e.to_string()))?;
        let value = outputs
            .get(&self.output_name)
            .ok_or_else(|| Error::Inference(format!("no output named {}", self.output_name)))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        rows(shape, data, batch.len())
    }
}
