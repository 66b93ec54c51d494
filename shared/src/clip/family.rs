//! Model families: what differs between a CLIP, a SigLIP and a Chinese-CLIP export, read from
//! the model directory's own files, never from a model's name.
//!
//! The family decides the image processor's defaults (the fields `preprocessor_config.json`
//! may leave out) and how a caption becomes the text tower's inputs. Everything else (the
//! resize, crop and normalisation arithmetic, the tokenizer itself) is shared: the families'
//! processors in transformers are one PIL backend with different class defaults, and their
//! tokenizers are `tokenizer.json` pipelines the `tokenizers` crate runs as transformers does.

use serde_json::Value;

/// A model family clipsearch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI CLIP and open_clip checkpoints in CLIP layout: CLIP BPE, shortest-edge resize,
    /// centre crop, EOS pooling inside the graph.
    Clip,
    /// SigLIP and the fixed-resolution SigLIP 2 checkpoints (`model_type` "siglip"): resize
    /// straight to the model's size, SentencePiece/Gemma tokens padded to the fixed length.
    Siglip,
    /// Chinese-CLIP: a BERT WordPiece text tower with `token_type_ids`, CLIP's image side.
    ChineseClip,
    /// A text tower alone (a directory with `text_tower.json`), mapping into another model's
    /// image space: the multilingual-CLIP / sentence-transformers kind, pooling and projection
    /// inside its graph, rows padded per batch with a mask.
    TextTower,
}

/// How a batch of token rows is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// To the longest row of the batch, with an attention mask: the embedding of a row does
    /// not depend on its batch (CLIP, BERT).
    Longest,
    /// Always to the model's context length, as the family's reference usage does
    /// (`padding="max_length"`): SigLIP was trained on padded rows and attends to the pads.
    MaxLength,
}

/// The defaults of a family's image processor class (transformers 5.24's PIL backends:
/// `CLIPImageProcessorPil`, `SiglipImageProcessorPil`, `ChineseCLIPImageProcessorPil`), used
/// for each field `preprocessor_config.json` leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorDefaults {
    pub size: Value,
    pub crop_size: Option<Value>,
    pub do_center_crop: bool,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// PIL's resample code.
    pub resample: u32,
}

/// OpenAI CLIP's normalisation (written as published, beyond f32 precision, so they can be
/// compared with the source by eye).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// transformers' `IMAGENET_STANDARD_MEAN`/`_STD`, SigLIP's.
const HALF: [f32; 3] = [0.5, 0.5, 0.5];

const SUPPORTED: &str = "clip, siglip, chinese_clip";

impl Family {
    /// The family of a model directory: `preprocessor_config.json`'s `image_processor_type`
    /// when it names one (what transformers' `AutoImageProcessor` goes by), else
    /// `config.json`'s `model_type`; a directory with neither is CLIP (exports of CLIP often
    /// carry no `config.json`). An unknown type is an error naming it.
    pub fn detect(config: Option<&Value>, preprocessor: &Value) -> Result<Self, String> {
        let processor = preprocessor.get("image_processor_type").and_then(Value::as_str);
        let from_processor = processor.and_then(Self::from_processor_type);
        let model_type = config.and_then(|c| c.get("model_type")).and_then(Value::as_str);
        let from_model = match model_type {
            None => None,
            Some(t) => Some(Self::from_model_type(t).ok_or_else(|| {
                match t {
                    "siglip2" => "config.json: model_type \"siglip2\" is SigLIP 2's NaFlex variant (variable \
                              resolution), which clipsearch does not run; the fixed-resolution SigLIP 2 \
                              checkpoints (model_type \"siglip\") work"
                        .to_string(),
                    other => format!("config.json: model_type {other:?} is not a family clipsearch runs ({SUPPORTED})"),
                }
            })?),
        };
        match (from_processor, from_model) {
            (Some(p), Some(m)) if p != m => Err(format!(
                "preprocessor_config.json names {} but config.json's model_type is {:?}",
                processor.unwrap_or_default(),
                model_type.unwrap_or_default()
            )),
            (Some(family), _) | (None, Some(family)) => Ok(family),
            (None, None) => match processor {
                Some(other) => Err(format!(
                    "preprocessor_config.json: image_processor_type {other:?} is not a family clipsearch runs \
                     ({SUPPORTED})"
                )),
                None => Ok(Family::Clip),
            },
        }
    }

