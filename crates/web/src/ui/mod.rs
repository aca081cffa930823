//! The web UI: one HTML shell for every page plus plain JavaScript that reads the JSON API.
//! Nothing is rendered on the server; pages build their DOM from API data with `textContent`,
//! so names, errors and output cells can never become markup.

mod assets;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// What every page may load: only this server's scripts, styles and images.
pub(crate) const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; frame-ancestors 'none'";

/// The pages and their assets. They need no server state (the pages fetch everything from the
/// API), so the router fits any state type.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(shell))
        .route("/runs/{id}", get(shell))
        .route("/workflows", get(shell))
        .route("/workflows/{key}", get(shell))
        .route("/assets/{*path}", get(assets::serve))
}

/// The page shell; `main.js` reads the path and draws the page.
async fn shell() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        assets::SHELL,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests;
