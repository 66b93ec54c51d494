use super::*;
use crate::clip::family::Padding;

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
