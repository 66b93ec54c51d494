//! A model directory in Hugging Face export layout: the unit of configuration.
//!
//! ```text
//! config.json  preprocessor_config.json  tokenizer.json
//! vision_model.onnx  text_model.onnx        (or onnx/…, visual/textual.onnx, image/text_encoder.onnx)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::family::{Family, Padding};
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

/// Which resampling filter the processor asks for (PIL's numbering in `resample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    Nearest,
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Resample {
    fn from_pil(code: u32) -> Result<Self, String> {
        Ok(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            other => return Err(format!("unknown PIL resample code {other}")),
        })
    }
}

/// How the image is resized before the crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// Short side to this length, long side `int(len * long / short)` (transformers' rule).
    ShortestEdge(u32),
    /// Exactly this size, aspect ratio ignored.
    Exact { width: u32, height: u32 },
}

/// `preprocessor_config.json`, reduced to what the pipeline does.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    pub resize: Option<ResizeTarget>,
    pub resample: Resample,
    /// Centre crop to (width, height).
    pub crop: Option<(u32, u32)>,
    pub rescale_factor: Option<f32>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub normalize: bool,
}

impl Preprocessing {
    /// The size of the tensor the vision tower receives.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let Some(c) = self.crop {
            return c;
        }
        match self.resize {
            Some(ResizeTarget::Exact { width, height }) => (width, height),
            Some(ResizeTarget::ShortestEdge(s)) => shortest_edge_size(width, height, s),
            None => (width, height),
        }
    }
}

/// transformers' `get_resize_output_image_size(default_to_square=False)`.
pub fn shortest_edge_size(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python: int(size * long / short): an exact integer product, one correctly rounded
    // division, then truncation; f64 does the same for any realistic size.
    let new_long = ((edge as u64 * long as u64) as f64 / short as f64) as u32;
    if width <= height {
        (edge, new_long)
    } else {
        (new_long, edge)
    }
}

#[derive(Deserialize)]
struct RawPreprocessor {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<serde_json::Value>,
    resample: Option<u32>,
    do_center_crop: Option<bool>,
    crop_size: Option<serde_json::Value>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "default_rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
}

fn yes() -> bool {
    true
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}

fn size_from(value: &serde_json::Value, what: &str) -> Result<ResizeTarget, String> {
    let field = |k: &str| value.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
    if let Some(n) = value.as_u64() {
        return Ok(ResizeTarget::ShortestEdge(n as u32));
    }
    if let Some(s) = field("shortest_edge") {
        return Ok(ResizeTarget::ShortestEdge(s));
    }
    match (field("width"), field("height")) {
        (Some(width), Some(height)) => Ok(ResizeTarget::Exact { width, height }),
        _ => Err(format!(
            "{what}: expected a number, {{\"shortest_edge\"}} or {{\"height\", \"width\"}}"
        )),
    }
}

impl Preprocessing {
    /// Parses `preprocessor_config.json`; a field it leaves out takes the value of `family`'s
    /// processor class, as transformers' does.
    pub fn from_json(text: &str, family: Family) -> Result<Self, String> {
        let raw: RawPreprocessor = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let defaults = family.processor_defaults();
        let resize = if raw.do_resize {
            Some(size_from(raw.size.as_ref().unwrap_or(&defaults.size), "size")?)
        } else {
            None
        };
        let crop = if raw.do_center_crop.unwrap_or(defaults.do_center_crop) {
            let c = raw
                .crop_size
                .as_ref()
                .or(defaults.crop_size.as_ref())
                .ok_or("do_center_crop is set but crop_size is missing")?;
            Some(match size_from(c, "crop_size")? {
                ResizeTarget::ShortestEdge(s) => (s, s),
                ResizeTarget::Exact { width, height } => (width, height),
            })
        } else {
            None
        };
        let triple = |v: Option<Vec<f32>>, default: [f32; 3], what: &str| -> Result<[f32; 3], String> {
            match v {
                None => Ok(default),
                Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
                Some(v) if v.len() == 1 => Ok([v[0]; 3]),
                Some(v) => Err(format!("{what} has {} values, expected 3", v.len())),
            }
        };
        let std = triple(raw.image_std, defaults.std, "image_std")?;
        if std.contains(&0.0) {
            return Err("image_std contains 0".into());
        }
        Ok(Self {
            resize,
            resample: Resample::from_pil(raw.resample.unwrap_or(defaults.resample))?,
            crop,
            rescale_factor: raw.do_rescale.then_some(raw.rescale_factor as f32),
            mean: triple(raw.image_mean, defaults.mean, "image_mean")?,
            std,
            normalize: raw.do_normalize,
        })
    }
}

