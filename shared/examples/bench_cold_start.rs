//! Benchmark of a cold start (not a test): one process, from its exec to the first embedding,
//! as the search function (text query; `both`: with the image tower loaded too) or the ingest
//! function (image) does it at init. Run it
//! as a fresh process each time (`scripts/bench.d/coldstart.sh` runs it N times and takes
//! medians); the page cache is warm after the first run, as on a Lambda host that has the
//! files in /tmp.
//!
//! ```text
//! cargo run --release -p clipsearch --example bench_cold_start -- --model DIR --first text|image|both [--image FILE]
//! ```
//! Prints one JSON object: `exec_ms` (exec to main: loader and libraries), `runtime_ms` (loading
//! libonnxruntime), `load_ms` (`Clip::load` of the towers that function loads: sessions and
//! tokenizer), `first_ms` (the first embedding), `total_ms` (exec to first embedding).

use std::time::Instant;

#[path = "support/process.rs"]
mod process;

use anyhow::{Context, Result};
use clipsearch::clip::{runtime, Clip, Encoder, Towers};
use clipsearch::config::ClipSettings;

fn main() -> Result<()> {
    let main_started = Instant::now();
    let exec_ms = process::since_exec_ms().unwrap_or(f64::NAN);
    let mut model = None;
    let mut first = String::from("text");
    let mut image = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => model = Some(std::path::PathBuf::from(value)),
            "--first" => first = value,
            "--image" => image = Some(std::path::PathBuf::from(value)),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let settings = ClipSettings {
        model_dir: Some(model.context("--model DIR is required")?),
        ..ClipSettings::from_env()?
    };
    let towers = match first.as_str() {
        "image" => Towers::IMAGE,
        "both" => Towers::BOTH,
        _ => Towers::TEXT,
    };
    let t = Instant::now();
    runtime::environment(settings.ort_library.as_deref())?;
    let runtime_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let clip = Clip::load(&settings, towers)?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    if first == "image" {
        let bytes = std::fs::read(image.context("--first image needs --image FILE")?)?;
        clip.embed_image(&bytes)?;
    } else {
        clip.embed_text("a photo of a red circle")?;
    }
    let first_ms = t.elapsed().as_secs_f64() * 1000.0;
    let total_ms = exec_ms + main_started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "first": first, "exec_ms": exec_ms, "runtime_ms": runtime_ms, "load_ms": load_ms,
            "first_ms": first_ms, "total_ms": total_ms,
        })
    );
    Ok(())
}
