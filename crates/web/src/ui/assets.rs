//! The UI's static files, compiled into the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The HTML every page starts from.
pub(super) const SHELL: &str = include_str!("../../assets/app.html");

/// `(path under /assets/, content type, bytes)`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../assets/favicon.svg"),
    ),
    ("js/api.js", JS, include_str!("../../assets/js/api.js")),
    ("js/dag.js", JS, include_str!("../../assets/js/dag.js")),
    (
        "js/dialog.js",
        JS,
        include_str!("../../assets/js/dialog.js"),
    ),
    ("js/dom.js", JS, include_str!("../../assets/js/dom.js")),
    (
        "js/format.js",
        JS,
        include_str!("../../assets/js/format.js"),
    ),
    ("js/gantt.js", JS, include_str!("../../assets/js/gantt.js")),
    ("js/main.js", JS, include_str!("../../assets/js/main.js")),
    ("js/panel.js", JS, include_str!("../../assets/js/panel.js")),
    ("js/run.js", JS, include_str!("../../assets/js/run.js")),
    ("js/runs.js", JS, include_str!("../../assets/js/runs.js")),
    (
        "js/workflow.js",
        JS,
        include_str!("../../assets/js/workflow.js"),
    ),
    (
        "js/workflows.js",
        JS,
        include_str!("../../assets/js/workflows.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

pub(super) async fn serve(Path(path): Path<String>) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(name, _, _)| *name == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *kind)], *body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Assets change with the binary; revalidating keeps an upgraded server's pages consistent.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Every embedded path, for the tests.
#[cfg(test)]
pub(super) fn paths() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _, _)| *name)
}
