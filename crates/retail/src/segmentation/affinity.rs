//! `segmentation.affinity`: item-to-item co-purchase statistics for the recommendation step.
//!
//! Market-basket statistics over distinct orders (computed by
//! [`analytics::affinity::co_purchase`](flow_analytics::affinity::co_purchase)): for
//! items A and B over N orders, `support = n_AB / N`, `confidence(A→B) = n_AB / n_A` and
//! `lift = n_AB N / (n_A n_B)`. Each product keeps its `top_k` partners by lift among pairs seen
//! in at least `min_count` orders; orders with more than `max_basket_items` distinct products
//! count towards N but add no pairs (`oversized_orders` in the metadata).
//!
//! Lines with a negative `amount` or `quantity` (refund lines) do not put a product in a basket.
//! Rows with a null `order_id` or `product_id` are skipped. With `analysis_date`, rows dated
//! after it are ignored (like `segmentation.metrics`); without it every row is used.
//!
//! Output: one row per kept (product_id, other_product_id), sorted by product_id then lift
//! (descending, ties by other_product_id). Each pair appears in both directions, with its own
//! confidence.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;

use super::{
    FirstRows, Interner, check_known_columns, date_column, date_param, f64_column, missing_column,
    no_products, sorted_ranks, text_column,
};
use flow_analytics::affinity::{CoPurchaseOptions, co_purchase};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 6] = [
    "product_id",
    "other_product_id",
    "count",
    "support",
    "confidence",
    "lift",
];

const REQUIRED: [&str; 2] = ["order_id", "product_id"];

#[derive(Debug)]
pub struct Affinity;

#[derive(Debug, Clone)]
pub(crate) struct AffinityConfig {
    options: CoPurchaseOptions,
    analysis_date: Option<i32>,
}

impl Default for AffinityConfig {
    fn default() -> Self {
        AffinityConfig {
            options: CoPurchaseOptions {
                top_k: 20,
                min_count: 3,
                max_basket_items: 50,
            },
            analysis_date: None,
        }
    }
}

