//! Reaching the state store from a command, and finding a run in it.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use flow_engine::store::{RemoteStore, RunRecord, SledStore, StateStore, StoreError};

use super::Failure;

/// Opens the state store; while `flow serve` holds it, reaches it through the server.
///
/// A lock held by no server gets a short grace period before the store counts as in use: a flow
/// process that was just killed can leave a child between fork and exec that shares its open
/// files (and so its lock) for a moment, and a command that is finishing lets go within it.
pub(super) fn open_store(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    open_store_with(dir, SledStore::open)
}

/// Opens the state store for a command that only reads it: on a full disk, where opening the
/// store itself needs to write, it is read from a copy on another disk.
pub(super) fn open_store_to_read(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    open_store_with(dir, |dir| match SledStore::open(dir) {
        Err(StoreError::NoSpace { .. }) => {
            let store = SledStore::open_copy(dir)?;
            // Shown at every log level: the reader should know why the disk needs attention.
            eprintln!(
                "the disk of the state store {} is full: read it from a copy in {} (free space on that disk before the next run)",
                dir.display(),
                std::env::temp_dir().display()
            );
            Ok(store)
        }
        other => other,
    })
}

fn open_store_with(
    dir: &Path,
    open: impl Fn(&Path) -> Result<SledStore, StoreError>,
) -> Result<Arc<dyn StateStore>, Failure> {
    const GRACE: std::time::Duration = std::time::Duration::from_millis(500);
    let start = std::time::Instant::now();
    loop {
        match open(dir) {
            Ok(store) => return Ok(Arc::new(store)),
            Err(StoreError::Locked { path }) => match RemoteStore::connect(dir)? {
                Some(remote) => {
                    tracing::info!(
                        "the state store is held by flow serve; using it through the server"
                    );
                    return Ok(Arc::new(remote));
                }
                None if start.elapsed() < GRACE => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                None => return Err(StoreError::Locked { path }.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds a run by id, unique prefix, or `last`.
pub(super) fn find_run(store: &dyn StateStore, id: &str) -> Result<RunRecord, Failure> {
    if let Some(run) = store.run(id)? {
        return Ok(run);
    }
    let runs = store.runs()?;
    if id == "last" {
        return runs
            .into_iter()
            .next()
            .ok_or_else(|| Failure::invalid(anyhow!("there are no runs yet")));
    }
    let matches: Vec<RunRecord> = runs.into_iter().filter(|r| r.id.starts_with(id)).collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(Failure::invalid(anyhow!(
            "no run `{id}` in {} (`flow runs` lists them; a run removed by `flow runs prune` or flow serve's retention is gone for good)",
            store.location()
        ))),
        n => Err(Failure::invalid(anyhow!(
            "`{id}` matches {n} runs ({}); give more of the id",
            matches
                .iter()
                .take(5)
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
