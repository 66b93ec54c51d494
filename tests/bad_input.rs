//! Hostile and broken inputs (tests/fixtures/bad, made by tools/make_bad_inputs.py): each gets
//! its typed error, nothing panics, and good images in the same batch are still embedded.

mod common;

use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;
use clipsearch::Error;
use common::*;

fn bad(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("bad").join(name)).unwrap()
}

fn good(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("parity/images").join(name)).unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn each_bad_input_gets_its_typed_error() {
    let clip = Clip::load(&settings(), Towers::IMAGE).unwrap();
    let encoder = clip.image().unwrap();
    let check = |name: &str, ok: &dyn Fn(&Error) -> bool| {
        let result = encoder.prepare(&bad(name));
        match &result {
            Err(e) if ok(e) => println!("{name:24} → {} ({e})", e.code()),
            other => panic!("{name}: unexpected {other:?}"),
        }
        assert!(result.unwrap_err().is_bad_input(), "{name}: must count as bad input");
    };
    check("empty.jpg", &|e| matches!(e, Error::EmptyImage));
    check("truncated.jpg", &|e| {
        matches!(e, Error::CorruptImage { format: "JPEG", .. })
    });
    check("truncated.png", &|e| {
        matches!(e, Error::CorruptImage { format: "PNG", .. })
    });
    check("notes.txt", &|e| matches!(e, Error::NotAnImage(_)));
    check("garbage.bin", &|e| matches!(e, Error::NotAnImage(_)));
    check(
        "real.avif",
        &|e| matches!(e, Error::UnsupportedFormat(f) if f == "AVIF"),
    );
    check(
        "header.heic",
        &|e| matches!(e, Error::UnsupportedFormat(f) if f == "HEIC"),
    );
    check(
        "drawing.svg",
        &|e| matches!(e, Error::UnsupportedFormat(f) if f == "SVG"),
    );
    check("doc.pdf", &|e| matches!(e, Error::UnsupportedFormat(f) if f == "PDF"));
}

#[test]
fn a_30000_by_30000_png_is_refused_before_its_pixels_exist() {
    let clip = Clip::load(&settings(), Towers::IMAGE).unwrap();
    let before = peak_rss_kib();
    let err = clip.image().unwrap().prepare(&bad("huge_30000x30000.png")).unwrap_err();
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(
        matches!(
            err,
            Error::TooManyPixels {
                width: 30000,
                height: 30000,
                ..
            }
        ),
        "got {err:?}"
    );
    // Decoding would need 900 MB for the 8-bit grey pixels and 2.7 GB as RGB.
    assert!(grown_mib < 200, "peak memory grew by {grown_mib} MiB");
}

#[test]
fn limits_are_configurable() {
    let small = ClipSettings {
        max_image_bytes: 10_000,
        max_image_pixels: 100_000,
        ..settings()
    };
    let clip = Clip::load(&small, Towers::IMAGE).unwrap();
    let encoder = clip.image().unwrap();
    // chelsea.jpg: 35 042 bytes, 451x300 = 135 300 pixels
    assert!(matches!(
        encoder.prepare(&good("chelsea.jpg")),
        Err(Error::ImageTooLarge {
            size: 35042,
            limit: 10_000
        })
    ));
    assert!(matches!(
        encoder.prepare(&good("tiny_32x20.png")),
        Ok(p) if p.width == 32 && p.height == 20
    ));
    assert!(matches!(
        encoder.prepare(&good("horse_rgba.png")),
        Err(Error::ImageTooLarge { .. }) | Err(Error::TooManyPixels { .. })
    ));
    let pixels_only = ClipSettings {
        max_image_pixels: 100_000,
        ..settings()
    };
    let clip = Clip::load(&pixels_only, Towers::IMAGE).unwrap();
    assert!(matches!(
        clip.image().unwrap().prepare(&good("chelsea.jpg")),
        Err(Error::TooManyPixels {
            width: 451,
            height: 300,
            ..
        })
    ));
}

#[test]
fn an_animated_gif_gives_its_first_frame() {
    let clip = Clip::load(&settings(), Towers::IMAGE).unwrap();
    let p = clip.image().unwrap().prepare(&good("coffee_anim.gif")).unwrap();
    let want = image::open(fixtures().join("parity/expected/preprocessed/coffee_anim.gif.png"))
        .unwrap()
        .into_rgb8();
    let (mean, _) = crop_difference(&p.crop, &want);
    assert!(mean < 0.5, "first frame expected, mean diff {mean}");
}

#[test]
fn a_batch_with_bad_inputs_still_embeds_the_good_ones() {
    let clip = Clip::load(&settings(), Towers::IMAGE).unwrap();
    let inputs = vec![
        good("chelsea.jpg"),
        bad("truncated.jpg"),
        good("coffee.png"),
        bad("notes.txt"),
        bad("huge_30000x30000.png"),
        good("astronaut.webp"),
        bad("empty.jpg"),
    ];
    let results = clip.image().unwrap().embed_many(&inputs, |_, _| {});
    let ok: Vec<bool> = results.iter().map(|r| r.is_ok()).collect();
    assert_eq!(ok, [true, false, true, false, false, true, false]);
    for r in results.iter().flatten() {
        assert_eq!(r.embedding.len(), 512);
    }
}

#[test]
fn a_missing_model_or_runtime_is_a_clear_error() {
    let missing = ClipSettings {
        model_dir: Some("/nonexistent/model".into()),
        ..settings()
    };
    let err = Clip::load(&missing, Towers::BOTH).unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/model"));
}
