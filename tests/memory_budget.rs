//! The decode budget holds for N images decoding at once, measured as the peak RSS of a real
//! `clipsearch embed image` process (the same `ImageEncoder::embed_many` ingest and `index`
//! use): two worst-case images per format at the pixel limit, one decode thread each.
//!
//! Runs, all on the same files:
//! - baseline: every image refused from its header (the model, the runtime, the files read);
//! - budget B: every image embedded, and peak − baseline ≤ B;
//! - no shared budget (one far above the machine's use): peak − baseline > B, so the bound
//!   above is the budget's doing and this test can fail;
//! - a budget below the largest image: that image refused with `over_decode_budget`, the
//!   others embedded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::{ImageBuffer, Rgb, Rgba};

const SIDE: u32 = 4000;
const PIXEL_LIMIT: u64 = SIDE as u64 * SIDE as u64;
const MIB: u64 = 1 << 20;
const BUDGET: u64 = 384 * MIB;
/// Below what a 16 MP 16-bit RGBA PNG is counted at (~334 MiB), above every other image here
/// (≤ 191 MiB).
const SMALL_BUDGET: u64 = 256 * MIB;
/// Set for the helper test that writes the images (a child process: see `write_images`).
const IMAGES_DIR_VAR: &str = "CLIPSEARCH_MEMORY_TEST_IMAGES";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Writes the images in a child process (this test binary, running the helper below): the
/// kernel starts a spawned child's peak RSS from its parent's, so the parent must never have
/// held the image buffers.
fn write_images(dir: &Path) -> Vec<PathBuf> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "write_worst_case_images", "--nocapture"])
        .env(IMAGES_DIR_VAR, dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for original in files.clone() {
        let copy = dir.join(format!("copy-{}", original.file_name().unwrap().to_string_lossy()));
        std::fs::copy(&original, &copy).unwrap();
        files.push(copy);
    }
    files
}

/// Smooth gradients: the files stay small, the decoded buffers are full size.
#[test]
#[ignore = "a helper: concurrent_worst_case_images_stay_within_the_decode_budget runs it"]
fn write_worst_case_images() {
    let dir = PathBuf::from(std::env::var_os(IMAGES_DIR_VAR).expect("run by the memory test"));
    std::fs::create_dir_all(&dir).unwrap();
    let rgba16 = ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
        Rgba([(x * 16) as u16, (y * 16) as u16, ((x + y) * 8) as u16, 65535])
    });
    rgba16.save(dir.join("rgba16.png")).unwrap();
    drop(rgba16);
    let rgb8 = ImageBuffer::from_fn(SIDE, SIDE, |x, y| Rgb([(x / 16) as u8, (y / 16) as u8, 128u8]));
    rgb8.save(dir.join("rgb8.tiff")).unwrap();
    rgb8.save(dir.join("rgb8.bmp")).unwrap();
    drop(rgb8);
    let rgba8 = ImageBuffer::from_fn(SIDE, SIDE, |x, y| Rgba([(x / 16) as u8, (y / 16) as u8, 64u8, 255]));
    rgba8.save(dir.join("rgba8.webp")).unwrap();
    // GIF and progressive JPEG from Pillow (the image crate's GIF encoder quantises 16 MP
    // slowly, and it writes no JPEG here).
    let python =
        std::env::var("CLIPSEARCH_PYTHON").unwrap_or_else(|_| repo().join(".venv/bin/python").display().to_string());
    let script = format!(
        "from PIL import Image\n\
         im = Image.linear_gradient('L').resize(({SIDE}, {SIDE}))\n\
         im.convert('P').save('{gif}')\n\
         Image.merge('RGB', (im, im.transpose(Image.Transpose.ROTATE_90), im)).save('{jpg}', progressive=True, quality=90)\n",
        gif = dir.join("paletted.gif").display(),
        jpg = dir.join("progressive.jpg").display(),
    );
    let out = Command::new(&python)
        .args(["-c", &script])
        .output()
        .expect("the venv's Python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Run {
    peak_rss: u64,
    lines: Vec<serde_json::Value>,
}

