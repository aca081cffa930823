//! The database value that stands for an output kept in a file: the file's relative path and
//! the SHA-256 of its bytes, checked on every read so a damaged file is an error, never
//! silently different data.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::StoreError;

/// Current references: this mark, the hex SHA-256 of the file, `:`, the relative path.
const MARK: &[u8] = b"FLOW-OUTPUT-FILE-SHA256:";
/// References written before files had checksums: this mark, then the relative path.
const LEGACY_MARK: &[u8] = b"FLOW-OUTPUT-FILE:";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The reference to store for `bytes` written at `relative`.
pub fn reference(relative: &str, bytes: &[u8]) -> Vec<u8> {
    let mut value = MARK.to_vec();
    value.extend_from_slice(sha256_hex(bytes).as_bytes());
    value.push(b':');
    value.extend_from_slice(relative.as_bytes());
    value
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
