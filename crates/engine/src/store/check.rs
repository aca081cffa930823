//! Verifying a whole store without changing it: the database is opened from a scratch copy
//! (sled may rewrite damaged files it opens), and every record and output file is read.

use std::path::Path;

use super::sled_store::{self, check_format, copy_dir, open_db};
use super::{NodeRecord, RunRecord, StoreError, decode_json, high_water, output_file};

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub runs: usize,
    pub nodes: usize,
    pub outputs: usize,
    /// Outputs kept in files (each read and, when recorded, checksum-verified).
    pub output_files: usize,
    /// Committed write batches in the database, and as recorded in the high-water file.
    pub commits: u64,
    pub high_water: Option<u64>,
    /// One line per damaged thing; empty when the store is sound.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the store in `dir`. Errors only when there is nothing to check (no store there) or
/// another process holds it; damage is reported in [`CheckReport::problems`].
pub fn check(dir: &Path) -> Result<CheckReport, StoreError> {
    let db_path = dir.join("db");
    if !dir.is_dir() {
        return Err(StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: "there is no state store there".into(),
        });
    }
    let _lock = sled_store::take_lock(dir)?;
    let mut report = CheckReport::default();
    if !db_path.join("conf").exists() {
        if let Err(e) = sled_store::refuse_lost_db(dir) {
            report.problems.push(e.to_string());
            return Ok(report);
        }
        return Err(StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: "there is no state store there (no database)".into(),
        });
    }
    let scratch = dir.join(format!("check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = copy_dir(&db_path, &scratch)
        .map_err(|e| StoreError::Unreadable {
            path: dir.to_path_buf(),
            reason: format!("cannot copy it for a safe check: {e}"),
        })
        .and_then(|()| {
            let db = open_db(dir, &scratch)?;
            check_db(dir, &db, &mut report);
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&scratch);
    if let Err(e) = result {
        report.problems.push(e.to_string());
    }
    Ok(report)
}

fn check_db(dir: &Path, db: &sled::Db, report: &mut CheckReport) {
    if let Err(e) = check_format(dir, db, true) {
        report.problems.push(e.to_string());
        return;
    }
    match high_water::read(dir) {
        Ok(recorded) => report.high_water = recorded,
        Err(e) => report.problems.push(e.to_string()),
    }
    match high_water::in_db(db) {
        Ok(commits) => report.commits = commits,
        Err(e) => report.problems.push(e.to_string()),
    }
    if let Err(e) = high_water::check(dir, db) {
        report.problems.push(e.to_string());
    }
    for item in db.iter() {
        let (key, value) = match item {
            Ok(entry) => entry,
            Err(e) => {
                report
                    .problems
                    .push(format!("the database cannot be read to the end: {e}"));
                return;
            }
        };
        let key = String::from_utf8_lossy(&key).into_owned();
        if let Err(e) = check_entry(dir, &key, &value, report) {
            report.problems.push(e.to_string());
        }
    }
}

fn check_entry(
    dir: &Path,
    key: &str,
    value: &[u8],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    if key.starts_with("run/") {
        decode_json::<RunRecord>(key, value)?;
        report.runs += 1;
    } else if key.starts_with("node/") {
        decode_json::<NodeRecord>(key, value)?;
        report.nodes += 1;
    } else if let Some(rest) = key.strip_prefix("out/") {
        report.outputs += 1;
        if let Some(file) = output_file::parse(value) {
            report.output_files += 1;
            output_file::read(dir, &file, || format!("output {rest}"))?;
        }
    }
    Ok(())
}
