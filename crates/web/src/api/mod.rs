//! The JSON API under `/api`, each route documented in the OpenAPI document it serves.

mod actions;
mod events;
mod files;
mod graph;
mod logs;
mod nodes;
pub(crate) mod openapi;
mod output;
mod query;
mod resume;
pub(crate) mod run_index;
mod runs;
mod summary;
mod workflows;

use axum::Json;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The server is up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    status: String,
    version: String,
}

/// The API's routes with their documentation.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(workflows::list_workflows))
        .routes(routes!(workflows::get_workflow))
        .routes(routes!(actions::start_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(actions::resume_run))
        .routes(routes!(actions::cancel_run))
        .routes(routes!(output::output_page))
        .routes(routes!(output::output_csv))
        .routes(routes!(output::output_arrow))
        .routes(routes!(logs::node_logs))
        .routes(routes!(events::events))
        .routes(routes!(openapi::document))
        // The wildcard is documented as `{path}` (see `openapi`).
        .route("/runs/{id}/files/{node}/{*path}", get(files::serve_file))
}

#[utoipa::path(get, path = "/api/health", tag = "server",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
