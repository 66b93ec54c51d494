//! `clipsearch reconcile SOURCE [--apply]`: compare the index with a bucket prefix or a local
//! folder, print each difference, and with `--apply` repair it (the library's
//! `Ingestor::reconcile_page` does the comparing and repairing; this is the walk and the
//! report). Resumable: each finished page prints its last key for `--start-after`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clipsearch::ingest::reconcile::{Difference, Finding, Source};
use clipsearch::ingest::{file_version, ClipIngestor};
use clipsearch::objects::{parse_s3_url, ObjectSummary};
use clipsearch::store::KeyRange;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// `s3://bucket/prefix` or a local directory (recorded under `--bucket`, as `index` does).
    pub source: String,
    /// Model directory in Hugging Face export layout (names the collection's model).
    #[arg(long, env = "CLIPSEARCH_MODEL_DIR")]
    pub model: PathBuf,
    /// Bucket name recorded for a folder's images.
    #[arg(long, default_value = "local", value_name = "NAME")]
    pub bucket: String,
    /// Repair every difference (index what is missing or changed, remove what is gone).
    #[arg(long)]
    pub apply: bool,
    /// Resume a walk after this key (the `resume_after` of an interrupted run).
    #[arg(long, value_name = "KEY")]
    pub start_after: Option<String>,
    /// Keys compared per page (one listing call and one index query each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
    /// No progress bar or checkpoint lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn command(args: ReconcileArgs) -> Result<bool> {
    crate::index::quiet_tracing();
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

/// The listing, a page at a time, in key order.
enum Walk {
    Bucket { prefix: String },
    Folder { files: Vec<ObjectSummary>, next: usize },
}

