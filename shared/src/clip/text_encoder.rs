//! The text tower: text → the family's tokens → ONNX → unit vector.

use std::collections::HashMap;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{Tensor, TensorElementType};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::family::Padding;
use super::image_encoder::output_rows;
use super::model_dir::{Canonicalize, ModelDir};
use super::query_cache::QueryCache;
use super::runtime;
use super::{pick_output, Embedding};
use crate::config::ClipSettings;
use crate::{Error, Result};

/// What clipsearch puts into one input of the text graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// The token ids.
    Ids,
    /// 1 over the real tokens, 0 over the padding.
    AttentionMask,
    /// All zeros: one segment (BERT's `token_type_ids`).
    TokenTypes,
    /// 0, 1, 2, … per row.
    Positions,
}

impl Fill {
    /// The role of an input by its name; `None` for one we cannot fill.
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "input_ids" | "ids" | "tokens" | "input" | "text" => Fill::Ids,
            "attention_mask" | "mask" => Fill::AttentionMask,
            "token_type_ids" | "segment_ids" => Fill::TokenTypes,
            "position_ids" => Fill::Positions,
            _ => return None,
        })
    }
}

/// One input of the text graph: its name, what goes in, and its integer width.
#[derive(Debug, Clone)]
struct TextInput {
    name: String,
    fill: Fill,
    is_i32: bool,
    /// The declared shape; a positive dimension is fixed by the graph.
    shape: Vec<i64>,
}

pub struct TextEncoder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    inputs: Vec<TextInput>,
    output_name: String,
    dimension: usize,
    pad_id: u32,
    padding: Padding,
    context_length: usize,
    canonicalize: Option<Canonicalize>,
    /// Exported with a fixed sequence length: every row is padded to it.
    fixed_len: Option<usize>,
    batch_size: usize,
    cache: QueryCache,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("inputs", &self.inputs)
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
        let session = runtime::session_for(text_model, settings)?;
        let tm = text_model;
        let inputs = text_inputs(session.inputs()).map_err(|e| model_err(tm, e))?;
        let ids_shape = inputs
            .iter()
            .find(|i| i.fill == Fill::Ids)
            .map(|i| i.shape.clone())
            .unwrap_or_default();
        let fixed_len = match ids_shape.get(1) {
            Some(&n) if n > 0 => Some(n as usize),
            _ => None,
        };
        let batch_size = match ids_shape.first() {
            Some(&n) if n > 0 => n as usize,
            _ => settings.batch_size.max(16),
        };
        let (output_name, dimension) = pick_output(&session, "text_embeds").map_err(|e| model_err(tm, e))?;
        let eos = tokenizer
            .token_to_id("<|endoftext|>")
            .or_else(|| tokenizer.get_padding().map(|p| p.pad_id));
        let declared_pad = model.text.pad_token.as_deref().and_then(|t| tokenizer.token_to_id(t));
        let pad_id = declared_pad
            .or(model.text.pad_id)
            .or(eos)
            .ok_or_else(|| model_err(tm, "cannot tell the padding id".into()))?;
        let mut encoder = Self {
            session: Mutex::new(session),
            tokenizer,
            inputs,
            output_name,
            dimension: dimension.unwrap_or(0),
            pad_id,
            padding: model.text.padding,
            context_length: model.text.context_length,
            canonicalize: model.text.canonicalize,
            fixed_len,
            batch_size,
            cache: QueryCache::new(settings.query_cache_entries),
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
        let canonical;
        let text = match self.canonicalize {
            Some(c) => {
                canonical = c.apply(text);
                canonical.as_str()
            }
            None => text,
        };
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

    /// One result per text, in order; empty (or whitespace-only) texts are errors. Texts
    /// whose token ids are cached are not run again; the rest are embedded in padded batches
    /// (each distinct sequence once) and cached.
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
        let mut known: HashMap<Vec<u32>, Embedding> = HashMap::new();
        let mut to_run: Vec<&Vec<u32>> = Vec::new();
        for ids in tokenized.iter().filter_map(|r| r.as_ref().ok()) {
            if known.contains_key(ids) || to_run.contains(&ids) {
                continue;
            }
            match self.cache.get(ids) {
                Some(vector) => {
                    known.insert(ids.clone(), vector);
                }
                None => to_run.push(ids),
            }
        }
        for chunk in to_run.chunks(self.batch_size) {
            match self.run(chunk) {
                Ok(vectors) if vectors.len() == chunk.len() => {
                    for (ids, vector) in chunk.iter().zip(vectors) {
                        self.cache.put(ids.to_vec(), vector.clone());
                        known.insert(ids.to_vec(), vector);
                    }
                }
                Ok(_) => return fail_all(tokenized, "the model returned too few embeddings"),
                Err(e) => return fail_all(tokenized, &e.to_string()),
            }
        }
        tokenized
            .into_iter()
            .map(|r| {
                let ids = r?;
                known
                    .get(&ids)
                    .cloned()
                    .ok_or_else(|| Error::Inference("no embedding".into()))
            })
            .collect()
    }

    /// (hits, misses) of the query cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    fn run(&self, batch: &[&Vec<u32>]) -> Result<Vec<Embedding>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let wanted = match self.padding {
            Padding::Longest => longest,
            Padding::MaxLength => self.context_length,
        };
        let len = self.fixed_len.unwrap_or(wanted).max(longest);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for row in batch {
            let (p, m) = self.pad(row, len);
            ids.extend(p);
            mask.extend(m);
        }
        let shape = [batch.len() as i64, len as i64];
        let mut values = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let data = match input.fill {
                Fill::Ids => ids.clone(),
                Fill::AttentionMask => mask.clone(),
                Fill::TokenTypes => vec![0; ids.len()],
                Fill::Positions => (0..batch.len()).flat_map(|_| 0..len as u32).collect(),
            };
            values.push((input.name.clone(), int_tensor(shape, data, input.is_i32)?));
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(values).map_err(|e| Error::Inference(e.to_string()))?;
        output_rows(&outputs, &self.output_name, batch.len())
    }
}

