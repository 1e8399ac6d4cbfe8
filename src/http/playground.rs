//! The playground: a page at `/` (and `/playground`) of the public
//! listener to write a program, run it and watch its output stream in,
//! typing its input in interactive mode. Static files embedded in the
//! binary, a small vendored editor (CodeJar, `playground/vendor/`), no
//! build step; the page talks only to this service's job API, with the
//! API key the user gives kept in the browser.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("playground/index.html");
const APP_JS: &str = include_str!("playground/app.js");
const APP_CSS: &str = include_str!("playground/app.css");
const CODEJAR_JS: &str = include_str!("playground/vendor/codejar.js");
const LINE_NUMBERS_JS: &str = include_str!("playground/vendor/codejar-linenumbers.js");
const LINE_NUMBERS_CSS: &str = include_str!("playground/vendor/codejar-linenumbers.css");

/// Only this service's own files and API: no other origin.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub async fn page() -> impl IntoResponse {
    file("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> impl IntoResponse {
    file("text/css; charset=utf-8", APP_CSS)
}

pub async fn codejar_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", CODEJAR_JS)
}

pub async fn line_numbers_js() -> impl IntoResponse {
    file("text/javascript; charset=utf-8", LINE_NUMBERS_JS)
}

pub async fn line_numbers_css() -> impl IntoResponse {
    file("text/css; charset=utf-8", LINE_NUMBERS_CSS)
}
