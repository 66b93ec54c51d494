//! `clipsearch index SOURCE`: backfill a bucket prefix or a local folder through the same
//! ingest use case the Lambda runs. Resumable by construction: content already indexed at
//! that location costs a read and a hash, never an inference.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clipsearch::events::ObjectEvent;
use clipsearch::ingest::{ClipIngestor, Outcome, RecordReport};
use clipsearch::objects::parse_s3_url;
use clipsearch::store::Location;
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

/// File name extensions a folder backfill reads (anything else in the folder is left alone:
/// label files, notes, thumbnails' sidecars...).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "png", "webp", "gif", "tif", "tiff", "bmp"];

#[derive(clap::Args)]
pub struct IndexArgs {
    /// `s3://bucket/prefix` (every object under the prefix) or a local directory (its image
    /// files, recursively, recorded under their path relative to the directory).
    pub source: String,
    /// Model directory in Hugging Face export layout (not needed with `--via-queue`).
    #[arg(long, env = "CLIPSEARCH_MODEL_DIR", required_unless_present = "via_queue")]
    pub model: Option<PathBuf>,
    /// Send one S3-notification message per object to this ingest queue (name or URL)
    /// instead of indexing here: the deployed ingest functions do the work (docs/ingest.md).
    #[arg(long, value_name = "QUEUE")]
    pub via_queue: Option<String>,
    /// With `--via-queue`: resume after the last object an earlier run sent (the token it
    /// printed on interruption or in its last checkpoint line).
    #[arg(long, value_name = "TOKEN", requires = "via_queue")]
    pub continuation_token: Option<String>,
    /// With `--via-queue`: send at most this many messages per second [default: no limit].
    #[arg(long, value_name = "PER_SECOND", requires = "via_queue")]
    pub rate: Option<f64>,
    /// With `--via-queue`: keys listed per page (1..=1000; a checkpoint line after each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
    /// With `--via-queue`: exit once everything is sent instead of watching the queue drain.
    #[arg(long, requires = "via_queue")]
    pub no_wait: bool,
    /// Bucket name recorded for a folder's images (their key is the path inside the folder).
    #[arg(long, default_value = "local", value_name = "NAME")]
    pub bucket: String,
    /// Images in flight [default: CLIPSEARCH_INGEST_CONCURRENCY, else 4].
    #[arg(long, short = 'j')]
    pub concurrency: Option<usize>,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Logs to stderr at `warn`, without ingest's per-record lines (they would tear the progress
/// bar; failures are listed by the summary). `RUST_LOG` overrides.
pub fn quiet_tracing() {
    crate::wiring::log_to_stderr("warn,clipsearch::ingest=off");
}

/// The subcommand: `Ok(false)` when some images failed.
pub fn command(args: IndexArgs) -> Result<bool> {
    quiet_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(queue) = &args.via_queue {
        return runtime.block_on(crate::via_queue::run(crate::via_queue::Options {
            source: &args.source,
            queue,
            continuation_token: args.continuation_token.as_deref(),
            rate: args.rate,
            page_size: args.page_size,
            wait: !args.no_wait,
            quiet: args.quiet,
        }));
    }
    runtime.block_on(run(args))
}

enum Item {
    Object(Location),
    File(Location, PathBuf),
}

impl Item {
    fn location(&self) -> &Location {
        match self {
            Item::Object(l) | Item::File(l, _) => l,
        }
    }
}

#[derive(Default)]
struct Summary {
    indexed: u64,
    location_added: u64,
    unchanged: u64,
    failed: Vec<(String, String)>,
}

impl Summary {
    fn add(&mut self, report: &RecordReport) {
        match &report.outcome {
            Ok(Outcome::Indexed { .. }) => self.indexed += 1,
            Ok(Outcome::LocationAdded { .. }) => self.location_added += 1,
            Ok(_) => self.unchanged += 1,
            Err(e) => self
                .failed
                .push((report.location.key.clone(), format!("{}: {e}", e.code()))),
        }
    }
}

/// Runs the backfill; `Ok(false)` when some images failed (each is listed in the summary).
pub async fn run(options: IndexArgs) -> Result<bool> {
    let started = Instant::now();
    let mut ingestor = crate::wiring::ingestor(options.model.as_deref()).await?;
    if let Some(n) = options.concurrency {
        ingestor = ingestor.with_concurrency(n);
    }
    let (items, ignored) = list(&ingestor, &options).await?;
    // Throughput counts the images only, not loading the model and connecting.
    let setup_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();

    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    // Without a terminal (CI, `| tee`, a log file) indicatif draws nothing: print a line
    // every ~10% instead, so long backfills still show where they are.
    let total = items.len() as u64;
    let line_every = (!options.quiet && !std::io::stderr().is_terminal()).then(|| (total / 10).max(1));

    let ingestor = Arc::new(ingestor);
    let mut summary = Summary::default();
    let mut reports = stream::iter(items)
        .map(|item| {
            let ingestor = Arc::clone(&ingestor);
            async move {
                match &item {
                    Item::Object(location) => {
                        ingestor
                            .handle(&ObjectEvent::Created {
                                location: location.clone(),
                                size: None,
                            })
                            .await
                    }
                    Item::File(location, path) => ingestor.handle_file(location, path).await,
                }
            }
        })
        .buffer_unordered(ingestor.concurrency());
    while let Some(report) = reports.next().await {
        summary.add(&report);
        if let Some(reason) = report.reason() {
            bar.println(format!("failed: {}: {reason}", report.location.key));
        }
        bar.set_message(format!(
            "new {} dup {} skip {} failed {}",
            summary.indexed,
            summary.location_added,
            summary.unchanged,
            summary.failed.len()
        ));
        bar.inc(1);
        let done = bar.position();
        if line_every.is_some_and(|every| done % every == 0 || done == total) {
            eprintln!(
                "progress: {done}/{total} ({:.1}/s) new {} dup {} skip {} failed {}",
                done as f64 / started.elapsed().as_secs_f64().max(1e-9),
                summary.indexed,
                summary.location_added,
                summary.unchanged,
                summary.failed.len()
            );
        }
    }
    bar.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    let total = summary.indexed + summary.location_added + summary.unchanged + summary.failed.len() as u64;
    eprintln!(
        "{total} images in {seconds:.1} s ({:.1}/s): {} indexed, {} duplicates (content already indexed, \
         location added), {} skipped (already indexed), {} failed{}",
        total as f64 / seconds.max(1e-9),
        summary.indexed,
        summary.location_added,
        summary.unchanged,
        summary.failed.len(),
        if ignored > 0 {
            format!("; {ignored} non-image files ignored")
        } else {
            String::new()
        }
    );
    for (key, reason) in &summary.failed {
        eprintln!("  failed: {key}: {reason}");
    }
    let failures: Vec<_> = summary
        .failed
        .iter()
        .map(|(key, reason)| json!({ "key": key, "reason": reason }))
        .collect();
    println!(
        "{}",
        json!({
            "source": options.source,
            "total": total,
            "indexed": summary.indexed,
            "duplicates": summary.location_added,
            "skipped": summary.unchanged,
            "failed": summary.failed.len(),
            "ignored": ignored,
            "failures": failures,
            "seconds": seconds,
            "setup_seconds": setup_seconds,
            "images_per_second": total as f64 / seconds.max(1e-9),
        })
    );
    Ok(summary.failed.is_empty())
}

/// What to ingest, and how many folder entries were skipped as non-images.
async fn list(ingestor: &ClipIngestor, options: &IndexArgs) -> Result<(Vec<Item>, u64)> {
    if let Some((bucket, prefix)) = parse_s3_url(&options.source) {
        let objects = ingestor
            .objects()
            .list(&bucket, &prefix)
            .await
            .with_context(|| format!("listing {}", options.source))?;
        // Keys ending in "/" are folder markers made by consoles, never images. Other keys
        // are all tried: uploads often lack an extension, and the content decides anyway.
        let items = objects
            .into_iter()
            .filter(|o| !o.key.ends_with('/'))
            .map(|o| Item::Object(Location::new(bucket.clone(), o.key)))
            .collect();
        return Ok((items, 0));
    }
    let root = folder_source(&options.source)?;
    let mut files = Vec::new();
    let mut ignored = 0;
    walk(&root, &root, &mut files, &mut ignored)?;
    files.sort();
    let items: Vec<Item> = files
        .into_iter()
        .map(|(key, path)| Item::File(Location::new(options.bucket.clone(), key), path))
        .collect();
    debug_assert!(items.iter().all(|i| !i.location().key.is_empty()));
    Ok((items, ignored))
}

/// A SOURCE that is not `s3://bucket/prefix`: it must be a directory.
pub fn folder_source(source: &str) -> Result<PathBuf> {
    if source.starts_with("s3://") {
        bail!("{source:?} is not an s3://bucket/prefix URL");
    }
    let root = PathBuf::from(source);
    if !root.is_dir() {
        bail!(
            "{} is neither a directory nor an s3://bucket/prefix URL",
            root.display()
        );
    }
    Ok(root)
}

/// Collects image files under `dir` with their key: the path relative to `root`, `/`-separated.
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>, ignored: &mut u64) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // hidden files and folders (.DS_Store, .git)
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, out, ignored)?;
            continue;
        }
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_image {
            *ignored += 1;
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let key = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        out.push((key, path));
    }
    Ok(())
}