/// Every text's own error, else the batch's inference error.
fn fail_all(tokenized: Vec<Result<Vec<u32>>>, message: &str) -> Vec<Result<Embedding>> {
    tokenized
        .into_iter()
        .map(|r| r.and(Err(Error::Inference(message.to_owned()))))
        .collect()
}

/// An integer tensor of `shape` in the width the graph declares.
fn int_tensor(shape: [i64; 2], values: Vec<u32>, is_i32: bool) -> Result<ort::value::DynValue> {
    let tensor = if is_i32 {
        Tensor::from_array((shape, values.into_iter().map(|x| x as i32).collect::<Vec<_>>())).map(|t| t.into_dyn())
    } else {
        Tensor::from_array((shape, values.into_iter().map(i64::from).collect::<Vec<_>>())).map(|t| t.into_dyn())
    };
    tensor.map_err(|e| Error::Inference(e.to_string()))
}

/// What to put into each input the graph declares: a graph of one input takes the ids; any
/// input we cannot fill, or one that is not an integer tensor, is an error naming it, at load
/// time rather than at the first query.
fn text_inputs(declared: &[ort::value::Outlet]) -> std::result::Result<Vec<TextInput>, String> {
    let mut inputs = Vec::with_capacity(declared.len());
    for input in declared {
        let fill = match Fill::of(input.name()) {
            Some(fill) => fill,
            None if declared.len() == 1 => Fill::Ids,
            None => {
                return Err(format!(
                    "the text model's input {:?} cannot be filled (clipsearch fills input_ids, \
                     attention_mask, token_type_ids and position_ids; the graph declares {:?})",
                    input.name(),
                    declared.iter().map(|i| i.name()).collect::<Vec<_>>()
                ))
            }
        };
        let is_i32 = match input.dtype().tensor_type() {
            Some(TensorElementType::Int64) => false,
            Some(TensorElementType::Int32) => true,
            other => {
                return Err(format!(
                    "the text model's input {:?} must be int64 or int32, not {other:?}",
                    input.name()
                ))
            }
        };
        inputs.push(TextInput {
            name: input.name().to_string(),
            fill,
            is_i32,
            shape: input.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default(),
        });
    }
    if inputs.iter().filter(|i| i.fill == Fill::Ids).count() != 1 {
        return Err(format!(
            "the text model needs exactly one token-id input; it declares {:?}",
            declared.iter().map(|i| i.name()).collect::<Vec<_>>()
        ));
    }
    Ok(inputs)
}
