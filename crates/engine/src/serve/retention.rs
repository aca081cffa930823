//! Removing old runs, and the firing-log entries that go with them.
//!
//! Shared by `flow runs prune` and the retention `flow serve` applies. A fired entry of the
//! firing log goes with its run; entries without a run (skipped or missed firings) follow the
//! policy themselves: the newest N per trigger, or those newer than the cutoff, stay.
//! Watermarks and node state stay: later firings and runs depend on them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::store::{Removal, Removed, Retention, RunRecord, StateStore, StoreError};

use super::{FIRINGS, FiringRecord};

/// What a prune removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Oldest first.
    pub runs: Vec<RunRecord>,
    /// Firing-log entries.
    pub firings: usize,
    /// What the store gave back (nothing in a dry run).
    pub removed: Removed,
}

/// The creation time from which runs are kept when runs are kept for `keep_for`.
pub fn cutoff(now: DateTime<Utc>, keep_for: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(keep_for)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Removes what `policy` lets go; `live` runs always stay. With `dry_run`, only says what.
pub fn prune(
    store: &dyn StateStore,
    policy: &Retention,
    live: &HashSet<String>,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    let all = store.runs()?;
    let runs: Vec<RunRecord> = policy.select(&all, live).into_iter().cloned().collect();
    let gone: HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let present: HashSet<&str> = all
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !gone.contains(id))
        .collect();
    let firings = firing_keys(store, policy, &present)?;
    let removal = Removal {
        run_ids: runs.iter().map(|r| r.id.clone()).collect(),
        keys: firings
            .iter()
            .map(|k| (FIRINGS.to_string(), k.clone()))
            .collect(),
    };
    let removed = if dry_run || removal.is_empty() {
        Removed::default()
    } else {
        store.remove(&removal)?
    };
    Ok(Pruned {
        runs,
        firings: firings.len(),
        removed,
    })
}

/// Firing-log keys to remove: fired entries whose run is no longer kept, and run-less entries
/// the policy does not keep.
fn firing_keys(
    store: &dyn StateStore,
    policy: &Retention,
    present: &HashSet<&str>,
) -> Result<Vec<String>, StoreError> {
    if policy.is_empty() {
        return Ok(Vec::new());
    }
    let mut entries = store.scan(FIRINGS, "")?;
    // Keys end with the scheduled time, so reverse key order is newest first per trigger.
    entries.reverse();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (key, bytes) in entries {
        // An entry that does not parse is left for a person to look at.
        let Ok(record) = serde_json::from_slice::<FiringRecord>(&bytes) else {
            continue;
        };
        let goes = match &record.run_id {
            Some(run) => !present.contains(run.as_str()),
            None => {
                let trigger = key.rsplit_once('@').map_or(key.as_str(), |(t, _)| t);
                let rank = seen.entry(trigger.to_string()).or_default();
                *rank += 1;
                let by_count = policy.keep.is_some_and(|n| *rank <= n);
                let by_age = policy.since.is_some_and(|since| record.at >= since);
                !by_count && !by_age
            }
        };
        if goes {
            out.push(key);
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
