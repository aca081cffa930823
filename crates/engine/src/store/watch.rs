//! A store that tells listeners what changed: every run and node record written, and every run
//! removed. `flow serve` wraps its store in one, so the pages and event streams it serves see
//! the runs it executes and those of `flow run` processes writing through its socket alike.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{NodeRecord, Removal, Removed, RunRecord, StateStore, StoreError, Write};

/// How many changes a slow listener may fall behind before it misses some (it is told so,
/// and reloads what it shows).
const BACKLOG: usize = 4096;

/// A change the store has applied.
#[derive(Debug, Clone)]
pub enum StoreChange {
    Run(Arc<RunRecord>),
    Node {
        run_id: String,
        record: Arc<NodeRecord>,
    },
    /// Runs removed (retention, `flow runs prune`).
    Removed(Arc<Vec<String>>),
}

/// Wraps a store; changes are announced after they are applied.
pub struct WatchedStore {
    inner: Arc<dyn StateStore>,
    changes: broadcast::Sender<StoreChange>,
}

impl std::fmt::Debug for WatchedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedStore")
            .field("inner", &self.inner.location())
            .finish()
    }
}

impl WatchedStore {
    pub fn new(inner: Arc<dyn StateStore>) -> Self {
        WatchedStore {
            inner,
            changes: broadcast::channel(BACKLOG).0,
        }
    }

    /// Changes applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreChange> {
        self.changes.subscribe()
    }
}

impl StateStore for WatchedStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let changes: Vec<StoreChange> = if self.changes.receiver_count() == 0 {
            Vec::new()
        } else {
            writes
                .iter()
                .filter_map(|w| match w {
                    Write::Run(run) => Some(StoreChange::Run(Arc::new(run.clone()))),
                    Write::Node { run_id, record, .. } => Some(StoreChange::Node {
                        run_id: run_id.clone(),
                        record: Arc::new(record.clone()),
                    }),
                    Write::Put { .. } => None,
                })
                .collect()
        };
        self.inner.apply(writes)?;
        for change in changes {
            let _ = self.changes.send(change);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    crate::store::delegate_reads!(inner);

    fn location(&self) -> String {
        self.inner.location()
    }

    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        self.inner.histories()
    }

    fn live_runs(&self) -> Result<HashSet<String>, StoreError> {
        self.inner.live_runs()
    }

    fn stored_bytes(&self) -> Option<u64> {
        self.inner.stored_bytes()
    }

    fn lead_schedules(&self) -> Result<bool, StoreError> {
        self.inner.lead_schedules()
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        let removed = self.inner.remove(removal)?;
        if !removal.run_ids.is_empty() {
            let _ = self
                .changes
                .send(StoreChange::Removed(Arc::new(removal.run_ids.clone())));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn listeners_see_run_and_node_writes_and_removals_but_not_small_state() {
        let store = WatchedStore::new(Arc::new(MemoryStore::default()));
        let mut rx = store.subscribe();
        let run = RunRecord::new_for_test("20260101-000000-000-0001");
        store
            .apply(vec![
                Write::Run(run.clone()),
                Write::Put {
                    namespace: "x".into(),
                    key: "k".into(),
                    value: vec![1],
                },
                Write::Node {
                    run_id: run.id.clone(),
                    record: NodeRecord::new("a"),
                    output: None,
                },
            ])
            .unwrap();
        store
            .remove(&Removal {
                run_ids: vec![run.id.clone()],
                keys: vec![],
            })
            .unwrap();
        assert!(matches!(rx.try_recv().unwrap(), StoreChange::Run(r) if r.id == run.id));
        assert!(
            matches!(rx.try_recv().unwrap(), StoreChange::Node { record, .. } if record.node_id == "a")
        );
        assert!(matches!(rx.try_recv().unwrap(), StoreChange::Removed(ids) if ids[0] == run.id));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_failed_write_announces_nothing() {
        struct Failing;
        impl StateStore for Failing {
            fn apply(&self, _: Vec<Write>) -> Result<(), StoreError> {
                Err(StoreError::Io("disk".into()))
            }
            fn flush(&self) -> Result<(), StoreError> {
                Ok(())
            }
            fn run(&self, _: &str) -> Result<Option<RunRecord>, StoreError> {
                Ok(None)
            }
            fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
                Ok(vec![])
            }
            fn nodes(&self, _: &str) -> Result<Vec<NodeRecord>, StoreError> {
                Ok(vec![])
            }
            fn output(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(None)
            }
            fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(None)
            }
            fn scan(&self, _: &str, _: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                Ok(vec![])
            }
            fn location(&self) -> String {
                "failing".into()
            }
            fn remove(&self, _: &Removal) -> Result<Removed, StoreError> {
                Ok(Removed::default())
            }
        }
        let store = WatchedStore::new(Arc::new(Failing));
        let mut rx = store.subscribe();
        let run = RunRecord::new_for_test("r");
        assert!(store.apply(vec![Write::Run(run)]).is_err());
        assert!(rx.try_recv().is_err());
    }
}
