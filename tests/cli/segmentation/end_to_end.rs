//! End to end on the shipped workflow.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Row, SEGMENTS, TOP_K, WF, bad_line_number, node, num, out_dir, profiles, read_csv, read_json,
    read_transactions, segment_counts, workspace,
};
use crate::shipped::shipped_yaml;

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
    // them outside `regular` (channel none) but the control groups: 10% of each email
    // campaign's customers, drawn by the shared hash of the campaign node id and customer id.
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
    let mut held_out = 0;
    for (id, p) in &profiles {
        let c = contact[id.as_str()];
        let segment = p["segment"].as_str();
        let control = segment != "regular"
            && flow_analytics::holdout::is_control(&format!("campaign_{segment}"), id, 0.1);
        assert_eq!(
            p["group"],
            if control { "control" } else { "treated" },
            "{id}: {p:?}"
        );
        if control {
            held_out += 1;
            assert_eq!(
                p["recommended_action"], "Control group: no campaign offer",
                "{id}: {p:?}"
            );
            assert_eq!(p["offer"], "no offer (control group)", "{id}: {p:?}");
        }
        let should = c["accepts_marketing"] == "yes"
            && !c["email"].is_empty()
            && segment != "regular"
            && !control;
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

    assert!(held_out > 0, "no control customers");

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

    // The models' backtests reach summary.json and the report: the purchase forecast against a
    // held-out period, and each segment's strategies against the baselines.
    let clv = &summary["backtests"]["clv"];
    let (predicted, actual) = (
        clv["total_predicted"].as_f64().expect("total_predicted"),
        clv["total_actual"].as_f64().expect("total_actual"),
    );
    assert!(predicted > 0.0 && actual > 0.0, "{clv:#}");
    assert!(
        !clv["by_frequency"]
            .as_array()
            .expect("by_frequency")
            .is_empty()
    );
    let recs = summary["backtests"]["recommendations"]
        .as_array()
        .expect("recommendation backtests");
    assert_eq!(recs.len(), SEGMENTS.len(), "one per recommend node");
    let vip = recs
        .iter()
        .find(|r| r["node"] == "recommend_vip")
        .expect("recommend_vip's backtest");
    let methods = vip["backtest"]["methods"].as_array().expect("methods");
    let hit = |name: &str| {
        methods
            .iter()
            .find(|m| m["method"] == name)
            .and_then(|m| m["hit_rate"].as_f64())
            .unwrap_or_else(|| panic!("{name}: {vip:#}"))
    };
    let used = methods
        .iter()
        .find(|m| m["configured"] == true)
        .expect("the strategy in use");
    assert_eq!(used["method"], "seasonal");
    assert!(
        hit("seasonal") >= hit("popularity"),
        "the VIP strategy loses to popularity: {vip:#}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    for text in [
        "How well the models did on past data",
        "Purchase forecast (BG/NBD)",
        "Hit rate at 4",
        "Measured campaign outcomes",
    ] {
        assert!(html.contains(text), "report.html lacks {text:?}");
    }

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
