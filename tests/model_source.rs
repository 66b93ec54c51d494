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
