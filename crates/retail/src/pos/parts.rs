//! Splits a delimited file into parts that end at record boundaries, so that the parts can be
//! parsed on several threads and give exactly what one reader gives.
//!
//! CSV lets a quoted field hold line breaks, so a line break is only a record boundary outside
//! quotes, and that is known only by reading from the start. The split reads the whole file
//! once through the runaway-quote tracker, skipping from quote to quote (most files have none),
//! which also finds a runaway quote: the same error, with the same line, as the single
//! reader's, whatever the parts parsed before it was found gave.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::model::PosError;
use super::runaway_quote::QuoteTracker;

/// A part of a file: the bytes `start..end`, whose first byte is on line `first_line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
}

impl Part {
    /// The part's bytes, read from the file.
    pub(super) fn reader(&self, path: &Path) -> Result<impl Read + use<>, PosError> {
        let mut file = File::open(path).map_err(|e| PosError::io(Some(path), &e))?;
        file.seek(SeekFrom::Start(self.start))
            .map_err(|e| PosError::io(Some(path), &e))?;
        Ok(file.take(self.end - self.start))
    }
}

/// Splits the file's records from byte `data_start` (the first record after the header) to the
/// end into parts of at least `part_bytes` bytes, each ending after a line break outside quotes,
/// handing each to `on_part` as soon as it is found (so that parsing the first parts overlaps
/// with finding the next). A runaway quote is an error after the parts before it were handed
/// out: the caller then drops what it made of them.
pub(super) fn split(
    path: &Path,
    delimiter: u8,
    data_start: u64,
    part_bytes: u64,
    on_part: &mut dyn FnMut(Part),
) -> Result<(), PosError> {
    let io = |e: std::io::Error| PosError::io(Some(path), &e);
    let mut file = File::open(path).map_err(io)?;
    let mut tracker = QuoteTracker::new(delimiter);
    let mut buf = vec![0u8; 1 << 20];
    // Bytes read so far, and the part being read (its start and first line) once past the header.
    let mut offset = 0u64;
    let mut current: Option<(u64, u64)> = None;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        let mut bytes = &buf[..n];
        while !bytes.is_empty() {
            let read = match current {
                // The header, up to the first record.
                None => {
                    let k = (data_start - offset).min(bytes.len() as u64) as usize;
                    tracker.feed(&bytes[..k]);
                    k
                }
                // Short of the size of a part.
                Some((start, _)) if offset < start + part_bytes => {
                    let k = (start + part_bytes - offset).min(bytes.len() as u64) as usize;
                    tracker.feed(&bytes[..k]);
                    k
                }
                // Past it: the part ends with the record being read.
                Some((start, first_line)) => match tracker.feed_to_record_end(bytes) {
                    Some(k) => {
                        on_part(Part {
                            start,
                            end: offset + k as u64,
                            first_line,
                        });
                        current = Some((offset + k as u64, tracker.line()));
                        k
                    }
                    None => bytes.len(),
                },
            };
            offset += read as u64;
            bytes = &bytes[read..];
            if current.is_none() && offset == data_start {
                current = Some((data_start, tracker.line()));
            }
            if let Some((line, to_end)) = tracker.runaway() {
                return Err(PosError::RunawayQuote { line, to_end });
            }
        }
    }
    tracker.end();
    if let Some((line, to_end)) = tracker.runaway() {
        return Err(PosError::RunawayQuote { line, to_end });
    }
    if let Some((start, first_line)) = current
        && start < offset
    {
        on_part(Part {
            start,
            end: offset,
            first_line,
        });
    }
    Ok(())
}
