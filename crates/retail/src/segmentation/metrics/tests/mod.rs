//! Tests of `segmentation.metrics`: hand-computed figures on a small shop here, the models on
//! generated histories, and the node's parameters.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use chrono::NaiveDate;
use serde_json::Value as Json;

use super::OUTPUT_COLUMNS;
use super::accumulate::compute;
use super::config::{FrequencyBasis, MetricsConfig};
use crate::segmentation::day_number;
use flow_analytics::summary::TimeUnit;
use flow_engine::data::{Body, Data, Output};

mod backtest;
mod generated;
mod models;
mod node;

/// One line item for building test tables.
#[derive(Clone)]
struct Line {
    customer: &'static str,
    order: String,
    date: &'static str,
    amount: f64,
    category: Option<&'static str>,
    email: Option<&'static str>,
    name: Option<&'static str>,
    marketing: Option<bool>,
}

fn line(customer: &'static str, order: &str, date: &'static str, amount: f64) -> Line {
    Line {
        customer,
        order: order.to_string(),
        date,
        amount,
        category: None,
        email: None,
        name: None,
        marketing: None,
    }
}

fn cat(mut l: Line, category: &'static str) -> Line {
    l.category = Some(category);
    l
}

fn day(s: &str) -> i32 {
    day_number(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

fn table(lines: &[Line]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("order_id", DataType::Utf8, true),
        Field::new("date", DataType::Date32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new("customer_name", DataType::Utf8, true),
        Field::new("accepts_marketing", DataType::Boolean, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            lines.iter().map(|l| l.customer).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            lines.iter().map(|l| l.order.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(Date32Array::from(
            lines.iter().map(|l| day(l.date)).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            lines.iter().map(|l| l.category).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            lines.iter().map(|l| l.email).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            lines.iter().map(|l| l.name).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            lines.iter().map(|l| l.marketing).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

/// Five customers with hand-computed metrics (see `hand_computed_metrics`).
fn shop() -> Vec<Line> {
    let mut a1 = cat(line("alice", "o1", "2024-01-01", 30.0), "shoes");
    a1.email = Some("old@example.com");
    a1.marketing = Some(true);
    a1.name = Some("Alice");
    let mut a4 = cat(line("alice", "o4", "2024-01-21", 25.0), "hats");
    a4.email = Some("alice@example.com");
    a4.marketing = Some(false);
    let mut late = cat(line("alice", "o5", "2024-02-05", 100.0), "shoes");
    late.email = Some("late@example.com");
    vec![
        cat(line("bob", "o6", "2024-01-31", 60.0), "shoes"),
        a1,
        cat(line("alice", "o1", "2024-01-01", 20.0), "bags"),
        cat(line("alice", "o2", "2024-01-01", 10.0), "shoes"),
        cat(line("carol", "o7", "2024-01-05", 15.0), "hats"),
        cat(line("alice", "o3", "2024-01-11", 40.0), "bags"),
        line("erin", "o10", "2024-01-15", 45.0),
        cat(line("alice", "o4", "2024-01-21", -5.0), "shoes"),
        a4,
        cat(line("carol", "o8", "2024-01-25", 15.0), "hats"),
        cat(line("dave", "o9", "2024-01-25", 30.0), "shoes"),
        late,
        cat(line("frank", "o11", "2024-02-03", 10.0), "hats"),
    ]
}

fn cfg_at(date: &str) -> MetricsConfig {
    MetricsConfig {
        analysis_date: Some(day(date)),
        ..Default::default()
    }
}

fn out_table(out: &Output) -> &RecordBatch {
    match &out.body {
        Body::Data(Data::Table(t)) => t,
        _ => panic!("not a table"),
    }
}

fn col<'a>(t: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    t.column(t.schema().index_of(name).unwrap())
}
fn strs(t: &RecordBatch, name: &str) -> Vec<Option<String>> {
    col(t, name)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}
fn ints(t: &RecordBatch, name: &str) -> Vec<i64> {
    col(t, name).as_primitive::<Int64Type>().values().to_vec()
}
fn floats(t: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    col(t, name).as_primitive::<Float64Type>().iter().collect()
}
fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn hand_computed_metrics() {
    let out = compute(&table(&shop()), &cfg_at("2024-01-31")).unwrap();
    let t = out_table(&out);
    let schema = t.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, OUTPUT_COLUMNS.to_vec());
    // Sorted by customer_id; frank only bought after the analysis date.
    assert_eq!(
        strs(t, "customer_id"),
        vec![s("alice"), s("bob"), s("carol"), s("dave"), s("erin")]
    );
    // alice: orders o1 (50), o2 (10), o3 (40), o4 (25 - 5) on days 01, 01, 11, 21.
    assert_eq!(ints(t, "orders"), vec![4, 1, 2, 1, 1]);
    assert_eq!(ints(t, "purchase_days"), vec![3, 1, 2, 1, 1]);
    assert_eq!(
        floats(t, "total_spend"),
        vec![Some(120.0), Some(60.0), Some(30.0), Some(30.0), Some(45.0)]
    );
    assert_eq!(floats(t, "avg_order_value")[0], Some(30.0));
    assert_eq!(floats(t, "avg_order_value")[2], Some(15.0));
    assert_eq!(ints(t, "days_since_last"), vec![10, 0, 6, 6, 16]);
    let first = col(t, "first_purchase").as_primitive::<Date32Type>();
    let last = col(t, "last_purchase").as_primitive::<Date32Type>();
    assert_eq!(
        (first.value(0), last.value(0)),
        (day("2024-01-01"), day("2024-01-21"))
    );
    // lifetimes summary: alice's day totals 60 (first), 40, 20 -> frequency 2, monetary 30.
    assert_eq!(ints(t, "frequency"), vec![2, 0, 1, 0, 0]);
    assert_eq!(
        floats(t, "recency"),
        vec![Some(20.0), Some(0.0), Some(20.0), Some(0.0), Some(0.0)]
    );
    assert_eq!(
        floats(t, "T"),
        vec![Some(30.0), Some(0.0), Some(26.0), Some(6.0), Some(16.0)]
    );
    assert_eq!(
        floats(t, "monetary_value"),
        vec![Some(30.0), Some(0.0), Some(15.0), Some(0.0), Some(0.0)]
    );
    // RFM with n = 5: score = 1 + (number of strictly worse values).
    // R (days 10, 0, 6, 6, 16): 2, 5, 3, 3, 1 - carol and dave tie.
    // F (orders 4, 1, 2, 1, 1): 5, 1, 4, 1, 1 - three-way tie at the bottom.
    // M (120, 60, 30, 30, 45): 5, 4, 1, 1, 3.
    assert_eq!(ints(t, "r_score"), vec![2, 5, 3, 3, 1]);
    assert_eq!(ints(t, "f_score"), vec![5, 1, 4, 1, 1]);
    assert_eq!(ints(t, "m_score"), vec![5, 4, 1, 1, 3]);
    assert_eq!(
        strs(t, "rfm"),
        vec![s("255"), s("514"), s("341"), s("311"), s("113")]
    );
    assert_eq!(
        strs(t, "rfm_segment"),
        vec![
            s("Can't lose them"),
            s("New"),
            s("Loyal"),
            s("About to sleep"),
            s("Hibernating")
        ]
    );
    // Contact fields: the latest row with a value, rows after the analysis date ignored.
    assert_eq!(
        strs(t, "email"),
        vec![s("alice@example.com"), None, None, None, None]
    );
    assert_eq!(strs(t, "customer_name")[0], s("Alice"));
    let marketing = col(t, "accepts_marketing").as_boolean();
    assert!(!marketing.value(0) && marketing.is_valid(0) && marketing.is_null(1));
    // Categories: alice shoes 35, bags 60, hats 25; overall shoes 125, bags 60, hats 55.
    assert_eq!(
        strs(t, "favourite_category"),
        vec![s("bags"), s("shoes"), s("hats"), s("shoes"), None]
    );
    assert_eq!(
        strs(t, "top_category"),
        vec![s("bags"), s("shoes"), s("hats"), s("shoes"), None]
    );
    let aff = floats(t, "top_category_affinity");
    assert!((aff[0].unwrap() - 0.5 / (60.0 / 240.0) * 100.0).abs() < 1e-9);
    assert!((aff[2].unwrap() - 1.0 / (55.0 / 240.0) * 100.0).abs() < 1e-9);
    assert_eq!(aff[4], None);
    assert_eq!(floats(t, "historical_clv"), floats(t, "total_spend"));
    // Meta.
    assert_eq!(out.meta["analysis_date"], "2024-01-31");
    assert_eq!(out.meta["customers"], 5);
    assert_eq!(out.meta["transactions_used"], 11);
    assert_eq!(out.meta["transactions_after_analysis_date"], 2);
    assert_eq!(out.meta["revenue"], 285.0);
}

#[test]
fn analysis_date_defaults_to_latest_and_filters_later_rows() {
    let out = compute(&table(&shop()), &MetricsConfig::default()).unwrap();
    let t = out_table(&out);
    assert_eq!(out.meta["analysis_date"], "2024-02-05");
    assert_eq!(out.meta["transactions_after_analysis_date"], 0);
    assert_eq!(out.meta["transactions_used"], 13);
    assert_eq!(t.num_rows(), 6);
    assert_eq!(ints(t, "orders")[0], 5);
    assert_eq!(ints(t, "days_since_last")[0], 0);
    assert_eq!(strs(t, "email")[0], s("late@example.com"));

    // An analysis date before some first purchases drops those customers entirely.
    let out = compute(&table(&shop()), &cfg_at("2024-01-10")).unwrap();
    let t = out_table(&out);
    assert_eq!(strs(t, "customer_id"), vec![s("alice"), s("carol")]);
    assert_eq!(ints(t, "orders"), vec![2, 1]);
    assert_eq!(out.meta["transactions_used"], 4);
    assert_eq!(out.meta["transactions_after_analysis_date"], 9);
}

#[test]
fn weeks_divide_times_by_seven_and_days_basis_scores_days() {
    let cfg = MetricsConfig {
        unit: TimeUnit::Weeks,
        frequency: FrequencyBasis::Days,
        ..cfg_at("2024-01-31")
    };
    let out = compute(&table(&shop()), &cfg).unwrap();
    let t = out_table(&out);
    assert_eq!(floats(t, "recency")[0], Some(20.0 / 7.0));
    assert_eq!(floats(t, "T")[2], Some(26.0 / 7.0));
    // F by purchase days (3, 1, 2, 1, 1): same ranks as orders here.
    assert_eq!(ints(t, "f_score"), vec![5, 1, 4, 1, 1]);
    assert_eq!(out.meta["time_unit"], "weeks");
}

#[test]
fn missing_required_column_names_it_and_lists_the_others() {
    let full = table(&shop());
    let without_date = full.project(&[0, 1, 3, 4]).unwrap();
    let err = compute(&without_date, &MetricsConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no `date` column"), "{err}");
    assert!(
        err.contains("customer_id, order_id, amount, category"),
        "{err}"
    );
}

#[test]
fn csv_style_types_are_accepted() {
    // What file.read of a CSV gives: integer ids and amounts, ISO dates as text.
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Int64, true),
        Field::new("order_id", DataType::Int64, true),
        Field::new("date", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![Some(10), Some(10), Some(9), None])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec![
                "2024-05-01",
                "2024-05-03",
                "2024-05-02",
                "2024-05-02",
            ])),
            Arc::new(Int64Array::from(vec![5, 7, 9, 1])),
        ],
    )
    .unwrap();
    let out = compute(&batch, &MetricsConfig::default()).unwrap();
    let t = out_table(&out);
    assert_eq!(strs(t, "customer_id"), vec![s("10"), s("9")]);
    assert_eq!(floats(t, "total_spend"), vec![Some(12.0), Some(9.0)]);
    assert_eq!(out.meta["rows_with_missing_values"], 1);
    assert_eq!(out.meta["analysis_date"], "2024-05-03");
    // No category column: no favourite.
    assert_eq!(strs(t, "favourite_category"), vec![None, None]);
}

#[test]
fn the_analysis_date_is_the_latest_date_of_a_row_with_every_value() {
    // The latest date is on a row missing its customer, its order or its amount: the analysis
    // date is the latest of the complete rows; with every row complete, the latest of all.
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("order_id", DataType::Utf8, true),
        Field::new("date", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let dates = || {
        Arc::new(StringArray::from(vec![
            "2024-05-01",
            "2024-05-02",
            "2024-05-09",
        ])) as ArrayRef
    };
    let batch = |customer: Option<&str>, order: Option<&str>, amount: Option<f64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), customer])),
                Arc::new(StringArray::from(vec![Some("1"), Some("2"), order])),
                dates(),
                Arc::new(Float64Array::from(vec![Some(5.0), Some(7.0), amount])),
            ],
        )
        .unwrap()
    };
    let analysis_date = |b: RecordBatch| {
        compute(&b, &MetricsConfig::default()).unwrap().meta["analysis_date"].clone()
    };
    assert_eq!(
        analysis_date(batch(Some("c"), Some("3"), Some(1.0))),
        "2024-05-09"
    );
    assert_eq!(
        analysis_date(batch(None, Some("3"), Some(1.0))),
        "2024-05-02"
    );
    assert_eq!(
        analysis_date(batch(Some("c"), None, Some(1.0))),
        "2024-05-02"
    );
    assert_eq!(
        analysis_date(batch(Some("c"), Some("3"), None)),
        "2024-05-02"
    );
}

