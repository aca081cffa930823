//! `segmentation.metrics`: one row of metrics per customer from a transactions table.
//!
//! As of the analysis date (default: the latest transaction date; later rows are ignored):
//!
//! - **Activity**: first and last purchase, distinct orders, distinct purchase days, total (net)
//!   spend, average order value (`total_spend / orders`), days since the last purchase, and the
//!   favourite category (highest net spend, ties by name; null without a `category` column
//!   or when the customer's net spend over lines with a category is not positive).
//! - **RFM**: scores 1-5 by [`analytics::rfm`](flow_analytics::rfm):
//!   `score = 1 + floor(5 × below / n)` where `below` is the number of customers with a strictly
//!   worse value, so equal values always get equal scores (bins can be uneven) and the result
//!   does not depend on row order. R uses days since the last purchase (fewer is better), F
//!   orders or distinct purchase days (param `frequency`), M total spend. `rfm` is the three
//!   digits (`"545"`), `rfm_segment` the R×F segment map (by default the widely used 10-segment
//!   map, Champions to Hibernating; configurable with `rfm_segments`).
//! - **`lifetimes` summary** ([`analytics::summary`](flow_analytics::summary)):
//!   frequency, recency, T, monetary_value, in days or weeks.
//! - **Models**: BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader & Hardie 2013) fitted
//!   by maximum likelihood on this data; per customer `p_alive`, `expected_purchases` over
//!   `horizon_days`, `p_purchase`, `expected_avg_spend` and discounted `clv` over `clv_months`
//!   ([`analytics::clv`](flow_analytics::clv)). When the data cannot support a fit
//!   (fewer than `min_repeat_customers` repeat customers, no convergence, Gamma-Gamma
//!   `q <= 1`, ...) the columns that depend on the missing model are null, never made up:
//!   without BG/NBD `p_alive`, `expected_purchases`, `p_purchase` and `clv`; without
//!   Gamma-Gamma `expected_avg_spend` and `clv`. The output metadata says why under
//!   `model_fallback`; `require_model: true` turns that into a failure.
//! - **CLV backtest** (output metadata `clv_backtest`, not a column): BG/NBD refitted on the
//!   history up to `backtest_days` (default `horizon_days`) before the analysis date, its
//!   expected purchases in those days against the actual ones, per calibration frequency and
//!   in total; only a `note` when the history is too short (see `backtest`).
//! - **Category affinity** ([`analytics::affinity`](flow_analytics::affinity)): the
//!   category with the highest affinity index (customer's spend share / overall spend share ×
//!   100; 100 = average).
//!
//! # `p_purchase`
//! The predicted conversion: the probability of at least one purchase in the next
//! `horizon_days`, `P(alive) × (1 − ((α+T)/(α+T+t))^(r+x))`. The second factor is the chance of
//! at least one purchase for a customer who stays alive, with the purchase rate's posterior
//! `Gamma(r+x, α+T)`; the formula ignores dropout *within* the horizon. Under BG/NBD a customer
//! can only drop out right after a purchase, so dropout cannot prevent the first purchase of
//! the horizon and the formula is in fact the model's P(Y(t) ≥ 1); it is always at most
//! `expected_purchases`.
//!
//! # Data conventions
//! Refunds (negative amounts) count in the spend sums and, like in `lifetimes`, a day with only
//! refunds still counts as a purchase day. Rows with a null required value are skipped and
//! counted (`rows_with_missing_values`). Customer contact fields (email, name, marketing
//! consent) take the value of the latest row that has one (ties: the later row).

mod accumulate;
mod backtest;
mod config;
mod kept_rows;
mod models;
mod orders;
mod output;
mod segment_map;

/// Cores for one of the steps the metrics split over threads: the node's own and those no
/// other work holds now, at most 8 threads in all, freed when the step drops them.
fn step_cores() -> flow_engine::node::SpareCores {
    flow_engine::node::spare_cores(8)
}

use std::sync::Arc;

use async_trait::async_trait;

