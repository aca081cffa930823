//! Synced histories: a durable, keyed, columnar copy of the records a node pulls from a remote
//! system, with the cursor that says how far the copy goes.
//!
//! A source node (a POS connector, say) fetches only what changed since its cursor and commits
//! it with the new cursor in one atomic step (see [`History`]): a crash at any instant leaves
//! either the old copy and cursor or the new ones, so nothing is lost or counted twice.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The key of a workflow file among the store's node directories.
pub fn workflow_key(workflow: &Path) -> String {
    let absolute = std::fs::canonicalize(workflow)
        .or_else(|_| std::path::absolute(workflow))
        .unwrap_or_else(|_| workflow.to_path_buf());
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let stem = workflow
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}-{hash}")
}

mod history;
mod manifest;
mod merge;
mod place;
mod status;

#[cfg(test)]
pub(crate) use history::tests::contract as history_contract;
pub use history::{Commit, History, Merged, copy_history, request_reset};
pub use manifest::SyncRecord;
pub use place::{DirPlace, DirPlaces, Place, PlaceLock, Places, StoredManifest};
pub use status::{Status, TableStatus, status};

/// The name of the history node `node_id` of `workflow` keeps for `purpose` among a store's
/// histories: `WORKFLOW-KEY/NODE/PURPOSE` (see [`workflow_key`]).
pub fn history_name(workflow: &Path, node_id: &str, purpose: &str) -> String {
    format!("{}/{node_id}/{purpose}", workflow_key(workflow))
}

/// Why a history cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the synced history {path} is damaged ({reason}); `flow sync reset` starts it over")]
    Corrupt { path: String, reason: String },
    #[error("another run is syncing the history in {dir} right now; wait for it to finish")]
    Busy { dir: String },
    #[error(
        "another process wrote the history {location} while this sync ran (it had lost its hold on it); nothing of this sync was kept, run it again"
    )]
    Overtaken { location: String },
    #[error("history {location}: {reason}")]
    Store { location: String, reason: String },
    #[error("history table `{table}`: {reason}")]
    Schema { table: String, reason: String },
    #[error("history: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl SyncError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SyncError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
