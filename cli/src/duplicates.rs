//! `clipsearch duplicates [--threshold T] [--prefix P] [--json]`: the duplicate groups of the
//! index (the search function's `GET /duplicates`, without its cap on how many images one call
//! compares), for a user to keep one of each.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clipsearch::clip::Towers;
use clipsearch::search::{DuplicatesRequest, SearchSettings};

#[derive(clap::Args)]
pub struct DuplicatesArgs {
    /// Cosine similarity at or above which two images are near-duplicates (default 0.93,
    /// measured for tiny-clip: measure your model's, docs/search.md).
    #[arg(long)]
    threshold: Option<f64>,
    /// Only images stored under a key starting with this.
    #[arg(long)]
    prefix: Option<String>,
    /// One JSON object per group and line.
    #[arg(long)]
    json: bool,
    /// Model directory (it names the index).
    #[arg(long, env = "CLIPSEARCH_MODEL_DIR")]
    model: PathBuf,
}

pub fn command(args: DuplicatesArgs) -> Result<bool> {
    crate::index::quiet_tracing();
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

async fn run(args: DuplicatesArgs) -> Result<bool> {
    // Only stored vectors are compared: the text tower, the smaller one, names the index.
    let searcher = crate::wiring::searcher(&args.model, Towers::TEXT, SearchSettings::from_env()?).await?;
    let mut out = std::io::stdout().lock();
    let mut request = DuplicatesRequest {
        threshold: args.threshold,
        prefix: args.prefix.clone(),
        offset: Some(0),
        limit: Some(clipsearch::search::MAX_GROUPS_PER_PAGE as i64),
    };
    loop {
        let page = searcher.duplicates(&request, usize::MAX).await?;
        for group in &page.groups {
            if args.json {
                writeln!(out, "{}", serde_json::to_string(group)?)?;
                continue;
            }
            writeln!(out, "{} group of {}:", group.kind, group.members.len())?;
            for (i, m) in group.members.iter().enumerate() {
                let keep = if i == 0 { "keep" } else { "    " };
                writeln!(
                    out,
                    "  {keep}  {:.4}  {}x{}  {:>10} B  s3://{}/{}",
                    m.similarity, m.width, m.height, m.byte_size, m.bucket, m.key
                )?;
            }
        }
        match page.next_offset {
            Some(next) => request.offset = Some(next as i64),
            None => {
                eprintln!(
                    "{} group(s) among {} image(s) at threshold {} ({}, {:.0} ms)",
                    page.total_groups, page.scanned, page.threshold, page.model, page.took_ms
                );
                return Ok(true);
            }
        }
    }
}
