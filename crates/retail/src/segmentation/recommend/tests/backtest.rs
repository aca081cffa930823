//! The backtest on generated data: every strategy against the popularity baseline, on several
//! seeds and shapes, the best customers' lists, and the metadata's shape.

use serde_json::Value;

use super::super::harness::{
    Run, Tables, best_customers as best, distinct_lists, everyone, run, tables,
};
use crate::pos::generate::{GenerateOptions, generate};

pub(super) fn generated(customers: u64, products: u32, days: u32, seed: u64) -> Tables {
    let opts = GenerateOptions {
        customers,
        products,
        days,
        seed,
        malformed_rows: 0,
        ..GenerateOptions::default()
    };
    tables(&generate(&opts).unwrap()).unwrap()
}

fn backtest(t: &Tables, customers: &[(String, String)], strategy: &str) -> Value {
    let r = Run {
        customers,
        strategy,
        top_k: 4,
        fallback_bestsellers: true,
        backtest_days: 60,
    };
    run(t, &r).unwrap().1
}

fn hit_rate(b: &Value, method: &str) -> f64 {
    b["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == method)
        .unwrap_or_else(|| panic!("no {method} in {b}"))["hit_rate"]
        .as_f64()
        .unwrap()
}

#[test]
fn every_strategy_beats_the_popularity_baseline_on_several_seeds_and_shapes() {
    // (customers, products, days): a small catalog over a year, a large one over two.
    for (customers, products, days) in [(2_500, 200, 365), (3_000, 1_000, 730)] {
        for seed in [1, 2, 3] {
            let t = generated(customers, products, days, seed);
            let all = everyone(&t);
            let b = backtest(&t, &all, "seasonal");
            let shape =
                format!("{customers} customers, {products} products, {days} days, seed {seed}");
            assert!(b["customers"].as_u64().unwrap() >= 300, "{shape}: {b}");
            let popularity = hit_rate(&b, "popularity");
            let figures: Vec<String> = b["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "{} {:.3}",
                        m["method"].as_str().unwrap(),
                        m["hit_rate"].as_f64().unwrap()
                    )
                })
                .collect();
            eprintln!("{shape}: {}", figures.join(", "));
            for s in ["cross_sell", "upsell", "seasonal", "bestsellers"] {
                let h = hit_rate(&b, s);
                assert!(
                    h >= popularity,
                    "{shape}: {s} {h:.3} < popularity {popularity:.3}: {b}"
                );
            }
            // Replenishment is scored on repeat purchases, against the customer's own items.
            let own = hit_rate(&b, "own_most_bought");
            let h = hit_rate(&b, "replenishment");
            assert!(
                h >= own,
                "{shape}: replenishment {h:.3} < own_most_bought {own:.3}: {b}"
            );
        }
    }
}

#[test]
fn the_best_customers_get_individual_lists() {
    let t = generated(3_000, 500, 730, 7);
    let best = best(&t);
    assert!(best.len() >= 50, "{}", best.len());
    for strategy in ["cross_sell", "upsell", "seasonal", "bestsellers"] {
        let r = Run {
            customers: &best,
            strategy,
            top_k: 4,
            fallback_bestsellers: true,
            backtest_days: 0,
        };
        let (table, backtest) = run(&t, &r).unwrap();
        assert!(backtest.is_null());
        let distinct = distinct_lists(&table);
        assert!(
            distinct * 10 >= best.len() * 7,
            "{strategy}: {distinct} distinct lists among {} customers",
            best.len()
        );
    }
}

#[test]
fn the_backtest_metadata_has_its_shape_and_is_reproducible() {
    let t = generated(2_000, 200, 365, 5);
    let all = everyone(&t);
    let b = backtest(&t, &all, "cross_sell");
    assert_eq!(b, backtest(&t, &all, "cross_sell"));
    assert_eq!(b["holdout_days"], 60);
    assert_eq!(b["k"], 4);
    assert_eq!(b["segment_customers"].as_u64().unwrap() as usize, all.len());
    assert!(b["cutoff"].as_str().unwrap().len() == 10);
    let methods = b["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cross_sell",
            "upsell",
            "seasonal",
            "bestsellers",
            "replenishment",
            "popularity",
            "co_occurrence",
            "own_most_bought"
        ]
    );
    assert_eq!(methods[0]["configured"], true);
    assert_eq!(methods[0]["label"], "cross_sell (fallback: bestsellers)");
    assert!(methods[1..].iter().all(|m| m["configured"] == false));
    for m in methods {
        for key in ["customers", "hit_rate", "precision", "recall", "ndcg"] {
            assert!(m[key].is_number(), "{key} of {m}");
        }
        assert!(["strategy", "baseline"].contains(&m["kind"].as_str().unwrap()));
    }
    // A small segment: a note, no figures.
    let few = &all[..20];
    let b = backtest(&t, few, "seasonal");
    assert_eq!(b["methods"], serde_json::json!([]));
    assert!(b["note"].as_str().unwrap().contains("too few"), "{b}");
    // Nothing before the cut-off: a note, never an error.
    let r = Run {
        customers: &all,
        strategy: "bestsellers",
        top_k: 4,
        fallback_bestsellers: false,
        backtest_days: 400,
    };
    let b = run(&t, &r).unwrap().1;
    assert_eq!(b["methods"], serde_json::json!([]));
    assert!(b["note"].is_string(), "{b}");
}
