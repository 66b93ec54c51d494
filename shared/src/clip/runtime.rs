//! ONNX Runtime: loaded once per process from a shared library found at run time
//! (`load-dynamic`), so one binary runs with the library from the PyPI wheel locally, beside
//! `bootstrap` on Lambda, or from a layer.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::config::ClipSettings;
use crate::{Error, Result};

/// The library file name `make setup` extracts from the `onnxruntime==1.31.1` wheel.
pub const ORT_LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
/// Serialises the first initialisation so two threads don't both try to build an environment
/// (ort allows one per process).
static INIT: Mutex<()> = Mutex::new(());

/// Where we look when `ORT_DYLIB_PATH` is not set, in order.
pub fn default_library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            // Lambda: beside `bootstrap`; local builds: target/release/ next to the binaries.
            out.push(dir.join(ORT_LIBRARY_NAME));
            // Local builds: <repo>/target/<profile>/<bin> → <repo>/vendor/onnxruntime/.
            for up in dir.ancestors().skip(1).take(3) {
                out.push(up.join("vendor/onnxruntime").join(ORT_LIBRARY_NAME));
            }
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        for up in cwd.ancestors().take(3) {
            out.push(up.join("vendor/onnxruntime").join(ORT_LIBRARY_NAME));
        }
    }
    // Lambda layers are unpacked under /opt; /opt/lib is on the loader path there.
    out.push(PathBuf::from("/opt/lib").join(ORT_LIBRARY_NAME));
    out.push(PathBuf::from("/opt").join(ORT_LIBRARY_NAME));
    out
}

/// Loads ONNX Runtime (once). `explicit` is `ORT_DYLIB_PATH` or a flag; when it is set it is the
/// only place looked at, so a typo is reported instead of silently using another copy.
pub fn environment(explicit: Option<&Path>) -> Result<&'static Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let candidates = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => default_library_candidates(),
    };
    let path = candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::RuntimeMissing {
            looked_in: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let load_err = |reason: String| Error::RuntimeLoad {
        path: path.clone(),
        reason,
    };
    let builder = ort::init_from(&path).map_err(|e| load_err(e.to_string()))?;
    let env = builder
        .with_name("clipsearch")
        .build()
        .map_err(|e| load_err(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// Thread settings for a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Threads {
    /// 0 = ONNX Runtime's default (one per physical core).
    pub intra: usize,
    pub inter: usize,
}

/// A session of `model` with the settings' ONNX Runtime library and threads: what each
/// encoder loads its tower with.
pub fn session_for(model: &Path, settings: &ClipSettings) -> Result<Session> {
    let env = environment(settings.ort_library.as_deref())?;
    session(
        env,
        model,
        Threads {
            intra: settings.intra_threads,
            inter: settings.inter_threads,
        },
    )
}

pub fn session(env: &Environment, model: &Path, threads: Threads) -> Result<Session> {
    let err = |e: &dyn std::fmt::Display| Error::Model {
        dir: model.to_path_buf(),
        reason: format!("ONNX Runtime could not load it: {e}"),
    };
    let mut builder = Session::builder(env)
        .map_err(|e| err(&e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| err(&e))?;
    if threads.intra > 0 {
        builder = builder.with_intra_threads(threads.intra).map_err(|e| err(&e))?;
    }
    if threads.inter > 0 {
        builder = builder.with_inter_threads(threads.inter).map_err(|e| err(&e))?;
    }
    builder.commit_from_file(model).map_err(|e| err(&e))
}

/// Writes `model` to `out` after ONNX Runtime's hardware-independent graph rewrites (its
/// "extended" level: constant folding, the attention/GELU/LayerNorm fusions), with the weights in
/// `out` + ".data" beside it. Loading that pair skips the rewrites and, above all, the protobuf
/// parse of the weights, which is most of a cold start; the layout rewrites of the "all" level
/// still run at load, so the copy is not tied to this machine's CPU.
pub fn save_optimized(env: &Environment, model: &Path, out: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Model {
        dir: model.to_path_buf(),
        reason: format!(
            "ONNX Runtime could not write its optimised copy to {}: {e}",
            out.display()
        ),
    };
    let weights = out
        .file_name()
        .map(|n| format!("{}.data", n.to_string_lossy()))
        .ok_or_else(|| err(&"the output has no file name"))?;
    Session::builder(env)
        .map_err(|e| err(&e))?
        .with_optimization_level(GraphOptimizationLevel::Level2)
        .map_err(|e| err(&e))?
        .with_optimized_model_path(out)
        .map_err(|e| err(&e))?
        .with_config_entry("session.optimized_model_external_initializers_file_name", weights)
        .map_err(|e| err(&e))?
        // Small constants stay inline; every weight matrix goes to the data file.
        .with_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes",
            "1024",
        )
        .map_err(|e| err(&e))?
        .commit_from_file(model)
        .map(drop)
        .map_err(|e| err(&e))
}
