//! The store's high-water mark: how many write batches the database had made durable.
//!
//! sled recovers from damaged files by silently going back to an older state (and deleting
//! the blobs written after it). To notice, every batch also stores a counter inside the
//! database, and after each flush the counter is recorded in a small file of its own beside
//! it (`db.hwm`). A database whose counter is below the file's has lost committed writes: it is
//! refused before sled can rewrite anything.
//!
//! The file is written after every flush but synced to disk at most once per [`SYNC_EVERY`]
//! (and when the store closes): one fsync per checkpoint would double the cost of a chain of
//! small nodes. A killed process leaves the written count in the page cache, so a database that
//! then goes back is always noticed; after a power failure, a database that went back by the
//! commits of the last second may not be. The file is only ever written after the database
//! flushed, so it never claims more than the database made durable.
//!
//! The file has two slots written in turn, each `MAGIC | count | checksum`: a write torn by a
//! crash damages one slot and leaves the other (an older, still valid count) readable.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::StoreError;

/// The high-water file in the store directory.
pub const FILE: &str = "db.hwm";
/// The database key holding the count of committed batches.
pub const KEY: &str = "meta/commits";

const MAGIC: &[u8; 8] = b"FLOWHWM1";
/// How often at most the file is synced to disk.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
const SLOT: usize = 32;

fn checksum(count: u64) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(MAGIC);
    hasher.update(count.to_le_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn encode(count: u64) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&count.to_le_bytes());
    slot[16..].copy_from_slice(&checksum(count));
    slot
}

fn decode(slot: &[u8]) -> Option<u64> {
    if slot.len() != SLOT || &slot[..8] != MAGIC {
        return None;
    }
    let count = u64::from_le_bytes(slot[8..16].try_into().ok()?);
    (slot[16..] == checksum(count)).then_some(count)
}

/// The count recorded in `dir`'s high-water file; `None` when there is no file (a store made
/// before flow kept one, or one killed before its first flush).
pub fn read(dir: &Path) -> Result<Option<u64>, StoreError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Unreadable {
                path: dir.to_path_buf(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
        }
    };
    bytes
        .chunks(SLOT)
        .take(2)
        .filter_map(decode)
        .max()
        .map(Some)
        .ok_or_else(|| StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: format!(
                "its high-water file {} is damaged, so flow cannot tell whether the database lost writes",
                path.display()
            ),
        })
}

/// The count of committed batches stored inside the database (0 for a store without one).
pub fn in_db(db: &sled::Db) -> Result<u64, StoreError> {
    match db.get(KEY).map_err(super::sled_store::io)? {
        None => Ok(0),
        Some(bytes) => bytes
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: KEY.into(),
                reason: format!("expected 8 bytes, found {}", bytes.len()),
            }),
    }
}

/// Refuses a database that holds fewer committed batches than the high-water file recorded.
pub fn check(dir: &Path, db: &sled::Db) -> Result<(), StoreError> {
    let Some(expected) = read(dir)? else {
        return Ok(());
    };
    let found = in_db(db)?;
    if found < expected {
        return Err(StoreError::RolledBack {
            path: dir.to_path_buf(),
            found,
            expected,
        });
    }
    Ok(())
}

/// The open high-water file of a store.
#[derive(Debug)]
pub struct HighWater {
    path: PathBuf,
    /// `None` until the file exists (its creation failed, say on a full disk).
    file: Option<File>,
    /// The highest count written so far.
    written: u64,
    /// When the file was last synced; `None` before the first sync.
    synced_at: Option<Instant>,
    /// Whether a count was written since the last sync.
    unsynced: bool,
}

impl HighWater {
    /// Opens (or creates, recording `count`) the high-water file of `dir`.
    pub fn open(dir: &Path, count: u64) -> Result<Self, StoreError> {
        let path = dir.join(FILE);
        let mut high_water = HighWater {
            path,
            file: None,
            written: 0,
            synced_at: None,
            unsynced: false,
        };
        if high_water.path.exists() {
            high_water.written = read(dir)?.unwrap_or(0);
            high_water.file = Some(open_file(&high_water.path)?);
        }
        if high_water.file.is_none() || high_water.written < count {
            // Not fatal here (a full disk must not stop read-only commands): the next flush
            // records the count again, and fails if it still cannot.
            if let Err(e) = high_water.write(count) {
                tracing::warn!("{e}");
            }
        }
        Ok(high_water)
    }

