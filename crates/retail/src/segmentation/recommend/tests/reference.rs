//! The baselines' figures against a reference implementation: numpy popularity and `implicit`'s
//! item-item cosine recommender on the same split (scripts/python-env sets Python up).

use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use flow_analytics::recs_eval::{self, CoOccurrence, Purchase, Target};
use serde_json::{Value, json};

use super::backtest::generated;

/// Absolute tolerance on each metric: both sides use the same definitions and tie-breaks
/// except `implicit`'s top-k, which orders equal scores arbitrarily (and sums cosines in
/// another order), so a few customers' lists may differ at the k-th place.
const TOLERANCE: f64 = 0.005;

#[test]
fn baselines_agree_with_numpy_and_implicit_on_the_same_split() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = Command::new(root.join("scripts/python-env"))
        .output()
        .unwrap_or_else(|e| panic!("could not start scripts/python-env: {e}"));
    assert!(
        setup.status.success(),
        "scripts/python-env failed to set up the reference environment (python3.11 and PyPI \
         needed): {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout).unwrap().trim().to_string();

    let t = generated(3_000, 300, 540, 11);
    let tx = &t.transactions;
    let customers = tx.column_by_name("customer_id").unwrap().as_string::<i32>();
    let products = tx.column_by_name("product_id").unwrap().as_string::<i32>();
    let days = tx
        .column_by_name("date")
        .unwrap()
        .as_primitive::<Date32Type>();
    let quantity = tx
        .column_by_name("quantity")
        .unwrap()
        .as_primitive::<Float64Type>();
    let catalog_ids = t
        .catalog
        .column_by_name("product_id")
        .unwrap()
        .as_string::<i32>();
    let stock = t
        .catalog
        .column_by_name("stock")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut item_of = std::collections::HashMap::new();
    for i in 0..t.catalog.num_rows() {
        item_of.insert(catalog_ids.value(i), i as u32);
    }
    let mut cust_of = std::collections::HashMap::new();
    let mut purchases = Vec::new();
    for i in 0..tx.num_rows() {
        if quantity.value(i) < 0.0 {
            continue;
        }
        let n = cust_of.len() as u32;
        let customer = *cust_of.entry(customers.value(i)).or_insert(n);
        let n = item_of.len() as u32;
        let item = *item_of.entry(products.value(i)).or_insert(n);
        purchases.push(Purchase {
            customer,
            item,
            day: days.value(i),
        });
    }
    let n_items = item_of.len();
    let available: Vec<bool> = (0..n_items)
        .map(|i| i < t.catalog.num_rows() && stock.value(i) > 0.0)
        .collect();
    let end = purchases.iter().map(|p| p.day).max().unwrap();
    let (cutoff, holdout, k, window) = (end - 60, 60, 4, 90);

    // Rust.
    let set = recs_eval::split(&purchases, cutoff, holdout, Target::NewItems);
    let popular: Vec<u32> = recs_eval::popularity(&purchases, cutoff, window)
        .into_iter()
        .filter(|&i| available[i as usize])
        .collect();
    let pop: Vec<Vec<u32>> = set
        .history
        .iter()
        .map(|h| recs_eval::top_unseen(&popular, h, k))
        .collect();
    let histories = recs_eval::histories(&purchases, cutoff);
    let co = CoOccurrence::fit(histories.iter().map(|(_, h)| h.as_slice()), n_items);
    let mut scratch = vec![0.0; n_items];
    let co_lists: Vec<Vec<u32>> = set
        .history
        .iter()
        .map(|h| co.recommend(h, k, &mut scratch, |i| available[i as usize]))
        .collect();
    let rust = [
        ("popularity", recs_eval::evaluate(&set.relevant, &pop, k)),
        (
            "co_occurrence",
            recs_eval::evaluate(&set.relevant, &co_lists, k),
        ),
    ];

    // Python, on the same split.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("customer,item,day\n");
    for p in &purchases {
        csv.push_str(&format!("{},{},{}\n", p.customer, p.item, p.day));
    }
    std::fs::write(dir.path().join("purchases.csv"), csv).unwrap();
    let avail: Vec<usize> = (0..n_items).filter(|&i| available[i]).collect();
    let meta = json!({"cutoff": cutoff, "holdout_days": holdout, "k": k, "window_days": window,
                      "n_items": n_items, "available": avail});
    std::fs::write(dir.path().join("meta.json"), meta.to_string()).unwrap();
    let script = root.join("crates/retail/reference/recs_reference.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, m) in rust {
        let r = &py[name];
        assert_eq!(
            r["customers"].as_u64().unwrap() as usize,
            m.customers,
            "{name}: {py}"
        );
        for (key, v) in [
            ("hit_rate", m.hit_rate),
            ("precision", m.precision),
            ("recall", m.recall),
            ("ndcg", m.ndcg),
        ] {
            let p = r[key].as_f64().unwrap();
            eprintln!("{name} {key}: rust {v:.4}, python {p:.4}");
            assert!(
                (p - v).abs() <= TOLERANCE,
                "{name} {key}: rust {v:.4}, python {p:.4}"
            );
        }
    }
}
