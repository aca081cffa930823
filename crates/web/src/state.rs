//! What every handler shares: the server handle, the store, the options, the run index and
//! the sessions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use flow_engine::serve::ServeHandle;
use flow_engine::store::{LiveRuns, StateStore, WatchedStore};

use crate::api::run_index::RunIndex;
use crate::auth::{Sessions, Tokens};

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// The address it listens on.
    pub bind: SocketAddr,
    /// The state store directory (for the commands pages and messages suggest).
    pub state_dir: PathBuf,
    /// Who may use the server when it listens beyond loopback.
    pub tokens: Tokens,
}

impl WebOptions {
    /// Whether requests must prove who they are: any address other than loopback.
    pub fn auth_required(&self) -> bool {
        !self.bind.ip().is_loopback()
    }
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub handle: ServeHandle,
    pub store: Arc<WatchedStore>,
    pub opts: Arc<WebOptions>,
    /// Becomes true when the server stops: long-lived responses (event streams) end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Runs some process executes right now (a `running` run that is not live was interrupted).
    pub live: LiveRuns,
    pub(crate) runs: Arc<RunIndex>,
    pub(crate) sessions: Arc<Sessions>,
}

impl AppState {
    pub fn new(
        handle: ServeHandle,
        store: Arc<WatchedStore>,
        opts: WebOptions,
        shutdown: tokio::sync::watch::Receiver<bool>,
        live: LiveRuns,
    ) -> Self {
        AppState {
            handle,
            store,
            opts: Arc::new(opts),
            shutdown,
            live,
            runs: Arc::new(RunIndex::default()),
            sessions: Arc::new(Sessions::default()),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.location())
            .field("opts", &self.opts)
            .finish()
    }
}
