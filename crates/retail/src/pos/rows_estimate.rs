//! How many rows a delimited file holds, guessed from its size: capacities are reserved from
//! it so that columns and maps of millions of entries are not grown by doubling (each doubling
//! copies everything so far into memory the kernel must fault in and zero).

use std::io::Read;
use std::path::Path;

/// About how many rows the file at `path` holds, from its size and the lines in its first
/// 64 KiB; 0 when it cannot be read. A capacity hint only: what is sized from it still grows
/// if it is short.
pub(crate) fn rows_in(path: &Path) -> usize {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len()) as usize;
    let mut sample = Vec::with_capacity(64 * 1024);
    if file.take(64 * 1024).read_to_end(&mut sample).is_err() || sample.is_empty() {
        return 0;
    }
    let lines = sample.iter().filter(|&&b| b == b'\n').count().max(1);
    // A row is taken to be at least 8 bytes, so a start of blank lines does not promise a row
    // per byte; a little over, so a file of slightly shorter lines does not grow once more.
    (len / (sample.len() / lines).max(8)) * 21 / 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_about_as_many_rows_as_its_first_lines_tell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let line = "O1,C1,2025-01-01,P1,1,2.5\n";
        std::fs::write(
            &path,
            format!(
                "order_id,customer_id,date,product_id,quantity,amount\n{}",
                line.repeat(20_000)
            ),
        )
        .unwrap();
        let expected = rows_in(&path);
        assert!((20_000..22_000).contains(&expected), "{expected}");
        assert_eq!(rows_in(&dir.path().join("missing.csv")), 0);
        std::fs::write(dir.path().join("empty.csv"), "").unwrap();
        assert_eq!(rows_in(&dir.path().join("empty.csv")), 0);
        // Blank lines first, then long ones: at most one row per 8 bytes.
        let blank_first = format!("{}{}", "\n".repeat(70_000), "x".repeat(1 << 20));
        std::fs::write(dir.path().join("blank.csv"), &blank_first).unwrap();
        let rows = rows_in(&dir.path().join("blank.csv"));
        assert!(rows <= blank_first.len() / 8 * 21 / 20, "{rows}");
    }
}
