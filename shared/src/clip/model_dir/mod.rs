//! A model directory in Hugging Face export layout: the unit of configuration.
//!
//! ```text
//! config.json  preprocessor_config.json  tokenizer.json
//! vision_model.onnx  text_model.onnx        (or onnx/…, visual/textual.onnx, image/text_encoder.onnx)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::family::Family;
pub use super::preprocessor_config::{shortest_edge_size, Preprocessing, Resample, ResizeTarget};
pub use super::text_config::{Canonicalize, TextConfig};
use crate::{Error, Result};

/// The ONNX file names we accept for each tower, most common first.
const VISION_CANDIDATES: &[&str] = &[
    "vision_model.onnx",
    "onnx/vision_model.onnx",
    "visual.onnx",
    "onnx/visual.onnx",
    "image_encoder.onnx",
    "onnx/image_encoder.onnx",
];
const TEXT_CANDIDATES: &[&str] = &[
    "text_model.onnx",
    "onnx/text_model.onnx",
    "textual.onnx",
    "onnx/textual.onnx",
    "text_encoder.onnx",
    "onnx/text_encoder.onnx",
];

/// What `clipsearch optimize-model` records in the directory it writes.
pub const OPTIMIZED_RECORD: &str = "optimized.json";

/// The tower files a model directory uses, by the names the loader looks for: an optimised copy
/// writes its towers under the first (canonical) names.
pub const CANONICAL_VISION_FILE: &str = VISION_CANDIDATES[0];
pub const CANONICAL_TEXT_FILE: &str = TEXT_CANDIDATES[0];

/// True when `relative` (a path inside a model directory) is the ONNX file of a tower that
/// `towers` does not load, or that file's external weights (`….onnx_data`, `….onnx.data`):
/// a text-only search need not copy the 350 MB vision tower at cold start.
pub fn is_unused_tower_file(relative: &str, towers: crate::clip::Towers) -> bool {
    let of = |candidates: &[&str]| {
        candidates.iter().any(|c| {
            relative == *c
                || relative
                    .strip_prefix(c)
                    .is_some_and(|rest| EXTERNAL_DATA_SUFFIXES.contains(&rest))
        })
    };
    (!towers.image && of(VISION_CANDIDATES)) || (!towers.text && of(TEXT_CANDIDATES))
}

/// What a tower's external weights file adds to its ONNX file's name (exporters write
/// `….onnx_data`, ONNX Runtime's optimiser `….onnx.data`).
const EXTERNAL_DATA_SUFFIXES: [&str; 2] = ["_data", ".data"];

/// Whether `name` is an ONNX graph or a graph's external weights.
pub(crate) fn is_onnx_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".onnx")
        || EXTERNAL_DATA_SUFFIXES
            .iter()
            .any(|suffix| lower.strip_suffix(suffix).is_some_and(|graph| graph.ends_with(".onnx")))
}

/// Bytes of a tower's weights on disk: its ONNX file and any external data beside it (what a
/// loaded session holds in memory, near enough).
pub fn tower_bytes(onnx: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut total = size(onnx);
    for suffix in EXTERNAL_DATA_SUFFIXES {
        let mut data = onnx.as_os_str().to_owned();
        data.push(suffix);
        total += size(Path::new(&data));
    }
    total
}

/// The name an optimised copy (`optimized.json`, written by `clipsearch optimize-model`) keeps
/// from its source: its vectors are the source's, so the two may share an index.
fn optimized_name(name: String, optimized: Option<&serde_json::Value>) -> std::result::Result<String, String> {
    let Some(optimized) = optimized else {
        return Ok(name);
    };
    optimized
        .get("name")
        .and_then(serde_json::Value::as_str)
        .filter(|n| !matches!(*n, "" | "." | "..") && !n.contains(['/', '\\']) && !n.chars().any(char::is_control))
        .map(str::to_string)
        .ok_or_else(|| "optimized.json: expected the source model's \"name\"".to_string())
}

/// A model's name is its directory's (or, for an optimised copy, its source's); a quantized
/// copy (`quantization.json`, written by tools/quantize_model.py) also carries its precision, so
/// its vectors can never be taken for the original's: `clip-vit-base-patch32-int8`, whatever
/// the directory is called.
fn quantized_name(name: String, quantization: Option<&serde_json::Value>) -> std::result::Result<String, String> {
    let Some(quantization) = quantization else {
        return Ok(name);
    };
    let precision = quantization
        .get("precision")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| "quantization.json: expected a \"precision\" such as \"int8\"".to_string())?;
    let suffix = format!("-{precision}");
    Ok(if name.ends_with(&suffix) { name } else { name + &suffix })
}

/// A resolved model directory: where each file is, and the parsed configuration.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub root: PathBuf,
    /// A human name for the model (the directory name), stored with every vector so two
    /// models' vectors never mix.
    pub name: String,
    /// The vision tower's ONNX file; `None` when the directory holds only the text tower (a
    /// text-only deployment copies no more): loading the image encoder then says so.
    vision_model: Option<PathBuf>,
    /// The text tower's ONNX file, `None` in an image-only copy.
    text_model: Option<PathBuf>,
    pub tokenizer: PathBuf,
    pub family: Family,
    /// `None` only in a directory without a vision tower (a text tower alone).
    preprocessing: Option<Preprocessing>,
    pub text: TextConfig,
    /// `text_tower.json`: this directory is a text tower for another model's image space.
    pub text_tower: Option<TextTowerDeclaration>,
}

