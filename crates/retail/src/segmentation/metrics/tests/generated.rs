//! Generated purchase histories for testing the models on data with a known shape.

use std::sync::Arc;

use arrow_array::{Date32Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::day;
use flow_analytics::rng::Rng;

/// Generated line items: customer, order, day, amount, category.
type Lines = (
    Vec<String>,
    Vec<String>,
    Vec<i32>,
    Vec<f64>,
    Vec<&'static str>,
);

/// Generated purchase histories in the spirit of BG/NBD: per customer a purchase rate and
/// a dropout probability (scaled by `activity`); exponential gaps; 1-3 lines per order.
fn generate(customers: usize, seed: u64, days: i32, activity: f64) -> Lines {
    const CATEGORIES: [&str; 6] = ["bags", "books", "hats", "shoes", "tea", "toys"];
    let mut rng = Rng::new(seed);
    let start = day("2023-01-01");
    let (mut cust, mut order, mut dates, mut amounts, mut cats) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut n_orders = 0u64;
    for c in 0..customers {
        let id = format!("c{c:07}");
        let rate = activity * (0.004 + 0.05 * rng.f64().powi(2));
        let dropout = (0.05 + 0.5 * rng.f64()) / activity;
        let scale = 20.0 + 80.0 * rng.f64();
        let favourite = rng.pick(&CATEGORIES);
        let mut t = (rng.f64() * f64::from(days) * 0.9) as i32;
        loop {
            n_orders += 1;
            for _ in 0..1 + rng.below(3) {
                cust.push(id.clone());
                order.push(format!("o{n_orders}"));
                dates.push(start + t);
                amounts.push((scale * (0.5 + rng.f64())).round());
                cats.push(if rng.chance(0.6) {
                    favourite
                } else {
                    rng.pick(&CATEGORIES)
                });
            }
            if rng.chance(dropout) {
                break;
            }
            t += 1 + rng.exp(rate) as i32;
            if t >= days {
                break;
            }
        }
    }
    (cust, order, dates, amounts, cats)
}

pub(super) fn generated_table(
    customers: usize,
    seed: u64,
    days: i32,
    activity: f64,
) -> RecordBatch {
    let (cust, order, dates, amounts, cats) = generate(customers, seed, days, activity);
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("order_id", DataType::Utf8, false),
            Field::new("date", DataType::Date32, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("category", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(cust)),
            Arc::new(StringArray::from(order)),
            Arc::new(Date32Array::from(dates)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(StringArray::from(cats)),
        ],
    )
    .unwrap()
}
