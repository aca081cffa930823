//! Giving the database's space back by rewriting it.
//!
//! sled reuses the space of removed records, but not all of it: large pages live in files of
//! their own (`db/blobs/`), and those a process replaced shortly before it exited are never
//! deleted. A short `flow run` per day therefore grows the database even when old runs are
//! removed. Compaction copies the live entries into a fresh database and swaps it in:
//!
//! 1. copy into `db.compact-PID`, flush and close it, fsync its directories, and reopen it
//!    to check it holds every entry;
//! 2. rename it to `db.next` (now a complete copy);
//! 3. rename `db` to `db.old`, then `db.next` to `db`; fsync the store directory;
//! 4. remove `db.old`.
//!
//! All under the store's lock, so nothing writes meanwhile. A kill at any step leaves a state
//! [`finish_interrupted`] completes on the next open: before step 3 the old database is
//! whole and the copy is discarded; between the two renames of step 3 the copy is whole and is
//! moved into place.

use std::fs::File;
use std::path::Path;

use super::sled_store::{
    CLEAN_MARK, SledStore, check_format, clean_mark, io, open_db, open_db_when_released,
};
use super::{StoreError, disk_usage};

const NEXT: &str = "db.next";
const OLD: &str = "db.old";
const SCRATCH_PREFIX: &str = "db.compact-";

/// The database's size on disk before and after a compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
}

fn fail(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("compacting the state store: {what}: {e}"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(&format!("cannot sync {}", dir.display()), e))
}

impl SledStore {
    /// Rewrites the store in `dir` into a fresh database holding only its live entries. Takes
    /// the store's lock for the whole time ([`StoreError::Locked`] when another process has
    /// it).
    pub fn compact(dir: &Path) -> Result<Compacted, StoreError> {
        let store = SledStore::open(dir)?;
        let db_path = dir.join("db");
        let before = disk_usage(&db_path);
        let scratch = dir.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let copied = copy_into(&store.db, dir, &scratch);
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
        // The lock stays with this clone while the store closes (writing its clean mark).
        let lock = store
            .lock
            .try_clone()
            .map_err(|e| fail("cannot keep the lock", e))?;
        drop(store);
        let next = dir.join(NEXT);
        let old = dir.join(OLD);
        std::fs::rename(&scratch, &next).map_err(|e| fail("cannot move the copy", e))?;
        sync_dir(dir)?;
        std::fs::rename(&db_path, &old).map_err(|e| fail("cannot move the old database", e))?;
        std::fs::rename(&next, &db_path).map_err(|e| fail("cannot move the copy into place", e))?;
        sync_dir(dir)?;
        // The copy was closed cleanly: say so, so the next open need not check it.
        if let Ok(json) = serde_json::to_vec(&clean_mark(&db_path)) {
            let _ = std::fs::write(dir.join(CLEAN_MARK), json);
        }
        let _ = std::fs::remove_dir_all(&old);
        drop(lock);
        Ok(Compacted {
            before,
            after: disk_usage(&db_path),
        })
    }
}

/// Copies every entry of `db` into a new database at `scratch`, made durable and checked.
fn copy_into(db: &sled::Db, dir: &Path, scratch: &Path) -> Result<(), StoreError> {
    let fresh = open_db(dir, scratch)?;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let mut count = 0usize;
    for item in db.iter() {
        let (key, value) = item.map_err(io)?;
        batch.insert(key, value);
        pending += 1;
        count += 1;
        if pending == 1000 {
            fresh.apply_batch(std::mem::take(&mut batch)).map_err(io)?;
            pending = 0;
        }
    }
    fresh.apply_batch(batch).map_err(io)?;
    fresh.flush().map_err(io)?;
    drop(fresh);
    sync_dir(scratch)?;
    if scratch.join("blobs").exists() {
        sync_dir(&scratch.join("blobs"))?;
    }
    // Read it back as the next open would.
    let reopened = open_db_when_released(dir, scratch)?;
    check_format(dir, &reopened, true)?;
    if reopened.len() != count {
        return Err(StoreError::Io(format!(
            "compacting the state store: the copy holds {} entries, the store {count}",
            reopened.len()
        )));
    }
    Ok(())
}

/// Completes or undoes a compaction a kill interrupted. Called with the lock held, before
/// the database is opened.
pub(super) fn finish_interrupted(dir: &Path, db_path: &Path) -> Result<(), StoreError> {
    let next = dir.join(NEXT);
    let old = dir.join(OLD);
    let whole = |p: &Path| p.join("conf").exists();
    if next.exists() {
        if whole(db_path) {
            // Killed before the swap: the database was never touched.
            std::fs::remove_dir_all(&next).map_err(|e| fail("cannot remove a stale copy", e))?;
        } else {
            // Killed between the renames: the copy is complete.
            if db_path.exists() {
                std::fs::remove_dir(db_path)
                    .map_err(|e| fail("cannot replace an empty database directory", e))?;
            }
            std::fs::rename(&next, db_path)
                .map_err(|e| fail("cannot move the copy into place", e))?;
            sync_dir(dir)?;
        }
    }
    if old.exists() {
        if whole(db_path) {
            std::fs::remove_dir_all(&old).map_err(|e| fail("cannot remove the old database", e))?;
        } else {
            std::fs::rename(&old, db_path)
                .map_err(|e| fail("cannot move the old database back", e))?;
            sync_dir(dir)?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(SCRATCH_PREFIX)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
