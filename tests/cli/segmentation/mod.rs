//! The shipped default workflow, `workflows/segmentation.yaml`, on its sample data
//! (`workflows/data/`), run end to end by the real binary in a temporary workspace: the outputs
//! are checked against what the test itself reads from the sample files (customers, purchases,
//! stock, marketing consent, malformed lines); edits to a copy of the YAML reshape the pipeline; a
//! POS endpoint served by the test fails midway and a resumed run delivers every batch exactly
//! once; a second run reports segment transitions; missing and malformed inputs fail clearly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as Json;

use crate::fake_pos::{FakePos, Reply};
use crate::shipped::{replace_once, repo_path, shipped_yaml};
use crate::support::Workspace;

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

// ---------------------------------------------------------------------------------------------
// 1. End to end on the shipped workflow
// ---------------------------------------------------------------------------------------------

#[test]
fn default_workflow_end_to_end_on_the_sample() {
    // The workflow exactly as shipped: `pos_url` is left at its empty default (no POS push).
    let ws = workspace(&shipped_yaml());
    let run = ws.flow().args(["run", WF]).run();
    let id = run.run_id();
    let dir = out_dir(&ws, &id);

    let tx = read_transactions(&ws.path("data/transactions.csv"));
    let catalog = read_csv(&ws.path("data/catalog.csv"));
    let customers = read_csv(&ws.path("data/customers.csv"));
    assert!(!tx.customers.is_empty());

    // segments.csv: exactly one row per customer with a valid transaction, each with a segment
    // of the rules, given by the first rule that matches.
    let profiles = profiles(&dir);
    assert_eq!(
        profiles.len(),
        tx.customers.len(),
        "customers in segments.csv"
    );
    assert_eq!(
        profiles.keys().cloned().collect::<BTreeSet<_>>(),
        tx.customers,
        "segments.csv customers vs the sample's customers"
    );
    for (id, p) in &profiles {
        let segment = p["segment"].as_str();
        assert!(SEGMENTS.contains(&segment), "{id}: segment {segment:?}");
        let (r, f, clv, orders) = (
            num(p, "r_score"),
            num(p, "f_score"),
            num(p, "clv"),
            num(p, "orders"),
        );
        let vip = r >= 4.0 && f >= 4.0 && clv >= 300.0;
        let at_risk = r <= 2.0 && f >= 3.0;
        assert_eq!(segment == "vip", vip, "{id}: vip rule, {p:?}");
        if vip {
            continue;
        }
        assert_eq!(segment == "at_risk", at_risk, "{id}: at_risk rule, {p:?}");
        if at_risk {
            continue;
        }
        if segment == "new" {
            // `days_since_last` is not in segments.csv; the `orders == 1` half of the rule is.
            assert_eq!(orders, 1.0, "{id}: a new customer with {orders} orders");
            continue;
        }
        let expected = if f >= 4.0 {
            "frequent"
        } else if r == 1.0 {
            "lapsed"
        } else {
            "regular"
        };
        assert_eq!(segment, expected, "{id}: first matching rule, {p:?}");
    }
    let counts = segment_counts(&profiles);
    for segment in ["vip", "at_risk", "frequent", "regular"] {
        assert!(
            counts.get(segment).copied().unwrap_or(0) > 0,
            "no {segment} customers: {counts:?}"
        );
    }

    // recommendations.csv: only in-stock catalog products, never one the customer bought (no
    // shipped strategy is replenishment), at most top_k per customer, in the customer's segment.
    let stock: BTreeMap<String, String> = catalog
        .iter()
        .map(|p| (p["product_id"].clone(), p["stock"].clone()))
        .collect();
    assert!(
        stock.values().any(|s| s == "0"),
        "the sample has no out-of-stock item"
    );
    let recs = read_csv(&dir.join("recommendations.csv"));
    assert!(!recs.is_empty(), "no recommendations");
    let top_k: BTreeMap<&str, usize> = TOP_K.into_iter().collect();
    let mut per_customer: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for rec in &recs {
        let customer = rec["customer_id"].as_str();
        let product = rec["product_id"].as_str();
        let in_stock = stock
            .get(product)
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|s| s > 0.0);
        assert!(
            in_stock,
            "{customer}: recommended {product} (stock {:?})",
            stock.get(product)
        );
        assert_ne!(rec["strategy"], "replenishment");
        assert!(
            !tx.bought.get(customer).is_some_and(|b| b.contains(product)),
            "{customer} already bought recommended {product}: {rec:?}"
        );
        let profile = profiles
            .get(customer)
            .unwrap_or_else(|| panic!("recommendation for unknown customer {rec:?}"));
        assert_eq!(rec["segment"], profile["segment"], "{rec:?}");
        assert!(!rec["reason"].is_empty(), "no reason: {rec:?}");
        per_customer.entry(customer).or_default().push(rec);
    }
    for (customer, list) in &per_customer {
        let k = top_k[profiles[*customer]["segment"].as_str()];
        assert!(list.len() <= k, "{customer}: {} > top_k {k}", list.len());
        let ranks: Vec<String> = list.iter().map(|r| r["rank"].clone()).collect();
        let expected: Vec<String> = (1..=list.len()).map(|i| i.to_string()).collect();
        assert_eq!(ranks, expected, "{customer}: ranks");
        let products: BTreeSet<&str> = list.iter().map(|r| r["product_id"].as_str()).collect();
        assert_eq!(products.len(), list.len(), "{customer}: a product twice");
    }

    // Messages: only for customers who accepted marketing and have an email, and for all of
    // them outside `regular` (channel none).
    let contact: BTreeMap<&str, &Row> = customers
        .iter()
        .map(|c| (c["customer_id"].as_str(), c))
        .collect();
    let mut messaged = BTreeSet::new();
    let messages = dir.join("messages");
    for segment_dir in std::fs::read_dir(&messages).expect("messages/") {
        let segment_dir = segment_dir.expect("entry").path();
        let segment = segment_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(segment_dir.is_dir(), "{}", segment_dir.display());
        assert!(SEGMENTS.contains(&segment.as_str()), "messages/{segment}");
        for file in std::fs::read_dir(&segment_dir).expect("segment dir") {
            let file = file.expect("entry").path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let customer = name
                .strip_suffix(".eml")
                .unwrap_or_else(|| panic!("messages/{segment}/{name} is not .eml"))
                .to_string();
            let c = contact
                .get(customer.as_str())
                .unwrap_or_else(|| panic!("message for unknown customer {customer}"));
            assert_eq!(
                c["accepts_marketing"], "yes",
                "message to {customer}: {c:?}"
            );
            assert!(
                !c["email"].is_empty(),
                "message to {customer} without email"
            );
            assert_eq!(profiles[&customer]["segment"], segment, "{customer}");
            let eml = std::fs::read_to_string(&file).expect("read .eml");
            assert!(
                eml.lines()
                    .any(|l| l.starts_with("To: ") && l.contains(&format!("<{}>", c["email"]))),
                "messages/{segment}/{name} is not addressed to {}:\n{eml}",
                c["email"]
            );
            assert!(eml.contains("\nSubject: "), "no subject:\n{eml}");
            messaged.insert(customer);
        }
    }
    assert!(!messaged.is_empty(), "no messages");
    for (id, p) in &profiles {
        let c = contact[id.as_str()];
        let should =
            c["accepts_marketing"] == "yes" && !c["email"].is_empty() && p["segment"] != "regular";
        assert_eq!(
            messaged.contains(id),
            should,
            "{id}: message expected {should}: {c:?} {p:?}"
        );
        assert_eq!(
            p["message_sent"] == "true",
            should,
            "{id}: message_sent, {p:?}"
        );
    }

    // summary.json: per-segment customers add up to the total and match segments.csv.
    let summary = read_json(&dir.join("summary.json"));
    let total = summary["totals"]["customers"]
        .as_u64()
        .expect("totals.customers");
    assert_eq!(total as usize, profiles.len());
    let mut sum = 0;
    for s in summary["segments"].as_array().expect("segments") {
        let name = s["segment"].as_str().expect("segment");
        let n = s["customers"].as_u64().expect("customers");
        assert_eq!(n as usize, counts.get(name).copied().unwrap_or(0), "{name}");
        sum += n;
    }
    assert_eq!(sum, total, "per-segment customers vs total");
    assert_eq!(
        summary["totals"]["messages_sent"].as_u64(),
        Some(messaged.len() as u64)
    );
    assert!(summary["changes"].is_null(), "a first run has no changes");
    assert!(
        summary["pos"].is_null(),
        "no pos_url, yet: {}",
        summary["pos"]
    );

    // `flow runs show last --json`: the fitted BG/NBD parameters, and the malformed lines.
    let show = ws.show("last");
    assert_eq!(show["run"]["id"], id.as_str(), "{show:#}");
    let metrics = &node(&show, "metrics")["meta"];
    let bgnbd = &metrics["bgnbd"];
    for p in ["r", "alpha", "a", "b"] {
        let v = bgnbd[p]
            .as_f64()
            .unwrap_or_else(|| panic!("bgnbd.{p}: {metrics:#}"));
        assert!(v.is_finite() && v > 0.0, "bgnbd.{p} = {v}");
    }
    assert!(bgnbd["log_likelihood"].as_f64().is_some_and(|l| l < 0.0));
    assert_eq!(bgnbd["converged"], true, "{metrics:#}");
    assert_eq!(metrics["customers"].as_u64(), Some(profiles.len() as u64));

    assert!(!tx.bad_lines.is_empty(), "the sample has no malformed rows");
    let report = &node(&show, "transactions")["meta"]["report"];
    assert_eq!(
        report["bad_rows"].as_u64(),
        Some(tx.bad_lines.len() as u64),
        "bad rows: {report:#} vs lines {:?}",
        tx.bad_lines
    );
    let listed: Vec<u64> = report["first_bad_rows"]
        .as_array()
        .expect("first_bad_rows")
        .iter()
        .map(|l| bad_line_number(l.as_str().expect("string")))
        .collect();
    let n = listed.len();
    assert!(n >= 1 && n <= tx.bad_lines.len(), "{report:#}");
    assert_eq!(listed, tx.bad_lines[..n], "reported bad lines");
}

