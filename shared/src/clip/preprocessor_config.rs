//! `preprocessor_config.json`: how the family's image processor resizes, crops, rescales and
//! normalizes, read into [`Preprocessing`].

use serde::Deserialize;

use super::family::Family;

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
