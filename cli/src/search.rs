//! `clipsearch search`: the search use case from a terminal, against the configured Milvus.
//! Results carry no presigned URL (a terminal has no use for one); `--json` prints one
//! `{"id", "score", "bucket", "key"}` object per line, best first.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use clipsearch::clip::Towers;
use clipsearch::search::{QueryParts, SearchOptions, SearchParams, SearchSettings};

#[derive(Args)]
#[command(group(ArgGroup::new("query").required(true).args(["text", "image", "id"])))]
pub struct SearchArgs {
    /// Search by text, e.g. "a photo of a red circle".
    #[arg(long)]
    text: Option<String>,
    /// Search by an image file.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// More like an indexed image (its sha256), which is left out of the results.
    #[arg(long, value_name = "HASH")]
    id: Option<String>,
    /// Number of results (1..=100).
    #[arg(long, default_value_t = 10)]
    top_k: i64,
    /// Drop results whose cosine similarity is lower.
    #[arg(long)]
    min_score: Option<f64>,
    /// Keep results scoring at least this share of the best one (0..=1), e.g. 0.9.
    #[arg(long)]
    min_score_ratio: Option<f64>,
    /// Only images stored under a key starting with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Skip this many results (the next page: what the previous run printed as next offset).
    #[arg(long)]
    offset: Option<i64>,
    /// Only these content types, comma-separated (image/jpeg,image/png).
    #[arg(long, value_name = "TYPES")]
    content_type: Option<String>,
    /// Only images at least this many pixels wide.
    #[arg(long, value_name = "PIXELS")]
    min_width: Option<i64>,
    /// Only images at least this many pixels tall.
    #[arg(long, value_name = "PIXELS")]
    min_height: Option<i64>,
    /// Only photos taken at or after this (RFC 3339 time or YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    taken_after: Option<String>,
    /// Only photos taken before this (RFC 3339 time or YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    taken_before: Option<String>,
    /// relevance (default), newest or oldest: the date orders sort the results that pass the
    /// score cuts by capture time.
    #[arg(long)]
    sort: Option<String>,
    /// One JSON object per result and line.
    #[arg(long)]
    json: bool,
    /// Model directory in Hugging Face export layout.
    #[arg(long, env = "CLIPSEARCH_MODEL_DIR")]
    model: PathBuf,
}

pub fn command(args: SearchArgs) -> Result<bool> {
    crate::wiring::log_to_stderr("warn");
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

async fn run(args: SearchArgs) -> Result<bool> {
    // Only the tower the query needs (an id query needs none, but the model names the index).
    let towers = if args.image.is_some() {
        Towers::IMAGE
    } else {
        Towers::TEXT
    };
    let settings = SearchSettings {
        enable_text: towers.text,
        enable_image: towers.image,
        ..SearchSettings::from_env()?
    };
    let image = match &args.image {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let params = SearchParams::build(
        QueryParts {
            text: args.text.clone(),
            image,
            image_url: None,
            id: args.id.clone(),
        },
        SearchOptions {
            top_k: Some(args.top_k),
            offset: args.offset,
            min_score: args.min_score,
            min_score_ratio: args.min_score_ratio,
            prefix: args.prefix.clone(),
            content_type: args.content_type.clone(),
            min_width: args.min_width,
            min_height: args.min_height,
            taken_after: args.taken_after.clone(),
            taken_before: args.taken_before.clone(),
            sort: args.sort.clone(),
        },
        &settings,
    )?;

    let searcher = crate::wiring::searcher(&args.model, towers, settings).await?;
    let answer = searcher.search(params).await?;

    let mut out = std::io::stdout().lock();
    if args.json {
        for hit in &answer.results {
            let line = serde_json::json!({
                "id": hit.id, "score": hit.score, "bucket": hit.bucket, "key": hit.key,
                "captured_at": hit.captured_at, "captured_from": hit.captured_from,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        for (rank, hit) in answer.results.iter().enumerate() {
            writeln!(
                out,
                "{:>3}  {:.4}  {}  s3://{}/{}",
                rank + 1,
                hit.score,
                &hit.id[..12],
                hit.bucket,
                hit.key
            )?;
        }
        eprintln!(
            "{} result(s) in {:.1} ms ({})",
            answer.results.len(),
            answer.took_ms,
            answer.model
        );
    }
    if let Some(next) = answer.next_offset {
        eprintln!("more results: add --offset {next}");
    }
    Ok(true)
}
