//! The sled backend (sled 0.34.7, pinned; its 1.0 is an unfinished alpha).
//!
//! Layout: one sled tree; keys `run/ID`, `node/ID/NODE`, `out/ID/NODE`, `kv/NS/KEY`, and
//! `meta/format`. sled takes an exclusive file lock, so a second process gets
//! [`StoreError::Locked`].

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::full_disk::{is_full, no_space};
use super::high_water::{self, HighWater};
use super::{
    NodeRecord, Removal, Removed, RunRecord, StateStore, StoreError, Write, decode_json, keys,
    to_pairs,
};
use super::{OUTPUT_FILE_THRESHOLD, output_file};

/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;
const FORMAT_KEY: &str = "meta/format";

/// A state store in a directory (default `.flow/`).
pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) dir: PathBuf,
    /// Held for the store's lifetime: the clear "in use" message comes from this lock.
    pub(super) lock: File,
    /// Write batches committed so far; each batch stores the new count in the database.
    pub(super) commits: Mutex<u64>,
    /// Where the count of durable batches is recorded after each flush; `None` for a copy.
    pub(super) high_water: Mutex<Option<HighWater>>,
    /// Set when `db` is a scratch copy on another disk (see [`SledStore::open_copy`]): nothing
    /// may be written, and the copy is deleted after `db` is closed (fields drop in order).
    pub(super) copy: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

/// Written when the store is closed cleanly: the database files as they were left.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct CleanMark {
    files: Vec<(String, u64, u128)>,
}

pub(super) const CLEAN_MARK: &str = "db.clean";

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// sled silently starts over when its files are damaged (and may rewrite them), so a store
    /// that was not closed cleanly is first opened from a scratch copy; only if that copy opens
    /// as a flow store is the real one opened. A damaged store is reported and left untouched.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let unreadable = |reason: String| StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| unreadable(format!("cannot create the directory: {e}")))?;
        let lock = take_lock(dir)?;
        let db_path = dir.join("db");
        super::compact::finish_interrupted(dir, &db_path)?;
        remove_unfinished_snapshots(&db_path);
        if !db_path.join("conf").exists() {
            refuse_lost_db(dir)?;
            create_db(dir, &db_path)?;
        } else if read_clean_mark(dir) != Some(clean_mark(&db_path)) {
            verify_copy(dir, &db_path)?;
        }
        let db = open_db_when_released(dir, &db_path)?;
        check_format(dir, &db, true)?;
        high_water::check(dir, &db)?;
        let commits = high_water::in_db(&db)?;
        let high_water = HighWater::open(dir, commits)?;
        // Until closed cleanly, the next open verifies a copy first.
        let _ = std::fs::remove_file(dir.join(CLEAN_MARK));
        Ok(SledStore {
            db,
            dir: dir.to_path_buf(),
            lock,
            commits: Mutex::new(commits),
            high_water: Mutex::new(Some(high_water)),
            copy: None,
        })
    }

    /// Every entry of small keyed state (`kv/NAMESPACE/KEY` and its value), in key order.
    pub fn kv_entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db
            .scan_prefix("kv/")
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies a batch with the next commit count in it. Under one lock, so the counts reach
    /// the database in order.
    fn commit(&self, mut batch: sled::Batch) -> Result<(), StoreError> {
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        let next = *commits + 1;
        batch.insert(high_water::KEY, &next.to_be_bytes());
        self.db.apply_batch(batch).map_err(io)?;
        *commits = next;
        Ok(())
    }

    /// The count of committed batches; durable once the database has flushed after reading it.
    fn commits(&self) -> u64 {
        *self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `count` batches are durable.
    fn record_high_water(&self, count: u64) -> Result<(), StoreError> {
        match self
            .high_water
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(high_water) => high_water.record(count),
            None => Ok(()),
        }
    }

    /// Refuses a write to a store read from a copy: it would be lost with the copy.
    fn writable(&self) -> Result<(), StoreError> {
        match self.copy {
            Some(_) => Err(StoreError::ReadOnlyCopy {
                path: self.dir.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Takes the store's lock (creating its lock file): [`StoreError::Locked`] when another process
/// holds it.
pub(super) fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let unreadable = |reason: String| StoreError::Unreadable {
        path: dir.to_path_buf(),
        reason,
    };
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(|e| unreadable(format!("cannot create its lock file: {e}")))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(unreadable(format!("cannot lock it: {e}"))),
    }
}

/// A store directory that has held a database (its high-water file, clean mark or output
/// files say so) but has none now lost it: an empty store in its place would hide that.
pub(super) fn refuse_lost_db(dir: &Path) -> Result<(), StoreError> {
    let evidence = [high_water::FILE, CLEAN_MARK, OUTPUTS]
        .into_iter()
        .find(|name| dir.join(name).exists());
    match evidence {
        Some(name) => Err(StoreError::Missing {
            path: dir.to_path_buf(),
            evidence: format!("{}/{name}", dir.display()),
        }),
        None => Ok(()),
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if self.copy.is_some() {
            // The store's own files were not changed, so their clean mark (if any) still holds.
            return;
        }
        let commits = self.commits();
        if self.db.flush().is_ok() && self.record_high_water(commits).is_ok() {
            let mark = clean_mark(&self.dir.join("db"));
            if let Ok(json) = serde_json::to_vec(&mark) {
                let _ = std::fs::write(self.dir.join(CLEAN_MARK), json);
            }
        }
    }
}

pub(super) fn open_db(dir: &Path, db_path: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(db_path)
        .mode(sled::Mode::HighThroughput)
        // Records are small (large outputs live in files), so a small cache is enough.
        .cache_capacity(64 * 1024 * 1024);
    // sled panics on some damaged files instead of returning an error.
    match std::panic::catch_unwind(AssertUnwindSafe(|| config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) if is_lock_error(&e) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
        }),
        Ok(Err(sled::Error::Io(e))) if is_full(&e) => {
            Err(no_space(dir, "sled cannot write its files", &e))
        }
        Ok(Err(e)) => Err(StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: e.to_string().replace(" backtrace ()", ""),
        }),
        Err(panic) => Err(StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: format!("the database is damaged ({})", panic_message(&panic)),
        }),
    }
}

