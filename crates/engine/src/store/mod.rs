//! Durable run state: run records, node records, checkpointed outputs, and small key-value
//! state (side-effect ledger, node state kept across runs, scheduler bookkeeping).
//!
//! Everything goes through [`StateStore`], so the engine does not depend on sled; an in-memory
//! store serves unit tests. Writes are grouped into atomic batches and are durable only after
//! [`StateStore::flush`]: the executor writes a node's output and its `succeeded` record in one
//! batch and flushes it before the node counts as done (see `executor` for what may start
//! meanwhile).

mod bounded;
mod check;
mod compact;
mod delegate_reads;
mod full_disk;
mod high_water;
mod memory;
mod migrate;
mod node_state;
mod output_file;
mod postgres;
mod read_copy;
mod records;
mod remote;
mod removal;
mod retention;
mod run_state;
mod sled_store;
mod transition;
mod usage;
mod watch;

use std::collections::HashSet;
use std::path::PathBuf;

pub use bounded::{BoundedStore, DEADLINE_ENV};
pub use check::{CheckReport, check as check_store};
pub use compact::Compacted;
pub(crate) use delegate_reads::delegate_reads;
pub use memory::MemoryStore;
pub use migrate::{Endpoint, MigrateError, Migrated, migrate};
pub use node_state::{AttemptOutcome, NodeEvent, NodeStatus};
pub use postgres::{
    ClaimedTask, Listener, PgStore, TASKS_ENDED, TASKS_READY, TaskState, is_postgres_url,
    redact_url,
};
pub use records::{Attempt, NodeRecord, RunRecord, TriggerInfo};
pub use remote::{LiveRuns, RemoteStore, SOCKET, StoreServer};
pub use removal::{Removal, Removed};
pub use retention::Retention;
pub use run_state::{RunEvent, RunStatus};
pub use sled_store::SledStore;
pub use transition::InvalidTransition;
pub use usage::{disk_usage, human_bytes};
pub use watch::{StoreChange, WatchedStore};

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum Write {
    Run(RunRecord),
    /// A node record and, when it succeeded, its encoded output (written together).
    Node {
        run_id: String,
        record: NodeRecord,
        output: Option<Vec<u8>>,
    },
    /// Small state under a namespace (`effects`, `node-state/TYPE`, `schedule`, ...).
    Put {
        namespace: String,
        key: String,
        value: Vec<u8>,
    },
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state store {} is in use by another flow process (a running `flow run`, `flow resume` or `flow serve`); wait for it to finish, or use another store with --state DIR or FLOW_STATE",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "the state store {} cannot be opened: {reason}. flow has not changed it; move it aside (or pass --state DIR for a new store) and keep it for inspection",
        path.display()
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the state store {} was written by a newer flow (format {found}, this flow reads format {supported}); upgrade flow or use another --state DIR",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the state store {} has lost saved work: its database holds {found} committed write batches, but {expected} were made durable (recorded in {}/db.hwm). Its files are damaged and the database would silently go back to an older state, so finished runs would look unfinished and run again. flow has not changed any file; restore the store from a backup, or move the directory aside (keep it for inspection) and start a new store with --state DIR",
        path.display(), path.display()
    )]
    RolledBack {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error(
        "the state store {} has lost its database: {}/db is missing, but {evidence} shows a store was there. flow has not created an empty one in its place; restore db/ from a backup, or move the directory aside (keep it for inspection) and start a new store with --state DIR",
        path.display(), path.display()
    )]
    Missing { path: PathBuf, evidence: String },
    #[error("state store I/O error: {0}")]
    Io(String),
    #[error(
        "the state store {} cannot save checkpoints: {reason}. Checkpoints saved before are kept; free space on its disk (or fix the disk), then continue with `flow resume`",
        path.display()
    )]
    NotDurable { path: PathBuf, reason: String },
    #[error(
        "the state store {} cannot be opened: {reason}. Its disk is full: free space on that disk, then try again (after an unclean stop flow first checks a copy of the store, which needs as much free space as the store's db/ directory)",
        path.display()
    )]
    NoSpace { path: PathBuf, reason: String },
    #[error(
        "the state store {} was read from a copy because its disk is full, so nothing can be saved to it; free space on its disk, then try again",
        path.display()
    )]
    ReadOnlyCopy { path: PathBuf },
    #[error("the `flow serve` holding the state store {} reported: {reason}", path.display())]
    Remote { path: PathBuf, reason: String },
    #[error(
        "cannot reach the PostgreSQL store {location}: {reason}. Check the URL given with --store or FLOW_STORE, and that the server runs and takes connections from this host"
    )]
    Unreachable { location: String, reason: String },
    #[error(
        "the PostgreSQL store {location} has schema version {found}, written by a newer flow (this flow knows version {supported}); upgrade flow on this host"
    )]
    NewerSchema {
        location: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "run {run_id} is running in another flow process that shares this store; wait for it to end (`flow runs` shows it as running)"
    )]
    RunHeldElsewhere { run_id: String },
    #[error(
        "run {run_id} was taken over by another flow process while this one had lost its connection to the store; this process stops writing to it"
    )]
    RunTakenOver { run_id: String },
    #[error(
        "another flow serve sharing this store fires the schedules now; this one stands by and wrote no schedule watermark"
    )]
    NotLeading,
    #[error("a stored record is damaged ({what}): {reason}")]
    Corrupt { what: String, reason: String },
}

