//! The image tower: bytes → decode → preprocess → ONNX → unit vector.

use std::sync::Mutex;

use image::RgbImage;
use ort::session::Session;
use ort::value::Tensor;

use super::budget::DecodeBudget;
use super::decode::{decode_rgb, DecodeLimits, SniffedFormat};
use super::model_dir::{ModelDir, Preprocessing};
use super::runtime;
use super::{l2_normalize, pick_output, run_parallel, Embedding};
use crate::config::ClipSettings;
use crate::{Error, Result};

/// An image after the CPU work, ready for the model.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The exact 8-bit crop the model is shown (for `--save-crops` and parity checks).
    pub crop: RgbImage,
    pub format: SniffedFormat,
    /// Upright size of the original image.
    pub width: u32,
    pub height: u32,
    /// The JPEG thumbnail, when the encoder makes them ([`ImageEncoder::set_thumbnail_edge`]).
    pub thumbnail: Option<Vec<u8>>,
}

/// An embedded image with what ingest records about it.
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    pub embedding: Embedding,
    pub format: SniffedFormat,
    pub width: u32,
    pub height: u32,
    /// A JPEG thumbnail made from the same decode, when the encoder makes them.
    pub thumbnail: Option<Vec<u8>>,
}

pub struct ImageEncoder {
    session: Mutex<Session>,
    input_name: String,
    output_name: String,
    dimension: usize,
    preprocessing: Preprocessing,
    limits: DecodeLimits,
    /// Shared by every decode of this encoder, so concurrent images stay within memory.
    budget: DecodeBudget,
    batch_size: usize,
    /// Threads decoding in `embed_many` (0 = all cores).
    decode_threads: usize,
    /// Fixed tensor size (crop size) the model expects.
    input_size: (u32, u32),
    /// Long side of the thumbnails made from each decode; `None`: none made.
    thumbnail_edge: Option<u32>,
}

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageEncoder")
            .field("input", &self.input_name)
            .field("output", &self.output_name)
            .field("dimension", &self.dimension)
            .field("budget", &self.budget)
            .finish()
    }
}

