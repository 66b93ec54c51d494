//! `scripts/download-model.sh` against a stand-in hub (`tests/hub/hf_mirror.py`, the hub's
//! `resolve/<revision>/<path>` endpoint with byte ranges): a cut-off download resumes, a second
//! run verifies every file instead of fetching, a corrupted file is found and fetched again, a
//! wrong pin or revision keeps nothing and says what to do, and what arrives is a model
//! clipsearch loads and embeds with exactly as the original.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use clipsearch::clip::{Clip, Towers};
use clipsearch::config::ClipSettings;
use sha2::{Digest, Sha256};

const REPO: &str = "test-owner/tiny-clip";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const FILES: [&str; 5] = [
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "vision_model.onnx",
    "text_model.onnx",
];

struct Hub {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hub {
    /// Requests the hub has served so far, as `path range` lines.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The hub's copy of tiny-clip under ROOT/test-owner/tiny-clip, pinned at REVISION.
fn hub_root(work: &Path) -> PathBuf {
    let root = work.join("hub");
    let repo = root.join(REPO);
    std::fs::create_dir_all(repo.join("onnx")).unwrap();
    std::fs::write(repo.join(".revision"), REVISION).unwrap();
    for file in FILES {
        let to = if file.ends_with(".onnx") {
            repo.join("onnx").join(file)
        } else {
            repo.join(file)
        };
        std::fs::copy(common::tiny_clip_dir().join(file), to).unwrap();
    }
    root
}

fn start_hub(root: &Path, log: PathBuf, cut: &str) -> Hub {
    let mut child = Command::new(common::python())
        .arg(common::repo_root().join("tests/hub/hf_mirror.py"))
        .arg(root)
        .arg("--log")
        .arg(&log)
        .arg("--cut")
        .arg(cut)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tests/hub/hf_mirror.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the hub prints its port");
    Hub { child, port, log }
}

/// A catalog naming `tiny-clip-hub`: two files pinned by sha256 and size, the rest unpinned (as
/// for a source that publishes no checksums), so both kinds of check run.
fn catalog(work: &Path, revision: &str, vision_sha: &str) -> PathBuf {
    let tiny = common::tiny_clip_dir();
    let mut rows = String::from("# test catalog\n");
    for file in FILES {
        let remote = if file.ends_with(".onnx") {
            format!("onnx/{file}")
        } else {
            file.to_owned()
        };
        let (sha, bytes) = match file {
            "vision_model.onnx" => (
                vision_sha.to_owned(),
                std::fs::metadata(tiny.join(file)).unwrap().len().to_string(),
            ),
            "tokenizer.json" => (
                sha256_file(&tiny.join(file)),
                std::fs::metadata(tiny.join(file)).unwrap().len().to_string(),
            ),
            _ => ("-".into(), "-".into()),
        };
        rows.push_str(&format!(
            "tiny-clip-hub\t{REPO}\t{revision}\t{remote}\t{file}\t{sha}\t{bytes}\n"
        ));
    }
    let path = work.join(format!("catalog-{revision}-{}.tsv", &vision_sha[..4]));
    std::fs::write(&path, rows).unwrap();
    path
}

fn download(hub: &Hub, catalog: &Path, dir: &Path, name: &str) -> Output {
    Command::new("bash")
        .arg(common::repo_root().join("scripts/download-model.sh"))
        .arg(name)
        .arg(dir)
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{}", hub.port))
        .env("CLIPSEARCH_MODEL_CATALOG", catalog)
        .output()
        .expect("run scripts/download-model.sh")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn text_embedding(dir: &Path) -> Vec<f32> {
    let settings = ClipSettings {
        model_dir: Some(dir.to_path_buf()),
        ..ClipSettings::from_env().unwrap()
    };
    let clip = Clip::load(&settings, Towers::BOTH).expect("the downloaded model loads");
    clip.text().unwrap().embed("a red circle").unwrap()
}

#[test]
fn a_named_download_resumes_verifies_and_refetches_what_is_corrupt() {
    let work = common::tempdir("download-model");
    let root = hub_root(&work);
    let vision = common::tiny_clip_dir().join("vision_model.onnx");
    let vision_bytes = std::fs::metadata(&vision).unwrap().len();
    // The first request for the vision tower stops at a third of it.
    let hub = start_hub(
        &root,
        work.join("requests.log"),
        &format!("onnx/vision_model.onnx={}", vision_bytes / 3),
    );
    let good = catalog(&work, REVISION, &sha256_file(&vision));
    let dir = work.join("tiny-clip-hub");

    let first = download(&hub, &good, &dir, "tiny-clip-hub");
    assert!(first.status.success(), "{}", text(&first));
    let requests = hub.requests();
    assert!(
        requests.contains(&format!("onnx/vision_model.onnx bytes={}-", vision_bytes / 3)),
        "the cut-off file was resumed from where it stopped: {requests:?}\n{}",
        text(&first)
    );
    for file in FILES {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(common::tiny_clip_dir().join(file)).unwrap(),
            "{file} arrived intact"
        );
    }
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for file in FILES {
        let line = format!("{}  {file}", sha256_file(&common::tiny_clip_dir().join(file)));
        assert!(sums.lines().any(|l| l == line), "SHA256SUMS records {file}: {sums}");
    }
    assert!(!std::fs::read_dir(&dir)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".part")));
    assert_eq!(
        text_embedding(&dir),
        text_embedding(&common::tiny_clip_dir()),
        "the downloaded model embeds as the original"
    );

