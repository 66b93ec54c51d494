//! What a thumbnail adds to ingest's CPU work per image (scripts/bench.d/thumbnail.sh): each
//! JPEG in a folder is decoded as ingest decodes it for a 224-px model (DCT scale keeping the
//! short side ≥ 896), with and without making the 384-px JPEG thumbnail from those pixels,
//! `--reps` times; prints one JSON line with the medians.
//!
//!   bench_thumbnail --dir DIR [--reps 5] [--min-short-side 896]

use std::time::Instant;

use clipsearch::clip::budget::DecodeBudget;
use clipsearch::clip::decode::{decode_rgb, DecodeLimits};
use clipsearch::thumbnail::{encode_thumbnail, THUMBNAIL_EDGE};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dir = arg("--dir").ok_or_else(|| anyhow::anyhow!("--dir DIR of JPEGs"))?;
    let reps: usize = arg("--reps").map(|r| r.parse()).transpose()?.unwrap_or(5);
    let min_short_side: u32 = arg("--min-short-side").map(|r| r.parse()).transpose()?.unwrap_or(896);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    let limits = DecodeLimits {
        max_bytes: 64 << 20,
        max_pixels: 100_000_000,
    };
    let budget = DecodeBudget::unlimited();
    let (mut decode_ms, mut with_ms, mut thumb_bytes, mut source_bytes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for file in &files {
        let bytes = std::fs::read(file)?;
        source_bytes.push(bytes.len() as f64);
        for _ in 0..reps {
            let started = Instant::now();
            let decoded = decode_rgb(&bytes, limits, min_short_side, &budget)?;
            decode_ms.push(started.elapsed().as_secs_f64() * 1e3);
            drop(decoded);
            let started = Instant::now();
            let decoded = decode_rgb(&bytes, limits, min_short_side, &budget)?;
            let thumbnail = encode_thumbnail(&decoded.rgb, THUMBNAIL_EDGE)?;
            with_ms.push(started.elapsed().as_secs_f64() * 1e3);
            thumb_bytes.push(thumbnail.len() as f64);
        }
    }
    let (decode, with) = (median(decode_ms), median(with_ms));
    println!(
        "{}",
        serde_json::json!({
            "images": files.len(),
            "reps": reps,
            "decode_ms": decode,
            "decode_and_thumbnail_ms": with,
            "thumbnail_ms": with - decode,
            "thumbnail_bytes": median(thumb_bytes),
            "original_bytes": median(source_bytes),
        })
    );
    Ok(())
}
