//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers' own
//! annotations as the router is built, so it lists exactly the routes served.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::error::ErrorBody;

/// The document, made once.
static DOCUMENT: OnceLock<String> = OnceLock::new();

/// What the handlers do not describe themselves: the file route (a wildcard), webhooks.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flow",
        description = "The HTTP API of `flow serve --http`: workflows, runs, node outputs, actions and live updates. On a non-loopback address every request needs `Authorization: Bearer TOKEN` (or the session cookie from POST /login plus the `X-Flow-CSRF` header on state-changing requests)."
    ),
    paths(super::files::serve_file, webhook),
    components(schemas(ErrorBody)),
    tags(
        (name = "workflows", description = "Served workflow files"),
        (name = "runs", description = "Runs and their nodes"),
        (name = "output", description = "A node's output and log"),
        (name = "actions", description = "Start, resume and cancel runs"),
        (name = "events", description = "Live updates"),
        (name = "auth", description = "Login, logout and the session"),
        (name = "hooks", description = "Webhook triggers"),
        (name = "server", description = "The server itself"),
    )
)]
pub(crate) struct Base;

/// Keeps the document built with the router.
pub(crate) fn set(doc: &utoipa::openapi::OpenApi) {
    let _ = DOCUMENT.get_or_init(|| doc.to_json().unwrap_or_else(|_| "{}".into()));
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub(crate) async fn document() -> Response {
    let text = DOCUMENT.get().cloned().unwrap_or_else(|| "{}".into());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `POST /hooks/{workflow}/{trigger}` (served by the webhook module).
#[utoipa::path(post, path = "/hooks/{workflow}/{trigger}", tag = "hooks",
    params(
        ("workflow" = String, Path, description = "The workflow's key"),
        ("trigger" = String, Path, description = "The webhook trigger's id"),
    ),
    request_body(content = Object, content_type = "application/json", description = "Any JSON; the trigger's output carries it"),
    responses(
        (status = 200, description = "A replayed delivery (`duplicate: true`), or the run's output for `respond: output` triggers", body = Object),
        (status = 202, description = "The run is recorded: `{run_id, queued, duplicate, run}`", body = Object),
        (status = 400, description = "The body is not JSON, or a bad delivery id", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature or token", body = ErrorBody),
        (status = 404, description = "No such workflow or trigger", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "The trigger's secret is not configured", body = ErrorBody)))]
#[allow(dead_code)]
fn webhook() {}
