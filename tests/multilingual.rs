//! A separate multilingual text tower (`CLIPSEARCH_TEXT_MODEL_DIR`) in tiny-clip's image space:
//! tests/fixtures/tiny-multilingual, trained here by tools/train_tiny_multilingual.py (distilled
//! into tiny-clip's text space from captions of the synthetic classes in English, Chinese
//! (simplified and traditional), Japanese and Spanish; see its README).
//!
//! - Parity with its reference (transformers' tokenizer + ONNX Runtime, tools/reference.py) on
//!   the shipped captions and on fresh ones.
//! - Ranking: queries in every language, on templates the tower never saw, find the right
//!   images of a fresh synthetic set as well as English does through tiny-clip's own tower.
//! - Pairings that cannot be right are refused when the model loads.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;
use common::parity::*;
use common::*;

fn tower_dir() -> PathBuf {
    fixtures().join("tiny-multilingual")
}

fn load(model: &Path, text_tower: Option<&Path>, towers: Towers) -> clipsearch::Result<Clip> {
    let settings = ClipSettings {
        model_dir: Some(model.to_path_buf()),
        text_model_dir: text_tower.map(Path::to_path_buf),
        ..settings()
    };
    Clip::load(&settings, towers)
}

#[test]
fn the_multilingual_tower_matches_its_reference() {
    let clip = load(&tiny_clip_dir(), Some(&tower_dir()), Towers::TEXT).expect("the pair loads");
    assert_eq!(clip.text_model_name(), "tiny-multilingual");
    assert_eq!(clip.name(), "tiny-clip", "vectors stay tiny-clip's");
    let seed = parity_seed();
    println!("fresh captions seed {seed} (set CLIPSEARCH_PARITY_SEED to reproduce)");
    let mut failures = Vec::new();
    for shipped in [true, false] {
        let dir = reference_answers(&tower_dir(), seed, shipped);
        let (blank, text_failures) = check_texts(&clip, &dir);
        assert!(blank >= 2, "blank captions are refused");
        failures.extend(check_tokens(&clip, &dir));
        failures.extend(text_failures);
        std::fs::remove_dir_all(&dir).ok();
    }
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}

/// precision@1 of each language's held-out queries: the top image's class is the query's.
fn precision_at_1(clip: &Clip, queries: &[&serde_json::Value], images: &[(String, Vec<f32>)]) -> f64 {
    let texts: Vec<&str> = queries.iter().map(|q| q["text"].as_str().unwrap()).collect();
    let vectors = clip.text().unwrap().embed_many(&texts);
    let mut right = 0;
    for (query, vector) in queries.iter().zip(vectors) {
        let vector = vector.unwrap();
        let best = images
            .iter()
            .max_by(|a, b| cosine(&vector, &a.1).total_cmp(&cosine(&vector, &b.1)))
            .unwrap();
        let class = format!(
            "{}/{}",
            query["colour"].as_str().unwrap(),
            query["shape"].as_str().unwrap()
        );
        right += (best.0 == class) as usize;
    }
    right as f64 / queries.len() as f64
}

#[test]
fn every_language_finds_the_right_images_as_well_as_english() {
    let seed = parity_seed();
    println!("synthetic images seed {seed} (set CLIPSEARCH_PARITY_SEED to reproduce)");
    let dir = tempdir("multilingual-images");
    run_python(&[
        "tools/gen_synthetic.py",
        dir.to_str().unwrap(),
        "--count",
        "96",
        "--seed",
        &seed.to_string(),
    ]);
    let english = load(&tiny_clip_dir(), None, Towers::BOTH).unwrap();
    let images: Vec<(String, Vec<f32>)> = read_jsonl(&dir.join("labels.jsonl"))
        .iter()
        .map(|label| {
            let bytes = std::fs::read(dir.join(label["file"].as_str().unwrap())).unwrap();
            let class = format!(
                "{}/{}",
                label["colour"].as_str().unwrap(),
                label["shape"].as_str().unwrap()
            );
            (class, english.image().unwrap().embed(&bytes).unwrap().embedding)
        })
        .collect();
    let multilingual = load(&tiny_clip_dir(), Some(&tower_dir()), Towers::TEXT).unwrap();
    let queries = read_jsonl(&tower_dir().join("queries.jsonl"));
    let mut by_language: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for q in queries.iter().filter(|q| q["held_out"] == true) {
        by_language
            .entry(q["lang"].as_str().unwrap().to_owned())
            .or_default()
            .push(q);
    }
    let baseline = precision_at_1(&english, &by_language["en"], &images);
    println!("English through tiny-clip's own tower: precision@1 {baseline:.3}");
    for language in ["en", "zh-Hans", "zh-Hant", "ja", "es"] {
        let queries = &by_language[language];
        let p1 = precision_at_1(&multilingual, queries, &images);
        println!("{language:8} {} held-out queries: precision@1 {p1:.3}", queries.len());
        assert!(
            p1 >= baseline - 0.05,
            "{language}: precision@1 {p1:.3}, English {baseline:.3} (seed {seed})"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A copy of the tower whose text_tower.json says `declaration`.
fn tower_declaring(declaration: serde_json::Value) -> PathBuf {
    let dir = tempdir("tower-copy").join("some-tower");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(tower_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("text_tower.json"), declaration.to_string()).unwrap();
    dir
}

#[test]
fn pairings_that_cannot_be_right_are_refused_at_load_with_a_message_to_act_on() {
    let refused = |model: &Path, tower: &Path, towers: Towers| -> String {
        load(model, Some(tower), towers)
            .expect_err("this pairing must be refused")
            .to_string()
    };
    // Another image space, for the image-only process (ingest) as well as for search.
    let siglip = fixtures().join("tiny-siglip");
    for towers in [Towers::TEXT, Towers::IMAGE, Towers::BOTH] {
        let message = refused(&siglip, &tower_dir(), towers);
        assert!(
            message.contains("\"tiny-clip\"") && message.contains("\"tiny-siglip\""),
            "{message}"
        );
    }
    // A declared dimension the text model does not give.
    let wrong_dimension = tower_declaring(serde_json::json!({"image_model": "tiny-clip", "dimension": 256}));
    let message = refused(&tiny_clip_dir(), &wrong_dimension, Towers::TEXT);
    assert!(
        message.contains("declares 256 dimensions") && message.contains("512"),
        "{message}"
    );
    // A tower claiming an image space whose vectors are of another dimension.
    let claims_siglip = tower_declaring(serde_json::json!({"image_model": "tiny-siglip", "dimension": 512}));
    let message = refused(&siglip, &claims_siglip, Towers::IMAGE);
    assert!(message.contains("declares 512") && message.contains("32"), "{message}");
    // No declaration at all.
    let undeclared = tower_declaring(serde_json::json!({}));
    std::fs::remove_file(undeclared.join("text_tower.json")).unwrap();
    let message = refused(&tiny_clip_dir(), &undeclared, Towers::TEXT);
    assert!(message.contains("text_tower.json"), "{message}");
    // The tower given as the model.
    let message = load(&tower_dir(), None, Towers::BOTH).unwrap_err().to_string();
    assert!(message.contains("CLIPSEARCH_TEXT_MODEL_DIR"), "{message}");
    for dir in [wrong_dimension, claims_siglip, undeclared] {
        std::fs::remove_dir_all(dir.parent().unwrap()).ok();
    }
}
