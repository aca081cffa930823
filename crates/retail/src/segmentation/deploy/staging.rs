//! The folder in which messages are written before they replace `messages/` as a whole.
//!
//! A staging folder is `OUT/.messages-XXXXXX` (and, during the swap, `OUT/.messages-old-PID`).
//! A process killed while writing leaves one behind, full of partial personal data, so every
//! deploy first removes the leftovers in its own output folder. It holds an exclusive lock on the
//! output folder while it does so and until its own folder is swapped in: a concurrent deploy into
//! the same folder waits instead of losing its staging folder, and any staging folder found while
//! holding the lock belongs to a process that is gone.

use std::fs::File;
use std::path::{Path, PathBuf};

use flow_engine::node::NodeError;

/// The name prefix of staging folders (and of the old folder during the swap).
pub(super) const PREFIX: &str = ".messages-";

/// The exclusive right to stage messages in one output folder; released when dropped.
#[derive(Debug)]
pub(super) struct StagingLock {
    /// `None` where a folder cannot be opened as a file (not on Linux or macOS).
    _dir: Option<File>,
}

/// Locks `out` for staging (waiting for another deploy into it to finish) and removes every
/// leftover staging folder in it. Returns the lock and the folders removed.
pub(super) fn lock_and_sweep(out: &Path) -> Result<(StagingLock, Vec<PathBuf>), NodeError> {
    let dir = File::open(out).ok();
    if let Some(dir) = &dir {
        dir.lock().map_err(|e| {
            NodeError::io(
                format!("cannot lock the output folder {}", out.display()),
                e,
            )
        })?;
    }
    let lock = StagingLock { _dir: dir };
    let entries = std::fs::read_dir(out)
        .map_err(|e| NodeError::io(format!("cannot list {}", out.display()), e))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| NodeError::io(format!("cannot list {}", out.display()), e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && entry.file_name().to_string_lossy().starts_with(PREFIX) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| {
                NodeError::io(
                    format!(
                        "cannot remove the leftover staging folder {}",
                        path.display()
                    ),
                    e,
                )
            })?;
            removed.push(path);
        }
    }
    Ok((lock, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_staging_folders_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        for d in [
            ".messages-a1B2c3",
            ".messages-old-4242",
            "messages",
            ".messagesX",
            "other",
        ] {
            std::fs::create_dir(out.join(d)).unwrap();
            std::fs::write(out.join(d).join("C001.eml"), "partial").unwrap();
        }
        std::fs::write(out.join(".messages-file"), "a file, not a staging folder").unwrap();
        let (_lock, mut removed) = lock_and_sweep(out).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [out.join(".messages-a1B2c3"), out.join(".messages-old-4242")]
        );
        let mut left: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".messages-file", ".messagesX", "messages", "other"]);
        assert!(out.join("messages/C001.eml").exists());
    }

    #[test]
    fn a_second_deploy_into_the_same_folder_waits_for_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().to_path_buf();
        let (first, _) = lock_and_sweep(&out).unwrap();
        // The first deploy's staging folder, in use while it holds the lock.
        std::fs::create_dir(out.join(".messages-inuse")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let out = out.clone();
            std::thread::spawn(move || {
                let (_lock, removed) = lock_and_sweep(&out).unwrap();
                tx.send(removed.len()).unwrap();
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "the second deploy did not wait");
        assert!(out.join(".messages-inuse").exists());
        drop(first);
        assert_eq!(rx.recv().unwrap(), 1);
        waiter.join().unwrap();
    }
}
