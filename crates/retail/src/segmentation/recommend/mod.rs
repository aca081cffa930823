//! `segmentation.recommend`: top-K products per customer of a segment branch.
//!
//! Inputs, by role (see [`super::tables`]): `customers` (one or more classify branches),
//! `transactions`, `catalog` and `affinity` (required by `cross_sell`, optional otherwise).
//!
//! # Strategies
//! Every strategy ranks candidates by score (descending), ties by `product_id` (ascending), and
//! keeps `top_k`. Items missing from the catalog, out of stock (`stock <= 0`) or with unknown
//! stock are never recommended; items the customer already bought are left out unless
//! `include_purchased` (or `replenishment`).
//!
//! All but replenishment build on *personalised popularity*
//! `pp(u, i) = w_u(c) × pop(i) / pop(c)`, `c` the item's category:
//! - `pop(i)`: recency-weighted popularity, each purchase line up to the analysis date weighing
//!   `0.5^(age / 60 days)`; `pop(c)` sums it over the category;
//! - `w_u(c) = (n_uc + α P(c)) / (n_u + α)`: the customer's share of purchase lines in `c`
//!   smoothed towards the shop's category mix `P(c) = pop(c) / Σ pop` with `α = 2` pseudo-lines
//!   (without any purchase, the customer table's `favourite_category` and `top_category` count
//!   as one line each).
//!
//! - `cross_sell`: partners (pairs with `lift >= min_lift` in the affinity input) of anything
//!   the customer bought. Evidence `e = Σ` over the customer's items of the pair's confidence
//!   shrunk by support, `count / (orders with the item + 20)` (0 when the input has no `count`
//!   and `confidence`). Score `pp × (1 + 4 e)`; reason `often bought with <the item with the
//!   strongest evidence>`.
//! - `upsell`: in each category the customer bought in, items priced above the customer's
//!   spend-weighted mean price there (catalog price, else the highest unit price paid), by
//!   `pp`; items without sales are no candidates. Reason `a step up in <category>`.
//! - `seasonal`: items whose units sold in the last `recent_days` rose versus the `recent_days`
//!   before; score `pp × min((recent + 1) / (prior + 1), 3)`. Reason `trending in <category>`.
//! - `bestsellers`: by `pp`: the best of the customer's categories and, for the smoothing
//!   mass, of the shop. Reason `bestseller in <category>`.
//! - `replenishment`: items the customer bought before with a known repurchase interval: the
//!   customer's own median interval between purchase days of the item when they bought it on 3
//!   or more days, else the median over all customers' repeat purchases of the item. Score
//!   `purchase days × (1 + min(days since / interval, 1)) / 2`: the regulars first, the due
//!   before the just bought. Reason `due again (bought every ~N days)`. Implies
//!   `include_purchased`.
//!
//! With `fallback: bestsellers`, customers left with fewer than `top_k` items get bestsellers
//! (their `strategy` column says `bestsellers`).
//!
//! # Backtest
//! With `backtest_days` > 0 (default 60) the output metadata has `backtest`: the node's
//! customers' purchases after `analysis date − backtest_days` are hidden, every strategy (with
//! the node's `top_k` and fallback) and the baselines recommend from the rest, and
//! [`flow_analytics::recs_eval`] scores them (see `backtest.rs`).
//!
//! Transactions: rows after the analysis date (default: the latest transaction date) and refund
//! lines (negative amount or quantity) are ignored; units are `quantity` (1 without it).
//!
//! Cost: candidate lists are built once (per category, per item, global), so a customer costs
//! O(own purchases + partners of their items + categories × top_k), never a scan of the
//! catalog (upsell walks a category's list past the items below the customer's price).

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;

use super::retail_inputs::ByRole;
use super::tables;
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, InputSpec, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError,
    ParamSpec, ParamType, Params, TableKind,
};

mod backtest;
mod config;
pub mod harness;
mod ids;
mod index;
mod output;
mod rank;
mod strategies;
#[cfg(test)]
pub(crate) mod tests;

pub(crate) use config::{RecommendConfig, Strategy};
pub(crate) use output::{prepare, rank_prepared, recommend};

const NODE: &str = "segmentation.recommend";

/// The transactions columns it reads besides the required ones, when they are there.
const TRANSACTION_COLUMNS_READ: [&str; 4] = ["product_id", "product_name", "category", "quantity"];

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 9] = [
    "customer_id",
    "segment",
    "rank",
    "product_id",
    "product_name",
    "category",
    "score",
    "reason",
    "strategy",
];

#[derive(Debug)]
pub struct Recommend;

