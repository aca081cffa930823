//! The one permission policy for the files deploy writes: they hold personal data (names,
//! email addresses, spending), so every file is readable and writable by its owner only
//! (`0600`) and every folder deploy creates is open to its owner only (`0700`), whatever the
//! umask. Folders that already exist keep their permissions.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use flow_engine::node::NodeError;

/// Mode of every file deploy writes.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every folder deploy creates.
pub(crate) const DIR_MODE: u32 = 0o700;

fn io(what: &str, path: &Path, e: std::io::Error) -> NodeError {
    NodeError::io(format!("{what} {}", path.display()), e)
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, renamed into
/// place) with [`FILE_MODE`].
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    write_atomic_with(path, |out| {
        out.write_all(bytes)
            .map_err(|e| io("cannot write", path, e))
    })
}

/// [`write_atomic`] of what `write` writes (through a buffer), so that a large file need not
/// be held in memory first.
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".flow-tmp-")
        .tempfile_in(dir)
        .map_err(|e| io("cannot create a temporary file for", path, e))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(|e| io("cannot write", path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp);
    write(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| io("cannot write", path, e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io("cannot write", path, e))?;
    tmp.persist(path)
        .map_err(|e| io("cannot move into place", path, e.error))?;
    Ok(())
}

/// Writes a new file (inside a folder being staged, so not atomically) with [`FILE_MODE`].
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    new_file(path)?
        .write_all(bytes)
        .map_err(|e| io("cannot write", path, e))
}

/// A new file with [`FILE_MODE`].
pub(crate) fn new_file(path: &Path) -> Result<std::fs::File, NodeError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| io("cannot write", path, e))?;
    // The umask may have taken bits away from the mode given at creation; set it exactly.
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(|e| io("cannot write", path, e))?;
    Ok(file)
}

/// Creates `dir` and its missing parents with [`DIR_MODE`]; existing folders are left as
/// they are.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), NodeError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| io("cannot create", dir, e))?;
    for created in missing {
        if created.as_os_str().is_empty() {
            continue;
        }
        set_dir_mode(created)?;
    }
    Ok(())
}

/// Sets [`DIR_MODE`] on a folder deploy created (a staging folder, say).
pub(crate) fn set_dir_mode(dir: &Path) -> Result<(), NodeError> {
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .map_err(|e| io("cannot set the permissions of", dir, e))
}
