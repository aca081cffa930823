//! The manifest of a synced history: which segments make up each table, the cursor, and what
//! the last syncs did. It is replaced as a whole (see [`super::Place::write_manifest`]), so the
//! segments it names and the cursor it holds always change together.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::SyncError;

const FORMAT: u32 = 1;
/// Sync summaries kept in the manifest, newest last.
const KEEP_SYNCS: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) format: u32,
    /// Incremented by every commit; segment files are named by the generation that wrote them.
    pub(super) generation: u64,
    /// The source's own position (watermark, API cursor); `None` before the first sync.
    pub(super) cursor: Option<Json>,
    /// Set by a reset: the next sync loads everything and replaces the history.
    #[serde(default)]
    pub(super) reset_requested: bool,
    pub(super) tables: BTreeMap<String, TableFiles>,
    /// The last syncs, oldest first.
    pub(super) syncs: Vec<SyncRecord>,
}

/// The segment files of one table, oldest first: a key in a later segment replaces every row
/// with that key in the earlier ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct TableFiles {
    pub(super) key: String,
    /// The Arrow schema of the rows.
    pub(super) schema: Option<Json>,
    pub(super) segments: Vec<Segment>,
    /// Rows and distinct keys of the merged table after the last commit.
    pub(super) rows: u64,
    pub(super) keys: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Segment {
    /// File name in the history directory; `None` for a segment that only deletes.
    pub(super) file: Option<String>,
    pub(super) rows: u64,
    /// Keys this segment removes without new rows.
    #[serde(default)]
    pub(super) deleted: Vec<String>,
}

/// What one committed sync did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRecord {
    pub at: DateTime<Utc>,
    /// Whether it replaced the whole history.
    pub full: bool,
    /// Keys written (new or changed) and removed, per table.
    pub upserted: BTreeMap<String, u64>,
    pub deleted: BTreeMap<String, u64>,
    /// What the source reported (requests made, pages, ...).
    pub summary: Json,
}

impl Manifest {
    pub(super) fn new() -> Self {
        Manifest {
            format: FORMAT,
            ..Manifest::default()
        }
    }

    /// Reads a stored manifest; `location` names it in errors.
    pub(super) fn decode(bytes: &[u8], location: &str) -> Result<Manifest, SyncError> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| SyncError::Corrupt {
            path: location.to_string(),
            reason: e.to_string(),
        })?;
        if manifest.format != FORMAT {
            return Err(SyncError::Corrupt {
                path: location.to_string(),
                reason: format!(
                    "format {} is not the {FORMAT} this flow reads",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    pub(super) fn record(&mut self, record: SyncRecord) {
        self.syncs.push(record);
        if self.syncs.len() > KEEP_SYNCS {
            let extra = self.syncs.len() - KEEP_SYNCS;
            self.syncs.drain(..extra);
        }
    }

    /// Every file the manifest names.
    pub(super) fn files(&self) -> impl Iterator<Item = &str> {
        self.tables
            .values()
            .flat_map(|t| t.segments.iter())
            .filter_map(|s| s.file.as_deref())
    }
}
