//! The search use case (`clipsearch::search::Searcher`) on the real pieces: tiny-clip, the
//! local Milvus and the local S3 (moto). The HTTP layer is tested in search_lambda.rs.

mod common;
mod search_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clipsearch::clip::{Clip, Towers};
use clipsearch::config::MilvusSettings;
use clipsearch::objects::S3Objects;
use clipsearch::search::{CheckedOptions, Query, SearchParams, SearchSettings, Searcher};
use clipsearch::store::{IndexSpec, MilvusIndex};
use clipsearch::Error;

async fn searcher(towers: Towers) -> Searcher<Clip, MilvusIndex, S3Objects> {
    let clip = Clip::load(&common::settings(), towers).expect("tiny-clip");
    let spec = IndexSpec::of(&clip);
    let settings = SearchSettings {
        enable_text: towers.text,
        enable_image: towers.image,
        bucket: Some(search_support::bucket()),
        ..SearchSettings::default()
    };
    Searcher::new(
        Arc::new(clip),
        search_support::milvus(spec).await,
        Some(search_support::s3().await),
        settings,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_search_ranks_presigns_and_times_its_stages() {
    let corpus = search_support::seed("usecase", 48, 77).await;
    let searcher = searcher(Towers::TEXT).await;
    let answer = searcher
        .search(SearchParams {
            options: CheckedOptions {
                prefix: Some(corpus.prefix.clone()),
                top_k: 3,
                ..Default::default()
            },
            ..SearchParams::new(Query::Text("a photo of a red circle".into()))
        })
        .await
        .expect("search");
    assert_eq!(answer.results.len(), 3);
    let first = corpus.by_id(&answer.results[0].id).expect("seeded");
    assert_eq!((first.colour.as_str(), first.shape.as_str()), ("red", "circle"));
    assert!(answer.timings.embed_ms > 0.0 && answer.timings.search_ms > 0.0);
    assert!(answer.took_ms >= answer.timings.embed_ms + answer.timings.search_ms);

    // The presigned URL serves exactly the stored bytes.
    let url = answer.results[0].url.as_deref().expect("presigned");
    assert_eq!(search_support::download(url).await, first.bytes);

    // A text-only deployment refuses image queries as a client error, not a 500.
    let refused = searcher
        .search(SearchParams::new(Query::Image(first.bytes.clone())))
        .await
        .unwrap_err();
    assert!(refused.is_bad_input(), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_milvus_is_a_transient_error() {
    let settings = MilvusSettings {
        uri: "http://127.0.0.1:1".into(),
        connect_timeout: Duration::from_secs(2),
        rpc_timeout: Duration::from_secs(2),
        ..MilvusSettings::default()
    };
    let started = Instant::now();
    let error = match MilvusIndex::connect(
        &settings,
        IndexSpec {
            dimension: 64,
            model: "tiny-clip".into(),
            text_model: None,
        },
    )
    .await
    {
        Ok(_) => panic!("nothing listens on port 1, yet connecting succeeded"),
        Err(e) => e,
    };
    assert!(matches!(error, Error::StoreUnavailable(_)), "{error}");
    assert!(error.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "fails fast: {:?}",
        started.elapsed()
    );
}
