//! Speed of the CLIP encoders (issue 2), the Rust side of `make bench` (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example bench_clip -- --model DIR --images DIR \
//!     [--batch 8] [--intra-threads T] [--decode-threads N] [--texts N] [--limit N]
//! cargo run --release --example bench_clip -- --model DIR --text-tower DIR [--texts N] ...
//! ```
//!
//! Without `--images` only the text side is loaded and timed (no image keys in the JSON). With
//! `--text-tower DIR` texts are embedded by that separate text tower (as
//! `CLIPSEARCH_TEXT_MODEL_DIR`), paired with `--model`, the image model its `text_tower.json`
//! names.
//!
//! Prints one JSON document, measured the way `tools/reference.py bench` measures (warm-up on
//! the first two images first, files read from disk inside the timed decode loops):
//! - decode+preprocess img/s: (a) one thread, a plain loop over `prepare`; (b) `--decode-threads`
//!   threads (0 = all cores) taking images from a shared counter, as `embed_many` does;
//! - inference img/s: `embed_prepared` over the prepared crops, in batches of `--batch`;
//! - end to end img/s: read the files + `embed_many` (parallel decode, then batches);
//! - text embeddings/s: `TextEncoder::embed_many` (batches) and `embed` one text at a time (the
//!   reference embeds texts one at a time);
//! - peak RSS (VmHWM from /proc/self/status).
//!
//! `--intra-threads` sets ONNX Runtime's intra-op threads (0 = ORT's default, all cores), to
//! match `reference.py --threads`. Speed is only ever measured here, never asserted in tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clipsearch::clip::{Clip, ImageEncoder, PreparedImage, Towers};
use clipsearch::config::ClipSettings;
use serde_json::json;

/// The extensions `reference.py` lists (`IMAGE_EXTS`).
const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

struct Args {
    model: PathBuf,
    /// Empty: text side only.
    images: PathBuf,
    text_tower: Option<PathBuf>,
    batch: usize,
    intra_threads: usize,
    decode_threads: usize,
    texts: usize,
    limit: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_clip --model DIR [--images DIR (absent: text only)] [--text-tower DIR] [--batch 8] \
         [--intra-threads T (0 = ORT default)] [--decode-threads N (0 = all cores)] [--texts 64] \
         [--limit N (0 = all)]"
    );
    std::process::exit(2)
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        model: PathBuf::new(),
        images: PathBuf::new(),
        text_tower: None,
        batch: 8,
        intra_threads: 0,
        decode_threads: 0,
        texts: 64,
        limit: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage();
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value:?} is not a number"))
        };
        match flag.as_str() {
            "--model" => args.model = PathBuf::from(&value),
            "--images" => args.images = PathBuf::from(&value),
            "--text-tower" => args.text_tower = Some(PathBuf::from(&value)),
            "--batch" => args.batch = number()?.max(1),
            "--intra-threads" => args.intra_threads = number()?,
            "--decode-threads" => args.decode_threads = number()?,
            "--texts" => args.texts = number()?,
            "--limit" => args.limit = number()?,
            _ => {
                eprintln!("unknown argument {flag}");
                usage()
            }
        }
    }
    if args.model.as_os_str().is_empty() {
        usage();
    }
    Ok(args)
}

/// Image files under `dir`, recursively, sorted by path (as `reference.py`'s `list_images`).
fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Deterministic captions of varied length, like search queries.
fn captions(n: usize) -> Vec<String> {
    const THINGS: &[&str] = &[
        "a cat",
        "a dog on a beach",
        "the rocket on the launch pad",
        "a cup of coffee",
        "an astronaut",
        "a red motorcycle parked in the street",
        "stars and galaxies",
        "a microscope slide",
    ];
    const STYLES: &[&str] = &[
        "a photo of {}",
        "{}",
        "a blurry picture of {} taken at night with a phone",
        "a close-up photograph of {}, high resolution, natural light, shallow depth of field",
    ];
    (0..n)
        .map(|i| STYLES[(i / THINGS.len()) % STYLES.len()].replace("{}", THINGS[i % THINGS.len()]))
        .collect()
}

