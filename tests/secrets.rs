//! The Milvus token is read from Secrets Manager at run time (moto's, through the SDK's standard
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`), when the index first connects, and never from the
//! function's environment. Needs moto (`CLIPSEARCH_S3_ENDPOINT`) and Milvus (`MILVUS_URI`),
//! as scripts/test.sh starts them.

mod common;

use clipsearch::config::MilvusSettings;
use clipsearch::store::{ImageIndex, IndexSpec, LazyMilvus};
use common::local_stack::{required_env, unique};

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&shared)
            .endpoint_url(required_env("CLIPSEARCH_S3_ENDPOINT"))
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_secrets_manager_when_the_index_connects() {
    // The process-wide variable the SDK reads; only this test binary sets it.
    std::env::set_var(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        required_env("CLIPSEARCH_S3_ENDPOINT"),
    );
    let client = secrets_client().await;
    let name = unique("clipsearch/milvus");
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username": "root", "password": "Milvus"}"#)
        .send()
        .await
        .expect("moto creates the secret");
    assert_eq!(clipsearch::secrets::milvus_token(&name).await.unwrap(), "root:Milvus");

    // The deployed wiring: only the secret's id in the settings; the index connects with it.
    let spec = IndexSpec {
        dimension: 8,
        model: "secret-test".into(),
        text_model: None,
    };
    let settings = MilvusSettings {
        uri: required_env("MILVUS_URI"),
        token: None,
        token_secret: Some(name.clone()),
        collection: unique("secret_test").replace('-', "_"),
        ..MilvusSettings::default()
    };
    let index = LazyMilvus::new(settings.clone(), spec.clone());
    assert_eq!(index.count().await.expect("connects with the secret's token"), 0);
    index.connected().await.unwrap().drop_collection().await.unwrap();

    // A secret that does not exist is a configuration error naming it, not a hang or a panic.
    let missing = LazyMilvus::new(
        MilvusSettings {
            token_secret: Some("clipsearch/no-such-secret".into()),
            ..settings
        },
        spec,
    );
    let err = missing.count().await.unwrap_err();
    assert_eq!(err.code(), "configuration", "{err}");
    assert!(err.to_string().contains("clipsearch/no-such-secret"), "{err}");
}
