//! Bytes → sniff → decode (the real limits) → the crop the model sees → the normalised tensor,
//! as ingest and an image query run it. Any input must end in an image or an error: no panic,
//! no hang, no allocation beyond what the pixel limit allows (libFuzzer's -rss_limit_mb), and
//! every byte reserved from the decode budget is returned.
#![no_main]

use clipsearch::clip::decode::{decode_rgb, sniff};
use clipsearch::clip::model_dir::Preprocessing;
use clipsearch::clip::{DecodeBudget, DecodeLimits, Family};
use clipsearch::config::{DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS};
use libfuzzer_sys::fuzz_target;

/// tiny-clip's processor (CLIP's: shortest edge 224, bicubic, centre crop 224).
const PREPROCESSOR: &str = include_str!("../../tests/fixtures/tiny-clip/preprocessor_config.json");

fuzz_target!(|bytes: &[u8]| {
    let preprocessing = Preprocessing::from_json(PREPROCESSOR, Family::Clip).expect("the fixture parses");
    if sniff(bytes).is_err() {
        return;
    }
    let limits = DecodeLimits {
        max_bytes: DEFAULT_MAX_IMAGE_BYTES,
        max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
    };
    // libFuzzer's default RSS limit is 2 GiB; the decode's share of it.
    let budget = DecodeBudget::new(1 << 30);
    let decoded = decode_rgb(bytes, limits, preprocessing.min_decode_short_side(), &budget);
    let crop = decoded.as_ref().ok().map(|d| preprocessing.crop_u8(&d.rgb));
    drop(decoded);
    assert_eq!(budget.in_use(), 0, "the decode returned what it reserved");
    let Some(Ok(crop)) = crop else {
        return;
    };
    assert_eq!(
        (crop.width(), crop.height()),
        (224, 224),
        "the crop is the model's input size"
    );
    let mut tensor = vec![0f32; 3 * 224 * 224];
    preprocessing.normalize_into(&crop, &mut tensor);
    assert!(tensor.iter().all(|x| x.is_finite()));
});