/// Runs `clipsearch embed image` on `files` with `env` and returns its peak RSS (the kernel's
/// `ru_maxrss` of that child, from wait4) and its JSON lines.
fn embed(files: &[PathBuf], env: &[(&str, String)]) -> Run {
    let stdout = tempfile_path("stdout");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipsearch"));
    cmd.current_dir(repo())
        .env("CLIPSEARCH_MODEL_DIR", repo().join("tests/fixtures/tiny-clip"))
        .env("CLIPSEARCH_MAX_IMAGE_BYTES", (200 * MIB).to_string())
        .env("CLIPSEARCH_DECODE_THREADS", files.len().to_string())
        .env("CLIPSEARCH_INTRA_THREADS", "1")
        .env_remove("CLIPSEARCH_DECODE_BUDGET_BYTES")
        .env_remove("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .args(["embed", "image"])
        .args(files)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Reaped by wait4 below, which also reports the child's peak RSS (Child::wait cannot).
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("clipsearch starts");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(
        pid,
        child.id() as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let text = std::fs::read_to_string(&stdout).unwrap();
    let _ = std::fs::remove_file(&stdout);
    Run {
        peak_rss: usage.ru_maxrss as u64 * 1024,
        lines: text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect(),
    }
}

fn tempfile_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("clipsearch-memory-{}-{what}", std::process::id()))
}

fn errors(run: &Run) -> Vec<String> {
    run.lines
        .iter()
        .filter_map(|l| Some(format!("{}: {}", l["file"].as_str()?, l.get("error")?.as_str()?)))
        .collect()
}

#[test]
fn concurrent_worst_case_images_stay_within_the_decode_budget() {
    let dir = tempfile_path("images");
    let files = write_images(&dir);
    let n = files.len();
    let limit = ("CLIPSEARCH_MAX_IMAGE_PIXELS", PIXEL_LIMIT.to_string());

    let baseline = embed(&files, &[("CLIPSEARCH_MAX_IMAGE_PIXELS", "1".into())]);
    assert_eq!(errors(&baseline).len(), n, "the baseline decodes nothing");
    let bounded = embed(
        &files,
        &[limit.clone(), ("CLIPSEARCH_DECODE_BUDGET_BYTES", BUDGET.to_string())],
    );
    assert!(errors(&bounded).is_empty(), "{:?}", errors(&bounded));
    let unbounded = embed(
        &files,
        &[
            limit.clone(),
            ("CLIPSEARCH_DECODE_BUDGET_BYTES", (1u64 << 50).to_string()),
        ],
    );
    assert!(errors(&unbounded).is_empty(), "{:?}", errors(&unbounded));

    let mib = |b: u64| b as f64 / MIB as f64;
    let over = |run: &Run| run.peak_rss.saturating_sub(baseline.peak_rss);
    println!(
        "{n} images of {SIDE}x{SIDE} decoding at once ({}):\n  baseline peak RSS {:.0} MiB\n  \
         budget {:.0} MiB: peak {:.0} MiB, {:.0} MiB over the baseline\n  \
         no shared budget: peak {:.0} MiB, {:.0} MiB over the baseline",
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy())
            .collect::<Vec<_>>()
            .join(", "),
        mib(baseline.peak_rss),
        mib(BUDGET),
        mib(bounded.peak_rss),
        mib(over(&bounded)),
        mib(unbounded.peak_rss),
        mib(over(&unbounded)),
    );
    assert!(over(&bounded) <= BUDGET, "the decodes held more than the budget");
    assert!(
        over(&unbounded) > BUDGET,
        "without the budget the same decodes exceed it (else this test shows nothing)"
    );

    // The largest image alone needs more than the small budget: refused, the rest embedded.
    let small = embed(
        &files,
        &[limit, ("CLIPSEARCH_DECODE_BUDGET_BYTES", SMALL_BUDGET.to_string())],
    );
    let refused = errors(&small);
    assert_eq!(
        refused.len(),
        2,
        "both copies of the 16-bit PNG, nothing else: {refused:?}"
    );
    for line in &refused {
        assert!(
            line.contains("rgba16.png: ") && line.contains("decode budget"),
            "{refused:?}"
        );
    }
    println!("budget {:.0} MiB: {}", mib(SMALL_BUDGET), refused[0]);
    let _ = std::fs::remove_dir_all(&dir);
}
