//! The sled backend (sled 0.34.7, pinned; its 1.0 is an unfinished alpha).
//!
//! Layout: one sled tree; keys `run/ID`, `node/ID/NODE`, `out/ID/NODE`, `kv/NS/KEY`, and
//! `meta/format`. sled takes an exclusive file lock, so a second process gets
//! [`StoreError::Locked`].

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use super::{NodeRecord, RunRecord, StateStore, StoreError, Write, decode_json, keys, to_pairs};

/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;
const FORMAT_KEY: &str = "meta/format";

/// A state store in a directory (default `.flow/`).
pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db_path = dir.join("db");
        let existed = db_path.join("conf").exists();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: format!("cannot create the directory: {e}"),
        })?;
        let config = sled::Config::new()
            .path(&db_path)
            .mode(sled::Mode::HighThroughput);
        // sled panics on some damaged files instead of returning an error.
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Io(e))) if is_lock_error(&e) => {
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Ok(Err(e)) => {
                return Err(StoreError::Unreadable {
                    path: dir.to_path_buf(),
                    reason: e.to_string(),
                });
            }
            Err(panic) => {
                return Err(StoreError::Unreadable {
                    path: dir.to_path_buf(),
                    reason: format!("the database is damaged ({})", panic_message(&panic)),
                });
            }
        };
        let store = SledStore {
            db,
            dir: dir.to_path_buf(),
        };
        match store.db.get(FORMAT_KEY).map_err(io)? {
            Some(bytes) => {
                let found = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok());
                match found {
                    Some(v) if v <= FORMAT => {}
                    Some(v) => {
                        return Err(StoreError::NewerFormat {
                            path: dir.to_path_buf(),
                            found: v,
                            supported: FORMAT,
                        });
                    }
                    None => {
                        return Err(StoreError::Unreadable {
                            path: dir.to_path_buf(),
                            reason: "its format marker is damaged".into(),
                        });
                    }
                }
            }
            None if existed && !store.db.is_empty() => {
                return Err(StoreError::Unreadable {
                    path: dir.to_path_buf(),
                    reason: "it is not a flow state store (no format marker)".into(),
                });
            }
            None => {
                store
                    .db
                    .insert(FORMAT_KEY, FORMAT.to_string().as_bytes())
                    .map_err(io)?;
                store.db.flush().map_err(io)?;
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl StateStore for SledStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in to_pairs(writes)? {
            batch.insert(k.as_bytes(), v);
        }
        self.db.apply_batch(batch).map_err(io)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        match self.db.get(keys::run(run_id)).map_err(io)? {
            Some(bytes) => Ok(Some(decode_json(&format!("run {run_id}"), &bytes)?)),
            None => Ok(None),
        }
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = Vec::new();
        // Run ids start with their creation time, so reverse key order is newest first.
        for item in self.db.scan_prefix(keys::RUN_PREFIX).rev() {
            let (key, bytes) = item.map_err(io)?;
            runs.push(decode_json(&String::from_utf8_lossy(&key), &bytes)?);
        }
        Ok(runs)
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes = Vec::new();
        for item in self.db.scan_prefix(keys::node_prefix(run_id)) {
            let (key, bytes) = item.map_err(io)?;
            nodes.push(decode_json(&String::from_utf8_lossy(&key), &bytes)?);
        }
        Ok(nodes)
    }

    fn output(&self, run_id: &str, node_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(keys::output(run_id, node_id))
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(keys::kv(namespace, key))
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let full = keys::kv(namespace, prefix);
        let strip = keys::kv(namespace, "").len();
        self.db
            .scan_prefix(full.as_bytes())
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((
                    String::from_utf8_lossy(&k[strip..]).into_owned(),
                    v.to_vec(),
                ))
            })
            .collect()
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}
