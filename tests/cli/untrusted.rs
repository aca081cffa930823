//! Customer data is untrusted input: the shipped workflow on a copy of the sample whose customer
//! names and product names try to add mail headers, run spreadsheet formulas or inject HTML. The
//! messages, CSVs and report on disk carry them as harmless text, in files only their owner
//! can read.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::shipped::repo_path;
use crate::support::Workspace;

const WF: &str = "segmentation.yaml";

/// Names given, in turn, to the customers who accept marketing.
const NAMES: [&str; 7] = [
    "Bob\r\nBcc: victim@evil.example",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "+SUM(A1:A2)",
    "@cmd",
    "-2+3",
    "<script>alert(1)</script>",
    "Zoë Ærøskøbing",
];

/// Names given, in turn, to every fifth product.
const PRODUCTS: [&str; 3] = ["=cmd|' /C calc'!A0", "<script>p()</script> Tea", "@SUM(1)"];

/// Rewrites a CSV file, changing `column` of the rows `pick` chooses to `value(n)` for the
/// n-th chosen row.
fn rewrite(
    text: &[u8],
    column: &str,
    pick: impl Fn(&csv::StringRecord, &csv::StringRecord) -> bool,
    value: impl Fn(usize) -> &'static str,
) -> Vec<u8> {
    let mut reader = csv::Reader::from_reader(text);
    let headers = reader.headers().expect("header").clone();
    let at = headers.iter().position(|h| h == column).expect("column");
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&headers).unwrap();
    let mut n = 0;
    for record in reader.records() {
        let record = record.expect("sample row");
        if pick(&headers, &record) {
            let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
            fields[at] = value(n).to_string();
            n += 1;
            out.write_record(&fields).unwrap();
        } else {
            out.write_record(&record).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// (customer id -> name given) and the workspace with the altered sample.
fn hostile_workspace() -> (Workspace, BTreeMap<String, &'static str>) {
    let ws = Workspace::new();
    ws.write(
        WF,
        std::fs::read(repo_path("workflows/segmentation.yaml")).unwrap(),
    );
    let data = repo_path("workflows/data");
    let read = |name: &str| std::fs::read(data.join(name)).unwrap();
    let consenting = |h: &csv::StringRecord, r: &csv::StringRecord| {
        let at = h.iter().position(|c| c == "accepts_marketing").unwrap();
        r[at].eq_ignore_ascii_case("yes")
    };
    let customers = rewrite(&read("customers.csv"), "name", consenting, |n| {
        NAMES[n % NAMES.len()]
    });
    let mut given = BTreeMap::new();
    let mut reader = csv::Reader::from_reader(customers.as_slice());
    for r in reader.records() {
        let r = r.unwrap();
        if let Some(name) = NAMES.iter().find(|n| **n == &r[1]) {
            given.insert(r[0].to_string(), *name);
        }
    }
    let every_fifth = |_: &csv::StringRecord, r: &csv::StringRecord| {
        r[0].trim_start_matches('P').parse::<u32>().unwrap() % 5 == 0
    };
    let catalog = rewrite(&read("catalog.csv"), "name", every_fifth, |n| {
        PRODUCTS[n % PRODUCTS.len()]
    });
    ws.write("data/customers.csv", customers);
    ws.write("data/catalog.csv", catalog);
    ws.write("data/transactions.csv", read("transactions.csv"));
    (ws, given)
}

/// The headers of an `.eml` (unfolded), checking that the header block has no bare CR or LF.
fn headers(eml: &str) -> Vec<(String, String)> {
    let head = eml.split_once("\r\n\r\n").expect("headers, blank line").0;
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        assert!(!line.contains(['\r', '\n']), "bare CR/LF in {eml}");
        if line.starts_with([' ', '\t']) {
            out.last_mut().expect("continued header").1.push_str(line);
        } else {
            let (k, v) = line.split_once(':').expect("Name: value");
            out.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        }
        out.push(path);
    }
    out
}

fn column(path: &Path, name: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap()[at].to_string())
        .collect()
}

