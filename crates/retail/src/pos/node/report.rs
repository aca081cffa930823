//! Parse reports of the POS nodes: located file errors, the bad-row policy, the report in the
//! node's metadata.

use serde_json::{Value as Json, json};

use super::super::{MaxBadRows, OnBadRows, ParseReport, PosError};
use flow_engine::node::NodeError;

/// A parse error of the file at `path`, naming it (I/O errors name it already).
pub(super) fn file_error(path: &std::path::Path, e: PosError) -> NodeError {
    match e {
        PosError::Io { path: Some(_), .. } => NodeError::msg(e.to_string()),
        e => NodeError::msg(format!("{}: {e}", path.display())),
    }
}

/// Parses with the bad-row policy and bound applied, and refuses a file without data rows.
pub(super) fn checked(
    path: &std::path::Path,
    report: &ParseReport,
    policy: OnBadRows,
    max: MaxBadRows,
) -> Result<(), NodeError> {
    if report.rows_read == 0 {
        return Err(file_error(path, PosError::NoDataRows));
    }
    report
        .check_bounded(policy, max)
        .map_err(|e| file_error(path, e))
}

pub(super) fn report_json(report: &ParseReport) -> Json {
    let mut out = serde_json::Map::new();
    out.insert("rows_read".into(), json!(report.rows_read));
    out.insert("bad_rows".into(), json!(report.bad_row_count));
    if !report.bad_rows.is_empty() {
        let first: Vec<String> = report
            .bad_rows
            .iter()
            .take(5)
            .map(|b| b.to_string())
            .collect();
        out.insert("first_bad_rows".into(), json!(first));
    }
    // Only the exclusions that happened, so `flow runs show` stays readable.
    for (name, count) in [
        ("cancelled_orders", report.cancelled_orders),
        ("voided_orders", report.voided_orders),
        ("refunded_orders", report.refunded_orders),
        (
            "partially_refunded_orders",
            report.partially_refunded_orders,
        ),
        ("refund_rows", report.refund_rows),
        ("rows_without_customer", report.rows_without_customer),
        ("duplicates", report.duplicates),
    ] {
        if count > 0 {
            out.insert(name.into(), json!(count));
        }
    }
    Json::Object(out)
}
