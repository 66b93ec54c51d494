//! `clipsearch embed image|text`: one JSON line per input, errors on their own line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;
use serde_json::json;

pub fn images(settings: &ClipSettings, files: &[PathBuf], save_crops: Option<&Path>) -> Result<bool> {
    let clip = Clip::load(settings, Towers::IMAGE)?;
    let encoder = clip.image()?;
    if let Some(dir) = save_crops {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut all_ok = true;
    let stdout = std::io::stdout();
    // Bounded chunks: decoded crops are small, but the encoded files are read into memory.
    for chunk in files.chunks(64) {
        let reads: Vec<std::io::Result<Vec<u8>>> = chunk.iter().map(std::fs::read).collect();
        let bytes: Vec<&[u8]> = reads.iter().map(|r| r.as_deref().unwrap_or(&[])).collect();
        let crop_errors = std::sync::Mutex::new(Vec::new());
        let results = encoder.embed_many(&bytes, |i, prepared| {
            if let Some(dir) = save_crops {
                let name = chunk[i].file_name().unwrap_or_default().to_string_lossy();
                let path = dir.join(format!("{name}.png"));
                if let Err(e) = prepared.crop.save(&path) {
                    crop_errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{}: {e}", path.display()));
                }
            }
        });
        let mut out = stdout.lock();
        for ((path, read), result) in chunk.iter().zip(&reads).zip(results) {
            let file = path.to_string_lossy();
            let line = match (read, result) {
                (Err(e), _) => json!({"file": file, "error": format!("cannot read: {e}")}),
                (Ok(_), Err(e)) => json!({"file": file, "error": e.to_string()}),
                (Ok(_), Ok(emb)) => json!({"file": file, "embedding": emb.embedding}),
            };
            all_ok &= line.get("error").is_none();
            writeln!(out, "{line}")?;
        }
        for e in crop_errors.into_inner().unwrap_or_default() {
            eprintln!("warning: could not save crop {e}");
            all_ok = false;
        }
    }
    Ok(all_ok)
}

pub fn texts(settings: &ClipSettings, texts: &[String]) -> Result<bool> {
    let clip = Clip::load(settings, Towers::TEXT)?;
    let results = clip.text()?.embed_many(texts);
    let mut out = std::io::stdout().lock();
    let mut all_ok = true;
    for (text, result) in texts.iter().zip(results) {
        let line = match result {
            Ok(v) => json!({"text": text, "embedding": v}),
            Err(e) => {
                all_ok = false;
                json!({"text": text, "error": e.to_string()})
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(all_ok)
}
