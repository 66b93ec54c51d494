//! `clipsearch optimize-model`: the copy embeds exactly as its source, keeps its name, and a
//! refused run leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clipsearch::clip::ModelDir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn clipsearch(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipsearch"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clipsearch-optimize-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn optimize(source: &Path, target: &Path) -> Output {
    clipsearch(&["optimize-model".as_ref(), source.as_os_str(), target.as_os_str()])
}

/// The embeddings `clipsearch embed` prints for `inputs` with the model in `dir`.
fn embeddings(dir: &Path, kind: &str, inputs: &[&str]) -> Vec<Vec<f64>> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["embed".as_ref(), kind.as_ref(), "--model".as_ref(), dir.as_os_str()];
    args.extend(inputs.iter().map(std::ffi::OsStr::new));
    let out = clipsearch(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            row["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn the_copy_embeds_as_its_source_and_keeps_its_name() {
    let work = scratch("copy");
    for fixture in ["tiny-clip", "tiny-clip-int8"] {
        let source = repo().join("tests/fixtures").join(fixture);
        let target = work.join(format!("{fixture}-fast"));
        let out = optimize(&source, &target);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want_name = ModelDir::open(&source).unwrap().name;
        assert_eq!(report["name"], want_name.as_str());
        assert_eq!(
            ModelDir::open(&target).unwrap().name,
            want_name,
            "the copy's vectors are the source's"
        );
        for file in [
            "vision_model.onnx.data",
            "text_model.onnx.data",
            "optimized.json",
            "tokenizer.json",
        ] {
            assert!(target.join(file).is_file(), "{fixture}: {file} written");
        }
        assert!(
            !target.join("SHA256SUMS").exists(),
            "the source's checksums do not describe the copy"
        );
        let images = [
            "tests/fixtures/parity/images/chelsea.jpg",
            "tests/fixtures/parity/images/exif_orientation_6_chelsea.jpg",
        ];
        let texts = ["a photo of a cat", "ein rotes Quadrat", "红色的圆"];
        let image_diff = max_difference(
            &embeddings(&source, "image", &images),
            &embeddings(&target, "image", &images),
        );
        let text_diff = max_difference(
            &embeddings(&source, "text", &texts),
            &embeddings(&target, "text", &texts),
        );
        println!("{fixture}: largest difference to the source, image {image_diff:e}, text {text_diff:e}");
        assert!(
            image_diff < 1e-5 && text_diff < 1e-5,
            "{fixture}: {image_diff} {text_diff}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_refused_run_writes_nothing() {
    let work = scratch("refused");
    let source = repo().join("tests/fixtures/tiny-clip");
    let existing = work.join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    let out = optimize(&source, &existing);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_dir(&existing).unwrap().count(),
        0,
        "an existing directory is left alone"
    );

    let not_a_model = work.join("not-a-model");
    std::fs::create_dir_all(&not_a_model).unwrap();
    std::fs::write(not_a_model.join("tokenizer.json"), "{}").unwrap();
    let out = optimize(&not_a_model, &work.join("out"));
    assert_eq!(out.status.code(), Some(2));
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "no output and no partial copy: {left:?}");
    let _ = std::fs::remove_dir_all(&work);
}

fn package_layer(source: &Path, zip: &Path, limit: Option<&str>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.current_dir(repo())
        .arg("scripts/package-model-layer.sh")
        .arg(source)
        .arg(zip)
        .env("CLIPSEARCH_BIN", env!("CARGO_BIN_EXE_clipsearch"));
    if let Some(limit) = limit {
        cmd.env("CLIPSEARCH_LAYER_LIMIT_BYTES", limit);
    }
    cmd.output().unwrap()
}

#[test]
fn the_model_layer_unpacks_to_a_model_that_embeds_as_its_source() {
    let work = scratch("layer");
    let source = repo().join("tests/fixtures/tiny-clip-int8");
    let zip = work.join("model.zip");
    let out = package_layer(&source, &zip, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    // Lambda unpacks a layer under /opt; the template points CLIPSEARCH_MODEL_DIR at /opt/model.
    let opt = work.join("opt");
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&opt)
        .status()
        .unwrap();
    assert!(unzip.success());
    let unpacked = opt.join("model");
    assert_eq!(ModelDir::open(&unpacked).unwrap().name, "tiny-clip-int8");
    let texts = ["a red circle"];
    let images = ["tests/fixtures/parity/images/chelsea.jpg"];
    assert_eq!(
        max_difference(
            &embeddings(&source, "text", &texts),
            &embeddings(&unpacked, "text", &texts)
        ),
        0.0
    );
    assert_eq!(
        max_difference(
            &embeddings(&source, "image", &images),
            &embeddings(&unpacked, "image", &images)
        ),
        0.0
    );

    let too_big = work.join("too-big.zip");
    let out = package_layer(&source, &too_big, Some("1000000"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too large for a layer"));
    assert!(!too_big.exists() && !work.join("too-big.zip.tmp").exists());
    let _ = std::fs::remove_dir_all(&work);
}
