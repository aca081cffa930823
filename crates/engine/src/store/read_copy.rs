//! Reading a store whose disk is full.
//!
//! Opening a sled database writes to it (and a store not closed cleanly is first checked on a
//! scratch copy beside it), so on a full disk even `flow runs` could not open the store. Those
//! commands only read: they open a copy of the database in the temporary directory (another
//! disk, as a rule) instead, holding the store's lock so nothing writes to the store meanwhile.

use std::path::Path;
use std::sync::Mutex;

use super::StoreError;
use super::full_disk::{is_full, no_space};
use super::high_water;
use super::sled_store::{self, SledStore};

impl SledStore {
    /// Opens a copy of the store in `dir` made in the temporary directory (`TMPDIR`), for
    /// reading only: every write is refused, the store's own files are not changed, and the
    /// copy is deleted when the store is dropped. A store that lost committed writes is
    /// refused as by [`SledStore::open`].
    pub fn open_copy(dir: &Path) -> Result<Self, StoreError> {
        let lock = sled_store::take_lock(dir)?;
        let db_path = dir.join("db");
        if !db_path.join("conf").exists() {
            sled_store::refuse_lost_db(dir)?;
            return Err(StoreError::NoSpace {
                path: dir.to_path_buf(),
                reason: "it has no database yet, and none can be created".into(),
            });
        }
        let temp = std::env::temp_dir();
        let copy_error = |e: std::io::Error| {
            let what = format!("cannot copy it to {} to read it", temp.display());
            match is_full(&e) {
                true => no_space(dir, &what, &e),
                false => StoreError::Io(format!("{}: {what}: {e}", dir.display())),
            }
        };
        let copy = tempfile::Builder::new()
            .prefix("flow-store-copy-")
            .tempdir_in(&temp)
            .map_err(copy_error)?;
        let copy_db = copy.path().join("db");
        sled_store::copy_dir(&db_path, &copy_db).map_err(copy_error)?;
        let db = sled_store::open_db(dir, &copy_db)?;
        sled_store::check_format(dir, &db, true)?;
        high_water::check(dir, &db)?;
        let commits = high_water::in_db(&db)?;
        Ok(SledStore {
            db,
            dir: dir.to_path_buf(),
            lock,
            commits: Mutex::new(commits),
            high_water: Mutex::new(None),
            copy: Some(copy),
        })
    }
}

#[cfg(test)]
#[path = "read_copy_tests.rs"]
mod tests;
