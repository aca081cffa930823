//! The web UI: pages served by the same process, built on the JSON API.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(index))
}

async fn index() -> Html<&'static str> {
    Html("<!doctype html><title>flow</title><p>flow</p>")
}
