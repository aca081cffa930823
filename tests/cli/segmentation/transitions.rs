//! A second run reports transitions.

use std::collections::BTreeMap;

use super::{Row, WF, num, out_dir, profiles, read_csv, read_json, read_transactions, workspace};
use crate::shipped::shipped_yaml;

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
