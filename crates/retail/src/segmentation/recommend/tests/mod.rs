//! Fixtures of one small shop, and each strategy on them.

use super::config::STRATEGIES;
use super::index::{Orders, SharedIndex};
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
        let out = recommend(inputs.clone(), &cfg, &RunCache::new()).unwrap();
        assert_eq!(out.body_table().num_rows(), 0, "{}", strategy.as_str());
        let note = out.meta["no_products"].as_str().unwrap();
        assert!(note.contains("no products"), "{note}");
    }
    let out = recommend(
        super::tests::inputs(),
        &cfg(Strategy::Bestsellers),
        &RunCache::new(),
    )
    .unwrap();
    assert!(!out.meta.contains_key("no_products"));
}

/// A text column of an output as plain strings (the output's are dictionary-encoded).
pub(crate) fn strings(t: &RecordBatch, name: &str) -> StringArray {
    let column = t.column_by_name(name).unwrap();
    let cast = arrow_cast::cast(column, &arrow_schema::DataType::Utf8).unwrap();
    cast.as_string::<i32>().clone()
}

/// (customer, product, reason) rows, plus the scores.
fn run(cfg: &RecommendConfig) -> (Vec<(String, String, String)>, Vec<f64>, Output) {
    let out = recommend(inputs(), cfg, &RunCache::new()).unwrap();
    let t = out.body_table();
    let col = |n: &str| strings(t, n);
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
fn cross_sell_ranks_partners_by_personal_popularity_and_drops_bought_out_of_stock_and_unknown_items()
 {
    let base = cfg(Strategy::CrossSell);
    let (rows, scores, out) = run(&base);
    // Partners of what each bought (lift >= 1); the fixture's pairs carry no counts, so no
    // co-purchase evidence: personalised popularity orders them. Premium Coffee (P7) sold
    // only after the analysis date: popularity 0, last.
    assert_eq!(
        rows,
        vec![
            row("A", "P5", "often bought with Tea"),
            row("A", "P6", "often bought with Coffee"),
            row("A", "P7", "often bought with Tea"),
            row("B", "P3", "often bought with Cookies"),
            row("B", "P2", "often bought with Tea"),
            row("B", "P7", "often bought with Tea"),
        ]
    );
    assert!(scores[0] > scores[1] && scores[1] > scores[2] && scores[2] == 0.0);
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
    assert_eq!(a, ["P5", "P2", "P6", "P7"]);
    // top_k and min_lift: only pairs with lift >= 2.6 (Tea's P5 and P7).
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
fn cross_sell_evidence_is_confidence_shrunk_by_support() {
    // One seed bought in 4 orders, partner X in 3 of them; another seed in 600 orders,
    // partner Y in 300: Y's evidence (300 / 620) beats X's (3 / 24) despite the lower
    // confidence.
    let x = 3.0 / (4.0 + super::rank::PAIR_SHRINK_ORDERS);
    let y = 300.0 / (600.0 + super::rank::PAIR_SHRINK_ORDERS);
    assert!(y > x && 3.0 / 4.0 > 300.0 / 600.0);
}

#[test]
fn upsell_recommends_popular_step_ups_in_the_customers_categories() {
    let (rows, scores, _) = run(&RecommendConfig {
        top_k: 3,
        ..cfg(Strategy::Upsell)
    });
    // A pays 5-8 in drinks (spend-weighted 6.5 a unit): Fancy Tea (12) is a step up; Premium
    // Coffee (20) never sold before the analysis date, so it is no candidate. B pays 5 for
    // drinks and 3 for food: Cake, Fancy Tea and Coffee, by personalised popularity.
    assert_eq!(
        rows,
        vec![
            row("A", "P3", "a step up in drinks"),
            row("B", "P6", "a step up in food"),
            row("B", "P3", "a step up in drinks"),
            row("B", "P2", "a step up in drinks"),
        ]
    );
    assert!(scores[1] > scores[2] && scores[2] > scores[3], "{scores:?}");
    assert_eq!(run(&cfg(Strategy::Upsell)).0, rows);
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
    // C bought only food: food's rising items weigh more for C than for A.
    assert!(scores[3] > scores[0] && scores[0] > scores[1], "{scores:?}");
}

#[test]
fn bestsellers_come_from_the_customers_categories_by_personal_popularity() {
    let (rows, scores, _) = run(&RecommendConfig {
        top_k: 3,
        ..cfg(Strategy::Bestsellers)
    });
    assert_eq!(
        rows,
        vec![
            // A bought Tea and Coffee: Fancy Tea, then the food bestsellers.
            row("A", "P3", "bestseller in drinks"),
            row("A", "P5", "bestseller in food"),
            row("A", "P6", "bestseller in food"),
            row("B", "P6", "bestseller in food"),
            row("B", "P3", "bestseller in drinks"),
            row("B", "P2", "bestseller in drinks"),
            row("C", "P5", "bestseller in food"),
            row("C", "P1", "bestseller in drinks"),
            row("C", "P6", "bestseller in food"),
        ]
    );
    for w in scores.chunks(3) {
        assert!(w[0] >= w[1] && w[1] >= w[2], "{scores:?}");
    }
}

#[test]
fn replenishment_ranks_bought_items_by_regularity_and_dueness() {
    let (rows, scores, _) = run(&cfg(Strategy::Replenishment));
    // A: Tea on 2 days, every ~10 days across customers, last 20 days ago (due: 2 × 1). B: Tea on 3
    // days, own interval 10 days, last 10 days ago (3 × 1); Cookies every ~7 days, bought 3
    // days ago (1 × (1 + 3/7) / 2).
    assert_eq!(
        rows,
        vec![
            row("A", "P1", "due again (bought every ~10 days)"),
            row("B", "P1", "due again (bought every ~10 days)"),
            row("B", "P5", "due again (bought every ~7 days)"),
        ]
    );
    assert_eq!(scores[..2], [2.0, 3.0]);
    assert!((scores[2] - (1.0 + 3.0 / 7.0) / 2.0).abs() < 1e-12);
    // With the bestseller fallback every list is full, fallback rows say so.
    let cfg = RecommendConfig {
        top_k: 2,
        fallback_bestsellers: true,
        ..cfg(Strategy::Replenishment)
    };
    let out = recommend(inputs(), &cfg, &RunCache::new()).unwrap();
    let t = out.body_table();
    assert_eq!(t.num_rows(), 6);
    let strategy = strings(t, "strategy");
    assert_eq!(strategy.value(0), "replenishment");
    assert_eq!(strategy.value(1), "bestsellers");
    // A: Tea and one bestseller; B: its own two; C: two bestsellers.
    assert_eq!(out.meta["fallback_recommendations"], 3);
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
        let again = recommend(reversed.clone(), &cfg, &RunCache::new()).unwrap();
        assert_eq!(again.body_table(), run(&cfg).2.body_table(), "{strategy}");
    }
}

mod backtest;
mod index;
mod node;
mod reference;
