//! The deployed functions' model delivery (option A of the README): the model directory copied
//! from S3 (moto here) into /tmp at cold start, only the towers the function loads, then
//! loaded; a warm start finds the copy complete and downloads nothing. Needs moto
//! (`CLIPSEARCH_S3_ENDPOINT`), as scripts/test.sh starts it.

mod common;

use clipsearch::clip::{Clip, Encoder, Towers};
use clipsearch::config::ClipSettings;
use clipsearch::objects::{ObjectSettings, S3Objects};
use common::local_stack::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_only_function_copies_the_text_tower_and_loads_it() {
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let bucket = unique("t-models");
    s3.client().create_bucket().bucket(&bucket).send().await.unwrap();
    let source = common::fixtures().join("tiny-clip");
    let mut uploaded = Vec::new();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            s3.put(
                &bucket,
                &format!("models/tiny/{name}"),
                std::fs::read(&path).unwrap(),
                "application/octet-stream",
            )
            .await
            .unwrap();
            uploaded.push(name);
        }
    }
    assert!(uploaded.iter().any(|n| n == "vision_model.onnx"), "{uploaded:?}");

    let dir = std::env::temp_dir().join(unique("clipsearch-model"));
    let uri = format!("s3://{bucket}/models/tiny");
    clipsearch::model_source::download(&s3, &uri, &dir, Towers::TEXT)
        .await
        .unwrap();
    let copied: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(copied.iter().any(|n| n == "text_model.onnx"), "{copied:?}");
    assert!(
        !copied.iter().any(|n| n == "vision_model.onnx"),
        "the vision tower was copied: {copied:?}"
    );
    assert!(copied.iter().any(|n| n == "tokenizer.json"), "{copied:?}");

    let settings = ClipSettings {
        model_dir: Some(dir.clone()),
        ..ClipSettings::from_env().unwrap()
    };
    let clip = Clip::load(&settings, Towers::TEXT).expect("the copied text tower loads");
    assert!(clip.embed_text("a photo of a red circle").is_ok());
    assert!(Encoder::dimension(&clip) > 0);

    // A warm start: the marker says the copy is complete, so nothing is fetched (the objects
    // are gone and it still succeeds).
    for name in &uploaded {
        s3.delete(&bucket, &format!("models/tiny/{name}")).await.unwrap();
    }
    clipsearch::model_source::download(&s3, &uri, &dir, Towers::TEXT)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Uploads every file under `from` to `s3://bucket/prefix/…`, keeping relative paths.
async fn upload_dir(s3: &S3Objects, bucket: &str, prefix: &str, from: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            s3.put(
                bucket,
                &format!("{prefix}/{name}"),
                std::fs::read(&path).unwrap(),
                "application/octet-stream",
            )
            .await
            .unwrap();
        }
    }
}

/// A search function with a multilingual text tower: the tower comes from its own prefix
/// (without the weights it was exported from), the model without its own text graph, and the
/// pair loads and embeds Chinese exactly as the fixtures do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_tower_is_copied_beside_the_image_model() {
    let s3 = S3Objects::connect(&ObjectSettings::from_env().unwrap()).await;
    let bucket = unique("t-towers");
    s3.client().create_bucket().bucket(&bucket).send().await.unwrap();
    upload_dir(&s3, &bucket, "models/tiny-clip", &common::fixtures().join("tiny-clip")).await;
    upload_dir(
        &s3,
        &bucket,
        "models/tiny-multilingual",
        &common::fixtures().join("tiny-multilingual"),
    )
    .await;
    // What `make model` leaves beside an exported tower: the weights it came from.
    s3.put(
        &bucket,
        "models/tiny-multilingual/source/model.safetensors",
        vec![0u8; 4096],
        "application/octet-stream",
    )
    .await
    .unwrap();

    let root = std::env::temp_dir().join(unique("clipsearch-towers"));
    let sources = clipsearch::model_source::ModelSources {
        model: Some(format!("s3://{bucket}/models/tiny-clip/")),
        text_model: Some(format!("s3://{bucket}/models/tiny-multilingual")),
    };
    let settings = ClipSettings {
        // Named like the fixtures: a model's name is its directory's.
        model_dir: Some(root.join("tiny-clip")),
        text_model_dir: Some(root.join("tiny-multilingual")),
        ..ClipSettings::from_env().unwrap()
    };
    let settings = clipsearch::model_source::resolve_from(&sources, settings, Some(&s3), Towers::BOTH)
        .await
        .unwrap();
    let model_dir = settings.model_dir.clone().unwrap();
    let tower_dir = settings.text_model_dir.clone().unwrap();
    assert!(model_dir.join("vision_model.onnx").is_file());
    assert!(
        !model_dir.join("text_model.onnx").exists(),
        "the model's own text graph is not copied when a tower answers text"
    );
    assert!(tower_dir.join("text_model.onnx").is_file() && tower_dir.join("text_tower.json").is_file());
    assert!(!tower_dir.join("source").exists(), "export weights are not copied");

    let clip = Clip::load(&settings, Towers::BOTH).expect("the copied pair loads");
    assert_eq!(clip.text_model_name(), "tiny-multilingual");
    let reference = Clip::load(
        &ClipSettings {
            model_dir: Some(common::fixtures().join("tiny-clip")),
            text_model_dir: Some(common::fixtures().join("tiny-multilingual")),
            ..ClipSettings::from_env().unwrap()
        },
        Towers::BOTH,
    )
    .unwrap();
    assert_eq!(
        clip.embed_text("红色圆形的照片").unwrap(),
        reference.embed_text("红色圆形的照片").unwrap()
    );
    let _ = std::fs::remove_dir_all(&root);
}