    /// Records that `count` batches are durable (call only after the database flushed them).
    pub fn record(&mut self, count: u64) -> Result<(), StoreError> {
        if count <= self.written {
            return Ok(());
        }
        self.write(count)
    }

    fn write(&mut self, count: u64) -> Result<(), StoreError> {
        match &self.file {
            Some(file) => {
                let offset = (count % 2) * SLOT as u64;
                file.write_all_at(&encode(count), offset)
                    .map_err(|e| write_error(&self.path, e))?;
                self.unsynced = true;
                if self.synced_at.is_none_or(|at| at.elapsed() >= SYNC_EVERY) {
                    self.sync()?;
                }
            }
            None => {
                let dir = self.path.parent().unwrap_or(Path::new("."));
                create(dir, &self.path, count)?;
                self.file = Some(open_file(&self.path)?);
            }
        }
        self.written = count;
        Ok(())
    }
}

impl HighWater {
    /// Syncs a count written since the last sync to disk.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let (true, Some(file)) = (self.unsynced, &self.file) {
            file.sync_data().map_err(|e| write_error(&self.path, e))?;
            self.unsynced = false;
            self.synced_at = Some(Instant::now());
        }
        Ok(())
    }
}

impl Drop for HighWater {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!("{e}");
        }
    }
}

fn open_file(path: &Path) -> Result<File, StoreError> {
    File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| write_error(path, e))
}

/// Writes a high-water file recording `count` at `path` whole, through a scratch file and a
/// rename, so a process killed while creating it leaves no file (written again at the next
/// open), never a torn one.
fn create(dir: &Path, path: &Path, count: u64) -> Result<(), StoreError> {
    let scratch = dir.join(format!("{FILE}.new"));
    let mut slots = [0u8; 2 * SLOT];
    let at = (count % 2) as usize * SLOT;
    slots[at..at + SLOT].copy_from_slice(&encode(count));
    std::fs::write(&scratch, slots)
        .and_then(|()| File::open(&scratch)?.sync_all())
        .and_then(|()| std::fs::rename(&scratch, path))
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&scratch);
            write_error(path, e)
        })
}

fn write_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!(
        "cannot record the high-water mark in {}: {e}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_valid_slot_wins_and_a_torn_slot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let mut hw = HighWater::open(dir.path(), 0).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(0));
        hw.record(5).unwrap();
        hw.record(6).unwrap();
        hw.record(3).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(6));
        // A torn write of slot 0 (count 6) leaves slot 1 (count 5).
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5));
        // Both slots damaged: refused, not taken as "no mark".
        bytes[SLOT + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(StoreError::Unreadable { .. })
        ));
    }

    #[test]
    fn reopening_keeps_the_recorded_count() {
        let dir = tempfile::tempdir().unwrap();
        HighWater::open(dir.path(), 7).unwrap();
        let mut hw = HighWater::open(dir.path(), 2).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(7));
        hw.record(7).unwrap();
        hw.record(8).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(8));
    }

    /// Counts recorded between syncs are in the file at once (what a killed process leaves),
    /// and a sync is due again after [`SYNC_EVERY`].
    #[test]
    fn every_count_is_written_at_once_and_synced_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let mut hw = HighWater::open(dir.path(), 0).unwrap();
        hw.record(1).unwrap();
        assert!(!hw.unsynced, "the first count is synced");
        for count in 2..200 {
            hw.record(count).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(count));
        }
        assert!(
            hw.unsynced,
            "counts within the second wait for the next sync"
        );
        hw.synced_at = Some(Instant::now() - SYNC_EVERY);
        hw.record(200).unwrap();
        assert!(!hw.unsynced, "a second later the next count syncs");
        hw.record(201).unwrap();
        assert!(hw.unsynced);
        hw.sync().unwrap();
        assert!(!hw.unsynced);
        drop(hw);
        assert_eq!(read(dir.path()).unwrap(), Some(201));
    }
}