use super::{TRANSACTION_COLUMNS, check_known_columns};
use accumulate::compute;
use config::MetricsConfig;
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 29] = [
    "customer_id",
    "email",
    "customer_name",
    "accepts_marketing",
    "first_purchase",
    "last_purchase",
    "orders",
    "purchase_days",
    "total_spend",
    "avg_order_value",
    "days_since_last",
    "favourite_category",
    "r_score",
    "f_score",
    "m_score",
    "rfm",
    "rfm_segment",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "p_purchase",
    "expected_avg_spend",
    "clv",
    "historical_clv",
    "top_category",
    "top_category_affinity",
];

#[derive(Debug)]
pub struct Metrics;

impl NodeType for Metrics {
    fn name(&self) -> &'static str {
        "segmentation.metrics"
    }
    fn summary(&self) -> &'static str {
        "Per-customer RFM scores, lifetimes summary, BG/NBD + Gamma-Gamma CLV and category \
         affinity from a transactions table."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn output_kind(&self) -> Option<flow_engine::node::TableKind> {
        Some(super::tables::metrics())
    }
    fn inputs(&self) -> Vec<flow_engine::node::InputSpec> {
        vec![flow_engine::node::InputSpec::one(
            "transactions",
            super::tables::transactions(),
            "the line items to score customers from",
        )]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional(
                "analysis_date",
                ParamType::String,
                "YYYY-MM-DD; later transactions are ignored (default: the latest transaction date)",
            ),
            ParamSpec::with_default(
                "time_unit",
                ParamType::String,
                "days",
                "unit of recency, T and the models: days or weeks (days / 7)",
            ),
            ParamSpec::with_default(
                "frequency",
                ParamType::String,
                "orders",
                "what the F score counts: orders or (distinct purchase) days",
            ),
            ParamSpec::with_default(
                "horizon_days",
                ParamType::Integer,
                "90",
                "prediction horizon of expected_purchases and p_purchase, in days",
            ),
            ParamSpec::optional(
                "backtest_days",
                ParamType::Integer,
                "holdout of the CLV backtest in the output metadata (`clv_backtest`), in days \
                 (default: horizon_days; 0 = off)",
            ),
            ParamSpec::with_default(
                "clv_months",
                ParamType::Integer,
                "12",
                "months summed by the predictive CLV",
            ),
            ParamSpec::with_default(
                "discount_rate",
                ParamType::Number,
                "0.01",
                "monthly discount rate of the predictive CLV",
            ),
            ParamSpec::with_default(
                "fit",
                ParamType::String,
                "bgnbd",
                "bgnbd (BG/NBD + Gamma-Gamma) or none (no model columns)",
            ),
            ParamSpec::with_default(
                "min_repeat_customers",
                ParamType::Integer,
                "20",
                "below this many repeat customers the models are not fitted (model columns null)",
            ),
            ParamSpec::with_default(
                "require_model",
                ParamType::Bool,
                "false",
                "fail instead of leaving the model columns null when a model cannot be fitted",
            ),
            ParamSpec::optional(
                "rfm_segments",
                ParamType::Map,
                "R×F segment map { NAME: [\"5[4-5]\", ...] } covering the 25 cells once \
                 (default: Champions, Loyal, Potential loyalists, New, Promising, Need \
                 attention, About to sleep, At risk, Can't lose them, Hibernating)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cfg = MetricsConfig::from_params(params);
        let mut errors = Vec::new();
        check_known_columns(cx.known_columns(), &TRANSACTION_COLUMNS, &mut errors);
        match cfg {
            Ok(cfg) if errors.is_empty() => Ok(Arc::new(Configured { cfg: Arc::new(cfg) })),
            Ok(_) => Err(errors),
            Err(mut e) => {
                e.extend(errors);
                Err(e)
            }
        }
    }
}

struct Configured {
    cfg: Arc<MetricsConfig>,
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(OUTPUT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, _ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let cfg = self.cfg.clone();
        super::on_transactions(&inputs, "segmentation.metrics", move |batch| {
            compute(batch, &cfg)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
