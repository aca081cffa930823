//! Telling a full disk apart from a damaged store, so the message says to free space rather
//! than to move the store aside.

use std::io::Write as _;
use std::path::Path;

use super::StoreError;

/// A write to the store's disk failed because it is full.
pub(super) fn no_space(dir: &Path, what: &str, e: &std::io::Error) -> StoreError {
    StoreError::NoSpace {
        path: dir.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

pub(super) fn is_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// Says whether `dir`'s filesystem still takes writes, to explain a write that stalled.
pub(super) fn space_check(dir: &Path) -> String {
    if !dir.is_dir() {
        return "its disk may be full or hung".into();
    }
    let probe = dir.join(".space-probe");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0; 4096])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    match written {
        Err(e) => format!("writing to {} fails: {e}", dir.display()),
        Ok(()) => format!(
            "{} still accepts writes, so its disk is slow or hung",
            dir.display()
        ),
    }
}