/// `text_tower.json` of a separate text tower: the image model whose space its vectors are in
/// (that model's name, the one stored beside every vector) and their dimension.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TextTowerDeclaration {
    pub image_model: String,
    pub dimension: usize,
}

impl ModelDir {
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let err = |reason: String| Error::Model {
            dir: root.clone(),
            reason,
        };
        if !root.is_dir() {
            return Err(err(
                "not a directory (set CLIPSEARCH_MODEL_DIR or --model to a Hugging Face \
                 export layout folder; scripts/download-model.sh fetches one)"
                    .into(),
            ));
        }
        let find = |candidates: &[&str]| candidates.iter().map(|c| root.join(c)).find(|p| p.is_file());
        let read = |name: &str| -> Result<String> {
            std::fs::read_to_string(root.join(name)).map_err(|e| err(format!("{name}: {e}")))
        };
        let json = |name: &str, text: &str| -> Result<serde_json::Value> {
            serde_json::from_str(text).map_err(|e| err(format!("{name}: {e}")))
        };
        // config.json and tokenizer_config.json are optional: CLIP exports often carry
        // neither, and the family's defaults apply.
        let optional = |name: &str| -> Result<Option<serde_json::Value>> {
            match std::fs::read_to_string(root.join(name)) {
                Ok(text) => json(name, &text).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(err(format!("{name}: {e}"))),
            }
        };
        let config = optional("config.json")?;
        let tokenizer_config = optional("tokenizer_config.json")?;
        let text_tower = optional("text_tower.json")?
            .map(|v| {
                serde_json::from_value::<TextTowerDeclaration>(v).map_err(|e| {
                    err(format!(
                        "text_tower.json: {e} (expected {{\"image_model\": NAME, \"dimension\": N}})"
                    ))
                })
            })
            .transpose()?;
        let preprocessor_text = match (&text_tower, find(VISION_CANDIDATES)) {
            // A text tower alone has no image side to configure.
            (Some(_), None) => None,
            _ => Some(read("preprocessor_config.json")?),
        };
        let preprocessor = preprocessor_text
            .as_deref()
            .map(|t| json("preprocessor_config.json", t))
            .transpose()?;
        let family = match &text_tower {
            Some(_) => Family::TextTower,
            None => Family::detect(
                config.as_ref(),
                preprocessor.as_ref().unwrap_or(&serde_json::Value::Null),
            )
            .map_err(err)?,
        };
        let preprocessing = preprocessor_text
            .as_deref()
            .map(|t| Preprocessing::from_json(t, family).map_err(|e| err(format!("preprocessor_config.json: {e}"))))
            .transpose()?;
        let text = TextConfig::new(config.as_ref(), tokenizer_config.as_ref(), family);
        let tokenizer = root.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(err("tokenizer.json is missing".into()));
        }
        let name = root
            .canonicalize()
            .unwrap_or_else(|_| root.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let name = optimized_name(name, optional(OPTIMIZED_RECORD)?.as_ref()).map_err(err)?;
        let name = quantized_name(name, optional("quantization.json")?.as_ref()).map_err(err)?;
        let (vision_model, text_model) = (find(VISION_CANDIDATES), find(TEXT_CANDIDATES));
        if vision_model.is_none() && text_model.is_none() {
            return Err(err(format!(
                "no ONNX file of either tower (looked for {} and {})",
                VISION_CANDIDATES.join(", "),
                TEXT_CANDIDATES.join(", ")
            )));
        }
        Ok(Self {
            vision_model,
            text_model,
            tokenizer,
            family,
            preprocessing,
            text,
            text_tower,
            name,
            root,
        })
    }

    /// How images are prepared for the vision tower, or why there is no such thing here.
    pub fn preprocessing(&self) -> Result<&Preprocessing> {
        self.preprocessing.as_ref().ok_or_else(|| Error::Model {
            dir: self.root.clone(),
            reason: "a text tower alone (text_tower.json) has no image side".into(),
        })
    }

    /// The vision tower's ONNX file, or why there is none.
    pub fn vision_model(&self) -> Result<&Path> {
        self.tower_file(self.vision_model.as_deref(), "vision", VISION_CANDIDATES)
    }

    /// The text tower's ONNX file, or why there is none.
    pub fn text_model(&self) -> Result<&Path> {
        self.tower_file(self.text_model.as_deref(), "text", TEXT_CANDIDATES)
    }

    fn tower_file<'a>(&self, file: Option<&'a Path>, what: &str, candidates: &[&str]) -> Result<&'a Path> {
        file.ok_or_else(|| Error::Model {
            dir: self.root.clone(),
            reason: format!("no {what} ONNX file (looked for {})", candidates.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests;
