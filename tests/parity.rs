//! Parity with the reference pipeline (tools/reference.py) on the corpus in
//! tests/fixtures/parity: crops, image embeddings, token ids and text embeddings.
//! Tolerances are the corpus README's; every miss is collected so one run shows them all.

mod common;

use clipsearch::Error;
use common::*;

const IMAGE_COSINE: f32 = 0.999;
const TEXT_COSINE: f32 = 0.99999;
const CROP_MEAN_MAX: f64 = 0.5;
const CROP_P99_MAX: u8 = 2;

#[test]
fn image_crops_and_embeddings_match_the_reference() {
    let clip = tiny_clip();
    let encoder = clip.image().unwrap();
    let parity = fixtures().join("parity");
    let expected = read_jsonl(&parity.join("expected/image_embeddings.jsonl"));
    assert_eq!(expected.len(), 35, "the corpus has 35 images");
    let mut failures = Vec::new();
    for row in &expected {
        let file = row["file"].as_str().unwrap();
        let bytes = std::fs::read(parity.join("images").join(file)).unwrap();
        let prepared = match encoder.prepare(&bytes) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let want_crop = image::open(parity.join("expected/preprocessed").join(format!("{file}.png")))
            .unwrap()
            .into_rgb8();
        let (mean, p99) = crop_difference(&prepared.crop, &want_crop);
        let embedding = encoder.embed_prepared(std::slice::from_ref(&prepared)).unwrap().remove(0);
        let cos = cosine(&embedding, &floats(&row["embedding"]));
        println!("{file:40} crop mean {mean:.3} p99 {p99}  cosine {cos:.6}");
        if mean > CROP_MEAN_MAX || p99 > CROP_P99_MAX {
            failures.push(format!("{file}: crop mean |diff| {mean:.3}, p99 {p99}"));
        }
        if cos < IMAGE_COSINE {
            failures.push(format!("{file}: cosine {cos:.6} < {IMAGE_COSINE}"));
        }
        let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{file}: embedding not unit length ({norm})");
    }
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}

/// Captions are taken verbatim (no stripping; an empty line is an empty caption).
fn captions() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("parity/captions.txt")).unwrap();
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n').map(str::to_string).collect()
}

#[test]
fn token_ids_and_masks_are_identical() {
    let clip = tiny_clip();
    let encoder = clip.text().unwrap();
    let expected = read_jsonl(&fixtures().join("parity/expected/token_ids.jsonl"));
    let captions = captions();
    assert_eq!(expected.len(), captions.len());
    for (caption, row) in captions.iter().zip(&expected) {
        assert_eq!(row["text"].as_str().unwrap(), caption, "fixture order");
        let ids = encoder.tokenize(caption).unwrap();
        assert_eq!(ids.len() as u64, row["length"].as_u64().unwrap(), "{caption:?}: length");
        let (padded, mask) = encoder.pad(&ids, 77);
        let want_ids: Vec<u32> = row["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let want_mask: Vec<u32> = row["attention_mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(padded, want_ids, "{caption:?}: ids");
        assert_eq!(mask, want_mask, "{caption:?}: mask");
        assert_eq!(*ids.last().unwrap(), 49407, "{caption:?}: ends with <|endoftext|>");
    }
}

#[test]
fn text_embeddings_match_the_reference_and_empty_text_is_an_error() {
    let clip = tiny_clip();
    let encoder = clip.text().unwrap();
    let expected = read_jsonl(&fixtures().join("parity/expected/text_embeddings.jsonl"));
    let captions = captions();
    // Embedded as one padded batch: padding must not change any embedding.
    let results = encoder.embed_many(&captions);
    let mut failures = Vec::new();
    let mut empty = 0;
    for ((caption, row), result) in captions.iter().zip(&expected).zip(results) {
        if caption.trim().is_empty() {
            assert!(matches!(result, Err(Error::EmptyText)), "{caption:?} must be refused, got {result:?}");
            empty += 1;
            continue;
        }
        let cos = cosine(&result.unwrap(), &floats(&row["embedding"]));
        if cos < TEXT_COSINE {
            failures.push(format!("{caption:?}: cosine {cos:.7}"));
        }
    }
    assert_eq!(empty, 2, "the corpus has an empty and a blank caption");
    assert!(failures.is_empty(), "text parity failures:\n{}", failures.join("\n"));
    // One at a time gives the same vectors as the batch.
    let single = encoder.embed("a photo of a red circle").unwrap();
    let cos = cosine(&single, &floats(&expected[0]["embedding"]));
    assert!(cos >= TEXT_COSINE, "single {cos}");
}
