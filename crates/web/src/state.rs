//! What every handler shares: the server handle, the store and the options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use flow_engine::serve::ServeHandle;
use flow_engine::store::{StateStore, WatchedStore};

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// The address it listens on.
    pub bind: SocketAddr,
    /// The state store directory (for the commands pages and messages suggest).
    pub state_dir: PathBuf,
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub handle: ServeHandle,
    pub store: Arc<WatchedStore>,
    pub opts: Arc<WebOptions>,
    /// Becomes true when the server stops: long-lived responses (event streams) end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.location())
            .field("opts", &self.opts)
            .finish()
    }
}
