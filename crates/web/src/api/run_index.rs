//! Every run's record in memory, in creation order, so listing and filtering runs stays fast
//! with 100,000 of them: loaded once from the store, then kept current from the store's
//! change announcements (and loaded again when it fell behind them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use flow_engine::run_id::creation_order;
use flow_engine::store::{RunRecord, StateStore, StoreChange, WatchedStore};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

/// A run's place: creation order, then id. Greater is newer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    time: NaiveDateTime,
    seq: u32,
    created: DateTime<Utc>,
    id: String,
}

impl Key {
    fn of(run: &RunRecord) -> Key {
        let (time, seq, created) = creation_order(&run.id, run.created_at);
        Key {
            time,
            seq,
            created,
            id: run.id.clone(),
        }
    }

    /// The opaque cursor that continues a listing after this run.
    pub fn cursor(&self) -> String {
        let text = format!(
            "1|{}|{}|{}|{}",
            self.time.and_utc().timestamp_nanos_opt().unwrap_or(0),
            self.seq,
            self.created.timestamp_nanos_opt().unwrap_or(0),
            self.id
        );
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a cursor made by [`Key::cursor`].
    pub fn from_cursor(cursor: &str) -> Option<Key> {
        if !cursor.len().is_multiple_of(2) || cursor.len() > 1000 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..cursor.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let mut parts = text.splitn(5, '|');
        if parts.next()? != "1" {
            return None;
        }
        let time = DateTime::from_timestamp_nanos(parts.next()?.parse().ok()?).naive_utc();
        let seq = parts.next()?.parse().ok()?;
        let created = DateTime::from_timestamp_nanos(parts.next()?.parse().ok()?);
        let id = parts.next()?.to_string();
        Some(Key {
            time,
            seq,
            created,
            id,
        })
    }
}

#[derive(Default)]
struct Inner {
    runs: BTreeMap<Key, Arc<RunRecord>>,
    keys: HashMap<String, Key>,
    /// Workflow file -> its runs' keys.
    by_workflow: HashMap<String, BTreeSet<Key>>,
}

impl Inner {
    fn insert(&mut self, run: Arc<RunRecord>) {
        self.remove(&run.id);
        let key = Key::of(&run);
        self.keys.insert(run.id.clone(), key.clone());
        self.by_workflow
            .entry(run.workflow_path.clone())
            .or_default()
            .insert(key.clone());
        self.runs.insert(key, run);
    }

    fn remove(&mut self, id: &str) {
        if let Some(key) = self.keys.remove(id)
            && let Some(run) = self.runs.remove(&key)
            && let Some(set) = self.by_workflow.get_mut(&run.workflow_path)
        {
            set.remove(&key);
        }
    }
}

/// The index. Queries wait until it is loaded.
pub(crate) struct RunIndex {
    inner: RwLock<Inner>,
    ready: watch::Sender<bool>,
    started: AtomicBool,
}

impl Default for RunIndex {
    fn default() -> Self {
        RunIndex {
            inner: RwLock::new(Inner::default()),
            ready: watch::channel(false).0,
            started: AtomicBool::new(false),
        }
    }
}

impl RunIndex {
    /// Loads the index and keeps it current until `shutdown` turns true (once per index).
    pub fn start(self: &Arc<Self>, store: Arc<WatchedStore>, mut shutdown: watch::Receiver<bool>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let index = self.clone();
        tokio::spawn(async move {
            loop {
                // Listening before reading: nothing written in between is missed.
                let mut changes = store.subscribe();
                let reader = store.clone();
                match tokio::task::spawn_blocking(move || reader.runs()).await {
                    Ok(Ok(runs)) => index.replace(runs),
                    Ok(Err(e)) => {
                        tracing::warn!("cannot read the runs for the HTTP API: {e}; trying again");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(_) => return,
                }
                loop {
                    tokio::select! {
                        change = changes.recv() => match change {
                            Ok(StoreChange::Run(run)) => index.write().insert(run),
                            Ok(StoreChange::Removed(ids)) => {
                                let mut inner = index.write();
                                for id in ids.iter() {
                                    inner.remove(id);
                                }
                            }
                            Ok(StoreChange::Node { .. }) => {}
                            Err(RecvError::Lagged(_)) => break,
                            Err(RecvError::Closed) => return,
                        },
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        });
    }

    fn replace(&self, runs: Vec<RunRecord>) {
        let mut fresh = Inner::default();
        for run in runs {
            fresh.insert(Arc::new(run));
        }
        *self.write() = fresh;
        self.ready.send_replace(true);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the index is loaded.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Up to `limit` runs older than `after` (all runs when `None`), newest first, that pass
    /// `keep`; with the key to continue from when more may follow. Only `workflow`'s runs when
    /// given (a workflow file).
    pub fn page(
        &self,
        workflow: Option<&str>,
        after: Option<&Key>,
        limit: usize,
        mut keep: impl FnMut(&RunRecord) -> bool,
    ) -> (Vec<Arc<RunRecord>>, Option<Key>) {
        let inner = self.read();
        let upper = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut take = |key: &Key, run: &Arc<RunRecord>| {
            if !keep(run) {
                return true;
            }
            if out.len() == limit {
                more = true;
                return false;
            }
            out.push(run.clone());
            last = Some(key.clone());
            true
        };
        match workflow {
            Some(path) => {
                if let Some(keys) = inner.by_workflow.get(path) {
                    for key in keys.range((Bound::Unbounded, upper)).rev() {
                        if let Some(run) = inner.runs.get(key)
                            && !take(key, run)
                        {
                            break;
                        }
                    }
                }
            }
            None => {
                for (key, run) in inner.runs.range((Bound::Unbounded, upper)).rev() {
                    if !take(key, run) {
                        break;
                    }
                }
            }
        }
        (out, if more { last } else { None })
    }

    /// The newest runs of a workflow file.
    pub fn newest_of(&self, path: &str, n: usize) -> Vec<Arc<RunRecord>> {
        self.page(Some(path), None, n, |_| true).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, workflow: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "workflow_name": "w", "workflow_path": workflow, "workflow_fingerprint": "f",
            "node_fingerprints": {}, "params": {},
            "trigger": { "fired_by": "manual", "triggers": [], "time": "2026-01-01T00:00:00Z" },
            "status": "succeeded", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "executions": 1
        }))
        .unwrap()
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats_while_runs_arrive() {
        let index = RunIndex::default();
        let ids: Vec<String> = (0..25)
            .map(|i| format!("20260101-000000-{:03}-0001", i))
            .collect();
        index.replace(
            ids.iter()
                .map(|id| run(id, if id.contains("-01") { "a" } else { "b" }))
                .collect(),
        );
        let mut seen = Vec::new();
        let mut cursor: Option<Key> = None;
        loop {
            let (page, next) = index.page(None, cursor.as_ref(), 7, |_| true);
            seen.extend(page.iter().map(|r| r.id.clone()));
            // A new run arriving mid-listing comes before the cursor, so it does not shift pages.
            index.write().insert(Arc::new(run(
                &format!("20270101-000000-{:03}-0001", seen.len()),
                "a",
            )));
            match next {
                Some(k) => cursor = Key::from_cursor(&k.cursor()),
                None => break,
            }
        }
        let mut expected = ids.clone();
        expected.reverse();
        assert_eq!(seen, expected);
        let (a, _) = index.page(Some("b"), None, 100, |_| true);
        assert!(a.iter().all(|r| r.workflow_path == "b"));
        assert!(Key::from_cursor("zz").is_none());
        assert!(Key::from_cursor("31").is_none());
    }
}
