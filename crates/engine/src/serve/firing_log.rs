//! What the server keeps in the store per trigger: its watermark (every firing scheduled at or
//! before it was dealt with) and the log of its firings.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FIRINGS, WATERMARKS};
use crate::store::{StateStore, StoreError, Write};

/// The watermark record.
#[derive(Debug, Serialize, Deserialize)]
struct Watermark {
    /// Every firing scheduled at or before this was dealt with.
    last: DateTime<Utc>,
}

/// One entry of the firing log.
#[derive(Debug, Serialize, Deserialize)]
pub struct FiringRecord {
    pub workflow_path: String,
    pub trigger: String,
    pub scheduled_for: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// `fired`, `skipped` or `missed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub(super) fn watermark_key(path: &Path, trigger: &str) -> String {
    format!("{}#{trigger}", path.display())
}

/// Reads a trigger's watermark.
pub fn watermark(
    store: &dyn StateStore,
    path: &Path,
    trigger: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    store
        .get(WATERMARKS, &watermark_key(path, trigger))?
        .map(|bytes| {
            serde_json::from_slice::<Watermark>(&bytes)
                .map(|w| w.last)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("the schedule watermark of {}", watermark_key(path, trigger)),
                    reason: e.to_string(),
                })
        })
        .transpose()
}

/// The firing log of a trigger, oldest first.
pub fn firings(
    store: &dyn StateStore,
    path: &Path,
    trigger: &str,
) -> Result<Vec<FiringRecord>, StoreError> {
    let prefix = format!("{}@", watermark_key(path, trigger));
    store
        .scan(FIRINGS, &prefix)?
        .into_iter()
        .map(|(key, bytes)| {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: format!("the firing record {key}"),
                reason: e.to_string(),
            })
        })
        .collect()
}

pub(super) fn watermark_write(path: &Path, trigger: &str, last: DateTime<Utc>) -> Write {
    Write::Put {
        namespace: WATERMARKS.into(),
        key: watermark_key(path, trigger),
        value: serde_json::to_vec(&Watermark { last }).unwrap_or_default(),
    }
}
