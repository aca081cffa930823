//! Synced histories in the database, so that a source node finds its history and cursor on
//! whichever host runs it.
//!
//! A history is a row of `flow_histories` (its manifest and a version) and its segments in
//! `flow_history_segments`, in chunks. Segments are committed before the manifest naming them.
//! One writer at a time holds a session-level advisory lock on the history's name; because a
//! lost connection lets go of that lock silently, the manifest is also replaced only if its
//! version is still the one this writer read, so a writer that was overtaken keeps nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use postgres::Client;

use super::pool::Pool;
use super::{RETRY_FOR, chunks, describe};
use crate::sync::{Place, PlaceLock, Places, StoredManifest, SyncError};

/// The first key of the advisory locks on histories ("FLOY"); the second is the name's
/// `hashtext`.
const HISTORY_LOCK_CLASS: i32 = 0x464C_4F59;

/// The histories of one PostgreSQL store.
#[derive(Clone)]
pub(super) struct PgPlaces {
    /// Reads and writes.
    pub(super) pool: Pool,
    /// The connection the store keeps its run locks on; history locks live there too.
    pub(super) locks: Pool,
    /// Histories this process holds: a session's advisory locks stack, so the lock alone would
    /// let two writers of one process in.
    pub(super) held: Arc<Mutex<HashSet<String>>>,
    pub(super) location: String,
}

impl std::fmt::Debug for PgPlaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPlaces")
            .field("location", &self.location)
            .finish()
    }
}

impl PgPlaces {
    fn call<R: Send + 'static>(
        &self,
        what: &str,
        f: impl FnMut(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, SyncError> {
        let location = format!("{} ({what})", self.location);
        self.pool
            .call(move |conn| conn.run(RETRY_FOR, f))
            .ok_or_else(|| SyncError::Store {
                location: location.clone(),
                reason: "the store is closing".into(),
            })?
            .map_err(|e| SyncError::Store {
                location,
                reason: describe(&e),
            })
    }
}

impl Places for PgPlaces {
    fn place(&self, name: &str) -> Box<dyn Place> {
        Box::new(PgPlace {
            places: self.clone(),
            name: name.to_string(),
        })
    }

