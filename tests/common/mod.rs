//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod emulator;
pub mod local_stack;
pub mod parity;
pub mod rng;

use std::path::{Path, PathBuf};

use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the shared crate lives in the repo")
        .to_path_buf()
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

pub fn tiny_clip_dir() -> PathBuf {
    fixtures().join("tiny-clip")
}

pub fn settings() -> ClipSettings {
    ClipSettings {
        model_dir: Some(tiny_clip_dir()),
        ..ClipSettings::from_env().expect("valid CLIPSEARCH_* settings")
    }
}

pub fn tiny_clip() -> Clip {
    Clip::load(&settings(), Towers::BOTH).expect("tiny-clip loads (run `make setup` for ONNX Runtime)")
}

/// A small PNG of `width` × `height` that differs for every seed (distinct content hashes
/// and distinct embeddings for ingest and index tests).
pub fn png(seed: u32, width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let v = seed.wrapping_mul(2_654_435_761).wrapping_add(x * 7 + y * 13);
        image::Rgb([(v & 0xFF) as u8, ((v >> 8) & 0xFF) as u8, (x * 5 + y) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The venv's Python, where the reference pipeline lives (`make setup` creates it).
/// An RGB image as a baseline JPEG of this quality (libjpeg-turbo, as Pillow writes them).
pub fn jpeg(image: &image::RgbImage, quality: i32) -> Vec<u8> {
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(quality).unwrap();
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: image.as_raw().as_slice(),
            width: image.width() as usize,
            pitch: image.width() as usize * 3,
            height: image.height() as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap()
}

pub fn python() -> PathBuf {
    std::env::var_os("CLIPSEARCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Runs a Python tool from tools/ and panics with its output if it fails.
pub fn run_python(args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run `make setup`): {e}", python().display()));
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "embedding lengths differ");
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Mean and 99th percentile of |a - b| over all samples of two same-size RGB crops.
pub fn crop_difference(a: &image::RgbImage, b: &image::RgbImage) -> (f64, u8) {
    assert_eq!(a.dimensions(), b.dimensions(), "crop sizes differ");
    let mut diffs: Vec<u8> = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).collect();
    let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
    diffs.sort_unstable();
    let p99 = diffs[(diffs.len() * 99 / 100).min(diffs.len() - 1)];
    (mean, p99)
}

/// A fresh directory under the system temp dir, unique per process and call.
pub fn tempdir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("clipsearch-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
