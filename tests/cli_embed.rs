//! `clipsearch embed` as a user runs it: JSON lines, per-input errors, exit codes, crops.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn clipsearch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipsearch"));
    cmd.current_dir(repo())
        .env("CLIPSEARCH_MODEL_DIR", repo().join("tests/fixtures/tiny-clip"));
    cmd
}

fn lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect()
}

#[test]
fn embed_image_prints_one_line_per_file_and_exits_1_on_failures() {
    let crops = std::env::temp_dir().join(format!("clipsearch-crops-{}", std::process::id()));
    let out = clipsearch()
        .args(["embed", "image", "--save-crops"])
        .arg(&crops)
        .args([
            "tests/fixtures/parity/images/chelsea.jpg",
            "tests/fixtures/bad/notes.txt",
            "tests/fixtures/parity/images/exif_orientation_6_chelsea.jpg",
            "does/not/exist.png",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["file"], "tests/fixtures/parity/images/chelsea.jpg");
    let v: Vec<f64> = rows[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 512);
    assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4, "unit length");
    assert!(rows[1]["error"].as_str().unwrap().contains("not an image"));
    assert!(rows[2]["embedding"].is_array());
    assert!(rows[3]["error"].as_str().unwrap().contains("cannot read"));
    // The crops are the 224x224 images the model saw, upright for the EXIF-rotated file.
    let crop = image::open(crops.join("exif_orientation_6_chelsea.jpg.png")).unwrap();
    assert_eq!((crop.width(), crop.height()), (224, 224));
    let want =
        image::open(repo().join("tests/fixtures/parity/expected/preprocessed/exif_orientation_6_chelsea.jpg.png"))
            .unwrap();
    let diff: f64 = crop
        .to_rgb8()
        .as_raw()
        .iter()
        .zip(want.to_rgb8().as_raw())
        .map(|(a, b)| a.abs_diff(*b) as f64)
        .sum::<f64>()
        / (224.0 * 224.0 * 3.0);
    assert!(diff < 0.5, "saved crop differs from the reference crop by {diff}");
    assert!(!crops.join("notes.txt.png").exists());
    std::fs::remove_dir_all(&crops).ok();
}

#[test]
fn embed_text_refuses_empty_text_on_its_line() {
    let out = clipsearch()
        .args(["embed", "text", "a photo of a red circle", "", "blue square"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["text"], "a photo of a red circle");
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 512);
    assert!(rows[1]["error"].as_str().unwrap().contains("empty text"));
    assert!(rows[2]["embedding"].is_array());

    let ok = clipsearch().args(["embed", "text", "a red star"]).output().unwrap();
    assert!(ok.status.success());
}

#[test]
fn a_missing_onnx_runtime_says_where_it_looked() {
    let out = clipsearch()
        .env("ORT_DYLIB_PATH", "/nowhere/libonnxruntime.so.1.31.1")
        .args(["embed", "text", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nowhere/libonnxruntime.so.1.31.1"), "{stderr}");
    assert!(stderr.contains("make setup"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_model_directory_is_a_clear_error() {
    let out = clipsearch()
        .args(["embed", "text", "--model", "/no/such/model", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/no/such/model") && stderr.contains("not a directory"),
        "{stderr}"
    );
}

/// A text tower of another image space stops every command at start, `index` included (it
/// embeds only images): nothing is embedded or written (Milvus here is a closed port, which
/// would be the error if the command got that far).
#[test]
fn a_text_tower_of_another_space_stops_index_before_anything_is_written() {
    let out = clipsearch()
        .env(
            "CLIPSEARCH_TEXT_MODEL_DIR",
            repo().join("tests/fixtures/tiny-multilingual"),
        )
        .env("MILVUS_URI", "http://127.0.0.1:1")
        .args([
            "index",
            "--quiet",
            "--model",
            "tests/fixtures/tiny-siglip",
            "tests/fixtures/parity/images",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("maps into the image space of \"tiny-clip\"") && stderr.contains("\"tiny-siglip\""),
        "{stderr}"
    );
    assert!(!stderr.contains("127.0.0.1:1"), "refused before Milvus: {stderr}");
}

/// Any Unicode query goes through the command line unchanged (CJK, combining accents, RTL
/// scripts, emoji with joiners, bidi controls): each line echoes the text exactly and carries
/// the embedding the library computes for it (cosine > 0.99999), with the model's own tower and with the
/// multilingual one.
#[test]
fn embed_text_takes_any_unicode_exactly() {
    use clipsearch::clip::{Clip, Encoder, Towers};
    use clipsearch::config::ClipSettings;
    let texts = [
        "红色圆形的图片",
        "一張紅色圓形的照片",
        "赤い円の写真",
        "una foto de un ci\u{301}rculo rojo",
        "صورة دائرة حمراء",
        "תמונה של עיגול אדום",
        "🔴 👩\u{200d}🎨 ⭕\u{fe0f}",
        "\u{202e}a photo of a red circle\u{202c}",
    ];
    for tower in [None, Some(repo().join("tests/fixtures/tiny-multilingual"))] {
        let mut cmd = clipsearch();
        if let Some(tower) = &tower {
            cmd.env("CLIPSEARCH_TEXT_MODEL_DIR", tower);
        }
        let out = cmd.arg("embed").arg("text").args(texts).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rows = lines(&out.stdout);
        let clip = Clip::load(
            &ClipSettings {
                model_dir: Some(repo().join("tests/fixtures/tiny-clip")),
                text_model_dir: tower.clone(),
                ..ClipSettings::from_env().unwrap()
            },
            Towers::TEXT,
        )
        .unwrap();
        assert_eq!(rows.len(), texts.len());
        for (row, text) in rows.iter().zip(texts) {
            assert_eq!(row["text"], text, "echoed exactly");
            let printed: Vec<f32> = row["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            // The command embeds its arguments as one padded batch, the library this one text
            // alone: equal up to float summation order.
            let alone = clip.embed_text(text).unwrap();
            let dot: f32 = printed.iter().zip(&alone).map(|(a, b)| a * b).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cosine = dot / (norm(&printed) * norm(&alone));
            assert!(cosine > 0.99999, "{text:?} (tower {tower:?}): cosine {cosine}");
        }
    }
}
