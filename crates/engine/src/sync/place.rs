//! Where synced histories are kept: a directory beside a local store, or tables of a shared
//! database that every host reads.
//!
//! A [`Place`] holds one history: its manifest and the segments it names. Segments are written
//! durably under new names before the manifest that names them is replaced, so the manifest
//! alone decides what the history is.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::SyncError;

/// The manifest's file name in a directory place.
pub(crate) const MANIFEST: &str = "manifest.json";
const LOCK: &str = "LOCK";

/// Held while a history is open for writing; dropping it lets go.
pub trait PlaceLock: Send + Sync + Debug {}

/// The manifest as stored, with the version the place gives it (raised by every write).
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub bytes: Vec<u8>,
    pub version: i64,
}

/// One history's storage.
pub trait Place: Send + Sync + Debug {
    /// Where it is, for messages and `flow sync status`.
    fn describe(&self) -> String;
    /// Takes the history for one writer; [`SyncError::Busy`] when another holds it.
    fn lock(&self) -> Result<Box<dyn PlaceLock>, SyncError>;
    fn read_manifest(&self) -> Result<Option<StoredManifest>, SyncError>;
    /// Replaces the manifest in one durable step, provided it is still at `expected` (`None`:
    /// there is none yet); [`SyncError::Busy`] otherwise. Returns the new version.
    fn write_manifest(&self, bytes: &[u8], expected: Option<i64>) -> Result<i64, SyncError>;
    /// Stores a segment durably under a name no manifest names yet.
    fn write_segment(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError>;
    fn read_segment(&self, name: &str) -> Result<Vec<u8>, SyncError>;
    /// The segments stored, named by a manifest or not.
    fn segments(&self) -> Result<BTreeSet<String>, SyncError>;
    fn remove_segments(&self, names: &[String]) -> Result<(), SyncError>;
}

/// All the histories of one store, each under a name (`WORKFLOW-KEY/NODE/PURPOSE`).
pub trait Places: Send + Sync + Debug {
    fn place(&self, name: &str) -> Box<dyn Place>;
    /// Names under `prefix` that hold a manifest, in order.
    fn names(&self, prefix: &str) -> Result<Vec<String>, SyncError>;
}

/// Histories in directories under `root` (`STORE/nodes`).
#[derive(Debug, Clone)]
pub struct DirPlaces {
    root: PathBuf,
}

impl DirPlaces {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirPlaces { root: root.into() }
    }
}

impl Places for DirPlaces {
    fn place(&self, name: &str) -> Box<dyn Place> {
        Box::new(DirPlace::new(self.root.join(name)))
    }

    fn names(&self, prefix: &str) -> Result<Vec<String>, SyncError> {
        // Names are `KEY/NODE/PURPOSE`: three levels of directories.
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let mut deeper = Vec::new();
            for name in &names {
                let Ok(entries) = std::fs::read_dir(self.root.join(name)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        let child = entry.file_name().to_string_lossy().into_owned();
                        deeper.push(if name.is_empty() {
                            child
                        } else {
                            format!("{name}/{child}")
                        });
                    }
                }
            }
            names = deeper;
        }
        let mut out: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with(prefix) && self.root.join(n).join(MANIFEST).exists())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// A history in a directory: `manifest.json`, `seg-*.arrow` files, and a `LOCK` file that one
/// writer holds.
#[derive(Debug, Clone)]
pub struct DirPlace {
    dir: PathBuf,
}

/// The locked `LOCK` file; closing it lets go of the lock.
#[derive(Debug)]
struct FileLock {
    _file: File,
}

impl PlaceLock for FileLock {}

impl DirPlace {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirPlace { dir: dir.into() }
    }
}

impl Place for DirPlace {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn lock(&self) -> Result<Box<dyn PlaceLock>, SyncError> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(|e| SyncError::io(dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SyncError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => Ok(Box::new(FileLock { _file: lock })),
            Err(std::fs::TryLockError::WouldBlock) => Err(SyncError::Busy {
                dir: dir.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(SyncError::io(&lock_path, e)),
        }
    }

    fn read_manifest(&self) -> Result<Option<StoredManifest>, SyncError> {
        let path = self.dir.join(MANIFEST);
        match std::fs::read(&path) {
            // The lock file keeps writers apart here, so the version is not needed.
            Ok(bytes) => Ok(Some(StoredManifest { bytes, version: 0 })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SyncError::io(&path, e)),
        }
    }

    /// Written beside, fsynced, renamed over, and the directory entry synced.
    fn write_manifest(&self, bytes: &[u8], _expected: Option<i64>) -> Result<i64, SyncError> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(|e| SyncError::io(dir, e))?;
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        let mut file = File::create(&tmp).map_err(|e| SyncError::io(&tmp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| SyncError::io(&tmp, e))?;
        drop(file);
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(|e| SyncError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(0)
    }

    fn write_segment(&self, name: &str, bytes: &[u8]) -> Result<(), SyncError> {
        let path = self.dir.join(name);
        let mut file = File::create(&path).map_err(|e| SyncError::io(&path, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| SyncError::io(&path, e))?;
        // The new name is durable before a manifest names it.
        sync_dir(&self.dir)
    }

    fn read_segment(&self, name: &str) -> Result<Vec<u8>, SyncError> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(|e| SyncError::io(&path, e))
    }

    fn segments(&self) -> Result<BTreeSet<String>, SyncError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(SyncError::io(&self.dir, e)),
        };
        Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // A manifest a crash left half-written beside the real one counts as garbage too.
            .filter(|name| name.starts_with("seg-") || name.ends_with(".tmp"))
            .collect())
    }

    fn remove_segments(&self, names: &[String]) -> Result<(), SyncError> {
        for name in names {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SyncError::io(&path, e)),
            }
        }
        Ok(())
    }
}

/// Makes the directory's entries (new and renamed files) durable.
fn sync_dir(dir: &Path) -> Result<(), SyncError> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| SyncError::io(dir, e))?;
        d.sync_all().map_err(|e| SyncError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
