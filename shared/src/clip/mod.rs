//! CLIP encoders: a Hugging Face export directory, ONNX Runtime sessions, the image front end
//! and the tokenizer. Knows nothing of S3, Milvus or Lambda.

pub mod budget;
pub mod decode;
pub mod family;
pub mod image_encoder;
pub mod model_dir;
pub mod optimize;
pub mod preprocess;
mod preprocessor_config;
pub mod query_cache;
pub mod runtime;
mod text_config;
pub mod text_encoder;
pub mod thumbnail;

pub use budget::DecodeBudget;
pub use decode::{DecodeLimits, SniffedFormat};
pub use family::Family;
pub use image_encoder::{ImageEmbedding, ImageEncoder, PreparedImage};
pub use model_dir::ModelDir;
pub use text_encoder::TextEncoder;

use ort::session::Session;

use crate::config::ClipSettings;
use crate::{Error, Result};

/// An L2-normalised embedding.
pub type Embedding = Vec<f32>;

/// Which towers to load: a text-only search deployment never pays for the vision model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Towers {
    pub image: bool,
    pub text: bool,
}

impl Towers {
    pub const BOTH: Towers = Towers {
        image: true,
        text: true,
    };
    pub const IMAGE: Towers = Towers {
        image: true,
        text: false,
    };
    pub const TEXT: Towers = Towers {
        image: false,
        text: true,
    };
}

/// The loaded model: the towers asked for, sessions created once and reused.
#[derive(Debug)]
pub struct Clip {
    /// The model whose image space the index holds (its name is stored beside every vector).
    pub model: ModelDir,
    /// A separate text tower (`CLIPSEARCH_TEXT_MODEL_DIR`) mapping into `model`'s image space.
    pub text_tower: Option<ModelDir>,
    image: Option<ImageEncoder>,
    text: Option<TextEncoder>,
}

impl Clip {
    /// Loads the model directory from `settings.model_dir`, and the text tower from
    /// `settings.text_model_dir` when one is set (its session only when the text side is
    /// wanted). A text tower of another image space, or of another dimension, is refused here,
    /// before any vector is embedded.
    pub fn load(settings: &ClipSettings, towers: Towers) -> Result<Self> {
        let dir = settings.model_dir.as_ref().ok_or_else(|| {
            Error::Config(
                "no model directory: set CLIPSEARCH_MODEL_DIR (or pass --model) to a Hugging Face \
                 CLIP export (vision_model.onnx, text_model.onnx, tokenizer.json, \
                 preprocessor_config.json)"
                    .into(),
            )
        })?;
        let model = ModelDir::open(dir)?;
        if let Some(declared) = &model.text_tower {
            return Err(Error::Model {
                dir: model.root.clone(),
                reason: format!(
                    "this is a text tower for the image space of {:?} (text_tower.json): set it as \
                     CLIPSEARCH_TEXT_MODEL_DIR and CLIPSEARCH_MODEL_DIR to that model",
                    declared.image_model
                ),
            });
        }
        // Checked whenever it is configured, even by a process that embeds only images: a
        // deployment whose settings pair the wrong towers fails everywhere, at start.
        let text_tower = settings
            .text_model_dir
            .as_deref()
            .map(|dir| paired_text_tower(dir, &model))
            .transpose()?;
        let budget = towers
            .image
            .then(|| decode_budget(settings, &model, text_tower.as_ref(), towers))
            .transpose()?;
        // Both towers load at once: a session's load is mostly one thread parsing and
        // preparing its weights, so two of them overlap on a two-core host.
        let (image, text) = std::thread::scope(|scope| {
            let image = budget.map(|budget| scope.spawn(|| ImageEncoder::load(&model, settings, budget)));
            let text = towers
                .text
                .then(|| TextEncoder::load(text_tower.as_ref().unwrap_or(&model), settings))
                .transpose();
            let image = image
                .map(|loading| loading.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .transpose();
            (image, text)
        });
        let (image, text) = (image?, text?);
        if let Some(tower) = &text_tower {
            let declared = tower.text_tower.as_ref().map(|d| d.dimension).unwrap_or_default();
            let actual = [
                ("the text model gives", text.as_ref().map(|t| t.dimension())),
                ("the image model gives", image.as_ref().map(|i| i.dimension())),
            ];
            if let Some((what, n)) = actual
                .iter()
                .find_map(|(what, n)| n.filter(|&n| n != declared).map(|n| (what, n)))
            {
                return Err(Error::Model {
                    dir: tower.root.clone(),
                    reason: format!("text_tower.json declares {declared} dimensions but {what} {n}"),
                });
            }
        }
        if let (Some(i), Some(t)) = (&image, &text) {
            if i.dimension() != t.dimension() {
                return Err(Error::Model {
                    dir: text_tower.as_ref().unwrap_or(&model).root.clone(),
                    reason: format!(
                        "image embeddings have {} dimensions but text embeddings {}",
                        i.dimension(),
                        t.dimension()
                    ),
                });
            }
        }
        Ok(Self {
            model,
            text_tower,
            image,
            text,
        })
    }

    /// The name of the model that embeds text queries: the separate text tower's, else the
    /// model's own.
    pub fn text_model_name(&self) -> &str {
        self.text_tower
            .as_ref()
            .map(|t| t.name.as_str())
            .unwrap_or(&self.model.name)
    }

    /// The model's name as stored beside every vector.
    pub fn name(&self) -> &str {
        &self.model.name
    }

    pub fn dimension(&self) -> usize {
        self.image
            .as_ref()
            .map(|i| i.dimension())
            .or_else(|| self.text.as_ref().map(|t| t.dimension()))
            .unwrap_or(0)
    }

    /// Makes the image tower produce a JPEG thumbnail of every image it embeds (ingest).
    pub fn with_thumbnails(mut self, edge: u32) -> Self {
        if let Some(image) = self.image.as_mut() {
            image.set_thumbnail_edge(Some(edge));
        }
        self
    }

    pub fn image(&self) -> Result<&ImageEncoder> {
        self.image
            .as_ref()
            .ok_or_else(|| Error::Config("image queries are disabled in this deployment".into()))
    }

    pub fn text(&self) -> Result<&TextEncoder> {
        self.text
            .as_ref()
            .ok_or_else(|| Error::Config("text queries are disabled in this deployment".into()))
    }
}

/// What the use cases need from a model. [`Clip`] is the real one; unit tests of ingest and
/// search logic use small fakes.
pub trait Encoder: Send + Sync {
    /// Stored beside every vector so two models' vectors never mix.
    fn model_name(&self) -> &str;
    /// The model that embeds text queries: a separate text tower's name, else the model's.
    fn text_model_name(&self) -> &str {
        self.model_name()
    }
    fn dimension(&self) -> usize;
    fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding>;
    fn embed_text(&self, text: &str) -> Result<Embedding>;
    /// One result per text, in order (the real encoder runs them as padded batches).
    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Embedding>> {
        texts.iter().map(|t| self.embed_text(t)).collect()
    }
}

impl Encoder for Clip {
    fn model_name(&self) -> &str {
        self.name()
    }

