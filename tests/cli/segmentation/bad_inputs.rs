//! Missing and malformed inputs.

use super::{WF, bad_line_number, node, read_transactions, workspace};
use crate::shipped::{replace_once, shipped_yaml};

#[test]
fn a_missing_catalog_fails_naming_the_path() {
    let ws = workspace(&shipped_yaml());
    std::fs::remove_file(ws.path("data/catalog.csv")).expect("remove catalog");
    let out = ws.flow().args(["run", WF]).expect_exit(1).run();
    let id = out.run_id();
    out.assert_stderr_contains("data/catalog.csv");
    let show = ws.show(&id);
    let error = node(&show, "catalog")["error"]
        .as_str()
        .unwrap_or_else(|| panic!("catalog has no error: {show:#}"));
    let path = ws.path("data/catalog.csv");
    assert!(
        error.contains(&path.display().to_string()),
        "catalog error {error:?} does not name {}",
        path.display()
    );
    let statuses = ws.statuses(&id);
    assert_eq!(statuses["catalog"], "failed");
    assert_eq!(statuses["deploy"], "upstream_failed");
    assert!(!ws.exists("out"), "outputs written after a failed extract");
}

#[test]
fn on_bad_rows_fail_lists_the_bad_line_numbers() {
    let yaml = replace_once(&shipped_yaml(), "on_bad_rows: skip", "on_bad_rows: fail");
    let ws = workspace(&yaml);
    let tx = read_transactions(&ws.path("data/transactions.csv"));
    assert!(!tx.bad_lines.is_empty(), "the sample has no malformed rows");
    let out = ws.flow().args(["run", WF]).expect_exit(1).run();
    let id = out.run_id();
    let show = ws.show(&id);
    let transactions = node(&show, "transactions");
    assert_eq!(transactions["status"], "failed", "{show:#}");
    let error = transactions["error"].as_str().expect("error");
    assert!(
        error.contains(&format!("{} bad rows", tx.bad_lines.len())),
        "{error}"
    );
    let listed: Vec<u64> = error
        .lines()
        .filter_map(|l| l.trim().strip_prefix("line "))
        .map(|rest| bad_line_number(&format!("line {rest}")))
        .collect();
    assert!(!listed.is_empty(), "no line numbers in {error:?}");
    assert_eq!(listed, tx.bad_lines[..listed.len()], "{error}");
    assert_eq!(ws.statuses(&id)["deploy"], "upstream_failed");
}
