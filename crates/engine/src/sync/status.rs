//! What a synced history holds, read without taking its lock (the manifest is replaced
//! atomically, so a reader sees one commit or the next).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::SyncError;
use super::manifest::{Manifest, SyncRecord};
use super::place::Place;

/// One history's state.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Where the history is kept (a directory, or a database and the history's name).
    pub location: String,
    /// The source's position; `None` before the first sync.
    pub cursor: Option<Json>,
    /// A reset was asked: the next sync loads everything.
    pub reset_requested: bool,
    pub tables: BTreeMap<String, TableStatus>,
    /// The last syncs, oldest first.
    pub syncs: Vec<SyncRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub key: String,
    pub rows: u64,
    /// Distinct keys (orders, customers, products).
    pub keys: u64,
    pub segments: usize,
}

impl Status {
    pub(super) fn of(location: &str, manifest: &Manifest) -> Status {
        Status {
            location: location.to_string(),
            cursor: manifest.cursor.clone(),
            reset_requested: manifest.reset_requested,
            tables: manifest
                .tables
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        TableStatus {
                            key: t.key.clone(),
                            rows: t.rows,
                            keys: t.keys,
                            segments: t.segments.len(),
                        },
                    )
                })
                .collect(),
            syncs: manifest.syncs.clone(),
        }
    }

    /// The last sync, if any.
    pub fn last(&self) -> Option<&SyncRecord> {
        self.syncs.last()
    }
}

/// The state of the history in `place`; `None` when nothing was synced there.
pub fn status(place: &dyn Place) -> Result<Option<Status>, SyncError> {
    let location = place.describe();
    place
        .read_manifest()?
        .map(|stored| {
            Ok(Status::of(
                &location,
                &Manifest::decode(&stored.bytes, &location)?,
            ))
        })
        .transpose()
}
