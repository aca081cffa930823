//! flow's HTTP server, run by `flow serve --http ADDR` beside the scheduler: a JSON API over
//! the state store and the served workflows, a web UI built on it, and webhook triggers.
//!
//! It reads runs from the same store the scheduler writes (wrapped in a
//! [`flow_engine::store::WatchedStore`], whose changes feed the run index and the live event
//! stream) and steers runs through a [`flow_engine::serve::ServeHandle`], so a run started
//! from a browser obeys the same queue as a scheduled one.
//!
//! Pages read the caller's [`Session`] from the request extensions (its CSRF token goes into
//! `<meta name="flow-csrf">`).

mod api;
pub mod auth;
mod error;
mod hooks;
mod rows;
mod state;
mod ui;

use std::future::Future;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Session, TokenError, Tokens};
pub use error::ApiError;
pub use state::{AppState, WebOptions};
pub use ui::router as ui_router;

/// The documented routes and their OpenAPI document.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(api::openapi::Base::openapi())
        .merge(api::router())
        .merge(auth::router())
}

/// The OpenAPI document of the server's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// Every route the server answers. Starts keeping the run index current (needs a Tokio
/// runtime).
pub fn router(state: AppState) -> Router {
    let (documented, doc) = documented().split_for_parts();
    api::openapi::set(&doc);
    state
        .runs
        .start(state.store.clone(), state.shutdown.clone());
    Router::new()
        .merge(documented)
        .merge(hooks::router())
        .merge(ui::router())
        .fallback(error::no_route)
        .layer(from_fn_with_state(state.clone(), auth::guard))
        .layer(from_fn(error::json_errors))
        .layer(from_fn(auth::security_headers))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets requests in progress finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
