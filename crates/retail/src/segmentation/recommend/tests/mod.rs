//! Fixtures of one small shop, and each strategy on them.

use super::config::STRATEGIES;
use super::index::SharedIndex;
use super::*;
use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::{Date32Array, Float64Array, Int64Array, StringArray};
use flow_engine::data::Data;
use flow_engine::node::Input;
use flow_engine::run_cache::{CacheStats, RunCache};

/// 2024-03-31, the analysis date of the fixtures.
pub(crate) const D: i32 = 19813;

fn strs(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

pub(crate) fn catalog() -> RecordBatch {
    batch(vec![
        (
            "product_id",
            strs(&["P1", "P2", "P3", "P4", "P5", "P6", "P7"]),
        ),
        (
            "name",
            strs(&[
                "Tea",
                "Coffee",
                "Fancy Tea",
                "Mug",
                "Cookies",
                "Cake",
                "Premium Coffee",
            ]),
        ),
        (
            "category",
            strs(&[
                "drinks", "drinks", "drinks", "kitchen", "food", "food", "drinks",
            ]),
        ),
        (
            "price",
            Arc::new(Float64Array::from(vec![
                5.0, 8.0, 12.0, 6.0, 3.0, 9.0, 20.0,
            ])),
        ),
        // Integer stock, as a CSV read gives it; P4 is out of stock.
        (
            "stock",
            Arc::new(Int64Array::from(vec![10, 10, 3, 0, 20, 5, 2])),
        ),
    ])
}

pub(crate) fn transactions() -> RecordBatch {
    // (customer, order, days before D, product, quantity, amount)
    let rows: [(&str, &str, i32, &str, f64, f64); 18] = [
        ("A", "o1", 40, "P1", 1.0, 5.0),
        ("A", "o1", 40, "P2", 1.0, 8.0),
        ("A", "o2", 20, "P1", 1.0, 5.0),
        ("B", "o3", 30, "P1", 1.0, 5.0),
        ("B", "o4", 20, "P1", 1.0, 5.0),
        ("B", "o5", 10, "P1", 1.0, 5.0),
        ("B", "o6", 3, "P5", 2.0, 6.0),
        ("X", "o7", 12, "P5", 1.0, 3.0),
        ("X", "o8", 5, "P5", 3.0, 9.0),
        ("X", "o8", 5, "P6", 2.0, 18.0),
        ("X", "o9", 6, "P4", 10.0, 60.0),
        ("X", "o10", 9, "P1", 2.0, 10.0),
        ("X", "o11", 2, "P1", 1.0, 5.0),
        ("X", "o12", 1, "P2", -1.0, -8.0),
        ("X", "o13", -5, "P7", 100.0, 2000.0),
        ("X", "o14", 8, "P9", 1.0, 4.0),
        ("X", "o14", 8, "P3", 0.0, 0.0),
        ("X", "o15", 50, "P6", 0.0, 0.0),
    ];
    batch(vec![
        ("customer_id", strs(&rows.map(|r| r.0))),
        ("order_id", strs(&rows.map(|r| r.1))),
        (
            "date",
            Arc::new(Date32Array::from(rows.map(|r| D - r.2).to_vec())),
        ),
        ("product_id", strs(&rows.map(|r| r.3))),
        (
            "quantity",
            Arc::new(Float64Array::from(rows.map(|r| r.4).to_vec())),
        ),
        (
            "amount",
            Arc::new(Float64Array::from(rows.map(|r| r.5).to_vec())),
        ),
    ])
}

pub(crate) fn customers() -> RecordBatch {
    batch(vec![
        ("customer_id", strs(&["A", "B", "C"])),
        ("segment", strs(&["vip", "vip", "vip"])),
        (
            "favourite_category",
            Arc::new(StringArray::from(vec![
                Some("drinks"),
                Some("drinks"),
                Some("food"),
            ])),
        ),
        (
            "top_category",
            Arc::new(StringArray::from(vec![None::<&str>, None, None])),
        ),
    ])
}

pub(crate) fn affinity() -> RecordBatch {
    let rows: [(&str, &str, f64); 8] = [
        ("P1", "P7", 3.0),
        ("P1", "P4", 5.0), // out of stock
        ("P1", "P9", 4.0), // not in the catalog
        ("P1", "P5", 3.0), // ties with P7: P5 first by id
        ("P1", "P2", 2.0),
        ("P2", "P6", 2.5),
        ("P1", "P6", 0.5), // below min_lift
        ("P5", "P3", 1.5),
    ];
    batch(vec![
        ("product_id", strs(&rows.map(|r| r.0))),
        ("other_product_id", strs(&rows.map(|r| r.1))),
        (
            "lift",
            Arc::new(Float64Array::from(rows.map(|r| r.2).to_vec())),
        ),
    ])
}

/// The defaults, as of the fixtures' analysis date (a later sale exists).
fn cfg(strategy: Strategy) -> RecommendConfig {
    RecommendConfig {
        analysis_date: Some(D),
        ..RecommendConfig::new(strategy)
    }
}

fn inputs() -> RecommendInputs {
    RecommendInputs {
        customers: vec![customers()],
        transactions: transactions(),
        catalog: catalog(),
        affinity: Some(affinity()),
        index_inputs: ["catalog".into(), "extract".into()],
    }
}

#[test]
fn transactions_without_products_give_empty_lists_that_say_why() {
    // A payments export: the same purchases with no product ids.
    let tx = transactions();
    let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; tx.num_rows()]));
    let schema = tx.schema();
    let columns: Vec<(&str, ArrayRef)> = schema
        .fields()
        .iter()
        .zip(tx.columns())
        .map(|(f, c)| {
            let c = if f.name() == "product_id" {
                nulls.clone()
            } else {
                c.clone()
            };
            (f.name().as_str(), c)
        })
        .collect();
    let inputs = RecommendInputs {
        transactions: batch(columns),
        // What segmentation.affinity makes of such transactions: no pairs.
        affinity: Some(affinity().slice(0, 0)),
        ..inputs()
    };
    for strategy in [
        Strategy::CrossSell,
        Strategy::Upsell,
        Strategy::Seasonal,
        Strategy::Bestsellers,
        Strategy::Replenishment,
    ] {
        let cfg = RecommendConfig {
            fallback_bestsellers: true,
            ..cfg(strategy)
        };
        let out = recommend(&inputs, &cfg, &RunCache::new()).unwrap();
        assert_eq!(out.body_table().num_rows(), 0, "{}", strategy.as_str());
        let note = out.meta["no_products"].as_str().unwrap();
        assert!(note.contains("no products"), "{note}");
    }
    let out = recommend(
        &super::tests::inputs(),
        &cfg(Strategy::Bestsellers),
        &RunCache::new(),
    )
    .unwrap();
    assert!(!out.meta.contains_key("no_products"));
}