    fn names(&self, prefix: &str) -> Result<Vec<String>, SyncError> {
        let prefix = prefix.to_string();
        self.call("listing histories", move |c| {
            let rows = c.query(
                "SELECT name FROM flow_histories WHERE starts_with(name, $1) ORDER BY name",
                &[&prefix],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

#[derive(Debug)]
struct PgPlace {
    places: PgPlaces,
    name: String,
}

/// This process's claim on a history's name, given up when dropped.
struct Claim {
    held: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl Claim {
    /// `None` when another writer of this process holds the history.
    fn take(held: &Arc<Mutex<HashSet<String>>>, name: &str) -> Option<Claim> {
        let fresh = held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        fresh.then(|| Claim {
            held: held.clone(),
            name: name.to_string(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// The advisory lock on one history, let go when dropped (before the claim it holds).
struct HistoryLock {
    locks: Pool,
    claim: Claim,
}

impl std::fmt::Debug for HistoryLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryLock")
            .field("name", &self.claim.name)
            .finish()
    }
}

impl PlaceLock for HistoryLock {}

impl Drop for HistoryLock {
    fn drop(&mut self) {
        let name = self.claim.name.clone();
        // A broken connection has let go of the lock already.
        let _ = self.locks.call(move |conn| {
            conn.client().and_then(|c| {
                c.query_one(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    &[&HISTORY_LOCK_CLASS, &name],
                )
            })
        });
    }
}

impl Place for PgPlace {
    fn describe(&self) -> String {
        format!("{} history {}", self.places.location, self.name)
    }

    fn lock(&self) -> Result<Box<dyn PlaceLock>, SyncError> {
        let location = self.describe();
        let busy = || SyncError::Busy {
            dir: location.clone(),
        };
        let claim = Claim::take(&self.places.held, &self.name).ok_or_else(busy)?;
        let name = self.name.clone();
        let taken = self
            .places
            .locks
            .call(move |conn| {
                conn.run(RETRY_FOR, |c| {
                    c.query_one(
                        "SELECT pg_try_advisory_lock($1, hashtext($2))",
                        &[&HISTORY_LOCK_CLASS, &name],
                    )
                    .map(|row| row.get::<_, bool>(0))
                })
            })
            .ok_or_else(|| SyncError::Store {
                location: location.clone(),
                reason: "the store is closing".into(),
            })?
            .map_err(|e| SyncError::Store {
                location: location.clone(),
                reason: describe(&e),
            })?;
        if !taken {
            return Err(busy());
        }
        Ok(Box::new(HistoryLock {
            locks: self.places.locks.clone(),
            claim,
        }))
    }

    fn read_manifest(&self) -> Result<Option<StoredManifest>, SyncError> {
        let name = self.name.clone();
        self.places.call("reading a manifest", move |c| {
            Ok(c.query_opt(
                "SELECT manifest, version FROM flow_histories WHERE name = $1",
                &[&name],
            )?
            .map(|row| StoredManifest {
                bytes: row.get(0),
                version: row.get(1),
            }))
        })
    }

    fn write_manifest(&self, bytes: &[u8], expected: Option<i64>) -> Result<i64, SyncError> {
        let name = self.name.clone();
        let bytes = Arc::new(bytes.to_vec());
        let written = self.places.call("writing a manifest", move |c| {
            let row = match expected {
                None => c.query_opt(
                    "INSERT INTO flow_histories (name, version, manifest) VALUES ($1, 1, $2)
                     ON CONFLICT (name) DO NOTHING RETURNING version",
                    &[&name, &*bytes],
                )?,
                Some(version) => c.query_opt(
                    "UPDATE flow_histories SET manifest = $2, version = version + 1
                     WHERE name = $1 AND version = $3 RETURNING version",
                    &[&name, &*bytes, &version],
                )?,
            };
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })?;
        written.ok_or_else(|| SyncError::Overtaken {
            location: self.describe(),
        })
    }

    fn write_segment(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
        let history = self.name.clone();
        let segment = name.to_string();
        let bytes = Arc::new(bytes.to_vec());
        self.places.call("writing a segment", move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM flow_history_segments WHERE name = $1 AND segment = $2",
                &[&history, &segment],
            )?;
            for (i, chunk) in chunks(&bytes) {
                tx.execute(
                    "INSERT INTO flow_history_segments (name, segment, chunk, data) VALUES ($1, $2, $3, $4)",
                    &[&history, &segment, &i, &chunk],
                )?;
            }
            tx.commit()
        })
    }

    fn read_segment(&self, name: &str) -> Result<Vec<u8>, SyncError> {
        let history = self.name.clone();
        let segment = name.to_string();
        let chunks = self.places.call("reading a segment", move |c| {
            let rows = c.query(
                "SELECT data FROM flow_history_segments WHERE name = $1 AND segment = $2 ORDER BY chunk",
                &[&history, &segment],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.get::<_, Vec<u8>>(0))
                .collect::<Vec<_>>())
        })?;
        if chunks.is_empty() {
            return Err(SyncError::Corrupt {
                path: format!("{}/{name}", self.describe()),
                reason: "the manifest names a segment the database does not hold".into(),
            });
        }
        Ok(chunks.concat())
    }

    fn segments(&self) -> Result<BTreeSet<String>, SyncError> {
        let history = self.name.clone();
        self.places.call("listing segments", move |c| {
            let rows = c.query(
                "SELECT DISTINCT segment FROM flow_history_segments WHERE name = $1",
                &[&history],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn remove_segments(&self, names: &[String]) -> Result<(), SyncError> {
        let history = self.name.clone();
        let names = names.to_vec();
        self.places.call("removing segments", move |c| {
            c.execute(
                "DELETE FROM flow_history_segments WHERE name = $1 AND segment = ANY($2)",
                &[&history, &names],
            )
            .map(|_| ())
        })
    }
}