    // A second run checks every file against SHA256SUMS and asks the hub for nothing.
    let before = hub.requests().len();
    let second = download(&hub, &good, &dir, "tiny-clip-hub");
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(hub.requests().len(), before, "nothing fetched again: {}", text(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    for file in FILES {
        assert!(stdout.contains(&format!("verified {file}")), "{}", text(&second));
    }

    // One flipped byte in an unpinned file: the record catches it and the file comes again.
    let text_model = dir.join("text_model.onnx");
    let mut bytes = std::fs::read(&text_model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&text_model, bytes).unwrap();
    let third = download(&hub, &good, &dir, "tiny-clip-hub");
    assert!(third.status.success(), "{}", text(&third));
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("text_model.onnx does not match its checksum"),
        "{}",
        text(&third)
    );
    assert_eq!(
        std::fs::read(&text_model).unwrap(),
        std::fs::read(common::tiny_clip_dir().join("text_model.onnx")).unwrap()
    );
    assert_eq!(hub.requests().len(), before + 1, "only the corrupt file was fetched");
}

#[test]
fn a_wrong_pin_or_revision_keeps_nothing_and_says_what_to_do() {
    let work = common::tempdir("download-model-bad");
    let root = hub_root(&work);
    let hub = start_hub(&root, work.join("requests.log"), "none=0");

    // The hub's file is not the one the catalog pins.
    let wrong_pin = catalog(&work, REVISION, &"0".repeat(64));
    let dir = work.join("pinned");
    let out = download(&hub, &wrong_pin, &dir, "tiny-clip-hub");
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not the pinned"), "{}", text(&out));
    assert!(!dir.join("vision_model.onnx").exists(), "nothing kept");
    assert!(!dir.join("vision_model.onnx.part").exists(), "nothing kept");

    // A revision the hub does not have: a 404 that names the URL and the fix.
    let gone = catalog(
        &work,
        &"f".repeat(40),
        &sha256_file(&common::tiny_clip_dir().join("vision_model.onnx")),
    );
    let out = download(&hub, &gone, &work.join("gone"), "tiny-clip-hub");
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resolve/ffff") && stderr.contains("needs a new pin"),
        "{}",
        text(&out)
    );

    // A name the catalog does not know.
    let out = download(&hub, &wrong_pin, &work.join("x"), "no-such-model");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--list"),
        "{}",
        text(&out)
    );
}

/// The shipped catalog is well-formed: every row has seven fields, pins are full commit SHAs,
/// checksums are sha256 hex or `-`, and every model that needs an export names its exporter.
#[test]
fn the_shipped_catalog_is_well_formed() {
    let catalog = std::fs::read_to_string(common::repo_root().join("scripts/models.tsv")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut exported = std::collections::BTreeSet::new();
    let mut sources = std::collections::BTreeSet::new();
    for line in catalog.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields[0] == "export" {
            assert!(
                ["clip", "chinese_clip", "siglip", "text_tower"].contains(&fields[2]),
                "{line}"
            );
            assert_eq!(
                fields[2] == "text_tower",
                fields.len() == 4,
                "a text tower names its image model: {line}"
            );
            exported.insert(fields[1].to_owned());
            continue;
        }
        assert_eq!(fields.len(), 7, "{line}");
        assert!(
            fields[2].len() == 40 && fields[2].bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        assert!(
            fields[5] == "-" || (fields[5].len() == 64 && fields[5].bytes().all(|b| b.is_ascii_hexdigit())),
            "{line}"
        );
        assert!(fields[6] == "-" || fields[6].parse::<u64>().is_ok(), "{line}");
        names.insert(fields[0].to_owned());
        if fields[4].starts_with("source/") {
            sources.insert(fields[0].to_owned());
        }
    }
    assert_eq!(
        sources, exported,
        "models with source weights are exactly those with an exporter"
    );
    for name in [
        "clip-vit-base-patch32",
        "clip-vit-base-patch32-laion2b",
        "siglip-base-patch16-224",
        "chinese-clip-vit-base-patch16",
        "clip-vit-base-patch32-multilingual",
    ] {
        assert!(names.contains(name), "{name} is named");
    }
}