#[test]
fn hostile_names_reach_the_files_as_harmless_text() {
    let (ws, given) = hostile_workspace();
    let run = ws.flow().args(["run", WF]).run().run_id();
    let show = ws.show(&run);
    let deploy = show["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "deploy")
        .expect("deploy node");
    let out = PathBuf::from(deploy["meta"]["out_dir"].as_str().expect("out_dir"));

    // Messages: one To, no Bcc or Cc, whatever the name.
    let emls: Vec<PathBuf> = files_under(&out.join("messages"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert!(!emls.is_empty());
    let mut hostile_seen = BTreeSet::new();
    for path in &emls {
        let text = std::fs::read_to_string(path).unwrap();
        let h = headers(&text);
        let count = |k: &str| h.iter().filter(|(n, _)| n == k).count();
        assert_eq!(count("to"), 1, "{}: {text}", path.display());
        assert_eq!(count("bcc") + count("cc"), 0, "{}: {text}", path.display());
        let customer = &h.iter().find(|(n, _)| n == "x-flow-customer").unwrap().1;
        if let Some(name) = given.get(customer) {
            hostile_seen.insert(*name);
            let to = &h.iter().find(|(n, _)| n == "to").unwrap().1;
            if name.contains('\n') || !name.is_ascii() {
                assert!(to.to_ascii_lowercase().starts_with("=?utf-8?b?"), "{to}");
            }
            // The HTML part escapes the name; the plain-text part shows it as typed, which a
            // text/plain part cannot run.
            let html = text
                .split_once("Content-Type: text/html")
                .unwrap_or_else(|| panic!("an HTML part: {text}"))
                .1;
            assert!(!html.contains("<script>alert(1)"), "{text}");
            assert!(
                html.contains("&lt;script&gt;alert(1)") || !name.contains("<script>"),
                "{text}"
            );
        }
    }
    assert!(
        hostile_seen.contains(NAMES[0]),
        "a message to a customer named like a header: {hostile_seen:?}"
    );

    // CSVs: formula-like names and products start with a quote; amounts stay numbers.
    let segments = out.join("segments.csv");
    let names = column(&segments, "customer_name");
    for formula in &NAMES[1..5] {
        assert!(
            names.iter().any(|n| *n == format!("'{formula}")),
            "{formula}"
        );
        assert!(!names.iter().any(|n| n == formula), "{formula}");
    }
    assert!(
        names.iter().any(|n| n == NAMES[0]),
        "a name with a line break is kept"
    );
    assert!(
        column(&segments, "total_spend")
            .iter()
            .all(|v| v.parse::<f64>().is_ok()),
        "amounts are numbers"
    );
    let products = column(&out.join("recommendations.csv"), "product_name");
    assert!(products.iter().any(|p| p == "'=cmd|' /C calc'!A0"));
    assert!(!products.iter().any(|p| p.starts_with(['=', '+', '-', '@'])));
    let recommended = column(&segments, "recommended_products");
    assert!(
        !recommended
            .iter()
            .any(|p| p.starts_with(['=', '+', '-', '@']))
    );

    // The report shows no markup from the data.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!report.contains("<script"));

    // Every file deploy wrote is the owner's only.
    for path in files_under(&out) {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

#[test]
fn runs_output_as_csv_neutralises_formulas_and_keeps_numbers() {
    let ws = Workspace::with_workflow(
        r#"name: export
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: customers
    kind: output
    type: core.shell
    needs: [start]
    with: { command: "cat customers.csv", output: csv }
"#,
    );
    ws.write(
        "customers.csv",
        "name,spend\n\"=HYPERLINK(\"\"http://evil.example\"\")\",-12.5\n@cmd,3\nAda,1\n",
    );
    let id = ws.run().run().run_id();
    let csv = ws
        .flow()
        .args(["runs", "output", &id, "customers", "--format", "csv"])
        .run();
    assert_eq!(
        csv.stdout,
        "name,spend\n\"'=HYPERLINK(\"\"http://evil.example\"\")\",-12.5\n'@cmd,3.0\nAda,1.0\n"
    );
    // JSON gives the values as stored.
    let json = ws
        .flow()
        .args(["runs", "output", &id, "customers", "--format", "json"])
        .run();
    assert!(
        json.stdout.starts_with("{\"name\":\"=HYPERLINK("),
        "{}",
        json.stdout
    );
}
