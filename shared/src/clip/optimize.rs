//! An optimised copy of a model directory, for a faster cold start: each tower saved by ONNX
//! Runtime after its hardware-independent graph rewrites, with the weights in a separate file
//! that the runtime maps instead of parsing (ViT-B/32's text tower loads in about a third of the
//! time). The copy embeds exactly as its source does and keeps the source's name, so vectors of
//! the two share an index. `clipsearch optimize-model SRC DST` is the command.

use std::path::{Path, PathBuf};

use super::model_dir::{CANONICAL_TEXT_FILE, CANONICAL_VISION_FILE, OPTIMIZED_RECORD};
use super::{runtime, ModelDir};
use crate::{Error, Result};

/// Files of the source that are not copied: the towers (written optimised instead), any
/// other ONNX graph or weights file, the download's checksums (they name the source's files),
/// hidden files, and directories such as `source/` (the weights an export was built from).
fn is_copied(relative: &str) -> bool {
    let lower = relative.to_ascii_lowercase();
    !(super::model_dir::is_onnx_file(&lower)
        || lower.ends_with(".ort")
        || lower == "sha256sums"
        || lower.starts_with('.')
        || lower == OPTIMIZED_RECORD)
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OptimizedModel {
    pub dir: PathBuf,
    /// The source's model name, which the copy keeps.
    pub name: String,
    /// Tower file in the copy → the source file it was made from.
    pub towers: Vec<(String, PathBuf)>,
}

/// Writes the optimised copy of `source` to `target`, which must not exist yet (it is built
/// beside it under a temporary name and renamed into place, so a failure leaves no half copy).
pub fn optimize_model_dir(ort_library: Option<&Path>, source: &Path, target: &Path) -> Result<OptimizedModel> {
    let model = ModelDir::open(source)?;
    let err = |reason: String| Error::Model {
        dir: target.to_path_buf(),
        reason,
    };
    if target.exists() {
        return Err(err("already exists: name a new directory for the optimised copy".into()));
    }
    let env = runtime::environment(ort_library)?;
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(
        ".{}.partial-{}",
        target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        std::fs::create_dir_all(&staging).map_err(|e| err(format!("{}: {e}", staging.display())))?;
        let mut towers = Vec::new();
        for (file, tower) in [
            (CANONICAL_VISION_FILE, model.vision_model().ok()),
            (CANONICAL_TEXT_FILE, model.text_model().ok()),
        ] {
            if let Some(tower) = tower {
                runtime::save_optimized(env, tower, &staging.join(file))?;
                towers.push((file.to_string(), tower.to_path_buf()));
            }
        }
        copy_the_rest(&model.root, &staging).map_err(&err)?;
        let record = serde_json::json!({
            "name": model.name,
            "source": model.root.display().to_string(),
            "onnxruntime": runtime::ORT_LIBRARY_NAME,
            "graph_optimization": "extended (hardware-independent); the layout rewrites run at load",
            "weights": "external data beside each tower (<tower>.onnx.data)",
            "towers": towers.iter().map(|(file, from)| (file.clone(), from.display().to_string()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        });
        let text = serde_json::to_string_pretty(&record).expect("a JSON value serialises");
        std::fs::write(staging.join(OPTIMIZED_RECORD), text + "\n").map_err(|e| err(e.to_string()))?;
        std::fs::rename(&staging, target).map_err(|e| err(format!("renaming {}: {e}", staging.display())))?;
        Ok(towers)
    })();
    match result {
        Ok(towers) => Ok(OptimizedModel {
            dir: target.to_path_buf(),
            name: model.name,
            towers,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// Copies the configuration and tokenizer files (every top-level file `is_copied` keeps).
fn copy_the_rest(source: &Path, staging: &Path) -> std::result::Result<(), String> {
    let entries = std::fs::read_dir(source).map_err(|e| format!("{}: {e}", source.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(|e| e.to_string())?.is_file()
            || entry.path().metadata().is_ok_and(|m| m.is_file());
        if is_file && is_copied(&name) {
            std::fs::copy(entry.path(), staging.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_weights_and_checksums_are_not_copied() {
        for kept in ["config.json", "tokenizer.json", "quantization.json", "text_tower.json"] {
            assert!(is_copied(kept), "{kept}");
        }
        for skipped in [
            "vision_model.onnx",
            "text_model.onnx.data",
            "model.onnx_data",
            "x.ort",
            "SHA256SUMS",
            ".stamp",
        ] {
            assert!(!is_copied(skipped), "{skipped}");
        }
        assert!(!is_copied(OPTIMIZED_RECORD));
    }
}