impl NodeType for Recommend {
    fn name(&self) -> &'static str {
        NODE
    }
    fn summary(&self) -> &'static str {
        "Top-K product recommendations per customer of a segment (cross-sell, upsell, seasonal, \
         bestsellers, replenishment), in stock only, each with a score and a reason."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "strategy",
                ParamType::String,
                "cross_sell, upsell, seasonal, bestsellers or replenishment",
            ),
            ParamSpec::with_default("top_k", ParamType::Integer, "5", "items per customer"),
            ParamSpec::with_default(
                "include_purchased",
                ParamType::Bool,
                "false",
                "also recommend items the customer already bought",
            ),
            ParamSpec::with_default(
                "min_lift",
                ParamType::Number,
                "1.0",
                "cross_sell: ignore co-purchase pairs with a lower lift",
            ),
            ParamSpec::with_default(
                "recent_days",
                ParamType::Integer,
                "28",
                "seasonal: the recent window, compared with the window before it",
            ),
            ParamSpec::optional(
                "analysis_date",
                ParamType::String,
                "YYYY-MM-DD; later transactions are ignored (default: the latest transaction date)",
            ),
            ParamSpec::with_default(
                "fallback",
                ParamType::String,
                "none",
                "none or bestsellers: fill lists shorter than top_k with bestsellers",
            ),
            ParamSpec::with_default(
                "backtest_days",
                ParamType::Integer,
                "60",
                "hide the last N days, recommend from the rest and score every strategy and two \
                 baselines on what the segment bought (output metadata `backtest`); 0: off",
            ),
        ]
    }
    fn inputs(&self) -> Vec<InputSpec> {
        vec![
            InputSpec::many(
                "customers",
                tables::customers(),
                "the customers to recommend to",
            ),
            InputSpec::one("transactions", tables::transactions(), "purchase history")
                .only_columns(&TRANSACTION_COLUMNS_READ),
            InputSpec::one(
                "catalog",
                tables::catalog(),
                "what can be recommended (in stock)",
            ),
            InputSpec::one(
                "affinity",
                tables::affinity(),
                "co-purchase pairs (required by cross_sell)",
            )
            .optional(),
        ]
    }
    fn output_kind(&self) -> Option<TableKind> {
        Some(tables::recommendations())
    }
    fn configure(
        &self,
        params: &Params,
        _cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cfg = RecommendConfig::from_params(params)?;
        Ok(Arc::new(Configured { cfg }))
    }
}

struct Configured {
    cfg: RecommendConfig,
}

/// The input tables of one run.
#[derive(Debug, Clone)]
pub(crate) struct RecommendInputs {
    pub(crate) customers: Vec<RecordBatch>,
    pub(crate) transactions: RecordBatch,
    pub(crate) catalog: RecordBatch,
    pub(crate) affinity: Option<RecordBatch>,
    /// The inputs (their `needs` names) the catalog and the transactions come from: within a
    /// run they name the same tables for every node, so they key the run's shared index.
    pub(crate) index_inputs: [String; 2],
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(OUTPUT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    fn required_inputs(&self) -> Vec<&'static str> {
        match self.cfg.strategy {
            Strategy::CrossSell => vec!["affinity"],
            _ => Vec::new(),
        }
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let by = ByRole::new(&inputs, NODE);
        let customers = by.all("customers");
        // An empty segment (the node's rule let it run anyway) recommends nothing.
        let customers = if customers.is_empty() {
            vec![super::classify::no_customers()]
        } else {
            customers
        };
        let tables = RecommendInputs {
            customers,
            transactions: by.require("transactions", &tables::transactions())?.clone(),
            catalog: by.require("catalog", &tables::catalog())?.clone(),
            affinity: match self.cfg.strategy {
                Strategy::CrossSell => Some(by.require("affinity", &tables::affinity())?.clone()),
                _ => by.first("affinity").cloned(),
            },
            index_inputs: ["catalog", "transactions"].map(|role| {
                let first = inputs.role(role).next();
                first.map(|input| input.name()).unwrap_or_default()
            }),
        };
        // The tables hold what this node reads: its inputs go, so it can let go of the
        // transactions once the indexes are built.
        drop(inputs);
        let stopped = |e| NodeError::msg(format!("recommendation computation stopped: {e}"));
        let (cfg, cache) = (self.cfg.clone(), ctx.run_cache.clone());
        // Waiting for the shared indexes holds no core (their builds take one each).
        let prepared = flow_engine::node::spawn_blocking(move || prepare(tables, &cfg, &cache))
            .await
            .map_err(stopped)??;
        let (cfg, cache) = (self.cfg.clone(), ctx.run_cache.clone());
        flow_engine::node::spawn_compute(move || rank_prepared(prepared, &cfg, &cache))
            .await
            .map_err(stopped)?
    }
}