impl AffinityConfig {
    fn from_params(params: &Params) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let mut cfg = AffinityConfig::default();
        let mut count = |name: &str, default: u64, min: u64| match params.u64_or(name, default) {
            Ok(v) if v >= min && v <= u64::from(u32::MAX) => Some(v),
            Ok(v) => {
                errors.push(ParamError::new(
                    name,
                    format!("must be at least {min}, got {v}"),
                ));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(v) = count("min_count", 3, 1) {
            cfg.options.min_count = v as u32;
        }
        if let Some(v) = count("top_k", 20, 1) {
            cfg.options.top_k = v as usize;
        }
        if let Some(v) = count("max_basket_items", 50, 2) {
            cfg.options.max_basket_items = v as usize;
        }
        match date_param(params, "analysis_date") {
            Ok(d) => cfg.analysis_date = d,
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }
}

impl NodeType for Affinity {
    fn name(&self) -> &'static str {
        "segmentation.affinity"
    }
    fn summary(&self) -> &'static str {
        "Item-to-item co-purchase statistics (count, support, confidence, lift) from a \
         transactions table; top partners per product."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn inputs(&self) -> Vec<flow_engine::node::InputSpec> {
        vec![flow_engine::node::InputSpec::one(
            "transactions",
            super::tables::transactions(),
            "the line items to count co-purchases in",
        )]
    }
    fn output_kind(&self) -> Option<flow_engine::node::TableKind> {
        Some(super::tables::affinity())
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::with_default(
                "min_count",
                ParamType::Integer,
                "3",
                "keep pairs bought together in at least this many orders",
            ),
            ParamSpec::with_default(
                "top_k",
                ParamType::Integer,
                "20",
                "partners kept per product (highest lift first)",
            ),
            ParamSpec::with_default(
                "max_basket_items",
                ParamType::Integer,
                "50",
                "orders with more distinct products add no pairs (still counted as orders)",
            ),
            ParamSpec::optional(
                "analysis_date",
                ParamType::String,
                "YYYY-MM-DD; ignore later rows (needs a `date` column; default: use every row)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cfg = AffinityConfig::from_params(params);
        let mut errors = Vec::new();
        let mut required = REQUIRED.to_vec();
        if matches!(&cfg, Ok(c) if c.analysis_date.is_some()) {
            required.push("date");
        }
        check_known_columns(cx.known_columns(), &required, &mut errors);
        match cfg {
            Ok(cfg) if errors.is_empty() => Ok(Arc::new(Configured { cfg })),
            Ok(_) => Err(errors),
            Err(mut e) => {
                e.extend(errors);
                Err(e)
            }
        }
    }
}

struct Configured {
    cfg: AffinityConfig,
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(OUTPUT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, _ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let cfg = self.cfg.clone();
        super::on_transactions(&inputs, "segmentation.affinity", move |batch| {
            compute(batch, &cfg)
        })
        .await
    }
}

/// The schema of the affinity table.
pub(crate) fn output_schema() -> Schema {
    Schema::new(vec![
        Field::new("product_id", DataType::Utf8, false),
        Field::new("other_product_id", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
        Field::new("support", DataType::Float64, false),
        Field::new("confidence", DataType::Float64, false),
        Field::new("lift", DataType::Float64, false),
    ])
}

/// Computes the co-purchase table and its metadata.
pub(crate) fn compute(batch: &RecordBatch, cfg: &AffinityConfig) -> Result<Output, NodeError> {
    let order = text_column(batch, "order_id")?
        .ok_or_else(|| missing_column(batch, "order_id", "the basket key"))?;
    let product = text_column(batch, "product_id")?
        .ok_or_else(|| missing_column(batch, "product_id", "the item key"))?;
    let amount = f64_column(batch, "amount")?;
    let quantity = f64_column(batch, "quantity")?;
    let date = match cfg.analysis_date {
        Some(_) => Some(
            date_column(batch, "date")?
                .ok_or_else(|| missing_column(batch, "date", "needed to apply analysis_date"))?,
        ),
        None => None,
    };
    let negative = |col: &Option<Float64Array>, i: usize| {
        col.as_ref()
            .is_some_and(|c| c.is_valid(i) && c.value(i) < 0.0)
    };

    // An order is named by its first line's row: the names only group lines into baskets.
    let mut orders = FirstRows::new(&order);
    let mut products = Interner::new();
    let mut lines: Vec<(u32, u32)> = Vec::with_capacity(batch.num_rows());
    let (mut skipped_refunds, mut skipped_after, mut skipped_missing) = (0u64, 0u64, 0u64);
    for i in 0..batch.num_rows() {
        let (Some(o), Some(p)) = (order.get(i), product.get(i)) else {
            skipped_missing += 1;
            continue;
        };
        if let (Some(end), Some(d)) = (cfg.analysis_date, date.as_ref()) {
            if !d.is_valid(i) {
                skipped_missing += 1;
                continue;
            }
            if d.value(i) > end {
                skipped_after += 1;
                continue;
            }
        }
        if negative(&amount, i) || negative(&quantity, i) {
            skipped_refunds += 1;
            continue;
        }
        lines.push((orders.first(i, o), products.intern(p)));
    }
    // Renumber products in id order so the analytics' item order is the product_id order.
    let names = products.into_names();
    let (order_of, rank) = sorted_ranks(&names);
    for line in &mut lines {
        line.1 = rank[line.1 as usize];
    }
    let result = co_purchase(&lines, &cfg.options)
        .map_err(|e| NodeError::msg(format!("co-purchase statistics: {e}")))?;

    let pairs: usize = result.items.iter().map(|i| i.partners.len()).sum();
    let mut product_id = Vec::with_capacity(pairs);
    let mut other = Vec::with_capacity(pairs);
    let mut count = Vec::with_capacity(pairs);
    let mut support = Vec::with_capacity(pairs);
    let mut confidence = Vec::with_capacity(pairs);
    let mut lift = Vec::with_capacity(pairs);
    let name_of = |dense: u32| names[order_of[dense as usize] as usize];
    for item in &result.items {
        for p in &item.partners {
            product_id.push(name_of(item.item));
            other.push(name_of(p.item));
            count.push(i64::from(p.count));
            support.push(p.support);
            confidence.push(p.confidence);
            lift.push(p.lift);
        }
    }
    let schema = output_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(product_id)),
        Arc::new(StringArray::from(other)),
        Arc::new(Int64Array::from(count)),
        Arc::new(Float64Array::from(support)),
        Arc::new(Float64Array::from(confidence)),
        Arc::new(Float64Array::from(lift)),
    ];
    let table = RecordBatch::try_new(Arc::new(schema), columns)?;
    let mut out = Output::table(table);
    if no_products::has_no_products(batch) {
        tracing::info!("{}", no_products::MESSAGE);
        out = out.with_meta(no_products::META_KEY, no_products::MESSAGE);
    }
    Ok(out
        .with_meta("orders", u64::from(result.orders))
        .with_meta("items", result.items.len() as u64)
        .with_meta("pairs_kept", pairs as u64)
        .with_meta("oversized_orders", u64::from(result.oversized_orders))
        .with_meta("refund_lines_skipped", skipped_refunds)
        .with_meta("rows_after_analysis_date", skipped_after)
        .with_meta("rows_with_missing_values", skipped_missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use flow_engine::data::{Body, Data};
    use flow_engine::node::Input;
    use serde_json::json;

    /// Orders (product ids chosen so that first-seen order differs from id order):
    /// o1 {zeta, alpha, mid}, o2 {zeta, alpha}, o3 {zeta, alpha, mid refunded}, o4 {alpha, mid}
    /// (dated later), o5 {zeta}, o6 {omega}; one row without a product.
    fn baskets() -> RecordBatch {
        let rows: [(&str, Option<&str>, f64, &str); 12] = [
            ("o1", Some("zeta"), 10.0, "2024-01-01"),
            ("o1", Some("alpha"), 5.0, "2024-01-01"),
            ("o1", Some("mid"), 7.0, "2024-01-01"),
            ("o2", Some("zeta"), 10.0, "2024-01-02"),
            ("o2", Some("alpha"), 5.0, "2024-01-02"),
            ("o2", Some("alpha"), 5.0, "2024-01-02"),
            ("o3", Some("alpha"), 5.0, "2024-01-03"),
            ("o3", Some("zeta"), 10.0, "2024-01-03"),
            ("o3", Some("mid"), -7.0, "2024-01-03"),
            ("o4", Some("mid"), 7.0, "2024-02-01"),
            ("o4", Some("alpha"), 5.0, "2024-02-01"),
            ("o6", None, 1.0, "2024-01-04"),
        ];
        let mut rows = rows.to_vec();
        rows.push(("o5", Some("zeta"), 10.0, "2024-01-04"));
        rows.push(("o6", Some("omega"), 3.0, "2024-01-05"));
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("order_id", DataType::Utf8, false),
                Field::new("product_id", DataType::Utf8, true),
                Field::new("amount", DataType::Float64, false),
                Field::new("date", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn cfg(min_count: u32, max_basket_items: usize) -> AffinityConfig {
        AffinityConfig {
            options: CoPurchaseOptions {
                top_k: 20,
                min_count,
                max_basket_items,
            },
            analysis_date: None,
        }
    }

    fn rows(out: &Output) -> Vec<(String, String, i64, f64, f64, f64)> {
        let Body::Data(Data::Table(t)) = &out.body else {
            panic!("not a table")
        };
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, OUTPUT_COLUMNS.map(String::from).to_vec());
        (0..t.num_rows())
            .map(|i| {
                (
                    t.column(0).as_string::<i32>().value(i).to_string(),
                    t.column(1).as_string::<i32>().value(i).to_string(),
                    t.column(2).as_primitive::<Int64Type>().value(i),
                    t.column(3).as_primitive::<Float64Type>().value(i),
                    t.column(4).as_primitive::<Float64Type>().value(i),
                    t.column(5).as_primitive::<Float64Type>().value(i),
                )
            })
            .collect()
    }

    #[test]
    fn transactions_without_products_give_an_empty_table_that_says_why() {
        // A payments export: each row its own order, no product.
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("order_id", DataType::Utf8, false),
                Field::new("product_id", DataType::Utf8, true),
                Field::new("amount", DataType::Float64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["line:2", "line:3", "line:4"])),
                Arc::new(StringArray::from(vec![None::<&str>, None, None])),
                Arc::new(Float64Array::from(vec![5.0, 7.5, -2.0])),
            ],
        )
        .unwrap();
        let out = compute(&batch, &cfg(1, 50)).unwrap();
        assert!(rows(&out).is_empty());
        let note = out.meta["no_products"].as_str().unwrap();
        assert!(note.contains("no products"), "{note}");
        // With products, or with no rows at all, there is nothing to explain.
        let out = compute(&baskets(), &cfg(1, 50)).unwrap();
        assert!(!out.meta.contains_key("no_products"));
        let out = compute(&batch.slice(0, 0), &cfg(1, 50)).unwrap();
        assert!(rows(&out).is_empty() && !out.meta.contains_key("no_products"));
    }

    #[test]
    fn lift_support_confidence_by_hand() {
        // N = 6 orders; n(zeta) = 4, n(alpha) = 4, n(mid) = 2 (the refund line in o3 does
        // not count), n(omega) = 1. Together: zeta+alpha 3, alpha+mid 2, zeta+mid 1.
        let out = compute(&baskets(), &cfg(1, 50)).unwrap();
        let got = rows(&out);
        let want = [
            (
                "alpha",
                "mid",
                2,
                2.0 / 6.0,
                2.0 / 4.0,
                2.0 * 6.0 / (4.0 * 2.0),
            ),
            (
                "alpha",
                "zeta",
                3,
                3.0 / 6.0,
                3.0 / 4.0,
                3.0 * 6.0 / (4.0 * 4.0),
            ),
            ("mid", "alpha", 2, 2.0 / 6.0, 2.0 / 2.0, 1.5),
            ("mid", "zeta", 1, 1.0 / 6.0, 1.0 / 2.0, 6.0 / (2.0 * 4.0)),
            ("zeta", "alpha", 3, 0.5, 0.75, 1.125),
            ("zeta", "mid", 1, 1.0 / 6.0, 1.0 / 4.0, 0.75),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                (g.0.as_str(), g.1.as_str(), g.2),
                (w.0, w.1, w.2),
                "{got:?}"
            );
            for (a, b) in [(g.3, w.3), (g.4, w.4), (g.5, w.5)] {
                assert!((a - b).abs() < 1e-12, "{g:?} vs {w:?}");
            }
        }
        assert_eq!(out.meta["orders"], 6);
        assert_eq!(out.meta["items"], 4);
        assert_eq!(out.meta["pairs_kept"], 6);
        assert_eq!(out.meta["oversized_orders"], 0);
        assert_eq!(out.meta["refund_lines_skipped"], 1);
        assert_eq!(out.meta["rows_with_missing_values"], 1);

        // The default min_count of 3 keeps only zeta+alpha, both ways.
        let strict = compute(&baskets(), &AffinityConfig::default()).unwrap();
        let pairs: Vec<(String, String)> = rows(&strict).into_iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            pairs,
            vec![
                ("alpha".to_string(), "zeta".to_string()),
                ("zeta".to_string(), "alpha".to_string())
            ]
        );

