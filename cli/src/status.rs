//! `clipsearch status s3://bucket/key`: where one object stands with ingest (the same answer as
//! the API's `GET /status`), and `clipsearch status --refused s3://bucket/prefix`: every
//! refused or failing object under a prefix, with its reason.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clipsearch::objects::{parse_s3_url, S3Objects};
use clipsearch::status::{status_of, IngestStatus, StatusStore};
use clipsearch::store::Location;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// `s3://bucket/key` of one object, or with `--refused` `s3://bucket/prefix`.
    pub target: String,
    /// List the refused and failing objects under the prefix instead (S3 only, no Milvus).
    #[arg(long)]
    pub refused: bool,
    /// Model directory (it names the index the status is read from).
    #[arg(long, env = "CLIPSEARCH_MODEL_DIR", required_unless_present = "refused")]
    pub model: Option<PathBuf>,
}

/// Records read per listing page.
const PAGE: usize = 1000;

pub fn command(args: StatusArgs) -> Result<bool> {
    crate::index::quiet_tracing();
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

async fn run(args: StatusArgs) -> Result<bool> {
    let Some((bucket, key)) = parse_s3_url(&args.target) else {
        bail!("{:?} is not an s3://bucket/key URL", args.target);
    };
    let objects = crate::wiring::s3().await?;
    if args.refused {
        return list_refused(&objects, &bucket, &key).await;
    }
    if key.is_empty() {
        bail!("{:?} names no key", args.target);
    }
    let index = crate::wiring::index_of(args.model.as_deref()).await?;
    let status = status_of(&index, &objects, &Location::new(bucket, key)).await?;
    println!("{}", serde_json::to_string(&status)?);
    // Like `test -e`: success when the object is indexed.
    Ok(matches!(status, IngestStatus::Indexed { .. }))
}

/// One JSON line per record, in key order; a count on stderr.
async fn list_refused(objects: &S3Objects, bucket: &str, prefix: &str) -> Result<bool> {
    let mut after: Option<String> = None;
    let mut count = 0u64;
    loop {
        let (records, next) = objects
            .list_statuses(bucket, prefix, after.as_deref(), PAGE)
            .await
            .with_context(|| format!("listing status records of s3://{bucket}/{prefix}"))?;
        for record in &records {
            println!("{}", serde_json::to_string(record)?);
        }
        count += records.len() as u64;
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    eprintln!("{count} object(s) under s3://{bucket}/{prefix} refused or failing");
    Ok(true)
}
