//! Parity with the reference pipeline (tools/reference.py) on the corpus in
//! tests/fixtures/parity: crops, image embeddings, token ids and text embeddings.
//! Every miss is collected so one run shows them all.

mod common;

use common::parity::*;
use common::*;

#[test]
fn image_crops_and_embeddings_match_the_reference() {
    let (checked, failures) = check_images(&tiny_clip(), &fixtures().join("parity"));
    assert_eq!(checked, 35, "the corpus has 35 images");
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}

#[test]
fn token_ids_and_masks_are_identical() {
    let failures = check_tokens(&tiny_clip(), &fixtures().join("parity"));
    assert!(failures.is_empty(), "token failures:\n{}", failures.join("\n"));
}

#[test]
fn text_embeddings_match_the_reference_and_empty_text_is_an_error() {
    let clip = tiny_clip();
    let (blank, failures) = check_texts(&clip, &fixtures().join("parity"));
    assert_eq!(blank, 2, "the corpus has an empty and a blank caption");
    assert!(failures.is_empty(), "text parity failures:\n{}", failures.join("\n"));
    // One at a time gives the same vector as the batch.
    let expected = read_jsonl(&fixtures().join("parity/expected/text_embeddings.jsonl"));
    let single = clip.text().unwrap().embed("a photo of a red circle").unwrap();
    let cos = cosine(&single, &floats(&expected[0]["embedding"]));
    assert!(cos >= TEXT_COSINE, "single {cos}");
}
