//! The static files, compiled into the binary: no build step, no CDN, nothing to deploy
//! beside `bootstrap`.

/// The OpenAPI 3 description of this API (served at `/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

const INDEX_HTML: &str = include_str!("../assets/index.html");
const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// The search page as one document. Styles and script are inlined so that the page works at
/// any mount point (`/`, `/lambda-url/search/`, an API Gateway stage) without resolving
/// relative asset URLs, which differ with and without a trailing slash.
pub fn page() -> String {
    INDEX_HTML.replace("/*STYLE*/", STYLE).replace("/*SCRIPT*/", SCRIPT)
}
