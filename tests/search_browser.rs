//! The search page in a real browser: seeds labelled images, then runs
//! tests/browser/search-page.test.mjs (headless Debian Chromium through playwright-core)
//! against the page served by the function under `cargo lambda watch`. Screenshots land in
//! `.local/screenshots/` (git-ignored). Needs `scripts/setup-browser.sh` to have run; a
//! missing browser or driver fails the test.

mod common;
mod search_support;

use std::process::Command;

use clipsearch::store::ImageIndex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_works_in_chromium() {
    let root = common::repo_root();
    let driver = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        driver.exists(),
        "playwright-core is not installed: run scripts/setup-browser.sh"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup-browser.sh"
    );

    let corpus = search_support::seed("browser", 48, 4242).await;
    let query = corpus.by_class("orange", "star")[0];
    // An exact copy under a second key, for the page's duplicates view.
    let copy_key = format!("{}copy-of-{}", corpus.prefix, query.key.rsplit('/').next().unwrap());
    let s3 = search_support::s3().await;
    s3.put(&corpus.bucket, &copy_key, query.bytes.clone(), "image/png")
        .await
        .unwrap();
    let index = search_support::milvus(clipsearch::store::IndexSpec::of(&common::tiny_clip())).await;
    let record = index.get(&query.id).await.unwrap().expect("seeded");
    index
        .put_object(clipsearch::store::IndexedObject::of_record(
            &record,
            clipsearch::store::Location::new(&corpus.bucket, &copy_key),
        ))
        .await
        .unwrap();
    let shots = root.join(".local/screenshots");
    // A capture-date range (whole days, both ends included) holding the 6th to 10th images.
    let day = |n: i64| {
        clipsearch::capture::rfc3339(search_support::SEEDED_FIRST_CAPTURE_MS + n * search_support::DAY_MS)[..10]
            .to_owned()
    };
    let in_range = corpus
        .images
        .iter()
        .filter(|i| {
            let date = clipsearch::capture::rfc3339(i.captured_ms)[..10].to_owned();
            day(5) <= date && date <= day(9)
        })
        .count();
    let output = Command::new("node")
        .arg("tests/browser/search-page.test.mjs")
        .current_dir(&root)
        .env("SEARCH_URL", format!("{}/", search_support::lambda_base()))
        .env("QUERY_IMAGE", &query.file)
        .env("QUERY_IMAGE_ID", &query.id)
        .env("QUERY_IMAGE_KEY", &query.key)
        .env("COPY_KEY", &copy_key)
        .env("PREFIX", &corpus.prefix)
        .env("SCREENSHOT_DIR", &shots)
        .env("DATE_FROM", day(5))
        .env("DATE_TO", day(9))
        .env("DATE_COUNT", in_range.to_string())
        .env("CHROMIUM", &chromium)
        // The emulated function has the multilingual text tower (scripts/test.sh).
        .env("CJK_QUERY", "红色圆形的图片")
        .output()
        .expect("node runs (apt-get install nodejs)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{log}");
    assert!(output.status.success(), "the browser test failed:\n{log}");
    for name in [
        "search-text-results.png",
        "search-cjk-results.png",
        "search-image-results.png",
    ] {
        let png = std::fs::read(shots.join(name)).expect("screenshot saved");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name} is a real PNG"
        );
    }
}