/// `N` of `line N: ...`.
fn bad_line_number(message: &str) -> u64 {
    message
        .strip_prefix("line ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not `line N: ...`: {message:?}"))
}

// ---------------------------------------------------------------------------------------------
// 2. Editing the YAML
// ---------------------------------------------------------------------------------------------

const BIG_SPENDERS_NODES: &str = r#"  - id: recommend_big_spenders
    kind: action
    type: segmentation.recommend
    needs: [classify.big_spenders, transactions, catalog, affinity]
    with: { strategy: upsell, top_k: 2, fallback: bestsellers }
  - id: campaign_big_spenders
    kind: action
    type: segmentation.campaign
    needs: [classify.big_spenders, recommend_big_spenders]
    with:
      offer: { type: discount, value: 5 }
      subject: "{{ customer.first_name or 'Hello' }}, {{ offer.label }} for our big spenders"
      body: |
        <p>Thank you, {{ customer.first_name or "friend" }}.</p>
        <ul>{% for p in products %}<li>{{ p.name }}</li>{% endfor %}</ul>
      action: "Big spender: thank them"

  # 7. Deploy"#;

#[test]
fn a_new_rule_and_branch_in_the_yaml_give_a_new_segment() {
    let yaml = shipped_yaml();
    let yaml = replace_once(
        &yaml,
        "        - { case: vip,",
        "        - { case: big_spenders, when: \"total_spend >= 1500\" }\n        - { case: vip,",
    );
    let yaml = replace_once(&yaml, "  # 7. Deploy", BIG_SPENDERS_NODES);
    let yaml = replace_once(
        &yaml,
        "    needs:\n      - campaign_vip\n",
        "    needs:\n      - campaign_big_spenders\n      - recommend_big_spenders\n      - \
         campaign_vip\n",
    );
    let ws = workspace(&yaml);
    let run = ws.flow().args(["run", WF]).run();
    let id = run.run_id();
    let statuses = ws.statuses(&id);
    for n in ["recommend_big_spenders", "campaign_big_spenders", "deploy"] {
        assert_eq!(statuses[n], "succeeded", "{n}: {statuses:?}");
    }

    let dir = out_dir(&ws, &id);
    let profiles = profiles(&dir);
    let big: Vec<&Row> = profiles
        .values()
        .filter(|p| p["segment"] == "big_spenders")
        .collect();
    assert!(!big.is_empty(), "no big_spenders in segments.csv");
    // The new rule comes first, so it takes every customer it matches, and only those.
    for p in profiles.values() {
        assert_eq!(
            p["segment"] == "big_spenders",
            num(p, "total_spend") >= 1500.0,
            "{p:?}"
        );
    }

    let recs = read_csv(&dir.join("recommendations.csv"));
    assert!(
        recs.iter().any(|r| r["segment"] == "big_spenders"),
        "no recommendations for big_spenders"
    );
    let messages = dir.join("messages/big_spenders");
    assert!(messages.is_dir(), "no {}", messages.display());
    let sent: BTreeSet<String> = big
        .iter()
        .filter(|p| p["message_sent"] == "true")
        .map(|p| format!("{}.eml", p["customer_id"]))
        .collect();
    assert!(!sent.is_empty(), "no big spender got a message");
    let files: BTreeSet<String> = std::fs::read_dir(&messages)
        .expect("read messages/big_spenders")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, sent, "messages/big_spenders vs message_sent");

    let summary = read_json(&dir.join("summary.json"));
    let n = summary["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .find(|s| s["segment"] == "big_spenders")
        .unwrap_or_else(|| panic!("no big_spenders in summary.json"))["customers"]
        .as_u64();
    assert_eq!(n, Some(big.len() as u64));
}

