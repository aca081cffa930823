//! The database value that stands for an output kept in a file: the file's relative path and
//! the SHA-256 of its bytes, checked on every read so a damaged file is an error, never
//! silently different data.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::StoreError;

/// Current references: this mark, the hex SHA-256 of the file, `:`, the relative path.
const MARK: &[u8] = b"FLOW-OUTPUT-FILE-SHA256:";
/// References written before files had checksums: this mark, then the relative path.
const LEGACY_MARK: &[u8] = b"FLOW-OUTPUT-FILE:";

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The reference to store for `bytes` written at `relative`.
#[cfg(test)]
pub fn reference(relative: &str, bytes: &[u8]) -> Vec<u8> {
    reference_to(relative, &sha256_hex(bytes))
}

/// The reference to store for a file at `relative` whose SHA-256 is `sha256`.
fn reference_to(relative: &str, sha256: &str) -> Vec<u8> {
    let mut value = MARK.to_vec();
    value.extend_from_slice(sha256.as_bytes());
    value.push(b':');
    value.extend_from_slice(relative.as_bytes());
    value
}

/// Writes the output file `relative` under `dir` as `fill` produces its bytes, and returns the
/// reference to store: into a temporary file, fsynced, renamed into place, the directory
/// fsynced, so the file is durable before the reference that names it. The bytes are hashed as
/// they pass. A failed write leaves no partial file behind.
pub fn write(
    dir: &Path,
    relative: &str,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(relative);
    let fail = |e: std::io::Error| {
        StoreError::Io(format!(
            "cannot write the output file {}: {e}",
            path.display()
        ))
    };
    let parent = path.parent().expect("a file under the store");
    std::fs::create_dir_all(parent).map_err(fail)?;
    let tmp = path.with_extension("out.tmp");
    let written = File::create(&tmp).and_then(|file| {
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            sha: Sha256::new(),
        };
        fill(&mut out)?;
        let sum = hex(&out.sha.finalize());
        out.inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(sum)
    });
    let sum = match written {
        Ok(sum) => sum,
        Err(e) => {
            // A partial file on a full disk only takes the space a retry needs.
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
    };
    std::fs::rename(&tmp, &path).map_err(fail)?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(fail)?;
    Ok(reference_to(relative, &sum))
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reference to a file: its relative path and, when recorded, its checksum.
#[derive(Debug, PartialEq)]
pub struct FileRef {
    pub relative: String,
    pub sha256: Option<String>,
}

/// The file a database value refers to; `None` when the value is the output itself.
pub fn parse(value: &[u8]) -> Option<FileRef> {
    if let Some(rest) = value.strip_prefix(MARK) {
        let text = String::from_utf8_lossy(rest);
        let (sum, relative) = text.split_once(':')?;
        return Some(FileRef {
            relative: relative.to_string(),
            sha256: Some(sum.to_string()),
        });
    }
    value.strip_prefix(LEGACY_MARK).map(|rest| FileRef {
        relative: String::from_utf8_lossy(rest).into_owned(),
        sha256: None,
    })
}

/// Reads the referenced file under `dir`, verifying its checksum.
pub fn read(dir: &Path, file: &FileRef, what: impl Fn() -> String) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(&file.relative);
    let bytes = std::fs::read(&path).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    if let Some(expected) = &file.sha256 {
        let found = sha256_hex(&bytes);
        if &found != expected {
            return Err(StoreError::Corrupt {
                what: what(),
                reason: format!(
                    "the output file {} is damaged: its SHA-256 is {found}, {expected} was saved",
                    path.display()
                ),
            });
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_old_ones_still_parse() {
        let value = reference("outputs/r1/n.out", b"abc");
        let file = parse(&value).unwrap();
        assert_eq!(file.relative, "outputs/r1/n.out");
        assert_eq!(file.sha256.as_deref(), Some(sha256_hex(b"abc").as_str()));
        assert_eq!(
            parse(b"FLOW-OUTPUT-FILE:outputs/r1/n.out"),
            Some(FileRef {
                relative: "outputs/r1/n.out".into(),
                sha256: None
            })
        );
        assert_eq!(parse(b"plain output"), None);
    }

    #[test]
    fn a_flipped_bit_is_an_error_naming_the_file_and_an_old_reference_reads_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outputs/r1")).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        std::fs::write(dir.path().join("outputs/r1/n.out"), &data).unwrap();
        let file = parse(&reference("outputs/r1/n.out", &data)).unwrap();
        let what = || "output of `n`".to_string();
        assert_eq!(read(dir.path(), &file, what).unwrap(), data);
        let mut damaged = data.clone();
        damaged[500] ^= 0x08;
        std::fs::write(dir.path().join("outputs/r1/n.out"), &damaged).unwrap();
        let err = read(dir.path(), &file, what).unwrap_err().to_string();
        assert!(err.contains("n.out is damaged"), "{err}");
        let legacy = parse(b"FLOW-OUTPUT-FILE:outputs/r1/n.out").unwrap();
        assert_eq!(read(dir.path(), &legacy, what).unwrap(), damaged);
    }
}