    fn text_model_name(&self) -> &str {
        Clip::text_model_name(self)
    }

    fn dimension(&self) -> usize {
        Clip::dimension(self)
    }

    fn embed_image(&self, bytes: &[u8]) -> Result<ImageEmbedding> {
        self.image()?.embed(bytes)
    }

    fn embed_text(&self, text: &str) -> Result<Embedding> {
        self.text()?.embed(text)
    }

    fn embed_texts(&self, texts: &[String]) -> Vec<Result<Embedding>> {
        match self.text() {
            Ok(text) => text.embed_many(texts),
            Err(e) => {
                let message = e.to_string();
                texts.iter().map(|_| Err(Error::Config(message.clone()))).collect()
            }
        }
    }
}

/// Scales `v` to unit length (a zero vector stays zero, as the reference's `max(norm, 1e-12)`).
pub fn l2_normalize(v: &[f32]) -> Embedding {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// Chooses the embedding output: the conventional name, else the only output, else the one
/// output that is a 2-D tensor. Returns its name and, when the export fixes it, its width.
fn pick_output(session: &Session, conventional: &str) -> Result<(String, Option<usize>), String> {
    let outputs = session.outputs();
    let two_d: Vec<_> = outputs
        .iter()
        .filter(|o| o.dtype().tensor_shape().map(|s| s.len() == 2).unwrap_or(false))
        .collect();
    let chosen = outputs
        .iter()
        .find(|o| o.name() == conventional)
        .or(if outputs.len() == 1 { outputs.first() } else { None })
        .or(if two_d.len() == 1 { two_d.first().copied() } else { None })
        .ok_or_else(|| {
            format!(
                "cannot tell which output is the embedding: {:?}",
                outputs.iter().map(|o| o.name()).collect::<Vec<_>>()
            )
        })?;
    let width = chosen
        .dtype()
        .tensor_shape()
        .and_then(|s| s.last().copied())
        .filter(|&d| d > 0)
        .map(|d| d as usize);
    Ok((chosen.name().to_string(), width))
}

/// Maps `f` over `items` on `workers` threads (0 = all available cores), keeping order.
fn run_parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
    .min(items.len().max(1));
    if workers <= 1 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(i, &items[i]);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every index is processed once"))
        .collect()
}

/// The decode budget: the configured bytes, or derived from the process's memory less the
/// weights of the towers it loads.
fn decode_budget(
    settings: &ClipSettings,
    model: &ModelDir,
    text_tower: Option<&ModelDir>,
    towers: Towers,
) -> Result<DecodeBudget> {
    let bytes = match (settings.decode_budget_bytes, settings.memory_bytes) {
        (Some(bytes), _) => bytes,
        (None, Some(memory)) => {
            let mut weights = model_dir::tower_bytes(model.vision_model()?);
            if towers.text {
                weights += model_dir::tower_bytes(text_tower.unwrap_or(model).text_model()?);
            }
            budget::derive(memory, weights)
        }
        (None, None) => return Ok(DecodeBudget::unlimited()),
    };
    Ok(DecodeBudget::new(bytes))
}

/// Opens the text tower in `dir` and checks that it declares `model`'s image space.
fn paired_text_tower(dir: &std::path::Path, model: &ModelDir) -> Result<ModelDir> {
    let refuse = |reason: String| Error::Model {
        dir: dir.to_path_buf(),
        reason,
    };
    let undeclared = || {
        refuse(
            "CLIPSEARCH_TEXT_MODEL_DIR has no text_tower.json declaring the image model whose space \
             its vectors are in ({\"image_model\": NAME, \"dimension\": N}); without it a text tower \
             of another space would silently return wrong results"
                .into(),
        )
    };
    // Looked for first: otherwise the directory is read as a whole model, and the error would
    // be about files a text tower does not need.
    if !dir.join("text_tower.json").is_file() {
        return Err(undeclared());
    }
    let tower = ModelDir::open(dir)?;
    let declared = tower.text_tower.as_ref().ok_or_else(undeclared)?;
    if declared.image_model != model.name {
        return Err(refuse(format!(
            "this text tower maps into the image space of {:?}, but CLIPSEARCH_MODEL_DIR holds {:?}: \
             use the text tower made for {:?}, or the model it was made for",
            declared.image_model, model.name, model.name
        )));
    }
    Ok(tower)
}