#[test]
fn a_rule_with_an_unknown_column_is_a_validation_error_at_its_line() {
    let yaml = replace_once(
        &shipped_yaml(),
        "\"r_score <= 2 && f_score >= 3\"",
        "\"totl_spend > 3\"",
    );
    let line = line_of(&yaml, "totl_spend");
    let ws = workspace(&yaml);
    let out = ws.flow().args(["validate", WF]).expect_exit(2).run();
    let all = format!("{}{}", out.stdout, out.stderr);
    let located: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&format!("{WF}:{line}:")))
        .collect();
    assert!(
        located.iter().any(|l| l.contains("totl_spend")),
        "no `{WF}:{line}:...totl_spend` error\n{out}"
    );
    assert!(
        located.iter().any(|l| l.contains("classify")),
        "the error does not name the node\n{out}"
    );
    // `flow run` refuses it too, before running anything.
    let out = ws.flow().args(["run", WF]).expect_exit(2).run();
    out.assert_stderr_contains(&format!("{WF}:{line}:"));
    assert!(!ws.exists("out"), "an invalid workflow wrote outputs");
}

// ---------------------------------------------------------------------------------------------
// 3. POS deploy: fails midway, resume, each batch exactly once
// ---------------------------------------------------------------------------------------------

/// A POS endpoint whose `fail_nth` distinct idempotency key gets 500 until `healthy` is set;
/// other methods or paths get 404 and a request without a key 400.
fn failing_pos(fail_nth: usize) -> (FakePos, Arc<AtomicBool>) {
    let server = FakePos::start();
    let healthy = Arc::new(AtomicBool::new(false));
    let mut keys: Vec<String> = Vec::new();
    let heal = healthy.clone();
    server.set_rule(move |r| {
        if r.method != "POST" || r.path != "/updates" {
            return Reply::Status(404);
        }
        let Some(key) = r.key.as_deref() else {
            return Reply::Status(400);
        };
        let nth = match keys.iter().position(|k| k == key) {
            Some(i) => i + 1,
            None => {
                keys.push(key.to_string());
                keys.len()
            }
        };
        if nth == fail_nth && !heal.load(Ordering::SeqCst) {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    (server, healthy)
}

/// `N` of an idempotency key `RUN/deploy/pos-batch-N` of run `run`.
fn batch_of(run: &str, key: &str) -> usize {
    key.strip_prefix(&format!("{run}/deploy/pos-batch-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected idempotency key {key:?} (run {run})"))
}

#[test]
fn pos_deploy_fails_midway_and_resume_sends_each_batch_exactly_once() {
    const TOKEN: &str = "test-pos-token-5f3a";
    const BATCH_SIZE: usize = 500;
    let (server, healthy) = failing_pos(3);
    let yaml = replace_once(
        &shipped_yaml(),
        "      pos_token_env: FLOW_POS_TOKEN\n",
        &format!(
            "      pos_token_env: FLOW_POS_TOKEN\n      batch_size: {BATCH_SIZE}\n      \
             pos_retries: 0\n      pos_timeout: 10s\n"
        ),
    );
    let ws = workspace(&yaml);

    // The third batch fails: the run fails at deploy, after the files were written.
    let first = ws
        .flow()
        .args(["run", WF])
        .param("pos_url", &server.url)
        .env("FLOW_POS_TOKEN", TOKEN)
        .expect_exit(1)
        .run();
    let id = first.run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(statuses["deploy"], "failed", "{statuses:?}\n{first}");
    assert!(
        statuses
            .iter()
            .all(|(n, s)| n == "deploy" || s == "succeeded"),
        "{statuses:?}"
    );
    let dir = out_dir_of_failed(&ws);
    let profiles = profiles(&dir);
    let n_batches = profiles.len().div_ceil(BATCH_SIZE);
    assert!(n_batches >= 4, "{} customers", profiles.len());
    let show = ws.show(&id);
    let error = node(&show, "deploy")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("batch 3 of {n_batches} failed")),
        "deploy error: {error:?}"
    );

    let before = server.requests();
    let keys_before: Vec<(usize, u16)> = before
        .iter()
        .map(|r| (batch_of(&id, r.key.as_deref().expect("key")), r.status()))
        .collect();
    assert_eq!(keys_before, [(1, 200), (2, 200), (3, 500)], "first run");

    // Healthy again: the resume runs only deploy and sends the batches not acknowledged yet.
    healthy.store(true, Ordering::SeqCst);
    let resumed = ws
        .flow()
        .args(["resume", "last"])
        .env("FLOW_POS_TOKEN", TOKEN)
        .run();
    assert_eq!(
        resumed
            .plan()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["deploy"],
        "{resumed}"
    );
    assert_eq!(ws.statuses(&id)["deploy"], "succeeded");

    let all = server.requests();
    let after = &all[before.len()..];
    let acked_before: BTreeSet<usize> = keys_before
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(n, _)| *n)
        .collect();
    for r in after {
        let n = batch_of(&id, r.key.as_deref().expect("key"));
        assert!(
            !acked_before.contains(&n),
            "batch {n} was sent again after being acknowledged"
        );
    }
    assert_eq!(
        after
            .iter()
            .map(|r| batch_of(&id, r.key.as_deref().unwrap()))
            .collect::<Vec<_>>(),
        (3..=n_batches).collect::<Vec<_>>(),
        "batches sent by the resumed run"
    );

    // Overall: every batch 1..=N acknowledged exactly once, with the token, and together they
    // carry every profile exactly once with its segment.
    let mut acked: BTreeMap<usize, usize> = BTreeMap::new();
    let mut delivered: BTreeMap<String, String> = BTreeMap::new();
    for r in &all {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/updates"));
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "Authorization of {:?}",
            r.key
        );
        if r.status() != 200 {
            continue;
        }
        let n = batch_of(&id, r.key.as_deref().unwrap());
        *acked.entry(n).or_insert(0) += 1;
        let body: Json = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("batch {n} is not JSON ({e})"));
        assert_eq!(body["run_id"], id.as_str(), "batch {n}");
        assert_eq!(body["batch"].as_u64(), Some(n as u64), "batch {n}");
        assert_eq!(
            body["batches"].as_u64(),
            Some(n_batches as u64),
            "batch {n}"
        );
        let batch = body["customers"].as_array().expect("customers");
        assert!(batch.len() <= BATCH_SIZE, "batch {n}: {}", batch.len());
        for c in batch {
            let cid = c["customer_id"].as_str().expect("customer_id").to_string();
            let segment = c["segment"].as_str().expect("segment").to_string();
            assert!(
                delivered.insert(cid.clone(), segment).is_none(),
                "{cid} delivered twice"
            );
        }
    }
    assert_eq!(
        acked,
        (1..=n_batches).map(|n| (n, 1)).collect::<BTreeMap<_, _>>(),
        "acknowledgements per batch"
    );
    let expected: BTreeMap<String, String> = profiles
        .iter()
        .map(|(id, p)| (id.clone(), p["segment"].clone()))
        .collect();
    assert_eq!(delivered, expected, "profiles delivered to the POS");

    // The deploy's own account: the resumed attempt sent the rest, skipping what was acked.
    let show = ws.show(&id);
    let meta = &node(&show, "deploy")["meta"];
    assert_eq!(
        meta["pos_batches"].as_u64(),
        Some(n_batches as u64),
        "{meta:#}"
    );
    assert_eq!(
        meta["pos_batches_already_sent"].as_u64(),
        Some(2),
        "{meta:#}"
    );
    assert_eq!(
        meta["pos_batches_sent"].as_u64(),
        Some(n_batches as u64 - 2),
        "{meta:#}"
    );
}

