//! Reaching the state store from a command, and finding a run in it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::anyhow;
use flow_engine::store::{
    PgStore, RemoteStore, RunRecord, SledStore, StateStore, StoreError, is_postgres_url,
};

use super::Failure;

/// The PostgreSQL store chosen with `--store` or `FLOW_STORE`; unset means the sled store in
/// the `--state` directory.
static POSTGRES: OnceLock<String> = OnceLock::new();

/// Chooses the store for this process: a `postgres://` URL, or none for the sled default.
pub(super) fn select_store(url: Option<&str>) -> Result<(), Failure> {
    match url.filter(|u| !u.is_empty()) {
        None => Ok(()),
        Some(url) if is_postgres_url(url) => {
            let _ = POSTGRES.set(url.to_string());
            Ok(())
        }
        Some(url) => Err(Failure::invalid(anyhow!(
            "--store (or FLOW_STORE) takes a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE; got `{}`. The sled store is chosen with --state DIR",
            flow_engine::store::redact_url(url)
        ))),
    }
}

/// The PostgreSQL URL chosen, if any.
pub(super) fn postgres_url() -> Option<&'static str> {
    POSTGRES.get().map(String::as_str)
}

fn open_postgres(url: &str) -> Result<Arc<dyn StateStore>, Failure> {
    Ok(Arc::new(PgStore::open(url)?))
}

/// The PostgreSQL store chosen with `--store`, as itself (its task queue is not in
/// [`StateStore`]).
pub(super) fn open_postgres_store() -> Result<Arc<PgStore>, Failure> {
    let url = postgres_url().ok_or_else(|| {
        Failure::invalid(anyhow!(
            "this needs a PostgreSQL store: give it with --store postgres://... or FLOW_STORE"
        ))
    })?;
    Ok(Arc::new(PgStore::open(url)?))
}

/// Opens the state store; while `flow serve` holds it, reaches it through the server.
///
/// A lock held by no server gets a short grace period before the store counts as in use: a flow
/// process that was just killed can leave a child between fork and exec that shares its open
/// files (and so its lock) for a moment, and a command that is finishing lets go within it.
pub(super) fn open_store(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    if let Some(url) = postgres_url() {
        return open_postgres(url);
    }
    open_store_with(dir, SledStore::open)
}

/// Opens the state store for a command that only reads it: on a full disk, where opening the
/// store itself needs to write, it is read from a copy on another disk.
pub(super) fn open_store_to_read(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    if let Some(url) = postgres_url() {
        return open_postgres(url);
    }
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
