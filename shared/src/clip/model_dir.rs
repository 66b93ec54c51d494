//! A model directory in Hugging Face export layout: the unit of configuration.
//!
//! ```text
//! config.json  preprocessor_config.json  tokenizer.json
//! vision_model.onnx  text_model.onnx        (or onnx/…, visual/textual.onnx, image/text_encoder.onnx)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

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

/// True when `relative` (a path inside a model directory) is the ONNX file of a tower that
/// `towers` does not load, or that file's external weights (`….onnx_data`, `….onnx.data`):
/// a text-only search need not copy the 350 MB vision tower at cold start.
pub fn is_unused_tower_file(relative: &str, towers: crate::clip::Towers) -> bool {
    let of = |candidates: &[&str]| {
        candidates.iter().any(|c| {
            relative == *c
                || relative
                    .strip_prefix(c)
                    .is_some_and(|rest| rest == "_data" || rest == ".data")
        })
    };
    (!towers.image && of(VISION_CANDIDATES)) || (!towers.text && of(TEXT_CANDIDATES))
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
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
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
fn bicubic() -> u32 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}

/// OpenAI CLIP's normalisation, used when the processor config leaves it out (written as
/// published, beyond f32 precision, so they can be compared with the source by eye).
#[allow(clippy::excessive_precision)]
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

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
    pub fn from_json(text: &str) -> Result<Self, String> {
        let raw: RawPreprocessor = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let resize = if raw.do_resize {
            let size = raw.size.as_ref().ok_or("do_resize is set but size is missing")?;
            Some(size_from(size, "size")?)
        } else {
            None
        };
        let crop = if raw.do_center_crop {
            let c = raw
                .crop_size
                .as_ref()
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
        let std = triple(raw.image_std, CLIP_STD, "image_std")?;
        if std.contains(&0.0) {
            return Err("image_std contains 0".into());
        }
        Ok(Self {
            resize,
            resample: Resample::from_pil(raw.resample)?,
            crop,
            rescale_factor: raw.do_rescale.then_some(raw.rescale_factor as f32),
            mean: triple(raw.image_mean, CLIP_MEAN, "image_mean")?,
            std,
            normalize: raw.do_normalize,
        })
    }
}

/// What `config.json` tells the text side.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Maximum sequence length (77 for CLIP).
    pub context_length: usize,
    /// Id used to pad a batch; CLIP pads with `<|endoftext|>`.
    pub pad_id: Option<u32>,
}

impl TextConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let tc = v.get("text_config").unwrap_or(&v);
        let num = |k: &str| tc.get(k).and_then(|x| x.as_u64());
        Ok(Self {
            context_length: num("max_position_embeddings").unwrap_or(77) as usize,
            pad_id: num("pad_token_id").or_else(|| num("eos_token_id")).map(|x| x as u32),
        })
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
    pub preprocessing: Preprocessing,
    pub text: TextConfig,
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
        let preprocessing = Preprocessing::from_json(&read("preprocessor_config.json")?)
            .map_err(|e| err(format!("preprocessor_config.json: {e}")))?;
        // config.json is optional: the CLIP defaults (77 tokens, pad with EOS) apply without it.
        let text = match std::fs::read_to_string(root.join("config.json")) {
            Ok(t) => TextConfig::from_json(&t).map_err(|e| err(format!("config.json: {e}")))?,
            Err(_) => TextConfig {
                context_length: 77,
                pad_id: None,
            },
        };
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
            preprocessing,
            text,
            name,
            root,
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
        )
        .unwrap();
        assert_eq!(p.resize, Some(ResizeTarget::ShortestEdge(224)));
        assert_eq!(p.crop, Some((224, 224)));
        assert_eq!(p.resample, Resample::Bicubic);
        assert_eq!(p.mean, [0.1, 0.2, 0.3]);
        let legacy = Preprocessing::from_json(r#"{"size":224,"crop_size":224}"#).unwrap();
        assert_eq!(legacy.crop, Some((224, 224)));
        assert!(Preprocessing::from_json(r#"{"size":224,"crop_size":224,"image_std":[0,1,1]}"#).is_err());
    }
}
