//! Fuzzing the POS parsers: mutations of the sample exports must parse or fail with an error,
//! never panic, never take long, and report bad rows at lines that exist, each on one line.
//! See `flow_engine::testing::fuzz` for running it longer.

use std::io::Cursor;
use std::time::Duration;

use super::*;
use flow_engine::testing::fuzz::{self, Rng};

/// Syntax worth inserting into CSV and JSON Lines, alone or repeated.
const TOKENS: &[&str] = &[
    "\"",
    "\"\"",
    ",",
    ";",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\u{feff}",
    "é",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "-",
    "1e308",
    "NaN",
    "-0",
    "$",
    "(",
    ")",
    "€",
    "1,234.56",
    "1.234,56",
    "99999999999999999999",
    "2024-02-30",
    "2024-01-05T25:00:00Z",
    "\"a\nb\"",
    "\\u0000",
    "\\ud800",
    "x",
];

fn csv_payments() -> Format {
    Format::Csv(CsvOptions {
        columns: ColumnMap {
            customer: "customer".into(),
            order: None,
            date: "paid_at".into(),
            product: None,
            amount: Some("amount".into()),
            ..ColumnMap::default()
        },
        ..CsvOptions::default()
    })
}

fn samples() -> Vec<(&'static str, Format)> {
    vec![
        (
            include_str!("fixtures/transactions.csv"),
            Format::Csv(CsvOptions::default()),
        ),
        (include_str!("fixtures/payments.csv"), csv_payments()),
        (
            include_str!("fixtures/shopify_orders.csv"),
            Format::ShopifyOrders(ShopifyOptions::default()),
        ),
        (
            include_str!("fixtures/square_items.csv"),
            Format::SquareItems(SquareOptions::default()),
        ),
        (
            include_str!("fixtures/lightspeed_sales.csv"),
            Format::LightspeedSales(LightspeedOptions::default()),
        ),
        (
            include_str!("fixtures/orders.jsonl"),
            Format::Jsonl(JsonlOptions::default()),
        ),
    ]
}

/// Parses `bytes`; an error is fine, a bad row must name a line of the input on one line.
fn check(bytes: &[u8], format: &Format) {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let mut items = 0u64;
    if let Ok(out) = parse_with(Cursor::new(bytes), format, &mut |_, _| items += 1) {
        assert_eq!(out.report.items, items);
        for bad in &out.report.bad_rows {
            assert!((1..=lines).contains(&bad.line), "{bad:?} of {lines} lines");
            assert!(!bad.reason.contains('\n'), "{bad:?}");
        }
    }
}

fn mutated(rng: &mut Rng, sample: &str) -> Vec<u8> {
    fuzz::mutate(rng, sample.as_bytes(), TOKENS, 50_000)
}

#[test]
fn fuzz_pos_transactions() {
    let samples = samples();
    for (sample, format) in &samples {
        fuzz::run(
            &format!("pos-{}", format.name()),
            150,
            Duration::from_secs(5),
            |rng| mutated(rng, sample),
            |bytes| check(bytes, format),
        );
    }
}

#[test]
fn fuzz_pos_catalog_and_customers() {
    let catalog = include_str!("fixtures/catalog.csv");
    fuzz::run(
        "pos-catalog",
        150,
        Duration::from_secs(5),
        |rng| mutated(rng, catalog),
        |bytes| {
            let _ = parse_catalog(Cursor::new(bytes), &CatalogOptions::default());
        },
    );
    let customers = "customer_id,name,email,accepts_marketing\nC001,Ann Lee,ann@example.com,yes\nC002,\"Lee, Bo\",bo@example.com,no\n";
    fuzz::run(
        "pos-customers",
        150,
        Duration::from_secs(5),
        |rng| mutated(rng, customers),
        |bytes| {
            let _ = parse_customers(Cursor::new(bytes), &CustomersOptions::default());
        },
    );
}