impl ImageEncoder {
    pub fn load(model: &ModelDir, settings: &ClipSettings, budget: DecodeBudget) -> Result<Self> {
        let vision_model = model.vision_model()?;
        let session = runtime::session_for(vision_model, settings)?;
        let model_err = |reason: String| Error::Model {
            dir: vision_model.to_path_buf(),
            reason,
        };
        let input = match session.inputs() {
            [only] => only,
            many => {
                let names: Vec<&str> = many.iter().map(|i| i.name()).collect();
                if !names.contains(&"pixel_values") {
                    return Err(model_err(format!(
                        "cannot tell which input takes the pixels: {names:?}"
                    )));
                }
                return Err(model_err(format!(
                    "the vision model's inputs {:?} cannot be filled: clipsearch fills only pixel_values",
                    names.iter().filter(|n| **n != "pixel_values").collect::<Vec<_>>()
                )));
            }
        };
        if input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
            return Err(model_err(format!(
                "the vision model's input {:?} must be float32, not {:?}",
                input.name(),
                input.dtype().tensor_type()
            )));
        }
        let input_name = input.name().to_string();
        let input_shape: Vec<i64> = input.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
        // A model exported with a fixed batch (e.g. 1) is run with exactly that batch.
        let batch_size = match input_shape.first() {
            Some(&n) if n > 0 => n as usize,
            _ => settings.batch_size,
        };
        let preprocessing = model.preprocessing()?.clone();
        let input_size = preprocessing.output_size(224, 224);
        let (output_name, dimension) = pick_output(&session, "image_embeds").map_err(model_err)?;
        let mut encoder = Self {
            session: Mutex::new(session),
            input_name,
            output_name,
            dimension: dimension.unwrap_or(0),
            preprocessing,
            limits: DecodeLimits {
                max_bytes: settings.max_image_bytes,
                max_pixels: settings.max_image_pixels,
            },
            budget,
            batch_size,
            decode_threads: settings.decode_threads,
            input_size,
            thumbnail_edge: None,
        };
        if dimension.is_none() {
            // The export left the embedding axis symbolic: ask the model once.
            let probe = PreparedImage {
                crop: RgbImage::new(input_size.0, input_size.1),
                format: SniffedFormat::Png,
                width: input_size.0,
                height: input_size.1,
                thumbnail: None,
            };
            let out = encoder.run(std::slice::from_ref(&probe))?;
            encoder.dimension = out.first().map(|v| v.len()).unwrap_or(0);
        }
        if encoder.dimension == 0 {
            return Err(model_err("the vision model's output has no embedding axis".into()));
        }
        Ok(encoder)
    }

    /// Length of every embedding this encoder produces.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    pub fn budget(&self) -> &DecodeBudget {
        &self.budget
    }

    /// Makes every [`ImageEncoder::prepare`] also produce a JPEG thumbnail with this long side
    /// (ingest), from the decode the model's crop comes from. The decode may be at a reduced DCT
    /// scale (its short side at least 4× the model's input), so a small model's thumbnails of
    /// large photos can be a little under `edge`; the model's own input is never changed.
    pub fn set_thumbnail_edge(&mut self, edge: Option<u32>) {
        self.thumbnail_edge = edge;
    }

    /// Decode + preprocess: CPU only, no session, safe to call from many threads at once (each
    /// waits while the others hold the decode budget). Blocks: never call it on an async worker.
    pub fn prepare(&self, bytes: &[u8]) -> Result<PreparedImage> {
        let decoded = decode_rgb(
            bytes,
            self.limits,
            self.preprocessing.min_decode_short_side(),
            &self.budget,
        )?;
        let crop = self.preprocessing.crop_u8(&decoded.rgb)?;
        let thumbnail = self
            .thumbnail_edge
            .map(|edge| super::thumbnail::encode_thumbnail(&decoded.rgb, edge))
            .transpose()?;
        Ok(PreparedImage {
            crop,
            format: decoded.format,
            width: decoded.width,
            height: decoded.height,
            thumbnail,
        })
    }

    /// Runs prepared images through the model in batches; one vector per image, in order.
    pub fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size) {
            out.extend(self.run(chunk)?);
        }
        Ok(out)
    }

    /// One image, end to end.
    pub fn embed(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
        let prepared = self.prepare(bytes)?;
        let embedding = self
            .embed_prepared(std::slice::from_ref(&prepared))?
            .pop()
            .ok_or_else(|| Error::Inference("the model returned no embedding".into()))?;
        Ok(ImageEmbedding {
            embedding,
            format: prepared.format,
            width: prepared.width,
            height: prepared.height,
            thumbnail: prepared.thumbnail,
        })
    }

    /// Many images: decoding runs on `decode_threads` (default: all cores), inference in
    /// batches; each input gets its own result so one bad file never costs the others.
    /// `on_prepared` sees every crop (for `--save-crops`).
    pub fn embed_many<B: AsRef<[u8]> + Sync>(
        &self,
        inputs: &[B],
        on_prepared: impl Fn(usize, &PreparedImage) + Sync,
    ) -> Vec<Result<ImageEmbedding>> {
        let prepared = run_parallel(inputs, self.decode_threads, |i, bytes| {
            let p = self.prepare(bytes.as_ref())?;
            on_prepared(i, &p);
            Ok(p)
        });
        let ok: Vec<PreparedImage> = prepared.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let mut vectors = match self.embed_prepared(&ok) {
            Ok(v) => v.into_iter(),
            Err(e) => {
                let msg = e.to_string();
                return prepared
                    .into_iter()
                    .map(|r| r.and(Err(Error::Inference(msg.clone()))))
                    .collect();
            }
        };
        prepared
            .into_iter()
            .map(|r| {
                let p = r?;
                let embedding = vectors
                    .next()
                    .ok_or_else(|| Error::Inference("the model returned too few embeddings".into()))?;
                Ok(ImageEmbedding {
                    embedding,
                    format: p.format,
                    width: p.width,
                    height: p.height,
                    thumbnail: p.thumbnail,
                })
            })
            .collect()
    }

    fn run(&self, batch: &[PreparedImage]) -> Result<Vec<Embedding>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (w, h) = self.input_size;
        let per_image = 3 * w as usize * h as usize;
        let mut pixels = vec![0f32; per_image * batch.len()];
        for (img, slot) in batch.iter().zip(pixels.chunks_exact_mut(per_image)) {
            if img.crop.dimensions() != (w, h) {
                return Err(Error::Inference(format!(
                    "crop is {:?}, the model takes {w}x{h}",
                    img.crop.dimensions()
                )));
            }
            self.preprocessing.normalize_into(&img.crop, slot);
        }
        let shape = [batch.len() as i64, 3, h as i64, w as i64];
        let tensor = Tensor::from_array((shape, pixels)).map_err(|e| Error::Inference(e.to_string()))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| Error::Inference(e.to_string()))?;
        output_rows(&outputs, &self.output_name, batch.len())
    }
}

/// A run's output `name`, one unit vector per batch item.
pub(super) fn output_rows(
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
    batch: usize,
) -> Result<Vec<Embedding>> {
    let value = outputs
        .get(name)
        .ok_or_else(|| Error::Inference(format!("no output named {name}")))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| Error::Inference(e.to_string()))?;
    rows(shape, data, batch)
}

/// Splits a `[batch, dim]` output into unit vectors.
fn rows(shape: &[i64], data: &[f32], batch: usize) -> Result<Vec<Embedding>> {
    let dim = match shape {
        [b, d] if *b as usize == batch && *d > 0 => *d as usize,
        other => {
            return Err(Error::Inference(format!(
                "expected an output of shape [{batch}, dim], got {other:?}"
            )))
        }
    };
    Ok(data.chunks_exact(dim).map(l2_normalize).collect())
}
