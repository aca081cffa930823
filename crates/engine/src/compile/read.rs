//! Reading a workflow file: bounded in size, and UTF-8 or a located error.

use std::io::Read;
use std::path::Path;

use super::limits::{self, LimitError, MAX_BYTES};
use super::{Diagnostic, LoadError, Severity};

/// A workflow file's bytes, at most `MAX_BYTES + 1` of them (enough to tell it is too large,
/// without reading a huge or endless file whole).
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of a workflow file read by [`read_bytes`]; too large or not UTF-8 is a located
/// error naming the file.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    if bytes.len() > MAX_BYTES {
        return Err(limit_diagnostic(path, &limits::too_large(&bytes)));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error();
        let at = limits::pos_of(e.as_bytes(), bad.valid_up_to());
        let byte = e.as_bytes()[bad.valid_up_to()];
        let message =
            format!("not valid UTF-8 (byte 0x{byte:02X}); a workflow file must be UTF-8 text");
        located(path, at.line, at.col, message)
    })
}

/// Reads a workflow file's text: [`read_bytes`] then [`decode`].
pub fn read_source(path: &Path) -> Result<String, LoadError> {
    let bytes = read_bytes(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(path, bytes).map_err(|d| LoadError::Invalid(vec![d]))
}

/// Checks [`limits::check`] on text about to be compiled.
pub fn check_limits(text: &str, path: &Path) -> Result<(), Vec<Diagnostic>> {
    limits::check(text).map_err(|e| vec![limit_diagnostic(path, &e)])
}

fn limit_diagnostic(path: &Path, e: &LimitError) -> Diagnostic {
    let at = e.pos();
    located(path, at.line, at.col, e.to_string())
}

/// An error at a place in the file, before any node is known.
fn located(path: &Path, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: Some(line),
        column: Some(column),
        node: None,
        severity: Severity::Error,
        message,
    }
}