/// `prepare` (file read included) over all files on `workers` threads, in order.
fn prepare_parallel(encoder: &ImageEncoder, files: &[PathBuf], workers: usize) -> Result<Vec<PreparedImage>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<PreparedImage>>> = Mutex::new(vec![None; files.len()]);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(files.len()).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files.len() {
                    break;
                }
                let result = std::fs::read(&files[i])
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| encoder.prepare(&bytes).map_err(anyhow::Error::from));
                match result {
                    Ok(p) => slots.lock().unwrap()[i] = Some(p),
                    Err(e) => {
                        first_error
                            .lock()
                            .unwrap()
                            .get_or_insert(e.context(files[i].display().to_string()));
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(slots
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|p| p.expect("every file prepared"))
        .collect())
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The image-side timings: decode+preprocess (1 and `decode_threads` threads), inference, end to
/// end, after a warm-up on the first two images.
fn bench_images(image: &ImageEncoder, args: &Args, decode_threads: usize) -> Result<serde_json::Value> {
    let mut files = list_images(&args.images)?;
    if args.limit > 0 {
        files.truncate(args.limit);
    }
    if files.is_empty() {
        bail!("no images in {}", args.images.display());
    }
    let n = files.len() as f64;

    // Warm-up, as the reference: the first two images end to end.
    let warm: Vec<Vec<u8>> = files.iter().take(2).map(std::fs::read).collect::<Result<_, _>>()?;
    for r in image.embed_many(&warm, |_, _| {}) {
        r.context("warm-up image")?;
    }

    // (a) decode+preprocess, one thread.
    let t = Instant::now();
    let mut prepared = Vec::with_capacity(files.len());
    for f in &files {
        let bytes = std::fs::read(f)?;
        prepared.push(image.prepare(&bytes).with_context(|| f.display().to_string())?);
    }
    let decode_1t_s = t.elapsed().as_secs_f64();

    // (b) decode+preprocess, `decode_threads` threads.
    let t = Instant::now();
    let prepared_nt = prepare_parallel(image, &files, decode_threads)?;
    let decode_nt_s = t.elapsed().as_secs_f64();
    drop(prepared_nt);

    // Inference only, in batches.
    let t = Instant::now();
    let vectors = image.embed_prepared(&prepared)?;
    let infer_s = t.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), files.len());
    drop(prepared);

    // End to end: read the files, then `embed_many` (parallel decode, batched inference).
    let t = Instant::now();
    let blobs: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let results = image.embed_many(&blobs, |_, _| {});
    let e2e_s = t.elapsed().as_secs_f64();
    for (r, f) in results.iter().zip(&files) {
        if let Err(e) = r {
            bail!("{}: {e}", f.display());
        }
    }
    Ok(json!({
        "images": files.len(),
        "decode+preprocess_1thread_img_per_s": round2(n / decode_1t_s),
        "decode+preprocess_1thread_ms_per_image": round2(1e3 * decode_1t_s / n),
        "decode+preprocess_img_per_s": round2(n / decode_nt_s),
        "decode+preprocess_ms_per_image": round2(1e3 * decode_nt_s / n),
        "inference_img_per_s": round2(n / infer_s),
        "end_to_end_img_per_s": round2(n / e2e_s),
        "ms_per_image_end_to_end": round2(1e3 * e2e_s / n),
    }))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let decode_threads = if args.decode_threads == 0 {
        cores
    } else {
        args.decode_threads
    };
    let settings = ClipSettings {
        model_dir: Some(args.model.clone()),
        text_model_dir: args.text_tower.clone(),
        intra_threads: args.intra_threads,
        batch_size: args.batch,
        decode_threads,
        // The bench embeds the same captions again and again: it measures the model, so no
        // query cache (BENCHMARKS.md's query-cache rows measure that separately).
        query_cache_entries: 0,
        ..ClipSettings::from_env()?
    };
    let with_images = !args.images.as_os_str().is_empty();
    let towers = if with_images { Towers::BOTH } else { Towers::TEXT };
    let t_load = Instant::now();
    let clip = Clip::load(&settings, towers).context("loading the model")?;
    let load_s = t_load.elapsed().as_secs_f64();
    let text = clip.text()?;
    let texts = captions(args.texts);

    let mut report = json!({
        "model": args.model.display().to_string(),
        "text_model": clip.text_model_name(),
        "batch": args.batch,
        "intra_threads": if args.intra_threads == 0 { json!("ort default (all cores)") } else { json!(args.intra_threads) },
        "decode_threads": decode_threads,
        "cpu_count": cores,
        "model_load_s": round2(load_s),
    });
    if with_images {
        let images = bench_images(clip.image()?, &args, decode_threads)?;
        for (k, v) in images.as_object().expect("an object") {
            report[k] = v.clone();
        }
    }

    // Texts: warm-up, batched, then one at a time.
    for r in text.embed_many(&texts[..texts.len().min(args.batch)]) {
        r.context("warm-up text")?;
    }
    text.embed("warm up")?;
    let t = Instant::now();
    for r in text.embed_many(&texts) {
        r?;
    }
    let text_batch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for c in &texts {
        text.embed(c)?;
    }
    let text_single_s = t.elapsed().as_secs_f64();

    let nt = texts.len().max(1) as f64;
    report["texts"] = json!(texts.len());
    report["text_batch_per_s"] = json!(round2(nt / text_batch_s));
    report["text_one_at_a_time_per_s"] = json!(round2(nt / text_single_s));
    report["peak_rss_mib"] = json!(peak_rss_mib().map(round2));
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