/// (customer, product, reason) rows, plus the scores.
fn run(cfg: &RecommendConfig) -> (Vec<(String, String, String)>, Vec<f64>, Output) {
    let out = recommend(&inputs(), cfg, &RunCache::new()).unwrap();
    let t = out.body_table();
    let col = |n: &str| t.column_by_name(n).unwrap().as_string::<i32>().clone();
    let (c, p, r) = (col("customer_id"), col("product_id"), col("reason"));
    let ranks = t
        .column_by_name("rank")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>();
    // Ranks run 1..k per customer.
    let mut expect = 0;
    for i in 0..t.num_rows() {
        expect = if i > 0 && c.value(i) == c.value(i - 1) {
            expect + 1
        } else {
            1
        };
        assert_eq!(ranks.value(i), expect);
    }
    let rows = (0..t.num_rows())
        .map(|i| {
            (
                c.value(i).to_string(),
                p.value(i).to_string(),
                r.value(i).to_string(),
            )
        })
        .collect();
    let scores = t
        .column_by_name("score")
        .unwrap()
        .as_primitive::<arrow_array::types::Float64Type>()
        .values()
        .to_vec();
    (rows, scores, out)
}

trait BodyTable {
    fn body_table(&self) -> &RecordBatch;
}
impl BodyTable for Output {
    fn body_table(&self) -> &RecordBatch {
        match &self.body {
            flow_engine::data::Body::Data(Data::Table(t)) => t,
            _ => panic!("not a table"),
        }
    }
}

fn row(c: &str, p: &str, r: &str) -> (String, String, String) {
    (c.into(), p.into(), r.into())
}

#[test]
fn cross_sell_ranks_by_lift_and_drops_bought_out_of_stock_and_unknown_items() {
    let base = cfg(Strategy::CrossSell);
    let (rows, scores, out) = run(&base);
    assert_eq!(
        rows,
        vec![
            row("A", "P5", "often bought with Tea"),
            row("A", "P7", "often bought with Tea"),
            row("A", "P6", "often bought with Coffee"),
            row("B", "P7", "often bought with Tea"),
            row("B", "P2", "often bought with Tea"),
            row("B", "P3", "often bought with Cookies"),
        ]
    );
    assert_eq!(scores, vec![3.0, 3.0, 2.5, 3.0, 2.0, 1.5]);
    assert_eq!(out.meta["customers_without_recommendations"], 1);
    assert_eq!(out.meta["out_of_stock_items"], 1);
    assert_eq!(out.meta["missing_from_catalog_items"], 1); // P9
    // With include_purchased, A's own Coffee comes back (lift 2 with Tea).
    let (rows, _, _) = run(&RecommendConfig {
        include_purchased: true,
        ..base.clone()
    });
    let a: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "A")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(a, ["P5", "P7", "P6", "P2"]);
    // top_k and min_lift.
    let (rows, _, _) = run(&RecommendConfig {
        top_k: 1,
        min_lift: 2.6,
        ..base
    });
    assert_eq!(
        rows,
        vec![
            row("A", "P5", "often bought with Tea"),
            row("B", "P7", "often bought with Tea")
        ]
    );
}