#[test]
fn too_few_repeat_customers_leaves_model_columns_null() {
    let lines = vec![
        line("a", "1", "2024-01-01", 10.0),
        line("a", "2", "2024-01-05", 20.0),
        line("b", "3", "2024-01-02", 30.0),
        line("c", "4", "2024-01-03", 40.0),
    ];
    let out = compute(&table(&lines), &MetricsConfig::default()).unwrap();
    let t = out_table(&out);
    assert_eq!(t.num_rows(), 3);
    for name in [
        "p_alive",
        "expected_purchases",
        "p_purchase",
        "expected_avg_spend",
        "clv",
    ] {
        assert_eq!(col(t, name).null_count(), 3, "{name}");
    }
    let reason = out.meta["model_fallback"].as_str().unwrap();
    assert!(reason.contains("too few repeat customers"), "{reason}");
    assert!(reason.contains("1 of 3"), "{reason}");
    assert!(!out.meta.contains_key("bgnbd") && !out.meta.contains_key("gamma_gamma"));
    // Descriptive columns are still there.
    assert_eq!(
        floats(t, "historical_clv"),
        vec![Some(30.0), Some(30.0), Some(40.0)]
    );

    let strict = MetricsConfig {
        require_model: true,
        ..Default::default()
    };
    let err = compute(&table(&lines), &strict).err().unwrap().to_string();
    assert!(err.contains("too few repeat customers"), "{err}");

    let off = MetricsConfig {
        fit: false,
        ..Default::default()
    };
    let out = compute(&table(&lines), &off).unwrap();
    assert!(
        out.meta["model_fallback"]
            .as_str()
            .unwrap()
            .contains("fit: none")
    );
}

