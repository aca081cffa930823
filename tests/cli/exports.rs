//! Broken and unusual exports through the shipped workflow: a stray quote, a file of bad rows,
//! an empty or header-only file and missing columns fail at `transactions` naming the file (and
//! the line) instead of losing rows in silence or failing later; a payments export with only
//! customer, date and amount runs the whole workflow.

use serde_json::Value as Json;

use crate::shipped::{read_repo, replace_once};
use crate::support::Workspace;

const WF: &str = "segmentation.yaml";

/// A workspace with `yaml` as the workflow, the sample catalog and customers under `data/`, and
/// `transactions` as `data/transactions.csv`.
fn workspace(yaml: &str, transactions: impl AsRef<[u8]>) -> Workspace {
    let ws = Workspace::new();
    ws.write(WF, yaml);
    for name in ["catalog.csv", "customers.csv"] {
        ws.write(
            &format!("data/{name}"),
            read_repo(&format!("workflows/data/{name}")),
        );
    }
    ws.write("data/transactions.csv", transactions);
    ws
}

fn node<'a>(show: &'a Json, id: &str) -> &'a Json {
    show["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .find(|n| n["node_id"] == id)
        .unwrap_or_else(|| panic!("no node `{id}` in {show:#}"))
}

/// Runs the workflow expecting it to fail at `transactions`; returns that node's error.
fn transactions_error(ws: &Workspace) -> String {
    let out = ws.flow().args(["run", WF]).expect_exit(1).run();
    let id = out.run_id();
    let show = ws.show(&id);
    let tx = node(&show, "transactions");
    assert_eq!(tx["status"], "failed", "{show:#}");
    let statuses = ws.statuses(&id);
    assert_eq!(statuses["metrics"], "upstream_failed", "{statuses:?}");
    assert!(!ws.exists("out"), "outputs written after a failed extract");
    let error = tx["error"].as_str().expect("error").to_string();
    let path = ws.path("data/transactions.csv").display().to_string();
    assert!(error.contains(&path), "{error:?} does not name {path}");
    error
}

#[test]
fn a_stray_quote_in_the_sample_fails_naming_its_line() {
    let sample = read_repo("workflows/data/transactions.csv");
    let mut lines: Vec<String> = sample.lines().map(str::to_string).collect();
    // Line 101 (index 100): a `"` opening its second field, never closed.
    let (first, rest) = lines[100].split_once(',').expect("a comma on line 101");
    lines[100] = format!("{first},\"{rest}");
    let ws = workspace(
        &read_repo("workflows/segmentation.yaml"),
        lines.join("\n") + "\n",
    );
    let error = transactions_error(&ws);
    assert!(
        error.contains("the quoted field opened on line 101"),
        "{error}"
    );
}

#[test]
fn an_export_of_bad_rows_fails_at_transactions_naming_the_file_and_lines() {
    let mut text = String::from("order_id,customer_id,date,product_id,quantity,amount\n");
    for i in 0..40 {
        text.push_str(&format!("O{i},C{i},2024-03-01,P1,1,twelve\n"));
    }
    let ws = workspace(&read_repo("workflows/segmentation.yaml"), text);
    let error = transactions_error(&ws);
    assert!(error.contains("40 of 40 data rows are bad"), "{error}");
    assert!(
        error.contains("\n  line 2: column `amount`: `twelve` is not a number"),
        "{error}"
    );
    assert!(!error.contains("customers table"), "{error}");
}

#[test]
fn more_bad_rows_than_max_bad_rows_fail_and_fewer_pass() {
    // 100 rows, 6 bad: over a bound of 5, within the default (10 rows).
    let mut text = String::from("order_id,customer_id,date,product_id,quantity,amount\n");
    for i in 0..100 {
        let amount = if i % 17 == 3 { "x" } else { "5.00" };
        text.push_str(&format!(
            "O{i},C{},2024-03-{:02},P{:03},1,{amount}\n",
            i % 12,
            i % 28 + 1,
            i % 40 + 1
        ));
    }
    let shipped = read_repo("workflows/segmentation.yaml");
    let bounded = replace_once(
        &shipped,
        "on_bad_rows: skip ",
        "max_bad_rows: 5\n      on_bad_rows: skip ",
    );
    let ws = workspace(&bounded, &text);
    let error = transactions_error(&ws);
    assert!(
        error.contains("6 of 100 data rows are bad, more than the 5 that `max_bad_rows` (5)"),
        "{error}"
    );
    let ws = workspace(&shipped, &text);
    let out = ws.flow().args(["run", WF]).any_exit().run();
    let show = ws.show(&out.run_id());
    let tx = node(&show, "transactions");
    assert_eq!(tx["status"], "succeeded", "{show:#}");
    assert_eq!(tx["meta"]["report"]["bad_rows"], 6, "{show:#}");
}

