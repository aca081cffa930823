//! What a user sees: the log lines of a run without a terminal (warnings in the same plain
//! format as every other line, the count of nodes done), and the segmentation report (currency,
//! period, labels, offers, and which earlier run it compares with).

use std::path::PathBuf;

use serde_json::Value as Json;

use crate::shipped::repo_path;
use crate::support::Workspace;

/// `HH:MM:SS ` at the start of a line.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 9
        && b[..8].iter().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                *c == b':'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[8] == b' '
}

/// A transactions export of `good` rows and two bad ones (an impossible date, a bad amount).
fn export(good: usize) -> String {
    let mut csv =
        String::from("order_id,customer_id,date,product_id,category,quantity,unit_price,amount\n");
    for i in 0..good {
        csv.push_str(&format!(
            "O{i:05},C{:03},2024-0{}-1{} 10:00:00,P{:02},Tea,1,5.00,5.00\n",
            i % 40,
            1 + i % 9,
            i % 10,
            i % 7
        ));
        if i == good / 2 {
            csv.push_str("OBAD1,C001,2024-02-30 11:00:00,P01,Tea,1,5.00,5.00\n");
            csv.push_str("OBAD2,C002,2024-03-01 11:00:00,P01,Tea,1,5.00,12x\n");
        }
    }
    csv
}

const EXTRACT: &str = r#"name: extract
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: transactions
    kind: action
    type: pos.extract
    needs: start
    with: { path: tx.csv, format: csv, on_bad_rows: skip }
  - id: done
    kind: output
    type: core.noop
    needs: transactions
"#;

#[test]
fn without_a_terminal_a_warning_is_one_plain_line_like_the_others() {
    let ws = Workspace::with_workflow(EXTRACT);
    ws.write("tx.csv", export(500));
    let out = ws.run().run();
    assert!(!out.stderr.contains('\x1b'), "ANSI escapes\n{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    let warnings: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("skipped 2 bad rows"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    let warning = warnings[0];
    assert!(stamped(warning), "{warning:?}\n{out}");
    assert_eq!(
        &warning[9..],
        warning[9..].trim_end(),
        "one line, nothing trailing"
    );
    assert!(
        warning[9..].starts_with("node transactions warning: skipped 2 bad rows; first: line "),
        "{warning:?}"
    );
    // The node lines carry the same stamp.
    let finished = lines
        .iter()
        .find(|l| l.contains("node transactions ✔ succeeded"))
        .unwrap_or_else(|| panic!("no finished line\n{out}"));
    assert!(stamped(finished), "{finished:?}");
    // Every line but the first (`run ID of ...`) is stamped the same way.
    for line in &lines[1..] {
        assert!(stamped(line), "unstamped line {line:?}\n{out}");
    }
    // The same with NO_COLOR set.
    let again = ws.run().env("NO_COLOR", "1").run();
    assert!(!again.stderr.contains('\x1b'), "{again}");
}

#[test]
fn node_lines_count_the_nodes_done() {
    let ws = Workspace::with_workflow(EXTRACT);
    ws.write("tx.csv", export(20));
    let out = ws.run().run();
    let done: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.split(" (").last())
        .filter(|l| l.ends_with("nodes done)"))
        .collect();
    assert_eq!(
        done,
        [
            "1 of 3 nodes done)",
            "2 of 3 nodes done)",
            "3 of 3 nodes done)"
        ],
        "{out}"
    );
    // The noop passes the 20 extracted rows on.
    assert!(
        out.stderr.contains(", 20 rows (3 of 3 nodes done)"),
        "{out}"
    );
}

#[test]
fn a_retry_is_reported_once() {
    let ws = Workspace::with_workflow(
        r#"name: retry
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: flaky
    kind: action
    type: core.shell
    needs: start
    retry: { max_attempts: 2, backoff: 10ms }
    with: { command: "test -f marker || { touch marker; echo boom >&2; exit 1; }" }
"#,
    );
    let out = ws.run().run();
    let retries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("failed") && l.contains("retry"))
        .collect();
    assert_eq!(retries.len(), 1, "{out}");
    assert!(stamped(retries[0]), "{out}");
    assert!(
        retries[0].contains("node flaky attempt 1 failed, retrying in 10ms"),
        "{out}"
    );
}