/// Outputs at least this large may be kept in files beside a store's database (sled keeps
/// values in its page cache and log; a large table there costs memory and a second copy on
/// every flush); encoding one may then write and sync a file.
pub const OUTPUT_FILE_THRESHOLD: usize = 256 * 1024;

/// An output encoded in memory, for [`StateStore::encode_output`].
pub fn encode_in_memory(output: &crate::data::Output) -> Result<Vec<u8>, StoreError> {
    crate::data::encode(output)
        .map_err(|e| StoreError::Io(format!("cannot encode the output: {e}")))
}

/// The durable state behind runs.
pub trait StateStore: Send + Sync {
    /// Applies all writes atomically (all or none). Not durable until [`StateStore::flush`].
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Makes every applied write durable (fsync).
    fn flush(&self) -> Result<(), StoreError>;
    /// [`StateStore::apply`] then [`StateStore::flush`]; a store that hands writes to another
    /// thread does both in one hand-over.
    fn apply_durable(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.apply(writes)?;
        self.flush()
    }
    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// All runs, newest first.
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    /// The greatest run id, which a new id must sort after; stores keyed by id find it
    /// without reading every run.
    fn newest_run_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self.runs()?.into_iter().next().map(|r| r.id))
    }
    /// A run's node records, in no particular order.
    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRecord>, StoreError>;
    fn output(&self, run_id: &str, node_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Encodes a node's output for its [`Write::Node`]. A store may write a large output
    /// elsewhere as it is encoded (a file beside a local store) and return what stands for it;
    /// an error is a checkpoint that cannot be saved.
    fn encode_output(
        &self,
        run_id: &str,
        node_id: &str,
        output: &crate::data::Output,
    ) -> Result<Vec<u8>, StoreError> {
        let _ = (run_id, node_id);
        encode_in_memory(output)
    }
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys and values under a namespace whose key starts with `prefix`, in key order.
    fn scan(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Where the store lives, for messages.
    fn location(&self) -> String;
    /// Where node types keep synced histories across runs: a directory beside a local store,
    /// the database of a shared one; `None` for stores that keep none (in memory).
    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        None
    }
    /// Runs some process is executing right now. A run recorded as `running` that is not live
    /// was interrupted. A store opened directly holds the lock, so no other process runs anything.
    fn live_runs(&self) -> Result<HashSet<String>, StoreError> {
        Ok(HashSet::new())
    }
    /// Removes runs with everything stored for them (run and node records, outputs, output
    /// files, effect-ledger entries) and the listed keys, in one atomic batch, then flushes.
    /// Node state kept across runs stays: later runs build on it.
    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError>;
    /// Whether this process may fire schedules now. A store that one process holds says yes;
    /// a store shared by several `flow serve` processes lets one of them at a time, and its
    /// watermark writes fail for the others.
    fn lead_schedules(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Whether other processes may write to the store while this one has it open.
    fn is_shared(&self) -> bool {
        false
    }
    /// Bytes the store takes where that is not a local directory's size (a database server's
    /// tables); `None` when the directory tells.
    fn stored_bytes(&self) -> Option<u64> {
        None
    }
}

/// Keys shared by the backends, so their layouts cannot drift apart.
pub(crate) mod keys {
    pub fn run(run_id: &str) -> String {
        format!("run/{run_id}")
    }
    pub fn node(run_id: &str, node_id: &str) -> String {
        format!("node/{run_id}/{node_id}")
    }
    pub fn node_prefix(run_id: &str) -> String {
        format!("node/{run_id}/")
    }
    pub fn output(run_id: &str, node_id: &str) -> String {
        format!("out/{run_id}/{node_id}")
    }
    pub fn kv(namespace: &str, key: &str) -> String {
        format!("kv/{namespace}/{key}")
    }
    pub const RUN_PREFIX: &str = "run/";
    /// The effect ledger's namespace; its keys start with the run id (`RUN/NODE/ITEM`).
    pub const EFFECTS: &str = "effects";
    /// Key prefixes holding everything of one run besides its record.
    pub fn run_prefixes(run_id: &str) -> [String; 4] {
        [
            node_prefix(run_id),
            format!("out/{run_id}/"),
            kv(EFFECTS, &format!("{run_id}/")),
            kv(crate::node_log::LOGS, &format!("{run_id}/")),
        ]
    }
}

pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Io(e.to_string()))
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Turns writes into key/value pairs; both backends store exactly these.
pub(crate) fn to_pairs(writes: Vec<Write>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut pairs = Vec::with_capacity(writes.len() + 1);
    for w in writes {
        match w {
            Write::Run(run) => pairs.push((keys::run(&run.id), encode_json(&run)?)),
            Write::Node {
                run_id,
                record,
                output,
            } => {
                // The output goes first in the same atomic batch: a record never says
                // `succeeded` without its output being there.
                if let Some(bytes) = output {
                    pairs.push((keys::output(&run_id, &record.node_id), bytes));
                }
                pairs.push((keys::node(&run_id, &record.node_id), encode_json(&record)?));
            }
            Write::Put {
                namespace,
                key,
                value,
            } => pairs.push((keys::kv(&namespace, &key), value)),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    pub(super) fn exercise(store: &dyn StateStore) {
        let mut run = RunRecord::new_for_test("20260101-000000-aaaa");
        store.apply(vec![Write::Run(run.clone())]).unwrap();
        run.id = "20260102-000000-bbbb".into();
        let record = NodeRecord::new("a");
        store
            .apply(vec![
                Write::Run(run.clone()),
                Write::Node {
                    run_id: run.id.clone(),
                    record,
                    output: Some(b"xyz".to_vec()),
                },
                Write::Put {
                    namespace: "effects".into(),
                    key: "k1".into(),
                    value: b"1".to_vec(),
                },
            ])
            .unwrap();
        store.flush().unwrap();
        let runs = store.runs().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, "20260102-000000-bbbb", "newest first");
        assert_eq!(store.nodes(&run.id).unwrap().len(), 1);
        assert_eq!(store.output(&run.id, "a").unwrap().unwrap(), b"xyz");
        assert!(store.output("20260101-000000-aaaa", "a").unwrap().is_none());
        assert_eq!(store.get("effects", "k1").unwrap().unwrap(), b"1");
        assert_eq!(store.scan("effects", "k").unwrap().len(), 1);
        assert!(store.run("nope").unwrap().is_none());
    }

    /// Removing a run takes its records, outputs (large ones too) and ledger entries, and the
    /// listed keys; other runs and node state stay.
    pub(super) fn exercise_remove(store: &dyn StateStore) {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let mut writes = Vec::new();
        for id in ["20270101-000000-gone", "20270102-000000-kept"] {
            let mut run = RunRecord::new_for_test(id);
            run.status = RunStatus::Succeeded;
            writes.push(Write::Run(run));
            for (node, output) in [("small", b"tiny".to_vec()), ("large", big.clone())] {
                writes.push(Write::Node {
                    run_id: id.into(),
                    record: NodeRecord::new(node),
                    output: Some(output),
                });
            }
            writes.push(Write::Put {
                namespace: keys::EFFECTS.into(),
                key: format!("{id}/small/item"),
                value: b"{}".to_vec(),
            });
        }
        writes.push(Write::Put {
            namespace: "node-state/deploy".into(),
            key: "baseline".into(),
            value: b"snapshot".to_vec(),
        });
        writes.push(Write::Put {
            namespace: "firings".into(),
            key: "wf#t@1".into(),
            value: b"{}".to_vec(),
        });
        store.apply(writes).unwrap();
        store.flush().unwrap();

        let removal = Removal {
            run_ids: vec!["20270101-000000-gone".into(), "never-existed".into()],
            keys: vec![("firings".into(), "wf#t@1".into())],
        };
        let removed = store.remove(&removal).unwrap();
        assert_eq!(removed.runs, 1, "{removed:?}");
        // Run record, two node records, two outputs, one ledger entry, one listed key.
        assert_eq!(removed.entries, 7, "{removed:?}");
        assert!(removed.bytes >= big.len() as u64, "{removed:?}");

        let gone = "20270101-000000-gone";
        assert!(store.run(gone).unwrap().is_none());
        assert!(store.nodes(gone).unwrap().is_empty());
        assert!(store.output(gone, "small").unwrap().is_none());
        assert!(store.output(gone, "large").unwrap().is_none());
        assert!(store.scan(keys::EFFECTS, gone).unwrap().is_empty());
        assert!(store.get("firings", "wf#t@1").unwrap().is_none());

        let kept = "20270102-000000-kept";
        assert!(store.run(kept).unwrap().is_some());
        assert_eq!(store.nodes(kept).unwrap().len(), 2);
        assert_eq!(store.output(kept, "large").unwrap().unwrap(), big);
        assert_eq!(store.scan(keys::EFFECTS, kept).unwrap().len(), 1);
        assert_eq!(
            store.get("node-state/deploy", "baseline").unwrap().unwrap(),
            b"snapshot"
        );
        // Removing again finds nothing.
        assert_eq!(
            store.remove(&removal).unwrap(),
            Removed::default(),
            "a second removal removes nothing"
        );
    }

    #[test]
    fn memory_store_contract() {
        exercise(&MemoryStore::default());
        exercise_remove(&MemoryStore::default());
    }

    #[test]
    fn sled_store_removes_runs_with_their_output_files_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        exercise_remove(&store);
        assert!(!dir.path().join("outputs/20270101-000000-gone").exists());
        assert!(
            dir.path()
                .join("outputs/20270102-000000-kept/large.out")
                .exists()
        );
        // An output directory whose run has no record (a removal killed after its batch) is
        // swept up by the next removal.
        std::fs::create_dir_all(dir.path().join("outputs/orphan")).unwrap();
        std::fs::write(dir.path().join("outputs/orphan/x.out"), [0u8; 4096]).unwrap();
        let removed = store.remove(&Removal::default()).unwrap();
        assert!(removed.bytes >= 4096);
        assert!(!dir.path().join("outputs/orphan").exists());
        drop(store);
        let again = SledStore::open(dir.path()).unwrap();
        assert!(again.run("20270101-000000-gone").unwrap().is_none());
        assert_eq!(again.runs().unwrap().len(), 1);
    }

    #[test]
    fn large_outputs_live_in_files_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let record = NodeRecord::new("wide");
        store
            .apply(vec![Write::Node {
                run_id: "r1".into(),
                record,
                output: Some(big.clone()),
            }])
            .unwrap();
        store.flush().unwrap();
        assert!(dir.path().join("outputs/r1/wide.out").exists());
        assert_eq!(store.output("r1", "wide").unwrap().unwrap(), big);
        drop(store);
        let again = SledStore::open(dir.path()).unwrap();
        assert_eq!(again.output("r1", "wide").unwrap().unwrap(), big);
    }

    #[test]
    fn remote_store_contract_and_live_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn StateStore> = Arc::new(SledStore::open(dir.path()).unwrap());
        let live = LiveRuns::default();
        let _server = StoreServer::start(dir.path(), sled.clone(), live.clone()).unwrap();
        let remote = RemoteStore::connect(dir.path())
            .unwrap()
            .expect("server answers");
        exercise(&remote);
        exercise_remove(&remote);
        // Large outputs arrive intact.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        remote
            .apply(vec![Write::Node {
                run_id: "r9".into(),
                record: NodeRecord::new("big"),
                output: Some(big.clone()),
            }])
            .unwrap();
        remote.flush().unwrap();
        assert_eq!(sled.output("r9", "big").unwrap().unwrap(), big);
        // The last record the client wrote says running: live until the client goes away.
        let mut running = RunRecord::new_for_test("20260103-000000-cccc");
        remote.apply(vec![Write::Run(running.clone())]).unwrap();
        assert!(remote.live_runs().unwrap().contains(&running.id));
        live.start("server-run");
        assert!(remote.live_runs().unwrap().contains("server-run"));
        running.status = RunStatus::Succeeded;
        remote.apply(vec![Write::Run(running.clone())]).unwrap();
        assert!(!remote.live_runs().unwrap().contains(&running.id));
        running.status = RunStatus::Running;
        remote.apply(vec![Write::Run(running.clone())]).unwrap();
        drop(remote);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while live.contains(&running.id) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !live.contains(&running.id),
            "a client that went away runs nothing"
        );
        assert!(live.contains("server-run"));
        // The server never removes a run it knows to be live, whatever the client asked.
        let mut served = RunRecord::new_for_test("server-run");
        served.status = RunStatus::Failed;
        sled.apply(vec![Write::Run(served)]).unwrap();
        let remote = RemoteStore::connect(dir.path()).unwrap().expect("server");
        let removed = remote
            .remove(&Removal {
                run_ids: vec!["server-run".into()],
                keys: vec![],
            })
            .unwrap();
        assert_eq!(removed.runs, 0);
        assert!(sled.run("server-run").unwrap().is_some());
    }

    #[test]
    fn stopping_the_server_closes_its_clients_and_frees_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn StateStore> = Arc::new(SledStore::open(dir.path()).unwrap());
        let weak = Arc::downgrade(&sled);
        let server = StoreServer::start(dir.path(), sled, LiveRuns::default()).unwrap();
        let remote = RemoteStore::connect(dir.path())
            .unwrap()
            .expect("server answers");
        assert!(remote.runs().unwrap().is_empty());
        drop(server);
        assert!(remote.runs().is_err(), "the connection is closed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(weak.strong_count(), 0, "client threads let go of the store");
        // So it closes (on the thread that let go last), and the lock is free again.
        let mut reopened = SledStore::open(dir.path());
        while matches!(reopened, Err(StoreError::Locked { .. }))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
            reopened = SledStore::open(dir.path());
        }
        assert!(reopened.is_ok(), "{reopened:?}");
    }

    #[test]
    fn no_server_means_no_remote_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RemoteStore::connect(dir.path()).unwrap().is_none());
        // A socket file left by a crashed server is not a server.
        std::fs::write(dir.path().join(SOCKET), b"").unwrap();
        assert!(RemoteStore::connect(dir.path()).unwrap().is_none());
    }

    #[test]
    fn sled_store_contract_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        exercise(&store);
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked { .. }) => {}
            other => panic!("expected a lock error, got {other:?}"),
        }
        drop(store);
        let again = SledStore::open(dir.path()).unwrap();
        assert_eq!(again.runs().unwrap().len(), 2);
    }
}
