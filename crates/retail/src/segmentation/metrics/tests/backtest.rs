//! The CLV backtest in the metadata: its shape, when it declines, that it leaves the columns
//! alone, and its accuracy on the sample generator's data.

use std::sync::Arc;

use arrow_array::{Date32Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value as Json;

use super::MetricsConfig;
use super::{compute, day, line, out_table, table};
use crate::pos::csv_mapped::{CsvOptions, parse_with};
use crate::pos::generate::{GenerateOptions, generate};
use crate::segmentation::day_number;

/// The generator's transactions (sales and returns) as a metrics input table.
fn sample_table(customers: u64, seed: u64) -> RecordBatch {
    let data = generate(&GenerateOptions {
        customers,
        products: 200,
        seed,
        malformed_rows: 0,
        ..GenerateOptions::default()
    })
    .unwrap();
    table_from_csv(&data.transactions)
}

/// A transactions CSV in the generator's layout as a metrics input table.
pub(super) fn table_from_csv(text: &str) -> RecordBatch {
    let (mut cust, mut order, mut dates, mut amounts) = (vec![], vec![], vec![], vec![]);
    parse_with(text.as_bytes(), &CsvOptions::default(), &mut |i, _| {
        cust.push(i.customer_id.clone());
        order.push(i.order_id.clone());
        dates.push(day_number(i.timestamp.date()));
        amounts.push(i.amount);
    })
    .unwrap();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("order_id", DataType::Utf8, false),
            Field::new("date", DataType::Date32, false),
            Field::new("amount", DataType::Float64, false),
        ])),
        vec![
            Arc::new(StringArray::from(cust)),
            Arc::new(StringArray::from(order)),
            Arc::new(Date32Array::from(dates)),
            Arc::new(Float64Array::from(amounts)),
        ],
    )
    .unwrap()
}

fn f(v: &Json) -> f64 {
    v.as_f64().unwrap()
}

/// The backtest as of `analysis_date` with a `holdout`-day holdout.
fn backtest_at(batch: &RecordBatch, analysis_date: &str, holdout: u32) -> Json {
    let cfg = MetricsConfig {
        analysis_date: Some(day(analysis_date)),
        backtest_days: Some(holdout),
        ..Default::default()
    };
    let out = compute(batch, &cfg).unwrap();
    out.meta["clv_backtest"].clone()
}

#[test]
fn the_backtest_on_generated_data_has_the_documented_shape_and_a_modest_error() {
    // The generator's history runs 2023-01-01 to 2024-12-30 (730 days).
    for seed in [42, 7] {
        let batch = sample_table(3000, seed);
        for holdout in [90, 180] {
            let b = backtest_at(&batch, "2024-09-30", holdout);
            let end = day("2024-09-30");
            assert_eq!(
                b["cutoff"],
                crate::segmentation::day_string(end - holdout as i32)
            );
            assert_eq!(b["holdout_days"], holdout);
            assert_eq!(b["calibration_days"], 639 - holdout);
            let customers = b["customers"].as_u64().unwrap();
            assert!(customers > 1500 && customers <= 3000, "{b}");
            let groups = b["by_frequency"].as_array().unwrap();
            let labels: Vec<&str> = groups
                .iter()
                .map(|g| g["frequency"].as_str().unwrap())
                .collect();
            assert_eq!(labels, ["0", "1", "2", "3", "4", "5", "6", "7+"]);
            let n: u64 = groups
                .iter()
                .map(|g| g["customers"].as_u64().unwrap())
                .sum();
            assert_eq!(n, customers);
            let actual: f64 = groups
                .iter()
                .map(|g| f(&g["actual"]) * f(&g["customers"]))
                .sum();
            assert!((actual - f(&b["total_actual"])).abs() < 1e-6);
            let err = f(&b["error_pct"]);
            let expected =
                100.0 * (f(&b["total_predicted"]) - f(&b["total_actual"])) / f(&b["total_actual"]);
            assert!((err - expected).abs() < 1e-9);
            assert!(f(&b["mae"]) > 0.0);
            assert!(b.get("note").is_none(), "{b}");
            // Observed with holdouts outside the November-December peak: -0.5% and -0.7%
            // (seed 42), +3.5% and -2.8% (seed 7); seeds 3 and cut-offs in April gave up to
            // -6.4%.
            assert!(err.abs() < 8.0, "seed {seed}, {holdout} days: {b}");
        }
        // A holdout over the seasonal peak: BG/NBD has no seasonality and under-predicts
        // (observed -20.3% for seed 42, -16.5% for seed 7); the backtest shows it.
        let peak = backtest_at(&batch, "2024-12-30", 90);
        let err = f(&peak["error_pct"]);
        assert!((-25.0..-10.0).contains(&err), "seed {seed}: {peak}");
    }
}

#[test]
fn the_backtest_is_reproducible_and_changes_no_column() {
    let batch = sample_table(2000, 3);
    let on = compute(&batch, &MetricsConfig::default()).unwrap();
    let again = compute(&batch, &MetricsConfig::default()).unwrap();
    assert_eq!(on.meta["clv_backtest"], again.meta["clv_backtest"]);
    assert_eq!(on.meta["clv_backtest"]["holdout_days"], 90);
    let off = compute(
        &batch,
        &MetricsConfig {
            backtest_days: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!off.meta.contains_key("clv_backtest"));
    assert_eq!(out_table(&on), out_table(&off));
    let mut rest = on.meta.clone();
    rest.remove("clv_backtest");
    assert_eq!(rest, off.meta);
}

#[test]
fn a_short_history_gets_a_note_instead() {
    let lines = vec![
        line("a", "1", "2024-01-01", 10.0),
        line("a", "2", "2024-03-05", 20.0),
        line("b", "3", "2024-01-02", 30.0),
        line("b", "4", "2024-04-29", 40.0),
    ];
    let out = compute(&table(&lines), &MetricsConfig::default()).unwrap();
    assert_eq!(
        out.meta["clv_backtest"],
        serde_json::json!({"note": "120 days of history, need 270 for a 90-day holdout"})
    );
    // Long enough, but too few repeat customers before the cut-off.
    let cfg = MetricsConfig {
        backtest_days: Some(30),
        ..Default::default()
    };
    let out = compute(&table(&lines), &cfg).unwrap();
    let note = out.meta["clv_backtest"]["note"].as_str().unwrap();
    assert!(
        note.starts_with("1 repeat customer before the cut-off 2024-03-30"),
        "{note}"
    );
    // Fitting off: the backtest says so.
    let cfg = MetricsConfig {
        fit: false,
        ..Default::default()
    };
    let out = compute(&table(&lines), &cfg).unwrap();
    assert_eq!(
        out.meta["clv_backtest"]["note"],
        "model fitting is off (fit: none)"
    );
}