impl Walk {
    async fn page(
        &mut self,
        ingestor: &ClipIngestor,
        bucket: &str,
        after: Option<&str>,
        size: i32,
    ) -> Result<(Vec<ObjectSummary>, Option<String>)> {
        match self {
            Walk::Bucket { prefix } => {
                let (page, next) = ingestor
                    .objects()
                    .list_page(bucket, prefix, after, size)
                    .await
                    .with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
                // Folder markers ("photos/") are never images.
                Ok((page.into_iter().filter(|o| !o.key.ends_with('/')).collect(), next))
            }
            Walk::Folder { files, next } => {
                let start = (*next).max(after.map_or(0, |a| files.partition_point(|f| f.key.as_str() <= a)));
                let end = (start + size as usize).min(files.len());
                *next = end;
                let more = (end < files.len()).then(|| files[end - 1].key.clone());
                Ok((files[start..end].to_vec(), more))
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    checked: u64,
    missing: u64,
    stale: u64,
    changed: u64,
    thumbnails: u64,
    repaired: u64,
    refused: u64,
    failed: u64,
}

impl Counts {
    /// Counts one finding; its JSON line.
    fn record(&mut self, finding: &Finding) -> serde_json::Value {
        match finding.difference {
            Difference::Missing => self.missing += 1,
            Difference::Stale => self.stale += 1,
            Difference::Changed => self.changed += 1,
            Difference::ThumbnailMissing | Difference::ThumbnailOrphaned => self.thumbnails += 1,
        }
        let repair = match &finding.repair {
            None => serde_json::Value::Null,
            Some(Ok(outcome)) => {
                self.repaired += 1;
                json!(outcome.as_str())
            }
            Some(Err(e)) => {
                if e.is_bad_input() {
                    self.refused += 1;
                } else {
                    self.failed += 1;
                }
                json!(format!("{}: {e}", e.code()))
            }
        };
        json!({
            "difference": finding.difference.as_str(),
            "bucket": finding.location.bucket,
            "key": finding.location.key,
            "repair": repair,
        })
    }
}

pub async fn run(options: ReconcileArgs) -> Result<bool> {
    let started = Instant::now();
    let ingestor = crate::wiring::ingestor(Some(&options.model)).await?;
    let (bucket, prefix, source, mut walk) = match parse_s3_url(&options.source) {
        Some((bucket, prefix)) => (bucket, prefix.clone(), Source::Bucket, Walk::Bucket { prefix }),
        None => {
            let root = crate::index::folder_source(&options.source)?;
            let mut files = Vec::new();
            let mut ignored = 0;
            crate::index::walk(&root, &root, &mut files, &mut ignored)?;
            let mut listed = files
                .into_iter()
                .map(|(key, path)| {
                    let metadata = std::fs::metadata(&path).with_context(|| path.display().to_string())?;
                    let version = file_version(&metadata);
                    Ok(ObjectSummary {
                        key,
                        size: version.size,
                        version,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            listed.sort_by(|a, b| a.key.cmp(&b.key));
            (
                options.bucket.clone(),
                String::new(),
                Source::Folder(root),
                Walk::Folder { files: listed, next: 0 },
            )
        }
    };

    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} keys checked {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let checkpoints = !options.quiet && !std::io::stderr().is_terminal();

    let mut counts = Counts::default();
    let mut after = options.start_after.clone();
    // A bucket's thumbnails are listed once and kept in step with the walk (docs/ingest.md).
    let mut thumbnails = match source {
        Source::Bucket => ingestor
            .thumbnail_check(&bucket)
            .await
            .with_context(|| format!("listing the thumbnails of s3://{bucket}"))?,
        Source::Folder(_) => None,
    };
    loop {
        // `next`: the last key listed when more follow (a page's own keys may end earlier:
        // folder markers and status records are not in it).
        let (page, next) = walk
            .page(&ingestor, &bucket, after.as_deref(), options.page_size)
            .await?;
        let range = KeyRange {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            after: after.clone(),
            through: next.clone(),
        };
        let findings = ingestor
            .reconcile_page(&range, &page, &source, options.apply, thumbnails.as_mut())
            .await
            .with_context(|| format!("comparing the index with {} after {:?}", options.source, after))?;
        counts.checked += page.len() as u64;
        for finding in &findings {
            let line = counts.record(finding);
            bar.suspend(|| println!("{line}"));
        }
        bar.inc(page.len() as u64);
        bar.set_message(format!(
            "missing {} stale {} changed {}",
            counts.missing, counts.stale, counts.changed
        ));
        if let Some(last) = next.clone().or_else(|| page.last().map(|o| o.key.clone())) {
            after = Some(last);
        }
        if checkpoints {
            eprintln!(
                "progress: {} keys checked; resume with --start-after {:?}",
                counts.checked,
                after.as_deref().unwrap_or("")
            );
        }
        if next.is_none() {
            break;
        }
    }
    // Orphans are judged once the index holds every object (after repairs, or when nothing was
    // missing): a key without its row would make its content's thumbnail look orphaned.
    let complete = options.apply || counts.missing + counts.changed == 0;
    if let Some(check) = thumbnails.as_ref().filter(|_| complete) {
        let orphans = ingestor
            .orphaned_thumbnails(&bucket, check, options.apply)
            .await
            .with_context(|| format!("checking the thumbnails of s3://{bucket}"))?;
        for finding in &orphans {
            let line = counts.record(finding);
            bar.suspend(|| println!("{line}"));
        }
    }
    bar.finish_and_clear();

    let differences = counts.missing + counts.stale + counts.changed + counts.thumbnails;
    println!(
        "{}",
        json!({ "summary": {
            "source": options.source,
            "bucket": bucket,
            "applied": options.apply,
            "checked": counts.checked,
            "differences": differences,
            "missing": counts.missing,
            "stale": counts.stale,
            "changed": counts.changed,
            "thumbnails": counts.thumbnails,
            "repaired": counts.repaired,
            "refused": counts.refused,
            "failed": counts.failed,
            "resume_after": after,
            "seconds": started.elapsed().as_secs_f64(),
        }})
    );
    // Like `diff`: success means the index equals the source (now, after repairs); refused
    // objects (not images) are not the index's to hold.
    Ok(if options.apply {
        counts.failed == 0
    } else {
        differences == 0
    })
}
