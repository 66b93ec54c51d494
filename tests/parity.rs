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
    // One at a time gives the same vector as the batch (without the query cache, which would
    // answer from the batch's run).
    let uncached = uncached_tiny_clip();
    let expected = read_jsonl(&fixtures().join("parity/expected/text_embeddings.jsonl"));
    let single = uncached.text().unwrap().embed("a photo of a red circle").unwrap();
    let cos = cosine(&single, &floats(&expected[0]["embedding"]));
    assert!(cos >= TEXT_COSINE, "single {cos}");
}

/// The query cache: a repeated query, or one its tokenizer cannot tell apart (tiny-clip's CLIP
/// tokenizer folds case and spacing), is answered from the cache with the same vector; a
/// different query is not; with the cache off nothing is kept.
#[test]
fn a_repeated_query_is_answered_from_the_cache() {
    let clip = tiny_clip();
    let text = clip.text().unwrap();
    let (hits, misses) = text.cache_stats();
    let first = text.embed("a photo of a red circle").unwrap();
    assert_eq!(text.cache_stats(), (hits, misses + 1), "a first query is a miss");
    assert_eq!(text.embed("a photo of a red circle").unwrap(), first);
    assert_eq!(text.embed("  A Photo of a RED   circle ").unwrap(), first);
    assert_eq!(text.cache_stats(), (hits + 2, misses + 1), "both repeats are hits");
    assert_ne!(text.embed("a photo of a blue circle").unwrap(), first);
    // A batch with repeats runs each distinct text once and keeps their order.
    let batch = text.embed_many(&["a photo of a red circle", "a green star", "a green star", ""]);
    assert_eq!(batch[0].as_ref().unwrap(), &first);
    assert_eq!(batch[1].as_ref().unwrap(), batch[2].as_ref().unwrap());
    assert!(matches!(batch[3], Err(clipsearch::Error::EmptyText)));

    let off = uncached_tiny_clip();
    let uncached = off.text().unwrap();
    uncached.embed("a photo of a red circle").unwrap();
    uncached.embed("a photo of a red circle").unwrap();
    assert_eq!(uncached.cache_stats(), (0, 0));
}

/// tiny-clip's text tower without the query cache.
fn uncached_tiny_clip() -> clipsearch::clip::Clip {
    clipsearch::clip::Clip::load(
        &clipsearch::config::ClipSettings {
            query_cache_entries: 0,
            ..settings()
        },
        clipsearch::clip::Towers::TEXT,
    )
    .unwrap()
}
