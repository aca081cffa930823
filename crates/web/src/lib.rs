//! flow's HTTP server, run by `flow serve --http ADDR` beside the scheduler: a JSON API over
//! the state store and the served workflows, a web UI built on it, and webhook triggers.
//!
//! It reads runs from the same store the scheduler writes (wrapped in a
//! [`flow_engine::store::WatchedStore`], whose changes feed the live event stream) and steers
//! runs through a [`flow_engine::serve::ServeHandle`], so a run started from a browser obeys the
//! same queue as a scheduled one.

mod api;
mod error;
mod hooks;
mod rows;
mod state;
mod ui;

use std::future::Future;

use axum::Router;

pub use error::ApiError;
pub use state::{AppState, WebOptions};
pub use ui::router as ui_router;

/// Every route the server answers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(hooks::router())
        .merge(ui::router())
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
