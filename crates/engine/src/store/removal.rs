//! What removing runs takes away, and what it gave back.

use serde::{Deserialize, Serialize};

/// Runs to remove with everything of theirs, and other keys to remove with them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    pub run_ids: Vec<String>,
    /// `(namespace, key)` pairs of small state that goes with the runs (firing-log entries).
    pub keys: Vec<(String, String)>,
}

impl Removal {
    pub fn is_empty(&self) -> bool {
        self.run_ids.is_empty() && self.keys.is_empty()
    }
}

/// What a removal took away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Run records removed (a run already gone is not counted).
    pub runs: usize,
    /// Database entries removed: records, outputs, ledger entries and listed keys.
    pub entries: u64,
    /// Bytes of those entries and of the runs' output files.
    pub bytes: u64,
}