/// What `config.json` (and `tokenizer_config.json`) tell the text side.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Tokens per text, special tokens included: the tokenizer's `model_max_length` (what the
    /// family's processor truncates to: 77 for CLIP, 64 for SigLIP, 52 for Chinese-CLIP),
    /// capped by the text tower's `max_position_embeddings`.
    pub context_length: usize,
    /// `config.json`'s pad (else EOS) id; CLIP pads with `<|endoftext|>`.
    pub pad_id: Option<u32>,
    /// `tokenizer_config.json`'s pad token, which the family's processor pads with; it wins
    /// over `pad_id` when the tokenizer knows it.
    pub pad_token: Option<String>,
    pub padding: Padding,
    /// SigLIP's `SiglipTokenizer` rewrites the text before SentencePiece sees it.
    pub canonicalize: Option<Canonicalize>,
}

/// `SiglipTokenizer.canonicalize_text`: lower-case (when `do_lower_case`), ASCII punctuation
/// removed, runs of whitespace made one space, the ends stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonicalize {
    pub lowercase: bool,
}

impl Canonicalize {
    pub fn apply(self, text: &str) -> String {
        // Python's `str.isspace`, which `re`'s `\s` and `str.strip` follow: Unicode White_Space
        // plus the four ASCII separators U+001C..U+001F.
        let space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
        // Rust's `to_lowercase` applies the final-sigma rule as Python's `lower` does.
        let lowered = if self.lowercase {
            text.to_lowercase()
        } else {
            text.to_owned()
        };
        let mut out = String::with_capacity(lowered.len());
        let mut pending_space = false;
        for c in lowered.chars().filter(|c| !c.is_ascii_punctuation()) {
            if space(c) {
                pending_space = !out.is_empty();
            } else {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
        }
        out
    }
}

/// transformers writes `model_max_length` = 1e30 when a tokenizer has no limit.
const NO_LIMIT: u64 = 1 << 40;

impl TextConfig {
    /// From `config.json` (absent: the family's defaults) and `tokenizer_config.json`.
    pub fn new(
        config: Option<&serde_json::Value>,
        tokenizer_config: Option<&serde_json::Value>,
        family: Family,
    ) -> Self {
        let tc = config.map(|v| v.get("text_config").unwrap_or(v));
        let num = |k: &str| tc.and_then(|tc| tc.get(k)).and_then(|x| x.as_u64());
        let tokenizer = |k: &str| tokenizer_config.and_then(|t| t.get(k));
        let pad_token = tokenizer("pad_token").and_then(|p| {
            p.as_str()
                .or_else(|| p.get("content").and_then(|c| c.as_str()))
                .map(str::to_owned)
        });
        let positions = num("max_position_embeddings").map(|n| n as usize);
        let limit = tokenizer("model_max_length")
            .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)))
            .filter(|&n| n > 0 && n < NO_LIMIT)
            .map(|n| n as usize);
        let context_length = match (limit, positions) {
            (Some(l), Some(p)) => l.min(p),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => family.default_context_length(),
        };
        let canonicalize =
            (tokenizer("tokenizer_class").and_then(|c| c.as_str()) == Some("SiglipTokenizer")).then(|| Canonicalize {
                lowercase: tokenizer("do_lower_case").and_then(|v| v.as_bool()).unwrap_or(true),
            });
        Self {
            context_length,
            pad_id: num("pad_token_id").or_else(|| num("eos_token_id")).map(|x| x as u32),
            pad_token,
            padding: family.padding(),
            canonicalize,
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn a_quantized_copy_is_named_with_its_precision() {
        let int8 = serde_json::json!({"precision": "int8", "mode": "dynamic"});
        assert_eq!(quantized_name("vitb32".into(), None).unwrap(), "vitb32");
        assert_eq!(quantized_name("vitb32".into(), Some(&int8)).unwrap(), "vitb32-int8");
        assert_eq!(
            quantized_name("vitb32-int8".into(), Some(&int8)).unwrap(),
            "vitb32-int8"
        );
        assert!(quantized_name("x".into(), Some(&serde_json::json!({"mode": "dynamic"}))).is_err());
        assert!(quantized_name("x".into(), Some(&serde_json::json!({"precision": "../x"}))).is_err());
    }

    #[test]
    fn an_optimized_copy_keeps_its_sources_name() {
        let record = serde_json::json!({"name": "clip-vit-base-patch32"});
        assert_eq!(
            optimized_name("x".into(), Some(&record)).unwrap(),
            "clip-vit-base-patch32"
        );
        assert_eq!(optimized_name("x".into(), None).unwrap(), "x");
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"name": "../x"}),
            serde_json::json!({"name": ".."}),
            serde_json::json!({"name": "a\nb"}),
        ] {
            assert!(optimized_name("x".into(), Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_unused_tower_files_are_named_by_the_candidates() {
        use crate::clip::Towers;
        for vision in [
            "vision_model.onnx",
            "onnx/visual.onnx",
            "image_encoder.onnx",
            "vision_model.onnx_data",
        ] {
            assert!(is_unused_tower_file(vision, Towers::TEXT), "{vision}");
            assert!(!is_unused_tower_file(vision, Towers::IMAGE), "{vision}");
            assert!(!is_unused_tower_file(vision, Towers::BOTH), "{vision}");
        }
        for text in ["text_model.onnx", "onnx/textual.onnx", "text_encoder.onnx.data"] {
            assert!(is_unused_tower_file(text, Towers::IMAGE), "{text}");
            assert!(!is_unused_tower_file(text, Towers::TEXT), "{text}");
        }
        for shared in [
            "tokenizer.json",
            "config.json",
            "preprocessor_config.json",
            "vision_model.onnx.bak",
        ] {
            assert!(!is_unused_tower_file(shared, Towers::TEXT), "{shared}");
            assert!(!is_unused_tower_file(shared, Towers::IMAGE), "{shared}");
        }
    }

    #[test]
    fn a_one_tower_copy_opens_and_names_the_missing_tower() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip");
        let dir = std::env::temp_dir().join(format!("clipsearch-one-tower-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["preprocessor_config.json", "tokenizer.json", "config.json"] {
            std::fs::copy(fixture.join(name), dir.join(name)).unwrap();
        }
        let none = ModelDir::open(&dir).unwrap_err();
        assert!(
            matches!(none, Error::Model { .. }) && none.to_string().contains("no ONNX file of either tower"),
            "{none}"
        );
        std::fs::copy(fixture.join("text_model.onnx"), dir.join("text_model.onnx")).unwrap();
        let text_only = ModelDir::open(&dir).expect("a text-only copy opens");
        assert_eq!(text_only.text_model().unwrap(), dir.join("text_model.onnx"));
        let missing = text_only.vision_model().unwrap_err();
        assert!(
            matches!(missing, Error::Model { .. }) && missing.to_string().contains("no vision ONNX file"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shortest_edge_truncates_like_python() {
        assert_eq!(shortest_edge_size(451, 300, 224), (336, 224)); // int(224*451/300) = 336
        assert_eq!(shortest_edge_size(300, 451, 224), (224, 336));
        assert_eq!(shortest_edge_size(3000, 300, 224), (2240, 224));
        assert_eq!(shortest_edge_size(32, 20, 224), (358, 224));
        assert_eq!(shortest_edge_size(224, 224, 224), (224, 224));
    }

    #[test]
    fn parses_clip_preprocessor() {
        let p = Preprocessing::from_json(
            r#"{"crop_size":{"height":224,"width":224},"do_center_crop":true,"resample":3,
                "size":{"shortest_edge":224},"image_mean":[0.1,0.2,0.3],"image_std":[1,2,3]}"#,
            Family::Clip,
        )
        .unwrap();
        assert_eq!(p.resize, Some(ResizeTarget::ShortestEdge(224)));
        assert_eq!(p.crop, Some((224, 224)));
        assert_eq!(p.resample, Resample::Bicubic);
        assert_eq!(p.mean, [0.1, 0.2, 0.3]);
        let legacy = Preprocessing::from_json(r#"{"size":224,"crop_size":224}"#, Family::Clip).unwrap();
        assert_eq!(legacy.crop, Some((224, 224)));
        assert!(Preprocessing::from_json(r#"{"size":224,"crop_size":224,"image_std":[0,1,1]}"#, Family::Clip).is_err());
    }

    #[test]
    fn siglip_canonicalizes_like_its_tokenizer() {
        let c = Canonicalize { lowercase: true };
        assert_eq!(
            c.apply("  A Photo, of a CAT!!!\t\n two\u{3000}dogs. "),
            "a photo of a cat two dogs"
        );
        assert_eq!(c.apply("ΟΔΟΣ"), "οδος", "final sigma, as Python's lower()");
        assert_eq!(
            c.apply("一只猫、在海滩上。"),
            "一只猫、在海滩上。",
            "only ASCII punctuation goes"
        );
        assert_eq!(c.apply("!!!"), "");
        assert_eq!(Canonicalize { lowercase: false }.apply("Keep Case?"), "Keep Case");
    }

    #[test]
    fn the_context_length_is_the_tokenizers_limit_within_the_positions() {
        use serde_json::json;
        let config = json!({"text_config": {"max_position_embeddings": 512}});
        let text = TextConfig::new(
            Some(&config),
            Some(&json!({"model_max_length": 52})),
            Family::ChineseClip,
        );
        assert_eq!(text.context_length, 52);
        let unlimited = json!({"model_max_length": 1e30});
        assert_eq!(
            TextConfig::new(Some(&config), Some(&unlimited), Family::ChineseClip).context_length,
            512
        );
        assert_eq!(TextConfig::new(None, None, Family::Siglip).context_length, 64);
        let siglip = json!({"tokenizer_class": "SiglipTokenizer", "pad_token": "</s>"});
        let text = TextConfig::new(None, Some(&siglip), Family::Siglip);
        assert_eq!(text.canonicalize, Some(Canonicalize { lowercase: true }));
        assert_eq!(text.pad_token.as_deref(), Some("</s>"));
        assert_eq!(text.padding, Padding::MaxLength);
    }

    #[test]
    fn missing_fields_take_the_familys_processor_defaults() {
        let siglip = Preprocessing::from_json("{}", Family::Siglip).unwrap();
        assert_eq!(
            siglip.resize,
            Some(ResizeTarget::Exact {
                width: 224,
                height: 224
            })
        );
        assert_eq!(siglip.crop, None, "SigLIP resizes straight to the model's size");
        assert_eq!((siglip.mean, siglip.std), ([0.5; 3], [0.5; 3]));
        let clip = Preprocessing::from_json("{}", Family::Clip).unwrap();
        assert_eq!(clip.resize, Some(ResizeTarget::ShortestEdge(224)));
        assert_eq!(clip.crop, Some((224, 224)));
        assert_eq!(clip.mean, super::super::family::CLIP_MEAN);
        let chinese = Preprocessing::from_json(
            r#"{"size":{"height":224,"width":224},"do_center_crop":false}"#,
            Family::ChineseClip,
        )
        .unwrap();
        assert_eq!(
            chinese.resize,
            Some(ResizeTarget::Exact {
                width: 224,
                height: 224
            })
        );
        assert_eq!(chinese.crop, None);
        assert_eq!(chinese.std, super::super::family::CLIP_STD);
    }
}
