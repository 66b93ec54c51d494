//! Parity on images and captions nobody has seen: tools/parity_fresh.py makes a new corpus with
//! a new seed on every run (every format, colour mode and EXIF orientation the product accepts,
//! odd sizes, a DCT-scaled large JPEG, unicode and over-long captions) and the reference's answers
//! for it; the Rust pipeline must meet the same tolerances as on the shipped corpus.
//! Reproduce a failure with CLIPSEARCH_PARITY_SEED=<the printed seed>.

mod common;

use common::parity::*;
use common::*;

#[test]
fn a_fresh_corpus_matches_the_reference() {
    let seed = parity_seed();
    println!("fresh parity corpus seed {seed} (set CLIPSEARCH_PARITY_SEED to reproduce)");
    let dir = tempdir("parity-fresh");
    let model = tiny_clip_dir();
    run_python(&[
        "tools/parity_fresh.py",
        dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--seed",
        &seed.to_string(),
    ]);
    let clip = tiny_clip();
    let (checked, mut failures) = check_images(&clip, &dir);
    assert!(checked >= 30, "the fresh corpus has {checked} images");
    failures.extend(check_tokens(&clip, &dir));
    let (_, text_failures) = check_texts(&clip, &dir);
    failures.extend(text_failures);
    assert!(
        failures.is_empty(),
        "seed {seed}: parity failures:\n{}",
        failures.join("\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}