#[test]
fn empty_and_header_only_files_fail_at_transactions_with_the_path() {
    let yaml = read_repo("workflows/segmentation.yaml");
    let ws = workspace(&yaml, "");
    let error = transactions_error(&ws);
    assert!(error.contains("the file is empty"), "{error}");
    let ws = workspace(
        &yaml,
        "order_id,customer_id,date,product_id,quantity,amount\n",
    );
    let error = transactions_error(&ws);
    assert!(error.contains("has a header but no data rows"), "{error}");
}

#[test]
fn missing_columns_are_listed_together() {
    let ws = workspace(
        &read_repo("workflows/segmentation.yaml"),
        "customer_id,when,sku,total\nC1,2024-01-01,P1,3\n",
    );
    let error = transactions_error(&ws);
    for column in ["`order_id`", "`date`", "`product_id`", "`amount`"] {
        assert!(error.contains(column), "{column} not in {error}");
    }
    assert!(error.contains("are not in the header"), "{error}");
}

/// The `transactions` node of the shipped workflow pointed at a payments export, with the
/// mapping docs/nodes.md describes.
fn payments_yaml() -> String {
    replace_once(
        &read_repo("workflows/segmentation.yaml"),
        "      path: data/transactions.csv\n      format: csv\n",
        "      path: data/payments.csv\n      format: csv\n      options:\n        columns: \
         { customer: customer, date: paid_at, amount: amount, order: null, product: null }\n",
    )
}

#[test]
fn a_payments_export_without_orders_or_products_runs_the_whole_workflow() {
    let payments = read_repo("crates/retail/src/pos/fixtures/payments.csv");
    let ws = workspace(&payments_yaml(), "");
    ws.write("data/payments.csv", &payments);
    let out = ws.flow().args(["run", WF]).expect_exit(0).run();
    let id = out.run_id();
    let show = ws.show(&id);
    let tx = node(&show, "transactions");
    assert_eq!(tx["meta"]["products"], "none in the export", "{tx:#}");
    assert_eq!(
        tx["meta"]["orders"], "none in the export: each row is one order",
        "{tx:#}"
    );
    // Nodes that need products succeed with empty tables and say why.
    for id in ["affinity", "recommend_vip", "recommend_regular"] {
        let n = node(&show, id);
        assert_eq!(n["status"], "succeeded", "{n:#}");
        assert!(
            n["meta"]["no_products"]
                .as_str()
                .is_some_and(|m| m.contains("no products")),
            "{n:#}"
        );
    }
    // The models are fitted as for any export: the fixture has enough repeat customers.
    let metrics = node(&show, "metrics");
    assert!(metrics["meta"]["bgnbd"].is_object(), "{metrics:#}");

    // What the test reads itself from the fixture: payments (= orders) and spend per customer.
    let mut expected: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for line in payments.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let entry = expected.entry(fields[1].to_string()).or_default();
        entry.0 += 1;
        entry.1 += fields[2].parse::<f64>().expect("amount");
    }
    let dir = ws.path(
        node(&show, "deploy")["meta"]["out_dir"]
            .as_str()
            .expect("deploy out_dir"),
    );
    let segments = std::fs::read_to_string(dir.join("segments.csv")).expect("segments.csv");
    let mut reader = csv::Reader::from_reader(segments.as_bytes());
    let header = reader.headers().expect("header").clone();
    let at = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut seen = std::collections::BTreeMap::new();
    for row in reader.records() {
        let row = row.expect("row");
        let spend: f64 = row[at("total_spend")].parse().expect("total_spend");
        let orders: u64 = row[at("orders")].parse().expect("orders");
        seen.insert(row[at("customer_id")].to_string(), (orders, spend));
    }
    assert_eq!(seen.len(), expected.len(), "{segments}");
    for (customer, (orders, spend)) in &expected {
        let (got_orders, got_spend) = seen[customer];
        assert_eq!(got_orders, *orders, "{customer}");
        assert!(
            (got_spend - spend).abs() < 0.01,
            "{customer}: {got_spend} vs {spend}"
        );
    }
    // Repeat buyers get a predicted CLV.
    let clv = segments
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(at("clv")).is_some_and(|v| !v.is_empty()))
        .count();
    assert!(clv > 0, "no CLV in {segments}");
}