        // o1 has 3 distinct items: with max_basket_items 2 it adds no pairs but still counts.
        let capped = compute(&baskets(), &cfg(1, 2)).unwrap();
        assert_eq!(capped.meta["oversized_orders"], 1);
        assert_eq!(capped.meta["orders"], 6);
        let r = rows(&capped);
        let zeta_alpha = r.iter().find(|r| r.0 == "zeta" && r.1 == "alpha").unwrap();
        assert_eq!(zeta_alpha.2, 2);
        assert!(!r.iter().any(|r| r.0 == "zeta" && r.1 == "mid"));
    }

    #[test]
    fn analysis_date_drops_later_orders() {
        let cfg = AffinityConfig {
            analysis_date: Some(crate::segmentation::parse_iso_day("2024-01-31").unwrap()),
            ..cfg(1, 50)
        };
        let out = compute(&baskets(), &cfg).unwrap();
        // o4 (alpha+mid) is after the date: N = 5, alpha+mid only in o1.
        assert_eq!(out.meta["orders"], 5);
        assert_eq!(out.meta["rows_after_analysis_date"], 2);
        let r = rows(&out);
        let alpha_mid = r.iter().find(|r| r.0 == "alpha" && r.1 == "mid").unwrap();
        // n(alpha) = 3, n(mid) = 1: lift = 1 * 5 / 3.
        assert_eq!(alpha_mid.2, 1);
        assert!((alpha_mid.5 - 5.0 / 3.0).abs() < 1e-12);
        let alpha_zeta = r.iter().find(|r| r.0 == "alpha" && r.1 == "zeta").unwrap();
        // n(alpha) = 3, n(zeta) = 4, together 3, N = 5.
        assert!((alpha_zeta.5 - 3.0 * 5.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn missing_product_column_and_bad_params() {
        let batch = baskets().project(&[0, 2, 3]).unwrap();
        let err = compute(&batch, &cfg(1, 50)).err().unwrap().to_string();
        assert!(
            err.contains("no `product_id` column") && err.contains("order_id, amount, date"),
            "{err}"
        );
        let cx = ConfigureCx {
            node_id: "affinity",
            kind: NodeKind::Action,
            workflow_dir: std::path::Path::new("."),
            input_columns: &[],
        };
        let params = Params::new(
            json!({"min_count": 0, "max_basket_items": 1, "analysis_date": "yesterday"})
                .as_object()
                .unwrap()
                .clone(),
            ".",
        );
        let errors = Affinity.configure(&params, &cx).err().unwrap();
        let paths: Vec<_> = errors.iter().map(|e| e.path.clone()).collect();
        for p in ["min_count", "max_basket_items", "analysis_date"] {
            assert!(
                paths.contains(&vec![flow_engine::source::Seg::key(p)]),
                "{p}: {errors:?}"
            );
        }
        let cols = [Some(vec!["order_id".to_string(), "sku".to_string()])];
        let cx = ConfigureCx {
            input_columns: &cols,
            ..cx
        };
        let errors = Affinity.configure(&Params::default(), &cx).err().unwrap();
        assert!(errors[0].message.contains("`product_id`"), "{errors:?}");
    }

    #[tokio::test]
    async fn runs_as_a_node() {
        let cx = ConfigureCx {
            node_id: "affinity",
            kind: NodeKind::Action,
            workflow_dir: std::path::Path::new("."),
            input_columns: &[],
        };
        let params = Params::new(json!({"min_count": 2}).as_object().unwrap().clone(), ".");
        let node = Affinity.configure(&params, &cx).unwrap();
        assert_eq!(
            node.output_columns(&[]).unwrap(),
            OUTPUT_COLUMNS.map(String::from).to_vec()
        );
        let out = node
            .run(
                flow_engine::testing::context(),
                Inputs(vec![Input {
                    from: "extract".into(),
                    case: None,
                    role: Some("transactions".into()),
                    data: Data::Table(baskets()),
                    meta: Default::default(),
                }]),
            )
            .await
            .unwrap();
        assert_eq!(out.meta["pairs_kept"], 4);
    }

    /// 1M lines, 5k products, date-ordered; run with
    /// `cargo test --release --lib -- --ignored --nocapture affinity_1m_timing`.
    #[test]
    #[ignore]
    fn affinity_1m_timing() {
        let mut rng = flow_analytics::rng::Rng::new(3);
        let mut next = || rng.next_u64();
        let (mut orders, mut products) = (Vec::new(), Vec::new());
        let mut order = 0u32;
        while orders.len() < 1_000_000 {
            for _ in 0..1 + next() % 5 {
                let u = (next() % 5000) as f64 / 5000.0;
                orders.push(format!("o{order}"));
                products.push(format!("SKU-{:05}", (u * u * 5000.0) as u32));
            }
            order += 1;
        }
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("order_id", DataType::Utf8, false),
                Field::new("product_id", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(orders)),
                Arc::new(StringArray::from(products)),
            ],
        )
        .unwrap();
        let mut times = Vec::new();
        let mut pairs = 0;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let out = compute(&batch, &AffinityConfig::default()).unwrap();
            times.push(start.elapsed());
            pairs = out.rows();
        }
        println!(
            "affinity: {} lines, {order} orders -> {pairs} pairs in {times:?}",
            batch.num_rows()
        );
    }
}