    fn from_model_type(model_type: &str) -> Option<Self> {
        Some(match model_type {
            "clip" | "clip_text_model" | "clip_vision_model" => Family::Clip,
            "siglip" | "siglip_text_model" | "siglip_vision_model" => Family::Siglip,
            "chinese_clip" | "chinese_clip_text_model" | "chinese_clip_vision_model" => Family::ChineseClip,
            _ => return None,
        })
    }

    fn from_processor_type(processor: &str) -> Option<Self> {
        let class = processor.trim_end_matches("Fast").trim_end_matches("Pil");
        Some(match class {
            // Older exports name the feature extractor, the processor's predecessor.
            "CLIPImageProcessor" | "CLIPFeatureExtractor" => Family::Clip,
            "SiglipImageProcessor" => Family::Siglip,
            "ChineseCLIPImageProcessor" | "ChineseCLIPFeatureExtractor" => Family::ChineseClip,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Clip => "clip",
            Family::Siglip => "siglip",
            Family::ChineseClip => "chinese_clip",
            Family::TextTower => "text_tower",
        }
    }

    pub fn processor_defaults(self) -> ProcessorDefaults {
        let square = |n: u32| serde_json::json!({ "height": n, "width": n });
        match self {
            Family::Clip | Family::ChineseClip | Family::TextTower => ProcessorDefaults {
                size: serde_json::json!({ "shortest_edge": 224 }),
                crop_size: Some(square(224)),
                do_center_crop: true,
                mean: CLIP_MEAN,
                std: CLIP_STD,
                resample: 3,
            },
            Family::Siglip => ProcessorDefaults {
                size: square(224),
                crop_size: None,
                do_center_crop: false,
                mean: HALF,
                std: HALF,
                resample: 3,
            },
        }
    }

    pub fn padding(self) -> Padding {
        match self {
            Family::Siglip => Padding::MaxLength,
            Family::Clip | Family::ChineseClip | Family::TextTower => Padding::Longest,
        }
    }

    /// The context length when `config.json` does not give one.
    pub fn default_context_length(self) -> usize {
        match self {
            Family::Clip => 77,
            Family::Siglip => 64,
            Family::ChineseClip | Family::TextTower => 512,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_family_comes_from_the_files() {
        let none = json!({});
        assert_eq!(Family::detect(None, &none), Ok(Family::Clip));
        assert_eq!(
            Family::detect(Some(&json!({"model_type": "clip"})), &none),
            Ok(Family::Clip)
        );
        assert_eq!(
            Family::detect(Some(&json!({"model_type": "siglip"})), &none),
            Ok(Family::Siglip)
        );
        assert_eq!(
            Family::detect(None, &json!({"image_processor_type": "ChineseCLIPImageProcessorFast"})),
            Ok(Family::ChineseClip)
        );
        assert_eq!(
            Family::detect(None, &json!({"image_processor_type": "CLIPFeatureExtractor"})),
            Ok(Family::Clip)
        );
        assert_eq!(
            Family::detect(
                Some(&json!({"model_type": "siglip"})),
                &json!({"image_processor_type": "SiglipImageProcessor"})
            ),
            Ok(Family::Siglip)
        );
    }

    #[test]
    fn unknown_or_contradictory_files_are_errors_naming_what_they_say() {
        let none = json!({});
        let unknown = Family::detect(Some(&json!({"model_type": "blip"})), &none).unwrap_err();
        assert!(unknown.contains("\"blip\"") && unknown.contains("siglip"), "{unknown}");
        let naflex = Family::detect(Some(&json!({"model_type": "siglip2"})), &none).unwrap_err();
        assert!(naflex.contains("NaFlex"), "{naflex}");
        let both = Family::detect(
            Some(&json!({"model_type": "clip"})),
            &json!({"image_processor_type": "SiglipImageProcessor"}),
        )
        .unwrap_err();
        assert!(both.contains("SiglipImageProcessor") && both.contains("clip"), "{both}");
        let processor = Family::detect(None, &json!({"image_processor_type": "ViTImageProcessor"})).unwrap_err();
        assert!(processor.contains("ViTImageProcessor"), "{processor}");
    }
}