#[test]
fn empty_input_gives_an_empty_table() {
    let out = compute(&table(&[]), &MetricsConfig::default()).unwrap();
    let t = out_table(&out);
    assert_eq!(t.num_rows(), 0);
    assert_eq!(t.num_columns(), OUTPUT_COLUMNS.len());
    assert_eq!(out.meta["analysis_date"], Json::Null);
    assert_eq!(out.meta["customers"], 0);
}

/// `table`, with its customer ids in a dictionary that holds one id under two keys, keys no
/// row uses, and a null value.
fn with_dictionary_customers(t: &RecordBatch) -> RecordBatch {
    use arrow_array::{DictionaryArray, Int32Array};
    let ids = t.column(0).as_string::<i32>();
    let mut values: Vec<Option<String>> = vec![None, Some("unused".into())];
    let mut key_of = std::collections::HashMap::new();
    let keys: Vec<Option<i32>> = (0..ids.len())
        .map(|i| {
            if ids.is_null(i) {
                // A null value rather than a null key.
                return Some(0);
            }
            let id = ids.value(i);
            // Every other row of an id goes through a second key with the same text.
            let twin = i % 2;
            Some(*key_of.entry((id.to_string(), twin)).or_insert_with(|| {
                values.push(Some(id.to_string()));
                values.len() as i32 - 1
            }))
        })
        .collect();
    let dict =
        DictionaryArray::try_new(Int32Array::from(keys), Arc::new(StringArray::from(values)))
            .unwrap();
    let mut cols = t.columns().to_vec();
    cols[0] = Arc::new(dict);
    let mut fields: Vec<Field> = t
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[0] = Field::new(
        "customer_id",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        true,
    );
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

#[test]
fn dictionary_encoded_customers_give_the_metrics_of_plain_ones_over_many_chunks() {
    // Enough rows to be read in several chunks; customers recur all over the table, some
    // rows lack an id or come after the analysis date.
    const IDS: [&str; 7] = ["ann", "bo", "cy", "di", "ed", "flo", "gus"];
    const DATES: [&str; 4] = ["2024-01-03", "2024-01-19", "2024-02-02", "2024-03-01"];
    let n = 150_000;
    let lines: Vec<Line> = (0..n)
        .map(|i| {
            let mut l = line(
                IDS[i * 5 % 7],
                &format!("o{}", i / 3),
                DATES[i % 4],
                1.0 + (i % 11) as f64,
            );
            if i % 1_000 == 999 {
                l.customer = "";
            }
            l
        })
        .collect();
    let mut plain = table(&lines);
    // Empty ids become nulls.
    let ids: StringArray = plain
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|v| v.filter(|s| !s.is_empty()))
        .collect();
    let mut cols = plain.columns().to_vec();
    cols[0] = Arc::new(ids);
    plain = RecordBatch::try_new(plain.schema(), cols).unwrap();
    let cfg = MetricsConfig {
        fit: false,
        ..cfg_at("2024-02-15")
    };
    let from_plain = compute(&plain, &cfg).unwrap();
    let from_dict = compute(&with_dictionary_customers(&plain), &cfg).unwrap();
    assert_eq!(out_table(&from_dict), out_table(&from_plain));
    assert_eq!(from_dict.meta, from_plain.meta);
    assert_eq!(out_table(&from_plain).num_rows(), IDS.len());

    // The first row with an amount that is not finite is named, wherever the chunks fall.
    for bad_rows in [vec![100_000, 140_000], vec![10, 100_000]] {
        let mut amounts: Vec<f64> = (0..n).map(|i| 1.0 + (i % 11) as f64).collect();
        for &r in &bad_rows {
            amounts[r] = f64::NAN;
        }
        let mut cols = plain.columns().to_vec();
        cols[3] = Arc::new(Float64Array::from(amounts));
        let bad = RecordBatch::try_new(plain.schema(), cols).unwrap();
        let expected = format!(
            "column `amount`, row {}: NaN is not a finite amount",
            bad_rows[0] + 1
        );
        for t in [bad.clone(), with_dictionary_customers(&bad)] {
            let err = compute(&t, &cfg).expect_err("an error").to_string();
            assert!(err.contains(&expected), "{err}");
        }
    }
}