/// The single `out/<date>` directory (a failed deploy has no metadata to name it).
fn out_dir_of_failed(ws: &Workspace) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(ws.path("out"))
        .expect("out/ was written before the POS update")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// 4. A second run reports transitions
// ---------------------------------------------------------------------------------------------

#[test]
fn second_run_reports_segment_transitions_and_clv_change() {
    let ws = workspace(&shipped_yaml());
    let first = ws.flow().args(["run", WF]).run().run_id();
    let before = profiles(&out_dir(&ws, &first));

    // At-risk customers (R <= 2) buy again on the last day: their recency becomes the best.
    let tx = read_transactions(&ws.path("data/transactions.csv"));
    let returning: Vec<String> = before
        .values()
        .filter(|p| p["segment"] == "at_risk")
        .map(|p| p["customer_id"].clone())
        .take(40)
        .collect();
    assert!(returning.len() >= 10, "too few at_risk customers");
    let product = read_csv(&ws.path("data/catalog.csv"))
        .into_iter()
        .find(|p| num(p, "stock") > 0.0)
        .expect("an in-stock product");
    let mut data = ws.read("data/transactions.csv");
    if !data.ends_with('\n') {
        data.push('\n');
    }
    for (i, customer) in returning.iter().enumerate() {
        data.push_str(&format!(
            "ORET{i:05},{customer},{} 12:00:00,{},{},2,{},{:.2}\n",
            tx.last_date,
            product["product_id"],
            product["category"],
            product["price"],
            2.0 * num(&product, "price"),
        ));
    }
    ws.write("data/transactions.csv", data);

    let second = ws.flow().args(["run", WF]).run().run_id();
    assert_ne!(first, second);
    let after = profiles(&out_dir(&ws, &second));
    for c in &returning {
        assert_ne!(
            after[c]["segment"], "at_risk",
            "{c} bought again: {:?}",
            after[c]
        );
    }

    // The transitions, as the test sees them in the two segments.csv files.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (id, p) in &after {
        if let Some(old) = before.get(id)
            && old["segment"] != p["segment"]
        {
            *expected
                .entry((old["segment"].clone(), p["segment"].clone()))
                .or_insert(0) += 1;
        }
    }

    let summary = read_json(&out_dir(&ws, &second).join("summary.json"));
    let changes = &summary["changes"];
    assert_eq!(changes["previous_run_id"], first.as_str(), "{changes:#}");
    let reported: BTreeMap<(String, String), u64> = changes["transitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no transitions: {changes:#}"))
        .iter()
        .map(|t| {
            let n = t["customers"].as_u64().expect("customers");
            assert!(n > 0, "{t}");
            (
                (
                    t["from"].as_str().expect("from").to_string(),
                    t["to"].as_str().expect("to").to_string(),
                ),
                n,
            )
        })
        .collect();
    assert_eq!(reported, expected, "transitions");
    let from_at_risk: u64 = reported
        .iter()
        .filter(|((from, _), _)| from == "at_risk")
        .map(|(_, n)| n)
        .sum();
    assert!(from_at_risk >= returning.len() as u64, "{reported:?}");
    assert_eq!(
        changes["moved"].as_u64(),
        Some(expected.values().sum::<u64>()),
        "{changes:#}"
    );

    // CLV before and after, and the change.
    let clv_total = |p: &BTreeMap<String, Row>| p.values().map(|r| num(r, "clv")).sum::<f64>();
    let (old, new) = (clv_total(&before), clv_total(&after));
    let clv = &changes["clv"];
    let field = |name: &str| {
        clv[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no clv.{name}: {changes:#}"))
    };
    // segments.csv writes CLV in cents: each row is off by at most half a cent.
    let cents = 0.005 * before.len().max(after.len()) as f64;
    let close = |a: f64, b: f64| (a - b).abs() <= cents + 1e-6 * a.abs().max(b.abs());
    assert!(close(field("previous_total"), old), "{clv} vs {old}");
    assert!(close(field("current_total"), new), "{clv} vs {new}");
    assert!(close(field("total_change"), new - old), "{clv}");
    assert!(field("total_change") != 0.0, "{clv}");
    let mean_change = new / after.len() as f64 - old / before.len() as f64;
    assert!((field("mean_change") - mean_change).abs() <= 0.01, "{clv}");
}

// ---------------------------------------------------------------------------------------------
// 5. Missing and malformed inputs
// ---------------------------------------------------------------------------------------------

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