/// Opens the database, waiting a bounded time for sled's own file lock.
///
/// The caller holds the store's `LOCK`, so no other flow process can hold sled's lock: only a
/// database handle of this process that is still closing can (sled lets go of its files on a
/// background thread after the last handle is dropped, as after `create_db`'s scratch copy).
pub(super) fn open_db_when_released(dir: &Path, db_path: &Path) -> Result<sled::Db, StoreError> {
    const WAIT: Duration = Duration::from_secs(10);
    let start = Instant::now();
    loop {
        match open_db(dir, db_path) {
            Err(StoreError::Locked { .. }) if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

pub(super) fn check_format(dir: &Path, db: &sled::Db, existed: bool) -> Result<(), StoreError> {
    let unreadable = |reason: &str| StoreError::Unreadable {
        path: dir.to_path_buf(),
        reason: reason.to_string(),
    };
    match db.get(FORMAT_KEY).map_err(io)? {
        Some(bytes) => {
            match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(v) if v <= FORMAT => Ok(()),
                Some(v) => Err(StoreError::NewerFormat {
                    path: dir.to_path_buf(),
                    found: v,
                    supported: FORMAT,
                }),
                None => Err(unreadable("its format marker is damaged")),
            }
        }
        None if existed => Err(unreadable(
            "its database files are damaged or it is not a flow state store (no format marker)",
        )),
        None => {
            db.insert(FORMAT_KEY, FORMAT.to_string().as_bytes())
                .map_err(io)?;
            db.flush().map_err(io)?;
            Ok(())
        }
    }
}

/// sled 0.34 writes a snapshot to `snap.N.generating`, syncs it and renames it to `snap.N`. A
/// process killed before the rename leaves the `.generating` file, which sled then takes for
/// the newest snapshot and refuses to open the database as corrupt (sled issue #1527). The file
/// is sled's scratch copy, never the only copy of anything (sled itself deletes it after its
/// next snapshot, and recovers from the previous snapshot and the log without it): remove it.
fn remove_unfinished_snapshots(db_path: &Path) {
    let Ok(entries) = std::fs::read_dir(db_path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::info!(file = %entry.path().display(), "removing an unfinished sled snapshot");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates the database beside `db_path`, with its format marker flushed, and moves it into
/// place: a `db/` with a `conf` is always a complete store, so a process killed while creating
/// one leaves only a scratch directory (removed by the next creation), never a store that
/// looks damaged.
fn create_db(dir: &Path, db_path: &Path) -> Result<(), StoreError> {
    // The caller holds the store's lock: scratch directories left here are abandoned.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("db.new-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let scratch = dir.join(format!("db.new-{}", std::process::id()));
    let db = open_db(dir, &scratch)?;
    check_format(dir, &db, false)?;
    drop(db);
    // Replaces an empty `db/`; a non-empty one without `conf` is not ours to replace.
    std::fs::rename(&scratch, db_path).map_err(|e| {
        let _ = std::fs::remove_dir_all(&scratch);
        StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: format!("cannot create its database in {}: {e}", db_path.display()),
        }
    })
}

/// Opens a scratch copy of the database; the original is untouched if the copy does not open.
fn verify_copy(dir: &Path, db_path: &Path) -> Result<(), StoreError> {
    let scratch = dir.join(format!("verify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = copy_dir(db_path, &scratch)
        .map_err(|e| match is_full(&e) {
            true => no_space(dir, "cannot copy it for a safe check", &e),
            false => StoreError::Unreadable {
                path: dir.to_path_buf(),
                reason: format!("cannot copy it for a safe check: {e}"),
            },
        })
        .and_then(|()| {
            let db = open_db(dir, &scratch)?;
            check_format(dir, &db, true)?;
            high_water::check(dir, &db)
        });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Sizes and modification times of the database files.
pub(super) fn clean_mark(db_path: &Path) -> CleanMark {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, u64, u128)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, base, out);
            } else {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                let name = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.push((name, meta.len(), modified));
            }
        }
    }
    let mut files = Vec::new();
    walk(db_path, db_path, &mut files);
    files.sort();
    CleanMark { files }
}

fn read_clean_mark(dir: &Path) -> Option<CleanMark> {
    serde_json::from_slice(&std::fs::read(dir.join(CLEAN_MARK)).ok()?).ok()
}

/// The directory of output files, one subdirectory per run.
pub(super) const OUTPUTS: &str = "outputs";

impl SledStore {
    /// Writes a large output to `outputs/RUN/NODE.out` (fsynced, renamed into place, directory
    /// fsynced) and replaces it in the write by a reference. The file is durable before the
    /// batch that marks the node succeeded, so a crash leaves at worst an unreferenced file,
    /// which the node's re-run overwrites.
    fn spill_large_output(&self, write: Write) -> Result<Write, StoreError> {
        let Write::Node {
            run_id,
            record,
            output: Some(bytes),
        } = write
        else {
            return Ok(write);
        };
        if bytes.len() < OUTPUT_FILE_THRESHOLD {
            return Ok(Write::Node {
                run_id,
                record,
                output: Some(bytes),
            });
        }
        let relative = format!("{OUTPUTS}/{run_id}/{}.out", record.node_id);
        let reference = output_file::write(&self.dir, &relative, |file| file.write_all(&bytes))?;
        Ok(Write::Node {
            run_id,
            record,
            output: Some(reference),
        })
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

pub(super) fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl StateStore for SledStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writable()?;
        let writes = writes
            .into_iter()
            .map(|w| self.spill_large_output(w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut batch = sled::Batch::default();
        for (k, v) in to_pairs(writes)? {
            batch.insert(k.as_bytes(), v);
        }
        self.commit(batch)
    }

    fn encode_output(
        &self,
        run_id: &str,
        node_id: &str,
        output: &crate::data::Output,
    ) -> Result<Vec<u8>, StoreError> {
        if crate::data::size_hint(output) < OUTPUT_FILE_THRESHOLD {
            return super::encode_in_memory(output);
        }
        // A large table goes to its file as it is encoded: no copy of it in memory.
        self.writable()?;
        let relative = format!("{OUTPUTS}/{run_id}/{node_id}.out");
        output_file::write(&self.dir, &relative, |file| {
            crate::data::encode_into(output, file).map_err(|e| match e {
                crate::data::CodecError::Io(e) => e,
                other => std::io::Error::other(other),
            })
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.writable()?;
        let commits = self.commits();
        self.db.flush().map(|_| ()).map_err(io)?;
        self.record_high_water(commits)
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        match self.db.get(keys::run(run_id)).map_err(io)? {
            Some(bytes) => Ok(Some(decode_json(&format!("run {run_id}"), &bytes)?)),
            None => Ok(None),
        }
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = Vec::new();
        for item in self.db.scan_prefix(keys::RUN_PREFIX).rev() {
            let (key, bytes) = item.map_err(io)?;
            runs.push(decode_json(&String::from_utf8_lossy(&key), &bytes)?);
        }
        crate::run_id::newest_first(&mut runs);
        Ok(runs)
    }

    fn newest_run_id(&self) -> Result<Option<String>, StoreError> {
        // Ids in the current format sort by creation as text; an id in the older format
        // carries no order a new id must follow.
        let mut first = None;
        for item in self
            .db
            .scan_prefix(keys::RUN_PREFIX)
            .keys()
            .rev()
            .take(1000)
        {
            let key = item.map_err(io)?;
            let id = String::from_utf8_lossy(&key[keys::RUN_PREFIX.len()..]).into_owned();
            if crate::run_id::is_current(&id) {
                return Ok(Some(id));
            }
            first.get_or_insert(id);
        }
        Ok(first)
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
        let Some(value) = self.db.get(keys::output(run_id, node_id)).map_err(io)? else {
            return Ok(None);
        };
        match output_file::parse(&value) {
            Some(file) => output_file::read(&self.dir, &file, || {
                format!("output of `{node_id}` in run {run_id}")
            })
            .map(Some),
            None => Ok(Some(value.to_vec())),
        }
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

    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        Some(std::sync::Arc::new(crate::sync::DirPlaces::new(
            self.dir.join("nodes"),
        )))
    }

    /// The database entries go in one batch, flushed before any output file is deleted: a
    /// kill at any point leaves either the run whole or its records gone and (at worst) some
    /// unreferenced output files, which the next removal sweeps up.
    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        self.writable()?;
        let mut removed = Removed::default();
        let mut batch = sled::Batch::default();
        let mut count = |key: &[u8], value: &[u8], removed: &mut Removed| {
            batch.remove(key);
            removed.entries += 1;
            removed.bytes += (key.len() + value.len()) as u64;
        };
        for run_id in &removal.run_ids {
            let key = keys::run(run_id);
            if let Some(value) = self.db.get(&key).map_err(io)? {
                removed.runs += 1;
                count(key.as_bytes(), &value, &mut removed);
            }
            for prefix in keys::run_prefixes(run_id) {
                for item in self.db.scan_prefix(prefix.as_bytes()) {
                    let (key, value) = item.map_err(io)?;
                    count(&key, &value, &mut removed);
                }
            }
        }
        for (namespace, key) in &removal.keys {
            let key = keys::kv(namespace, key);
            if let Some(value) = self.db.get(&key).map_err(io)? {
                count(key.as_bytes(), &value, &mut removed);
            }
        }
        self.commit(batch)?;
        let commits = self.commits();
        self.db.flush().map_err(io)?;
        self.record_high_water(commits)?;
        let outputs = self.dir.join(OUTPUTS);
        for run_id in &removal.run_ids {
            removed.bytes += remove_output_dir(&outputs.join(run_id))?;
        }
        removed.bytes += self.sweep_unreferenced_outputs()?;
        Ok(removed)
    }
}

/// Deletes a run's output files; the bytes they held.
fn remove_output_dir(dir: &Path) -> Result<u64, StoreError> {
    if !dir.exists() {
        return Ok(0);
    }
    let bytes = super::disk_usage(dir);
    std::fs::remove_dir_all(dir).map_err(|e| {
        StoreError::Io(format!(
            "cannot remove the output files {}: {e}",
            dir.display()
        ))
    })?;
    Ok(bytes)
}

impl SledStore {
    /// Output directories of runs that have no record: left by a removal that was killed after
    /// its batch. A run's record is written before any of its outputs, so a directory
    /// without one belongs to no run.
    fn sweep_unreferenced_outputs(&self) -> Result<u64, StoreError> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(OUTPUTS)) else {
            return Ok(0);
        };
        let mut bytes = 0;
        for entry in entries.flatten() {
            let run_id = entry.file_name().to_string_lossy().into_owned();
            if !self.db.contains_key(keys::run(&run_id)).map_err(io)? {
                bytes += remove_output_dir(&entry.path())?;
            }
        }
        Ok(bytes)
    }
}