#[test]
fn upsell_recommends_the_next_price_steps_in_the_customers_categories() {
    let (rows, scores, _) = run(&RecommendConfig {
        top_k: 3,
        ..cfg(Strategy::Upsell)
    });
    assert_eq!(
        rows,
        vec![
            row("A", "P3", "a step up in drinks"),
            row("A", "P7", "a step up in drinks"),
            row("B", "P2", "a step up in drinks"),
            row("B", "P3", "a step up in drinks"),
            row("B", "P7", "a step up in drinks"),
        ]
    );
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(
        close(scores[0], 8.0 / 12.0) && close(scores[1], 8.0 / 20.0),
        "{scores:?}"
    );
    assert!(close(scores[2], 15.0 / 21.0 * 5.0 / 8.0), "{scores:?}");
    // With room for more, B's second category (food: Cookies at 3) steps up to Cake.
    let (rows, scores, _) = run(&cfg(Strategy::Upsell));
    assert_eq!(rows.last().unwrap(), &row("B", "P6", "a step up in food"));
    assert!(close(*scores.last().unwrap(), 6.0 / 21.0 * 3.0 / 9.0));
}

#[test]
fn seasonal_ranks_rising_items_of_the_recent_window() {
    let (rows, scores, _) = run(&RecommendConfig {
        recent_days: 7,
        ..cfg(Strategy::Seasonal)
    });
    // Mug rose most but is out of stock; Tea fell; B already bought Cookies.
    assert_eq!(
        rows,
        vec![
            row("A", "P5", "trending in food"),
            row("A", "P6", "trending in food"),
            row("B", "P6", "trending in food"),
            row("C", "P5", "trending in food"),
            row("C", "P6", "trending in food"),
        ]
    );
    assert!((scores[0] - 4.0 / 6f64.sqrt()).abs() < 1e-12);
    assert!((scores[1] - 2.0 / 2f64.sqrt()).abs() < 1e-12);
}

#[test]
fn bestsellers_come_from_the_favourite_category_then_overall() {
    let (rows, scores, _) = run(&RecommendConfig {
        top_k: 3,
        ..cfg(Strategy::Bestsellers)
    });
    assert_eq!(
        rows,
        vec![
            // A bought both drinks bestsellers: the overall list fills in.
            row("A", "P5", "bestseller in food"),
            row("A", "P6", "bestseller in food"),
            row("B", "P2", "bestseller in drinks"),
            row("B", "P6", "bestseller in food"),
            row("C", "P5", "bestseller in food"),
            row("C", "P6", "bestseller in food"),
            row("C", "P1", "bestseller in drinks"),
        ]
    );
    assert_eq!(scores, vec![6.0, 2.0, 1.0, 2.0, 6.0, 2.0, 8.0]);
}

#[test]
fn replenishment_recommends_bought_items_that_are_due() {
    let (rows, scores, _) = run(&cfg(Strategy::Replenishment));
    // A: Tea every ~10 days across customers, last 20 days ago. B: own interval 10 days,
    // last 10 days ago; Cookies (every ~7 days, bought 3 days ago) are not due yet.
    assert_eq!(
        rows,
        vec![
            row("A", "P1", "due again (bought every ~10 days)"),
            row("B", "P1", "due again (bought every ~10 days)"),
        ]
    );
    assert_eq!(scores, vec![2.0, 1.0]);
    // With the bestseller fallback every list is full, fallback rows say so.
    let cfg = RecommendConfig {
        top_k: 2,
        fallback_bestsellers: true,
        ..cfg(Strategy::Replenishment)
    };
    let out = recommend(&inputs(), &cfg, &RunCache::new()).unwrap();
    let t = out.body_table();
    assert_eq!(t.num_rows(), 6);
    let strategy = t.column_by_name("strategy").unwrap().as_string::<i32>();
    assert_eq!(strategy.value(0), "replenishment");
    assert_eq!(strategy.value(1), "bestsellers");
    assert_eq!(out.meta["fallback_recommendations"], 4);
}

#[test]
fn out_of_stock_items_never_appear_and_runs_are_deterministic() {
    for strategy in STRATEGIES {
        let cfg = RecommendConfig {
            top_k: 10,
            include_purchased: true,
            fallback_bestsellers: true,
            recent_days: 7,
            ..cfg(Strategy::parse(strategy).unwrap())
        };
        let (rows, _, _) = run(&cfg);
        assert!(!rows.is_empty(), "{strategy}");
        assert!(
            rows.iter().all(|r| r.1 != "P4" && r.1 != "P9"),
            "{strategy}: {rows:?}"
        );
        // Same answer with the input rows reversed.
        let mut reversed = inputs();
        let idx = arrow_array::UInt32Array::from_iter_values((0..18u32).rev());
        reversed.transactions =
            arrow_select::take::take_record_batch(&reversed.transactions, &idx).unwrap();
        let idx = arrow_array::UInt32Array::from_iter_values((0..8u32).rev());
        reversed.affinity = Some(arrow_select::take::take_record_batch(&affinity(), &idx).unwrap());
        let again = recommend(&reversed, &cfg, &RunCache::new()).unwrap();
        assert_eq!(again.body_table(), run(&cfg).2.body_table(), "{strategy}");
    }
}

mod index;
mod node;