#[test]
fn an_empty_file_fails_where_it_is_read_naming_its_path() {
    for (name, format, expected) in [
        ("empty.csv", "csv", "a header row"),
        ("empty.jsonl", "jsonl", "JSON lines"),
        ("empty.json", "json", "a JSON value"),
    ] {
        let ws = Workspace::with_workflow(&format!(
            "name: read\nnodes:\n  - {{ id: start, kind: trigger, type: manual }}\n  - {{ id: load, kind: action, type: file.read, needs: start, with: {{ path: {name}, format: {format} }} }}\n"
        ));
        ws.write(name, "\n");
        let out = ws.run().expect_exit(1).run();
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("node load ✘ failed"))
            .unwrap_or_else(|| panic!("no failure line\n{out}"));
        assert!(
            line.contains(&format!("{name} is empty: expected {expected}")),
            "{line}"
        );
        assert!(
            line.contains(&ws.path(name).display().to_string()),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The segmentation report
// ---------------------------------------------------------------------------------------------

const WF: &str = "segmentation.yaml";

/// A workspace with the shipped workflow and its sample data.
fn shipped() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        WF,
        std::fs::read(repo_path("workflows/segmentation.yaml")).expect("shipped workflow"),
    );
    for name in ["transactions.csv", "catalog.csv", "customers.csv"] {
        ws.write(
            &format!("data/{name}"),
            std::fs::read(repo_path(&format!("workflows/data/{name}"))).expect("sample"),
        );
    }
    ws
}

/// The one dated output directory under `out/`.
fn out_dir(ws: &Workspace) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(ws.path("out"))
        .expect("out/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn summary(ws: &Workspace) -> Json {
    serde_json::from_str(&std::fs::read_to_string(out_dir(ws).join("summary.json")).unwrap())
        .unwrap()
}

fn report(ws: &Workspace) -> String {
    std::fs::read_to_string(out_dir(ws).join("report.html")).unwrap()
}

/// The first and last dates of the sample's well-formed rows.
fn sample_dates(ws: &Workspace) -> (String, String) {
    let text = ws.read("data/transactions.csv");
    let mut dates: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .filter_map(|d| chrono::NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok())
        .map(|d| d.to_string())
        .collect();
    dates.sort();
    (dates[0].clone(), dates[dates.len() - 1].clone())
}

#[test]
fn the_report_compares_with_the_previous_run_of_the_same_workflow_and_params() {
    let ws = shipped();
    let run = |params: &[(&str, &str)]| {
        let mut flow = ws.flow().args(["run", WF]);
        for (k, v) in params {
            flow = flow.param(k, v);
        }
        flow.run().run_id()
    };
    let first = run(&[]);
    assert!(summary(&ws)["changes"].is_null());
    assert!(report(&ws).contains("This is the first run of this workflow with these parameters"));

    let second = run(&[]);
    assert_eq!(summary(&ws)["changes"]["previous_run_id"], first.as_str());

    // An experiment is compared with nothing: it has no earlier run with its parameters.
    run(&[("vip_min_clv", "800")]);
    assert!(
        summary(&ws)["changes"].is_null(),
        "{}",
        summary(&ws)["changes"]
    );

    // The next plain run compares with the last plain run, not with the experiment.
    run(&[]);
    let s = summary(&ws);
    assert_eq!(
        s["changes"]["previous_run_id"],
        second.as_str(),
        "{}",
        s["changes"]
    );
    let html = report(&ws);
    assert!(
        html.contains(&format!(
            "Compared with run {second} of {}",
            &s["changes"]["previous_run_at"].as_str().unwrap()[..10]
        )),
        "{html}"
    );
    assert!(html.contains("the previous run of this workflow with the same parameters"));

    // Currency, period, labels and offers.
    assert_eq!(s["currency"], "USD");
    let (first_day, last_day) = sample_dates(&ws);
    assert_eq!(
        s["period"]["first_transaction"],
        first_day.as_str(),
        "{}",
        s["period"]
    );
    assert_eq!(
        s["period"]["last_transaction"],
        last_day.as_str(),
        "{}",
        s["period"]
    );
    assert_eq!(
        s["period"]["analysis_date"],
        last_day.as_str(),
        "{}",
        s["period"]
    );
    assert!(html.contains("amounts in USD"), "{html}");
    assert!(html.contains("<th>Revenue (USD)</th>"), "{html}");
    assert!(
        html.contains(&format!(
            "Transactions from {first_day} to {last_day} · analysis date {last_day}"
        )),
        "{html}"
    );
    for (segment, label, offer) in [
        ("vip", "VIP", "early access"),
        ("at_risk", "At risk", "20% off"),
        ("new", "New customers", "10% off"),
        ("frequent", "Frequent buyers", "free shipping"),
        ("lapsed", "Lapsed", "15% off"),
        ("regular", "Regular", "no offer (no message)"),
    ] {
        let row = format!("<td>{label}<span class=\"code\">{segment}</span></td><td>{offer}</td>");
        assert!(html.contains(&row), "no {row:?} in\n{html}");
        let stats = s["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["segment"] == segment)
            .unwrap_or_else(|| panic!("no {segment} in {}", s["segments"]));
        assert_eq!(stats["label"], label);
    }
}
