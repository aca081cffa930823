//! The shipped default workflow, `workflows/segmentation.yaml`, on its sample data
//! (`workflows/data/`), run end to end by the real binary in a temporary workspace: the outputs
//! are checked against what the test itself reads from the sample files (customers, purchases,
//! stock, marketing consent, malformed lines); edits to a copy of the YAML reshape the pipeline; a
//! POS endpoint served by the test fails midway and a resumed run delivers every batch exactly
//! once; a second run reports segment transitions; missing and malformed inputs fail clearly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::shipped::repo_path;
use crate::support::Workspace;

mod bad_inputs;
mod end_to_end;
mod holdout;
mod known_effect;
mod pos_deploy;
mod transitions;
mod yaml_edits;

/// The workflow file inside every workspace of this module.
const WF: &str = "segmentation.yaml";

/// The segments of the shipped rules (five rules and the default).
const SEGMENTS: [&str; 6] = ["vip", "at_risk", "new", "frequent", "lapsed", "regular"];

/// `top_k` of each shipped `recommend_*` node.
const TOP_K: [(&str, usize); 6] = [
    ("vip", 4),
    ("at_risk", 3),
    ("new", 4),
    ("frequent", 3),
    ("lapsed", 3),
    ("regular", 3),
];

// ---------------------------------------------------------------------------------------------
// Workspace set-up and YAML edits
// ---------------------------------------------------------------------------------------------

/// A workspace with `yaml` as `segmentation.yaml` and a copy of every file of `workflows/data/`
/// under `data/`.
fn workspace(yaml: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write(WF, yaml);
    let src = repo_path("workflows/data");
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            let name = path.file_name().expect("file name").to_string_lossy();
            ws.write(
                &format!("data/{name}"),
                std::fs::read(&path).expect("read sample"),
            );
        }
    }
    ws
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}"))
        + 1
}

// ---------------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------------

type Row = BTreeMap<String, String>;

/// A CSV file with a header, as maps from column name to value.
fn read_csv(path: &Path) -> Vec<Row> {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let header = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            header
                .iter()
                .zip(r.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &Row, col: &str) -> f64 {
    let v = row
        .get(col)
        .unwrap_or_else(|| panic!("no column {col:?} in {row:?}"));
    v.parse()
        .unwrap_or_else(|e| panic!("column {col:?}: {v:?} is not a number ({e}) in {row:?}"))
}

fn read_json(path: &Path) -> Json {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the test reads itself from the sample `data/transactions.csv`: `order_id, customer_id,
/// date, product_id, category, quantity, unit_price, amount`.
struct Transactions {
    /// Customers with at least one valid row.
    customers: BTreeSet<String>,
    /// Products each customer bought (valid rows with a positive quantity).
    bought: BTreeMap<String, BTreeSet<String>>,
    /// File line numbers (the header is line 1) of the malformed rows.
    bad_lines: Vec<u64>,
    /// The latest date (`YYYY-MM-DD`) of a valid row.
    last_date: String,
}

fn read_transactions(path: &Path) -> Transactions {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "order_id",
            "customer_id",
            "date",
            "product_id",
            "category",
            "quantity",
            "unit_price",
            "amount"
        ],
        "the sample's header changed; update this test"
    );
    let mut tx = Transactions {
        customers: BTreeSet::new(),
        bought: BTreeMap::new(),
        bad_lines: Vec::new(),
        last_date: String::new(),
    };
    for record in reader.records() {
        let record = record.expect("record");
        let line = record.position().expect("position").line();
        let valid = record.len() == 8 && {
            let f: Vec<&str> = record.iter().collect();
            let number = |s: &str| s.parse::<f64>().is_ok_and(f64::is_finite);
            !f[0].is_empty()
                && !f[1].is_empty()
                && !f[3].is_empty()
                && chrono::NaiveDateTime::parse_from_str(f[2], "%Y-%m-%d %H:%M:%S").is_ok()
                && number(f[5])
                && number(f[6])
                && number(f[7])
        };
        if !valid {
            tx.bad_lines.push(line);
            continue;
        }
        let customer = record[1].to_string();
        if record[5].parse::<f64>().unwrap() > 0.0 {
            tx.bought
                .entry(customer.clone())
                .or_default()
                .insert(record[3].to_string());
        }
        tx.customers.insert(customer);
        let date = &record[2][..10];
        if date > tx.last_date.as_str() {
            tx.last_date = date.to_string();
        }
    }
    tx
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

/// A node's record in `flow runs show RUN --json`.
fn node<'a>(show: &'a Json, id: &str) -> &'a Json {
    show["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .find(|n| n["node_id"] == id)
        .unwrap_or_else(|| panic!("no node `{id}` in {show:#}"))
}

/// The deploy's output directory of a run (from its metadata: `out/<run date>`).
fn out_dir(ws: &Workspace, run: &str) -> PathBuf {
    let show = ws.show(run);
    let dir = node(&show, "deploy")["meta"]["out_dir"]
        .as_str()
        .unwrap_or_else(|| panic!("no deploy out_dir in {show:#}"))
        .to_string();
    let dir = PathBuf::from(dir);
    assert!(
        dir.starts_with(ws.path("out")),
        "{} is not under out/",
        dir.display()
    );
    dir
}

/// Customer id -> profile row of `segments.csv`, checking there is one row per customer.
fn profiles(dir: &Path) -> BTreeMap<String, Row> {
    let rows = read_csv(&dir.join("segments.csv"));
    let n = rows.len();
    let by_id: BTreeMap<String, Row> = rows
        .into_iter()
        .map(|r| (r["customer_id"].clone(), r))
        .collect();
    assert_eq!(by_id.len(), n, "segments.csv has duplicate customers");
    by_id
}

fn segment_counts(profiles: &BTreeMap<String, Row>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for p in profiles.values() {
        *counts.entry(p["segment"].clone()).or_insert(0) += 1;
    }
    counts
}

/// `N` of `line N: ...`.
fn bad_line_number(message: &str) -> u64 {
    message
        .strip_prefix("line ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not `line N: ...`: {message:?}"))
}
