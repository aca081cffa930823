//! Offline runs of the node on generated sample data, outside a workflow: what the backtest
//! example and tests use to compare strategies and baselines.

use std::sync::Arc;

use arrow_array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};

use super::config::RecommendConfig;
use super::{RecommendInputs, Strategy, recommend};
use crate::pos::generate::Dataset;
use crate::segmentation::parse_iso_day;
use flow_engine::run_cache::RunCache;

/// A generated data set as the node's transactions and catalog tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub transactions: RecordBatch,
    pub catalog: RecordBatch,
}

trait CloneTable {
    fn clone_table(&self) -> Option<RecordBatch>;
}

impl CloneTable for flow_engine::data::Body {
    fn clone_table(&self) -> Option<RecordBatch> {
        match self {
            flow_engine::data::Body::Data(d) => d.as_table().cloned(),
            _ => None,
        }
    }
}

fn column(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// Reads the generator's CSV text (rows that do not parse are left out, as the malformed rows
/// the generator may add are meant to be).
pub fn tables(ds: &Dataset) -> Result<Tables, String> {
    let err = |e: arrow_schema::ArrowError| e.to_string();
    let mut r = csv::Reader::from_reader(ds.transactions.as_bytes());
    let (mut order, mut customer, mut product, mut category) = (vec![], vec![], vec![], vec![]);
    let (mut day, mut quantity, mut amount) = (vec![], vec![], vec![]);
    for row in r.records() {
        let row = row.map_err(|e| e.to_string())?;
        let f = |i: usize| row.get(i).unwrap_or("");
        let (Some(d), Ok(q), Ok(a)) = (
            parse_iso_day(f(2)),
            f(5).parse::<f64>(),
            f(7).parse::<f64>(),
        ) else {
            continue;
        };
        if f(0).is_empty() || f(1).is_empty() || f(3).is_empty() {
            continue;
        }
        order.push(f(0).to_string());
        customer.push(f(1).to_string());
        day.push(d);
        product.push(f(3).to_string());
        category.push(f(4).to_string());
        quantity.push(q);
        amount.push(a);
    }
    let transactions = RecordBatch::try_from_iter([
        ("order_id", column(order)),
        ("customer_id", column(customer)),
        ("date", Arc::new(Date32Array::from(day)) as ArrayRef),
        ("product_id", column(product)),
        ("category", column(category)),
        ("quantity", Arc::new(Float64Array::from(quantity))),
        ("amount", Arc::new(Float64Array::from(amount))),
    ])
    .map_err(err)?;
    let mut r = csv::Reader::from_reader(ds.catalog.as_bytes());
    let (mut id, mut name, mut cat, mut price, mut stock) =
        (vec![], vec![], vec![], vec![], vec![]);
    for row in r.records() {
        let row = row.map_err(|e| e.to_string())?;
        let f = |i: usize| row.get(i).unwrap_or("");
        let (Ok(p), Ok(s)) = (f(4).parse::<f64>(), f(5).parse::<f64>()) else {
            continue;
        };
        id.push(f(0).to_string());
        name.push(f(1).to_string());
        cat.push(f(2).to_string());
        price.push(p);
        stock.push(s);
    }
    let catalog = RecordBatch::try_from_iter([
        ("product_id", column(id)),
        ("name", column(name)),
        ("category", column(cat)),
        ("price", Arc::new(Float64Array::from(price)) as ArrayRef),
        ("stock", Arc::new(Float64Array::from(stock))),
    ])
    .map_err(err)?;
    Ok(Tables {
        transactions,
        catalog,
    })
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// `(customer_id, segment)` of the customers to recommend to.
    pub customers: &'a [(String, String)],
    pub strategy: &'a str,
    pub top_k: usize,
    pub fallback_bestsellers: bool,
    pub backtest_days: i32,
}

/// The node's output on `tables` (cross-sell's affinity input computed with the affinity
/// node's defaults) and its `backtest` metadata (`Null` when off).
pub fn run(tables: &Tables, run: &Run<'_>) -> Result<(RecordBatch, serde_json::Value), String> {
    let strategy = Strategy::parse(run.strategy).ok_or_else(|| {
        format!(
            "unknown strategy `{}` (one of {})",
            run.strategy,
            super::config::STRATEGIES.join(", ")
        )
    })?;
    let mut cfg = RecommendConfig::new(strategy);
    cfg.top_k = run.top_k;
    cfg.fallback_bestsellers = run.fallback_bestsellers;
    cfg.backtest_days = run.backtest_days;
    let customers = RecordBatch::try_from_iter([
        (
            "customer_id",
            column(run.customers.iter().map(|c| c.0.clone()).collect()),
        ),
        (
            "segment",
            column(run.customers.iter().map(|c| c.1.clone()).collect()),
        ),
    ])
    .map_err(|e| e.to_string())?;
    // Cross-sell's pairs, as the workflow's affinity node computes them by default.
    let affinity = match strategy {
        Strategy::CrossSell => {
            let out = crate::segmentation::affinity::compute(
                &tables.transactions,
                &crate::segmentation::affinity::AffinityConfig::default(),
            )
            .map_err(|e| e.to_string())?;
            out.body.clone_table()
        }
        _ => None,
    };
    let inputs = RecommendInputs {
        customers: vec![customers],
        transactions: tables.transactions.clone(),
        catalog: tables.catalog.clone(),
        affinity,
        index_inputs: ["catalog".into(), "transactions".into()],
    };
    let out = recommend(inputs.clone(), &cfg, &RunCache::new()).map_err(|e| e.to_string())?;
    let backtest = out.meta.get("backtest").cloned().unwrap_or_default();
    let table = out.body.clone_table().ok_or("the node gave no table")?;
    Ok((table, backtest))
}

/// Every customer of the transactions, in one segment `all`.
pub fn everyone(t: &Tables) -> Vec<(String, String)> {
    let Ok(Some(ids)) = crate::segmentation::text_column(&t.transactions, "customer_id") else {
        return Vec::new();
    };
    let set: std::collections::BTreeSet<&str> = (0..t.transactions.num_rows())
        .filter_map(|i| ids.get(i))
        .collect();
    set.into_iter()
        .map(|c| (c.to_string(), "all".to_string()))
        .collect()
}

/// The top 5% by spend among the customers who bought in the last 90 days, in one segment
/// `vip`: the kind of customer the VIP rule picks.
pub fn best_customers(t: &Tables) -> Vec<(String, String)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type};
    use std::collections::{HashMap, HashSet};
    let tx = &t.transactions;
    let (Ok(Some(ids)), Some(day), Some(amount)) = (
        crate::segmentation::text_column(tx, "customer_id"),
        tx.column_by_name("date")
            .map(|c| c.as_primitive::<Date32Type>()),
        tx.column_by_name("amount")
            .map(|c| c.as_primitive::<Float64Type>()),
    ) else {
        return Vec::new();
    };
    let end = day.values().iter().copied().max().unwrap_or(0);
    let mut spend: HashMap<&str, f64> = HashMap::new();
    let mut recent: HashSet<&str> = HashSet::new();
    for i in 0..tx.num_rows() {
        let Some(c) = ids.get(i) else { continue };
        *spend.entry(c).or_default() += amount.value(i);
        if day.value(i) > end - 90 {
            recent.insert(c);
        }
    }
    let mut ranked: Vec<(&str, f64)> = spend
        .into_iter()
        .filter(|(c, _)| recent.contains(c))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let n = ranked.len() / 20;
    ranked
        .into_iter()
        .take(n)
        .map(|(c, _)| (c.to_string(), "vip".to_string()))
        .collect()
}

/// How many distinct recommendation lists a recommendations table holds.
pub fn distinct_lists(table: &RecordBatch) -> usize {
    use std::collections::{HashMap, HashSet};
    let column = |name: &str| super::super::text_column(table, name).ok().flatten();
    let (Some(c), Some(p)) = (column("customer_id"), column("product_id")) else {
        return 0;
    };
    let mut lists: HashMap<&str, Vec<&str>> = HashMap::new();
    for i in 0..table.num_rows() {
        if let (Some(c), Some(p)) = (c.get(i), p.get(i)) {
            lists.entry(c).or_default().push(p);
        }
    }
    lists.into_values().collect::<HashSet<_>>().len()
}
