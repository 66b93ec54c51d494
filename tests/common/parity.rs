//! The parity checks, run on the shipped corpus (tests/parity.rs) and on a fresh corpus made at
//! test time by tools/parity_fresh.py (tests/parity_fresh.rs). Tolerances are the corpus README's.

use std::path::Path;

use clipsearch::clip::{Clip, Family};
use clipsearch::Error;

use super::*;

pub const IMAGE_COSINE: f32 = 0.999;
pub const TEXT_COSINE: f32 = 0.99999;
pub const CROP_MEAN_MAX: f64 = 0.5;
pub const CROP_P99_MAX: u8 = 2;

/// Crops within the crop bound and embeddings within the cosine bound for every image listed
/// in `corpus/expected/image_embeddings.jsonl`; returns every miss.
pub fn check_images(clip: &Clip, corpus: &Path) -> (usize, Vec<String>) {
    let encoder = clip.image().unwrap();
    let expected = read_jsonl(&corpus.join("expected/image_embeddings.jsonl"));
    let mut failures = Vec::new();
    for row in &expected {
        let file = row["file"].as_str().unwrap();
        let bytes = std::fs::read(corpus.join("images").join(file)).unwrap();
        let prepared = match encoder.prepare(&bytes) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let want_crop = image::open(corpus.join("expected/preprocessed").join(format!("{file}.png")))
            .unwrap()
            .into_rgb8();
        let (mean, p99) = crop_difference(&prepared.crop, &want_crop);
        let embedding = encoder
            .embed_prepared(std::slice::from_ref(&prepared))
            .unwrap()
            .remove(0);
        let cos = cosine(&embedding, &floats(&row["embedding"]));
        println!("{file:40} crop mean {mean:.3} p99 {p99}  cosine {cos:.6}");
        if mean > CROP_MEAN_MAX || p99 > CROP_P99_MAX {
            failures.push(format!("{file}: crop mean |diff| {mean:.3}, p99 {p99}"));
        }
        if cos < IMAGE_COSINE {
            failures.push(format!("{file}: cosine {cos:.6} < {IMAGE_COSINE}"));
        }
        let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        if (norm - 1.0).abs() > 1e-4 {
            failures.push(format!("{file}: embedding not unit length ({norm})"));
        }
    }
    (expected.len(), failures)
}

/// Captions are taken verbatim (no stripping; an empty line is an empty caption).
pub fn captions(corpus: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(corpus.join("captions.txt")).unwrap();
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n').map(str::to_string).collect()
}

/// Token ids and masks identical to the reference's (padded as the family's processor pads,
/// to the reference's length); for CLIP, `<|endoftext|>` kept last.
pub fn check_tokens(clip: &Clip, corpus: &Path) -> Vec<String> {
    let encoder = clip.text().unwrap();
    let expected = read_jsonl(&corpus.join("expected/token_ids.jsonl"));
    let captions = captions(corpus);
    assert_eq!(expected.len(), captions.len());
    let mut failures = Vec::new();
    for (caption, row) in captions.iter().zip(&expected) {
        assert_eq!(row["text"].as_str().unwrap(), caption, "fixture order");
        let ids = encoder.tokenize(caption).unwrap();
        let list = |k: &str| -> Vec<u32> {
            row[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        let want = list("input_ids");
        let (padded, mask) = encoder.pad(&ids, want.len());
        if ids.len() as u64 != row["length"].as_u64().unwrap() || padded != want || mask != list("attention_mask") {
            failures.push(format!("{caption:?}: ids {ids:?}, reference {want:?}"));
        }
        let family = clip.text_tower.as_ref().unwrap_or(&clip.model).family;
        if family == Family::Clip && ids.last() != Some(&49407) {
            failures.push(format!("{caption:?}: does not end with <|endoftext|>"));
        }
    }
    failures
}

/// Text embeddings within the cosine bound, embedded as one padded batch (padding must not
/// change any embedding); blank captions must be refused. Returns (blank count, misses).
pub fn check_texts(clip: &Clip, corpus: &Path) -> (usize, Vec<String>) {
    let encoder = clip.text().unwrap();
    let expected = read_jsonl(&corpus.join("expected/text_embeddings.jsonl"));
    let captions = captions(corpus);
    let results = encoder.embed_many(&captions);
    let mut failures = Vec::new();
    let mut blank = 0;
    for ((caption, row), result) in captions.iter().zip(&expected).zip(results) {
        if caption.trim().is_empty() {
            if !matches!(result, Err(Error::EmptyText)) {
                failures.push(format!("{caption:?} must be refused, got {result:?}"));
            }
            blank += 1;
            continue;
        }
        match result {
            Ok(v) => {
                let cos = cosine(&v, &floats(&row["embedding"]));
                if cos < TEXT_COSINE {
                    failures.push(format!("{caption:?}: cosine {cos:.7}"));
                }
            }
            Err(e) => failures.push(format!("{caption:?}: {e}")),
        }
    }
    (blank, failures)
}

/// The fresh corpus's seed: `CLIPSEARCH_PARITY_SEED` to reproduce a run, else a new one.
pub fn parity_seed() -> u64 {
    std::env::var("CLIPSEARCH_PARITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() % 1_000_000)
                .unwrap_or(1)
        })
}

/// The reference's answers for `model` in a new directory: the shipped corpus (`shipped`) or a
/// fresh one made with `seed`.
pub fn reference_answers(model: &Path, seed: u64, shipped: bool) -> std::path::PathBuf {
    let dir = tempdir(if shipped { "parity-shipped" } else { "parity-fresh" });
    let mut args = vec![
        "tools/parity_fresh.py".to_string(),
        dir.to_string_lossy().into_owned(),
        "--model".into(),
        model.to_string_lossy().into_owned(),
        "--seed".into(),
        seed.to_string(),
    ];
    if shipped {
        args.push("--corpus".into());
        args.push(fixtures().join("parity").to_string_lossy().into_owned());
    }
    run_python(&args.iter().map(String::as_str).collect::<Vec<_>>());
    dir
}
