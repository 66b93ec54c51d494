//! The search page in a real browser: seeds labelled images, then runs
//! tests/browser/search-page.test.mjs (headless Debian Chromium through playwright-core)
//! against the page served by the function under `cargo lambda watch`. Screenshots land in
//! `.local/screenshots/` (git-ignored). Needs `scripts/setup-browser.sh` to have run; a
//! missing browser or driver fails the test.

mod common;
mod search_support;

use std::process::Command;

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
    let shots = root.join(".local/screenshots");
    let output = Command::new("node")
        .arg("tests/browser/search-page.test.mjs")
        .current_dir(&root)
        .env("SEARCH_URL", format!("{}/", search_support::lambda_base()))
        .env("QUERY_IMAGE", &query.file)
        .env("QUERY_IMAGE_ID", &query.id)
        .env("PREFIX", &corpus.prefix)
        .env("SCREENSHOT_DIR", &shots)
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
