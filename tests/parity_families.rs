//! Parity per model family: the tiny random-weight SigLIP and Chinese-CLIP models
//! (tests/fixtures/tiny-siglip, tests/fixtures/tiny-chinese-clip, made by
//! tools/make_tiny_family.py; their READMEs say how) against each family's own reference
//! pipeline (tools/reference.py: transformers' image processor and tokenizer classes for that
//! family, ONNX Runtime), with the same tolerances as CLIP's: on the shipped corpus
//! (tests/fixtures/parity, answered by each model at test time) and on a fresh corpus made with
//! a new seed every run (CJK, mixed scripts, emoji, over-long and blank captions included).
//! Reproduce a failure with CLIPSEARCH_PARITY_SEED=<the printed seed>.

mod common;

use std::path::Path;

use clipsearch::clip::{Clip, Family, Towers};
use clipsearch::config::ClipSettings;
use common::parity::*;
use common::*;

fn load(model: &Path) -> Clip {
    let settings = ClipSettings {
        model_dir: Some(model.to_path_buf()),
        ..settings()
    };
    Clip::load(&settings, Towers::BOTH).unwrap_or_else(|e| panic!("{}: {e}", model.display()))
}

/// Crops, image embeddings, token ids and text embeddings of `name` against its reference.
fn family_matches_its_reference(name: &str, family: Family) {
    let model = fixtures().join(name);
    let clip = load(&model);
    assert_eq!(clip.model.family, family, "{name} is read as {family:?}");
    let seed = parity_seed();
    println!("{name}: fresh parity corpus seed {seed} (set CLIPSEARCH_PARITY_SEED to reproduce)");
    let mut failures = Vec::new();
    for (corpus, shipped) in [
        (reference_answers(&model, seed, true), true),
        (reference_answers(&model, seed, false), false),
    ] {
        let what = if shipped { "shipped corpus" } else { "fresh corpus" };
        let (images, image_failures) = check_images(&clip, &corpus);
        assert!(images >= 30, "{what}: {images} images");
        let (blank, text_failures) = check_texts(&clip, &corpus);
        assert!(blank >= 2, "{what}: {blank} blank captions refused");
        failures.extend(
            image_failures
                .into_iter()
                .chain(check_tokens(&clip, &corpus))
                .chain(text_failures)
                .map(|f| format!("{what}: {f}")),
        );
        std::fs::remove_dir_all(&corpus).ok();
    }
    assert!(
        failures.is_empty(),
        "{name} (seed {seed}): parity failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn siglip_matches_its_reference_pipeline() {
    family_matches_its_reference("tiny-siglip", Family::Siglip);
}

#[test]
fn chinese_clip_matches_its_reference_pipeline() {
    family_matches_its_reference("tiny-chinese-clip", Family::ChineseClip);
}

/// A graph input clipsearch cannot fill is refused when the model loads, naming the input, not
/// at the first query (graphs from tools/make_bad_models.py).
#[test]
fn a_tower_input_that_cannot_be_filled_is_refused_at_load_naming_it() {
    let cases = [
        (
            "text_model.onnx",
            "text_unfillable_input.onnx",
            Towers::TEXT,
            "\"langs\"",
        ),
        (
            "vision_model.onnx",
            "vision_extra_input.onnx",
            Towers::IMAGE,
            "\"interpolate_pos_encoding\"",
        ),
    ];
    for (tower, graph, towers, named) in cases {
        let dir = tempdir("bad-tower");
        let model = fixtures().join("tiny-siglip");
        for file in [
            "config.json",
            "preprocessor_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            std::fs::copy(model.join(file), dir.join(file)).unwrap();
        }
        std::fs::copy(fixtures().join("bad-models").join(graph), dir.join(tower)).unwrap();
        let settings = ClipSettings {
            model_dir: Some(dir.clone()),
            ..settings()
        };
        let error = Clip::load(&settings, towers).expect_err(graph).to_string();
        assert!(
            error.contains(named) && error.contains("cannot be filled"),
            "{graph}: {error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
