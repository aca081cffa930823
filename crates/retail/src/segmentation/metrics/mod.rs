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
//!   map of the domain brief; configurable with `rfm_segments`).
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

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use serde_json::{Value as Json, json};

use super::{
    FastHash, Interner, TRANSACTION_COLUMNS, bool_column, check_known_columns, date_column,
    date_param, day_string, f64_column, missing_column, sorted_ranks, table_input, text_column,
};
use flow_analytics::AnalyticsError;
use flow_analytics::affinity::{CategorySpend, category_affinity};
use flow_analytics::bgnbd::{self, BgNbdFit, BgNbdParams, Observation};
use flow_analytics::clv::{ClvOptions, discounted_value};
use flow_analytics::gamma_gamma::{self, GammaGammaFit, GammaGammaParams};
use flow_analytics::rfm::rfm_scores;
use flow_analytics::summary::{CustomerSummary, TimeUnit, Transaction, summarize};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use flow_engine::source::Seg;

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

/// The default R×F segment map (R digit, F digit); covers the 25 cells exactly once.
pub const DEFAULT_RFM_SEGMENTS: [(&str, &[&str]); 10] = [
    ("Champions", &["5[4-5]"]),
    ("Loyal", &["[3-4][4-5]"]),
    ("Potential loyalists", &["[4-5][2-3]"]),
    ("New", &["51"]),
    ("Promising", &["41"]),
    ("Need attention", &["33"]),
    ("About to sleep", &["3[1-2]"]),
    ("At risk", &["[1-2][3-4]"]),
    ("Can't lose them", &["[1-2]5"]),
    ("Hibernating", &["[1-2][1-2]"]),
];

#[derive(Debug)]
pub struct Metrics;

/// Which count the F score uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrequencyBasis {
    Orders,
    Days,
}

/// The R×F segment map: a segment index per cell `(r - 1) * 5 + (f - 1)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentMap {
    names: Vec<String>,
    cells: [u8; 25],
}

impl SegmentMap {
    fn default_map() -> Self {
        let defs: Vec<(String, Vec<String>)> = DEFAULT_RFM_SEGMENTS
            .iter()
            .map(|(n, p)| (n.to_string(), p.iter().map(|s| s.to_string()).collect()))
            .collect();
        Self::build(&defs).expect("the default map is valid")
    }

    /// Builds a map from (name, cell patterns); errors as (segment name or "", message).
    fn build(defs: &[(String, Vec<String>)]) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut owner: [Option<usize>; 25] = [None; 25];
        if defs.len() > usize::from(u8::MAX) {
            errors.push((String::new(), "at most 255 segments".to_string()));
        }
        for (seg, (name, patterns)) in defs.iter().enumerate() {
            if patterns.is_empty() {
                errors.push((name.clone(), "lists no cells".to_string()));
            }
            for pattern in patterns {
                match parse_cell_pattern(pattern) {
                    Ok(cells) => {
                        for (r, f) in cells {
                            let cell = usize::from((r - 1) * 5 + (f - 1));
                            match owner[cell] {
                                Some(other) if other != seg => errors.push((
                                    name.clone(),
                                    format!(
                                        "cell {r}{f} (R {r}, F {f}) is already in `{}`",
                                        defs[other].0
                                    ),
                                )),
                                _ => owner[cell] = Some(seg),
                            }
                        }
                    }
                    Err(e) => errors.push((name.clone(), e)),
                }
            }
        }
        let uncovered: Vec<String> = (0..25)
            .filter(|&c| owner[c].is_none())
            .map(|c| format!("{}{}", c / 5 + 1, c % 5 + 1))
            .collect();
        if !uncovered.is_empty() && errors.is_empty() {
            errors.push((
                String::new(),
                format!(
                    "every R×F cell needs a segment; not covered: {}",
                    uncovered.join(", ")
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut cells = [0u8; 25];
        for (c, o) in owner.iter().enumerate() {
            cells[c] = o.expect("covered") as u8;
        }
        Ok(SegmentMap {
            names: defs.iter().map(|d| d.0.clone()).collect(),
            cells,
        })
    }

    fn segment(&self, r: u8, f: u8) -> &str {
        &self.names[usize::from(self.cells[usize::from((r - 1) * 5 + (f - 1))])]
    }
}

/// Parses a cell pattern: two parts (R then F), each a digit `1`-`5`, a range `[a-b]`, a set
/// `[abc]` or `*` (any).
fn parse_cell_pattern(pattern: &str) -> Result<Vec<(u8, u8)>, String> {
    let bad = || {
        format!(
            "`{pattern}` is not a cell pattern; write R then F, each a digit 1-5, a range like \
             [4-5] or *, e.g. \"5[4-5]\""
        )
    };
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut chars = pattern.trim().chars().peekable();
    while let Some(c) = chars.next() {
        let digit = |c: char| {
            c.to_digit(10)
                .filter(|d| (1..=5).contains(d))
                .map(|d| d as u8)
        };
        let part = match c {
            '*' => (1..=5).collect(),
            '[' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(ch) => inner.push(ch),
                        None => return Err(bad()),
                    }
                }
                let inner: Vec<char> = inner.chars().filter(|c| !c.is_whitespace()).collect();
                if inner.len() == 3 && inner[1] == '-' {
                    let (a, b) = (
                        digit(inner[0]).ok_or_else(bad)?,
                        digit(inner[2]).ok_or_else(bad)?,
                    );
                    if a > b {
                        return Err(bad());
                    }
                    (a..=b).collect()
                } else {
                    let digits: Option<Vec<u8>> = inner.iter().map(|&c| digit(c)).collect();
                    match digits {
                        Some(d) if !d.is_empty() => d,
                        _ => return Err(bad()),
                    }
                }
            }
            c => vec![digit(c).ok_or_else(bad)?],
        };
        parts.push(part);
    }
    if parts.len() != 2 {
        return Err(bad());
    }
    let mut cells = Vec::new();
    for &r in &parts[0] {
        for &f in &parts[1] {
            cells.push((r, f));
        }
    }
    Ok(cells)
}

/// The validated parameters.
#[derive(Debug, Clone)]
pub(crate) struct MetricsConfig {
    analysis_date: Option<i32>,
    unit: TimeUnit,
    frequency: FrequencyBasis,
    horizon_days: u32,
    clv_months: u32,
    discount_rate: f64,
    fit: bool,
    min_repeat_customers: usize,
    require_model: bool,
    segments: SegmentMap,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            analysis_date: None,
            unit: TimeUnit::Days,
            frequency: FrequencyBasis::Orders,
            horizon_days: 90,
            clv_months: 12,
            discount_rate: 0.01,
            fit: true,
            min_repeat_customers: 20,
            require_model: false,
            segments: SegmentMap::default_map(),
        }
    }
}

impl MetricsConfig {
    fn from_params(params: &Params) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let mut cfg = MetricsConfig::default();
        let mut take = |r: Result<(), ParamError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        take(date_param(params, "analysis_date").map(|d| cfg.analysis_date = d));
        take(
            params
                .str_or("time_unit", "days")
                .and_then(|s| match s {
                    "days" => Ok(TimeUnit::Days),
                    "weeks" => Ok(TimeUnit::Weeks),
                    other => Err(ParamError::new(
                        "time_unit",
                        format!("`{other}` is not a time unit; use days or weeks"),
                    )),
                })
                .map(|u| cfg.unit = u),
        );
        take(
            params
                .str_or("frequency", "orders")
                .and_then(|s| match s {
                    "orders" => Ok(FrequencyBasis::Orders),
                    "days" => Ok(FrequencyBasis::Days),
                    other => Err(ParamError::new(
                        "frequency",
                        format!("`{other}` is not a frequency basis; use orders or days"),
                    )),
                })
                .map(|f| cfg.frequency = f),
        );
        let count = |name: &str, default: u64, min: u64, max: u64| {
            params.u64_or(name, default).and_then(|v| {
                if (min..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(ParamError::new(
                        name,
                        format!("must be between {min} and {max}, got {v}"),
                    ))
                }
            })
        };
        take(count("horizon_days", 90, 1, 36_500).map(|v| cfg.horizon_days = v as u32));
        take(count("clv_months", 12, 1, 1_200).map(|v| cfg.clv_months = v as u32));
        take(
            count("min_repeat_customers", 20, 1, 1_000_000_000)
                .map(|v| cfg.min_repeat_customers = v as usize),
        );
        take(
            params
                .f64_or("discount_rate", 0.01)
                .and_then(|d| {
                    if d.is_finite() && (0.0..1.0).contains(&d) {
                        Ok(d)
                    } else {
                        Err(ParamError::new(
                            "discount_rate",
                            format!(
                                "is a monthly rate and must be at least 0 and below 1, got {d}"
                            ),
                        ))
                    }
                })
                .map(|d| cfg.discount_rate = d),
        );
        take(
            params
                .str_or("fit", "bgnbd")
                .and_then(|s| match s {
                    "bgnbd" => Ok(true),
                    "none" => Ok(false),
                    other => Err(ParamError::new(
                        "fit",
                        format!("`{other}` is not a model; use bgnbd or none"),
                    )),
                })
                .map(|f| cfg.fit = f),
        );
        take(
            params
                .bool_or("require_model", false)
                .map(|b| cfg.require_model = b),
        );
        if cfg.require_model && !cfg.fit {
            errors.push(ParamError::new(
                "require_model",
                "cannot be true with `fit: none` (no model is fitted)",
            ));
        }
        if let Some(value) = params.get("rfm_segments") {
            match parse_segment_defs(value) {
                Ok(defs) => match SegmentMap::build(&defs) {
                    Ok(map) => cfg.segments = map,
                    Err(errs) => {
                        for (name, message) in errs {
                            let mut path = vec![Seg::key("rfm_segments")];
                            if !name.is_empty() {
                                path.push(Seg::key(name));
                            }
                            errors.push(ParamError::at(path, message));
                        }
                    }
                },
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }
}

/// `rfm_segments: { NAME: PATTERN | [PATTERN, ...], ... }`.
fn parse_segment_defs(value: &Json) -> Result<Vec<(String, Vec<String>)>, ParamError> {
    let shape = "is a mapping of segment name to R×F cell patterns, e.g. \
                 { Champions: \"5[4-5]\", Loyal: [\"[3-4][4-5]\"] }";
    let Json::Object(map) = value else {
        return Err(ParamError::new("rfm_segments", shape));
    };
    let mut defs = Vec::new();
    for (name, v) in map {
        let patterns = match v {
            Json::String(s) => vec![s.clone()],
            Json::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ParamError::at(
                        vec![Seg::key("rfm_segments"), Seg::key(name.clone())],
                        "cell patterns must be strings like \"5[4-5]\"",
                    )
                })?,
            _ => {
                return Err(ParamError::at(
                    vec![Seg::key("rfm_segments"), Seg::key(name.clone())],
                    "cell patterns must be a string or a list of strings like \"5[4-5]\"",
                ));
            }
        };
        defs.push((name.clone(), patterns));
    }
    Ok(defs)
}

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
        let batch = table_input(&inputs, &TRANSACTION_COLUMNS)?.clone();
        let cfg = self.cfg.clone();
        flow_engine::node::spawn_blocking(move || compute(&batch, &cfg))
            .await
            .map_err(|e| NodeError::msg(format!("metrics computation stopped: {e}")))?
    }
}

/// Fitted models and why a model is missing.
struct Models {
    bgnbd: Option<BgNbdFit>,
    gamma_gamma: Option<GammaGammaFit>,
    /// Usable for predictions (fitted and converged).
    bg: Option<BgNbdParams>,
    gg: Option<GammaGammaParams>,
    fallback: Vec<String>,
}

fn fit_models(summaries: &[CustomerSummary], cfg: &MetricsConfig) -> Models {
    let mut m = Models {
        bgnbd: None,
        gamma_gamma: None,
        bg: None,
        gg: None,
        fallback: Vec::new(),
    };
    if !cfg.fit {
        m.fallback
            .push("model fitting is off (fit: none)".to_string());
        return m;
    }
    let repeat = summaries.iter().filter(|s| s.frequency > 0).count();
    if repeat < cfg.min_repeat_customers {
        m.fallback.push(format!(
            "too few repeat customers to fit the models: {repeat} of {} bought on more \
             than one day, min_repeat_customers is {}",
            flow_engine::plural::plural(summaries.len() as u64, "customer"),
            cfg.min_repeat_customers
        ));
        return m;
    }
    let obs: Vec<Observation> = summaries.iter().map(Observation::from).collect();
    let spend: Vec<gamma_gamma::SpendObservation> = summaries
        .iter()
        .map(gamma_gamma::SpendObservation::from)
        .collect();
    let bg_options = bgnbd::FitOptions {
        min_repeat_customers: cfg.min_repeat_customers,
        ..Default::default()
    };
    let gg_options = gamma_gamma::FitOptions {
        min_repeat_customers: cfg.min_repeat_customers,
        ..Default::default()
    };
    // The two fits are independent: run them side by side.
    let (bg_fit, gg_fit) = std::thread::scope(|scope| {
        let gg = scope.spawn(|| gamma_gamma::fit(&spend, &gg_options));
        let bg = bgnbd::fit(&obs, &bg_options);
        (bg, gg.join().expect("Gamma-Gamma fit thread panicked"))
    });
    match bg_fit {
        Ok(fit) => {
            if fit.converged {
                m.bg = Some(fit.params);
            } else {
                m.fallback.push(format!(
                    "the BG/NBD fit did not converge ({} iterations)",
                    fit.iterations
                ));
            }
            m.bgnbd = Some(fit);
        }
        Err(e) => m
            .fallback
            .push(format!("the BG/NBD model cannot be fitted: {e}")),
    }
    match gg_fit {
        Ok(fit) => {
            if fit.converged {
                m.gg = Some(fit.params);
            } else {
                m.fallback.push(format!(
                    "the Gamma-Gamma fit did not converge ({} iterations)",
                    fit.iterations
                ));
            }
            m.gamma_gamma = Some(fit);
        }
        Err(e) => m
            .fallback
            .push(format!("the Gamma-Gamma model cannot be fitted: {e}")),
    }
    m
}

/// Per-customer model predictions (null where a model is missing or a value fails).
#[derive(Default)]
struct Predictions {
    p_alive: Vec<Option<f64>>,
    expected_purchases: Vec<Option<f64>>,
    p_purchase: Vec<Option<f64>>,
    expected_avg_spend: Vec<Option<f64>>,
    clv: Vec<Option<f64>>,
    errors: usize,
    first_error: Option<String>,
}

/// The BG/NBD predictions shared by every customer with the same `(x, t_x, T)`.
#[derive(Default)]
struct PatternValues {
    p_alive: Option<f64>,
    expected_purchases: Option<f64>,
    p_purchase: Option<f64>,
    /// Discounted CLV per unit of expected spend (CLV is linear in the spend).
    clv_per_spend: Option<f64>,
    error: Option<String>,
}

fn predict(
    summaries: &[CustomerSummary],
    names: &[&str],
    models: &Models,
    cfg: &MetricsConfig,
) -> Predictions {
    let n = summaries.len();
    let mut out = Predictions {
        p_alive: Vec::with_capacity(n),
        expected_purchases: Vec::with_capacity(n),
        p_purchase: Vec::with_capacity(n),
        expected_avg_spend: Vec::with_capacity(n),
        clv: Vec::with_capacity(n),
        ..Default::default()
    };
    // Customers with the same history pattern get the same BG/NBD predictions: compute each
    // distinct pattern once (one-time buyers differ only by T, so there are far fewer
    // patterns than customers).
    let mut index: HashMap<(u32, u64, u64), u32, FastHash> =
        HashMap::with_capacity_and_hasher(n / 2, FastHash);
    let mut patterns: Vec<Observation> = Vec::new();
    let pattern_of: Vec<u32> = summaries
        .iter()
        .map(|s| {
            let key = (s.frequency, s.recency.to_bits(), s.t.to_bits());
            *index.entry(key).or_insert_with(|| {
                patterns.push(Observation::from(s));
                (patterns.len() - 1) as u32
            })
        })
        .collect();
    drop(index);
    let values = match &models.bg {
        Some(bg) => {
            let horizon = f64::from(cfg.horizon_days) / cfg.unit.days_per_unit();
            let clv_options = ClvOptions {
                months: cfg.clv_months,
                monthly_discount_rate: cfg.discount_rate,
                time_units_per_month: cfg.unit.units_per_month(),
            };
            let with_clv = models.gg.is_some();
            // Patterns are independent: split them over the available cores.
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8);
            let chunk = patterns.len().div_ceil(threads).max(1024);
            std::thread::scope(|scope| {
                let handles: Vec<_> = patterns
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|obs| pattern_values(bg, obs, horizon, with_clv, &clv_options))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("prediction thread panicked"))
                    .collect::<Vec<_>>()
            })
        }
        None => Vec::new(),
    };
    for ((s, name), &pattern) in summaries.iter().zip(names).zip(&pattern_of) {
        let v = values.get(pattern as usize);
        let mut error = v.and_then(|v| v.error.clone());
        let spend = match &models.gg {
            Some(gg) => match gg.expected_average_spend(s.frequency, s.monetary_value) {
                Ok(spend) => Some(spend),
                Err(e) => {
                    error.get_or_insert_with(|| e.to_string());
                    None
                }
            },
            None => None,
        };
        let clv = match (v.and_then(|v| v.clv_per_spend), spend) {
            (Some(unit), Some(spend)) => Some(unit * spend),
            _ => None,
        };
        if let Some(e) = error {
            out.errors += 1;
            out.first_error
                .get_or_insert_with(|| format!("customer `{name}`: {e}"));
        }
        out.p_alive.push(v.and_then(|v| v.p_alive));
        out.expected_purchases
            .push(v.and_then(|v| v.expected_purchases));
        out.p_purchase.push(v.and_then(|v| v.p_purchase));
        out.expected_avg_spend.push(spend);
        out.clv.push(clv);
    }
    out
}

fn pattern_values(
    bg: &BgNbdParams,
    obs: &Observation,
    horizon: f64,
    with_clv: bool,
    clv_options: &ClvOptions,
) -> PatternValues {
    let mut v = PatternValues::default();
    let mut note = |r: Result<f64, AnalyticsError>| match r {
        Ok(x) => Some(x),
        Err(e) => {
            v.error.get_or_insert_with(|| e.to_string());
            None
        }
    };
    let p_alive = note(bg.probability_alive(obs));
    let expected_purchases = note(bg.expected_purchases(horizon, obs));
    let clv_per_spend = if with_clv {
        note(discounted_value(bg, obs, 1.0, clv_options))
    } else {
        None
    };
    v.p_alive = p_alive;
    v.expected_purchases = expected_purchases;
    v.p_purchase = p_alive.map(|p| p * purchase_given_alive(bg, obs, horizon));
    v.clv_per_spend = clv_per_spend;
    v
}

/// `1 − ((α+T)/(α+T+t))^(r+x)`: the probability of at least one purchase within `t` for a
/// customer who is alive (see the module docs).
fn purchase_given_alive(bg: &BgNbdParams, obs: &Observation, t: f64) -> f64 {
    let rx = bg.r + f64::from(obs.frequency);
    -(-rx * (t / (bg.alpha + obs.t)).ln_1p()).exp_m1()
}

/// Per-customer results in customer-id order.
struct Accumulated<'a> {
    names: Vec<&'a str>,
    end: i32,
    used: u64,
    after: u64,
    missing: u64,
    revenue: f64,
    spend: Vec<f64>,
    orders: Vec<u32>,
    summaries: Vec<CustomerSummary>,
    email: Vec<Option<&'a str>>,
    name: Vec<Option<&'a str>>,
    marketing: Vec<Option<bool>>,
    /// Favourite category (by spend) and top category (by affinity index, with the index).
    favourite: Vec<Option<&'a str>>,
    top: Vec<Option<(&'a str, f64)>>,
}

/// Computes the metrics table and its metadata.
pub(crate) fn compute(batch: &RecordBatch, cfg: &MetricsConfig) -> Result<Output, NodeError> {
    let need = |name: &str, purpose: &str| missing_column(batch, name, purpose);
    let customer = text_column(batch, "customer_id")?
        .ok_or_else(|| need("customer_id", "the customer key"))?;
    let order = text_column(batch, "order_id")?.ok_or_else(|| need("order_id", "the order key"))?;
    let date = date_column(batch, "date")?.ok_or_else(|| need("date", "the purchase date"))?;
    let amount =
        f64_column(batch, "amount")?.ok_or_else(|| need("amount", "the net line amount"))?;
    let category = text_column(batch, "category")?;
    let email = text_column(batch, "email")?;
    let customer_name = text_column(batch, "customer_name")?;
    let marketing = bool_column(batch, "accepts_marketing")?;

    let n_rows = batch.num_rows();
    let complete = |i: usize| {
        customer.get(i).is_some()
            && order.get(i).is_some()
            && date.is_valid(i)
            && amount.is_valid(i)
    };
    let end = match cfg.analysis_date {
        Some(d) => Some(d),
        None => (0..n_rows)
            .filter(|&i| complete(i))
            .map(|i| date.value(i))
            .max(),
    };
    let Some(end) = end else {
        // No usable row and no date: an empty table.
        let missing = (0..n_rows).filter(|&i| !complete(i)).count() as u64;
        let acc = Accumulated {
            names: Vec::new(),
            end: 0,
            used: 0,
            after: 0,
            missing,
            revenue: 0.0,
            spend: Vec::new(),
            orders: Vec::new(),
            summaries: Vec::new(),
            email: Vec::new(),
            name: Vec::new(),
            marketing: Vec::new(),
            favourite: Vec::new(),
            top: Vec::new(),
        };
        return finish(acc, cfg);
    };

    // Pass 1: customer keys of the kept rows (dense, first-seen), then renumbered in id order
    // so every per-customer vector is already sorted by customer_id.
    let mut customers = Interner::with_capacity(n_rows / 16);
    let mut row_customer = vec![u32::MAX; n_rows];
    let (mut after, mut missing) = (0u64, 0u64);
    for (i, slot) in row_customer.iter_mut().enumerate() {
        let (Some(c), Some(_)) = (customer.get(i), order.get(i)) else {
            missing += 1;
            continue;
        };
        if !date.is_valid(i) || !amount.is_valid(i) {
            missing += 1;
            continue;
        }
        let a = amount.value(i);
        if !a.is_finite() {
            return Err(NodeError::msg(format!(
                "column `amount`, row {}: {a} is not a finite amount",
                i + 1
            )));
        }
        if date.value(i) > end {
            after += 1;
            continue;
        }
        *slot = customers.intern(c);
    }
    let names = customers.into_names();
    let (_, rank) = sorted_ranks(&names);
    let mut sorted_names = vec![""; names.len()];
    for (old, &new) in rank.iter().enumerate() {
        sorted_names[new as usize] = names[old];
    }
    let n_customers = sorted_names.len();

    // Pass 2: accumulate.
    let mut transactions = Vec::with_capacity(n_rows - after as usize - missing as usize);
    let mut spend = vec![0.0; n_customers];
    let mut customer_orders: Vec<u64> = Vec::with_capacity(transactions.capacity());
    let mut orders = Interner::with_capacity(n_rows / 4);
    let mut categories = Interner::new();
    let mut category_lines: Vec<CategorySpend> = Vec::new();
    let mut email_at: Vec<Option<(i32, &str)>> = vec![None; n_customers];
    let mut name_at: Vec<Option<(i32, &str)>> = vec![None; n_customers];
    let mut marketing_at: Vec<Option<(i32, bool)>> = vec![None; n_customers];
    let mut revenue = 0.0;
    for (i, &old) in row_customer.iter().enumerate() {
        if old == u32::MAX {
            continue;
        }
        let c = rank[old as usize];
        let ci = c as usize;
        let day = date.value(i);
        let a = amount.value(i);
        transactions.push(Transaction {
            customer: c,
            day,
            amount: a,
        });
        spend[ci] += a;
        revenue += a;
        let o = orders.intern(order.get(i).expect("checked in pass 1"));
        customer_orders.push((u64::from(c) << 32) | u64::from(o));
        if let Some(k) = category.as_ref().and_then(|col| col.get(i))
            && !k.is_empty()
        {
            category_lines.push(CategorySpend {
                customer: c,
                category: categories.intern(k),
                amount: a,
            });
        }
        // Latest row with a value wins; rows come in order, so `>=` makes ties go to the later.
        if let Some(v) = email.as_ref().and_then(|col| col.get(i))
            && !v.is_empty()
            && email_at[ci].is_none_or(|(d, _)| day >= d)
        {
            email_at[ci] = Some((day, v));
        }
        if let Some(v) = customer_name.as_ref().and_then(|col| col.get(i))
            && !v.is_empty()
            && name_at[ci].is_none_or(|(d, _)| day >= d)
        {
            name_at[ci] = Some((day, v));
        }
        if let Some(col) = marketing.as_ref()
            && col.is_valid(i)
            && marketing_at[ci].is_none_or(|(d, _)| day >= d)
        {
            marketing_at[ci] = Some((day, col.value(i)));
        }
    }
    drop(row_customer);

    // Distinct orders per customer.
    customer_orders.sort_unstable();
    customer_orders.dedup();
    let mut order_counts = vec![0u32; n_customers];
    for key in &customer_orders {
        order_counts[(key >> 32) as usize] += 1;
    }
    drop(customer_orders);

    let summaries = summarize(&transactions, n_customers, end, cfg.unit)
        .map_err(|e| NodeError::msg(format!("customer summary: {e}")))?;
    if summaries.len() != n_customers {
        return Err(NodeError::msg(format!(
            "internal error: {} summaries for {n_customers} customers",
            summaries.len()
        )));
    }
    let used = transactions.len() as u64;
    drop(transactions);

    // Category favourites (by net spend) and top affinity (by index).
    let category_names = categories.into_names();
    let mut favourite: Vec<Option<&str>> = vec![None; n_customers];
    let mut top: Vec<Option<(&str, f64)>> = vec![None; n_customers];
    if !category_lines.is_empty() {
        let cells = category_affinity(&category_lines)
            .map_err(|e| NodeError::msg(format!("category affinity: {e}")))?;
        let mut best_spend: Vec<f64> = vec![0.0; n_customers];
        let mut best_index: Vec<(f64, f64)> = vec![(f64::NEG_INFINITY, 0.0); n_customers];
        for cell in &cells {
            let ci = cell.customer as usize;
            let name = category_names[cell.category as usize];
            // Favourite: highest positive spend, ties by name.
            if cell.spend > 0.0 {
                let better = match favourite[ci] {
                    None => true,
                    Some(f) => {
                        cell.spend > best_spend[ci] || (cell.spend == best_spend[ci] && name < f)
                    }
                };
                if better {
                    favourite[ci] = Some(name);
                    best_spend[ci] = cell.spend;
                }
            }
            // Top affinity: highest index, ties by spend then name.
            let (bi, bs) = best_index[ci];
            let better = match top[ci] {
                None => true,
                Some((t, _)) => {
                    cell.index > bi
                        || (cell.index == bi && (cell.spend > bs || (cell.spend == bs && name < t)))
                }
            };
            if better && cell.spend > 0.0 {
                top[ci] = Some((name, cell.index));
                best_index[ci] = (cell.index, cell.spend);
            }
        }
    }
    drop(category_lines);

    let acc = Accumulated {
        names: sorted_names,
        end,
        used,
        after,
        missing,
        revenue,
        spend,
        orders: order_counts,
        summaries,
        email: email_at.into_iter().map(|v| v.map(|x| x.1)).collect(),
        name: name_at.into_iter().map(|v| v.map(|x| x.1)).collect(),
        marketing: marketing_at.into_iter().map(|v| v.map(|x| x.1)).collect(),
        favourite,
        top,
    };
    finish(acc, cfg)
}

/// Scores, models, and the output table with its metadata.
fn finish(acc: Accumulated<'_>, cfg: &MetricsConfig) -> Result<Output, NodeError> {
    let n = acc.names.len();
    let s = &acc.summaries;
    let days_since: Vec<i64> = s
        .iter()
        .map(|s| i64::from(acc.end) - i64::from(s.last_day))
        .collect();
    let f_values: Vec<f64> = match cfg.frequency {
        FrequencyBasis::Orders => acc.orders.iter().map(|&o| f64::from(o)).collect(),
        FrequencyBasis::Days => s.iter().map(|s| f64::from(s.frequency) + 1.0).collect(),
    };
    let r_values: Vec<f64> = days_since.iter().map(|&d| d as f64).collect();
    let scores = rfm_scores(&r_values, &f_values, &acc.spend)
        .map_err(|e| NodeError::msg(format!("RFM scores: {e}")))?;

    let models = if n == 0 {
        Models {
            bgnbd: None,
            gamma_gamma: None,
            bg: None,
            gg: None,
            fallback: vec!["no transactions on or before the analysis date".to_string()],
        }
    } else {
        fit_models(s, cfg)
    };
    if cfg.require_model && !models.fallback.is_empty() {
        return Err(NodeError::msg(format!(
            "require_model is set but {}",
            models.fallback.join("; ")
        )));
    }
    let predictions = if models.bg.is_some() || models.gg.is_some() {
        predict(s, &acc.names, &models, cfg)
    } else {
        Predictions {
            p_alive: vec![None; n],
            expected_purchases: vec![None; n],
            p_purchase: vec![None; n],
            expected_avg_spend: vec![None; n],
            clv: vec![None; n],
            ..Default::default()
        }
    };

    let mut rfm = StringBuilder::with_capacity(n, 3 * n);
    let mut segment = StringBuilder::with_capacity(n, 12 * n);
    for sc in &scores {
        let digits = [b'0' + sc.recency, b'0' + sc.frequency, b'0' + sc.monetary];
        rfm.append_value(std::str::from_utf8(&digits).expect("ascii digits"));
        segment.append_value(cfg.segments.segment(sc.recency, sc.frequency));
    }
    let f64s = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let opt_f64s = |v: &[Option<f64>]| {
        let mut b = Float64Builder::with_capacity(v.len());
        b.extend(v.iter().copied());
        Arc::new(b.finish()) as ArrayRef
    };
    let i64s = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let strs = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;

    let columns: Vec<(&str, DataType, bool, ArrayRef)> = vec![
        (
            "customer_id",
            DataType::Utf8,
            false,
            Arc::new(StringArray::from(acc.names.clone())),
        ),
        ("email", DataType::Utf8, true, strs(&acc.email)),
        ("customer_name", DataType::Utf8, true, strs(&acc.name)),
        (
            "accepts_marketing",
            DataType::Boolean,
            true,
            Arc::new(BooleanArray::from(acc.marketing.clone())),
        ),
        (
            "first_purchase",
            DataType::Date32,
            false,
            Arc::new(Date32Array::from(
                s.iter().map(|s| s.first_day).collect::<Vec<_>>(),
            )),
        ),
        (
            "last_purchase",
            DataType::Date32,
            false,
            Arc::new(Date32Array::from(
                s.iter().map(|s| s.last_day).collect::<Vec<_>>(),
            )),
        ),
        (
            "orders",
            DataType::Int64,
            false,
            i64s(acc.orders.iter().map(|&o| i64::from(o)).collect()),
        ),
        (
            "purchase_days",
            DataType::Int64,
            false,
            i64s(s.iter().map(|s| i64::from(s.frequency) + 1).collect()),
        ),
        (
            "total_spend",
            DataType::Float64,
            false,
            f64s(acc.spend.clone()),
        ),
        (
            "avg_order_value",
            DataType::Float64,
            false,
            f64s(
                acc.spend
                    .iter()
                    .zip(&acc.orders)
                    .map(|(&sp, &o)| sp / f64::from(o))
                    .collect(),
            ),
        ),
        ("days_since_last", DataType::Int64, false, i64s(days_since)),
        (
            "favourite_category",
            DataType::Utf8,
            true,
            strs(&acc.favourite),
        ),
        (
            "r_score",
            DataType::Int64,
            false,
            i64s(scores.iter().map(|s| i64::from(s.recency)).collect()),
        ),
        (
            "f_score",
            DataType::Int64,
            false,
            i64s(scores.iter().map(|s| i64::from(s.frequency)).collect()),
        ),
        (
            "m_score",
            DataType::Int64,
            false,
            i64s(scores.iter().map(|s| i64::from(s.monetary)).collect()),
        ),
        ("rfm", DataType::Utf8, false, Arc::new(rfm.finish())),
        (
            "rfm_segment",
            DataType::Utf8,
            false,
            Arc::new(segment.finish()),
        ),
        (
            "frequency",
            DataType::Int64,
            false,
            i64s(s.iter().map(|s| i64::from(s.frequency)).collect()),
        ),
        (
            "recency",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.recency).collect()),
        ),
        (
            "T",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.t).collect()),
        ),
        (
            "monetary_value",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.monetary_value).collect()),
        ),
        (
            "p_alive",
            DataType::Float64,
            true,
            opt_f64s(&predictions.p_alive),
        ),
        (
            "expected_purchases",
            DataType::Float64,
            true,
            opt_f64s(&predictions.expected_purchases),
        ),
        (
            "p_purchase",
            DataType::Float64,
            true,
            opt_f64s(&predictions.p_purchase),
        ),
        (
            "expected_avg_spend",
            DataType::Float64,
            true,
            opt_f64s(&predictions.expected_avg_spend),
        ),
        ("clv", DataType::Float64, true, opt_f64s(&predictions.clv)),
        (
            "historical_clv",
            DataType::Float64,
            false,
            f64s(acc.spend.clone()),
        ),
        (
            "top_category",
            DataType::Utf8,
            true,
            strs(&acc.top.iter().map(|t| t.map(|t| t.0)).collect::<Vec<_>>()),
        ),
        (
            "top_category_affinity",
            DataType::Float64,
            true,
            opt_f64s(&acc.top.iter().map(|t| t.map(|t| t.1)).collect::<Vec<_>>()),
        ),
    ];
    debug_assert_eq!(
        columns.iter().map(|c| c.0).collect::<Vec<_>>(),
        OUTPUT_COLUMNS.to_vec()
    );
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, dt, nullable, _)| Field::new(*name, dt.clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.3).collect())?;

    let repeat = s.iter().filter(|s| s.frequency > 0).count();
    let mut out = Output::table(batch)
        .with_meta(
            "analysis_date",
            if n == 0 && cfg.analysis_date.is_none() {
                Json::Null
            } else {
                Json::from(day_string(acc.end))
            },
        )
        .with_meta(
            "time_unit",
            match cfg.unit {
                TimeUnit::Days => "days",
                TimeUnit::Weeks => "weeks",
            },
        )
        .with_meta("customers", n as u64)
        .with_meta("repeat_customers", repeat as u64)
        .with_meta("transactions_used", acc.used)
        .with_meta("transactions_after_analysis_date", acc.after)
        .with_meta("rows_with_missing_values", acc.missing)
        .with_meta("revenue", acc.revenue);
    if let Some(fit) = &models.bgnbd {
        out = out.with_meta(
            "bgnbd",
            json!({
                "r": fit.params.r,
                "alpha": fit.params.alpha,
                "a": fit.params.a,
                "b": fit.params.b,
                "log_likelihood": fit.log_likelihood,
                "iterations": fit.iterations,
                "converged": fit.converged,
            }),
        );
    }
    if let Some(fit) = &models.gamma_gamma {
        out = out.with_meta(
            "gamma_gamma",
            json!({
                "p": fit.params.p,
                "q": fit.params.q,
                "v": fit.params.v,
                "log_likelihood": fit.log_likelihood,
                "customers_used": fit.customers,
                "iterations": fit.iterations,
                "converged": fit.converged,
            }),
        );
    }
    if !models.fallback.is_empty() {
        out = out.with_meta("model_fallback", models.fallback.join("; "));
    }
    if predictions.errors > 0 {
        out = out.with_meta(
            "prediction_errors",
            json!({
                "customers": predictions.errors,
                "first": predictions.first_error,
            }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::{day_number, test_support};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type};
    use chrono::NaiveDate;
    use flow_analytics::clv::customer_lifetime_value;
    use flow_engine::data::{Body, Data};
    use flow_engine::node::Input;

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

    /// SplitMix64: a tiny seeded PRNG for generated test data.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed)
        }
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in (0, 1).
        pub(crate) fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
    }

    /// Generated line items: customer, order, day, amount, category.
    pub(crate) type Lines = (
        Vec<String>,
        Vec<String>,
        Vec<i32>,
        Vec<f64>,
        Vec<&'static str>,
    );

    /// Generated purchase histories in the spirit of BG/NBD: per customer a purchase rate and
    /// a dropout probability (scaled by `activity`); exponential gaps; 1-3 lines per order.
    pub(crate) fn generate(customers: usize, seed: u64, days: i32, activity: f64) -> Lines {
        const CATEGORIES: [&str; 6] = ["bags", "books", "hats", "shoes", "tea", "toys"];
        let mut rng = Rng::new(seed);
        let start = day("2023-01-01");
        let (mut cust, mut order, mut dates, mut amounts, mut cats) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut n_orders = 0u64;
        for c in 0..customers {
            let id = format!("c{c:07}");
            let rate = activity * (0.004 + 0.05 * rng.uniform().powi(2));
            let dropout = (0.05 + 0.5 * rng.uniform()) / activity;
            let scale = 20.0 + 80.0 * rng.uniform();
            let favourite = (rng.next_u64() % 6) as usize;
            let mut t = (rng.uniform() * f64::from(days) * 0.9) as i32;
            loop {
                n_orders += 1;
                for _ in 0..1 + rng.next_u64() % 3 {
                    cust.push(id.clone());
                    order.push(format!("o{n_orders}"));
                    dates.push(start + t);
                    amounts.push((scale * (0.5 + rng.uniform())).round());
                    let k = if rng.uniform() < 0.6 {
                        favourite
                    } else {
                        (rng.next_u64() % 6) as usize
                    };
                    cats.push(CATEGORIES[k]);
                }
                if rng.uniform() < dropout {
                    break;
                }
                t += 1 + (-rng.uniform().ln() / rate) as i32;
                if t >= days {
                    break;
                }
            }
        }
        (cust, order, dates, amounts, cats)
    }

    fn generated_table(customers: usize, seed: u64, days: i32, activity: f64) -> RecordBatch {
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

    #[test]
    fn fitted_models_on_generated_data() {
        let batch = generated_table(800, 7, 400, 1.0);
        let cfg = MetricsConfig::default();
        let out = compute(&batch, &cfg).unwrap();
        let t = out_table(&out);
        assert!(
            !out.meta.contains_key("model_fallback"),
            "{:?}",
            out.meta.get("model_fallback")
        );
        let bg = &out.meta["bgnbd"];
        let gg = &out.meta["gamma_gamma"];
        assert_eq!(bg["converged"], true);
        assert_eq!(gg["converged"], true);

        // The same fit straight from the analytics code on the same summary.
        let customers = strs(t, "customer_id");
        let index: std::collections::HashMap<String, u32> = customers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone().unwrap(), i as u32))
            .collect();
        let ids = batch.column(0).as_string::<i32>();
        let days = batch.column(2).as_primitive::<Date32Type>();
        let amounts = batch.column(3).as_primitive::<Float64Type>();
        let txs: Vec<Transaction> = (0..batch.num_rows())
            .map(|i| Transaction {
                customer: index[ids.value(i)],
                day: days.value(i),
                amount: amounts.value(i),
            })
            .collect();
        let end = days.values().iter().copied().max().unwrap();
        let summaries = summarize(&txs, customers.len(), end, TimeUnit::Days).unwrap();
        let obs: Vec<Observation> = summaries.iter().map(Observation::from).collect();
        let want = bgnbd::fit(
            &obs,
            &bgnbd::FitOptions {
                min_repeat_customers: 20,
                ..Default::default()
            },
        )
        .unwrap();
        let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-9;
        for (key, value) in [
            ("r", want.params.r),
            ("alpha", want.params.alpha),
            ("a", want.params.a),
            ("b", want.params.b),
            ("log_likelihood", want.log_likelihood),
        ] {
            assert!(close(bg[key].as_f64().unwrap(), value), "{key}: {bg}");
        }
        let spend: Vec<gamma_gamma::SpendObservation> = summaries
            .iter()
            .map(gamma_gamma::SpendObservation::from)
            .collect();
        let want_gg = gamma_gamma::fit(
            &spend,
            &gamma_gamma::FitOptions {
                min_repeat_customers: 20,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(close(gg["q"].as_f64().unwrap(), want_gg.params.q), "{gg}");
        assert_eq!(gg["customers_used"], want_gg.customers);

        // Per-customer predictions: ranges, and equal to the analytics functions.
        let p_alive = floats(t, "p_alive");
        let expected = floats(t, "expected_purchases");
        let p_purchase = floats(t, "p_purchase");
        let spend_col = floats(t, "expected_avg_spend");
        let clv = floats(t, "clv");
        let population = want_gg.params.population_mean_spend().unwrap();
        let clv_options = ClvOptions {
            months: 12,
            monthly_discount_rate: 0.01,
            time_units_per_month: 30.0,
        };
        for i in 0..t.num_rows() {
            let (pa, e, pp, sp, v) = (
                p_alive[i].unwrap(),
                expected[i].unwrap(),
                p_purchase[i].unwrap(),
                spend_col[i].unwrap(),
                clv[i].unwrap(),
            );
            assert!((0.0..=1.0).contains(&pa), "p_alive {pa}");
            assert!(
                (0.0..=1.0).contains(&pp) && pp <= pa + 1e-12,
                "p_purchase {pp}"
            );
            assert!(pp <= e + 1e-12, "P(Y >= 1) = {pp} > E[Y] = {e}");
            assert!(v >= 0.0 && v.is_finite(), "clv {v}");
            let o = &obs[i];
            assert!(close(pa, want.params.probability_alive(o).unwrap()));
            assert!(close(e, want.params.expected_purchases(90.0, o).unwrap()));
            let (r, alpha) = (want.params.r, want.params.alpha);
            let stay = ((alpha + o.t) / (alpha + o.t + 90.0)).powf(r + f64::from(o.frequency));
            assert!((pp - pa * (1.0 - stay)).abs() < 1e-12, "p_purchase {pp}");
            if o.frequency == 0 {
                assert!(close(sp, population));
            }
            let want_clv = customer_lifetime_value(
                &want.params,
                &want_gg.params,
                o,
                summaries[i].monetary_value,
                &clv_options,
            )
            .unwrap();
            assert!(
                (v - want_clv).abs() <= 1e-9 * want_clv.abs().max(1e-9),
                "{v} vs {want_clv}"
            );
        }
        // Someone who bought often and recently is more likely to buy than a lapsed one-timer.
        let r = ints(t, "r_score");
        let f = ints(t, "f_score");
        let mean = |pick: &dyn Fn(usize) -> bool| {
            let v: Vec<f64> = (0..t.num_rows())
                .filter(|&i| pick(i))
                .map(|i| p_purchase[i].unwrap())
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(&|i| r[i] >= 4 && f[i] >= 4) > mean(&|i| r[i] <= 2 && f[i] <= 2));
    }

    #[test]
    fn a_missing_spend_model_nulls_only_the_columns_that_need_it() {
        // All amounts negative: BG/NBD (which ignores amounts) fits, Gamma-Gamma has no
        // repeat customer with positive spend.
        let batch = generated_table(800, 7, 400, 1.0);
        let amounts = batch.column(3).as_primitive::<Float64Type>();
        let negated: Float64Array = amounts.iter().map(|a| a.map(|a| -a - 1.0)).collect();
        let mut columns = batch.columns().to_vec();
        columns[3] = Arc::new(negated);
        let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let out = compute(&batch, &MetricsConfig::default()).unwrap();
        let t = out_table(&out);
        let reason = out.meta["model_fallback"].as_str().unwrap();
        assert!(
            reason.contains("Gamma-Gamma") && !reason.contains("BG/NBD"),
            "{reason}"
        );
        assert_eq!(out.meta["bgnbd"]["converged"], true);
        assert!(!out.meta.contains_key("gamma_gamma"));
        for name in ["p_alive", "expected_purchases", "p_purchase"] {
            assert_eq!(col(t, name).null_count(), 0, "{name}");
        }
        for name in ["expected_avg_spend", "clv"] {
            assert_eq!(col(t, name).null_count(), t.num_rows(), "{name}");
        }
        let strict = MetricsConfig {
            require_model: true,
            ..Default::default()
        };
        let err = compute(&batch, &strict).err().unwrap().to_string();
        assert!(err.contains("Gamma-Gamma model cannot be fitted"), "{err}");
    }

    #[test]
    fn default_segment_map_covers_every_cell_once() {
        let mut seen = [0u32; 25];
        for (_, patterns) in DEFAULT_RFM_SEGMENTS {
            for p in patterns {
                for (r, f) in parse_cell_pattern(p).unwrap() {
                    seen[usize::from((r - 1) * 5 + (f - 1))] += 1;
                }
            }
        }
        assert_eq!(seen, [1; 25]);
        let map = SegmentMap::default_map();
        assert_eq!(map.segment(5, 5), "Champions");
        assert_eq!(map.segment(3, 3), "Need attention");
        assert_eq!(map.segment(4, 1), "Promising");
        assert_eq!(map.segment(2, 5), "Can't lose them");
        assert_eq!(map.segment(1, 1), "Hibernating");
        assert_eq!(parse_cell_pattern("*[135]").unwrap().len(), 15);
        assert!(parse_cell_pattern("6[1-2]").is_err());
        assert!(parse_cell_pattern("5[3-1]").is_err());
        assert!(parse_cell_pattern("555").is_err());
    }

    fn params(v: Json) -> Params {
        Params::new(v.as_object().unwrap().clone(), ".")
    }

    fn configure(
        v: Json,
        input_columns: &[Option<Vec<String>>],
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cx = ConfigureCx {
            node_id: "metrics",
            kind: NodeKind::Action,
            workflow_dir: std::path::Path::new("."),
            input_columns,
        };
        Metrics.configure(&params(v), &cx)
    }

    #[test]
    fn configure_locates_bad_params() {
        let errors = configure(
            json!({
                "analysis_date": "2024-13-01",
                "time_unit": "months",
                "frequency": "visits",
                "horizon_days": 0,
                "discount_rate": 1.5,
                "fit": "pareto",
            }),
            &[],
        )
        .err()
        .unwrap();
        let paths: Vec<Vec<Seg>> = errors.iter().map(|e| e.path.clone()).collect();
        for p in [
            "analysis_date",
            "time_unit",
            "frequency",
            "horizon_days",
            "discount_rate",
            "fit",
        ] {
            assert!(paths.contains(&vec![Seg::key(p)]), "{p}: {errors:?}");
        }
        let errors = configure(json!({"fit": "none", "require_model": true}), &[])
            .err()
            .unwrap();
        assert_eq!(errors[0].path, vec![Seg::key("require_model")]);

        // A custom map must cover the 25 cells exactly once.
        let errors = configure(
            json!({"rfm_segments": {"Top": "5*", "Rest": ["[1-4]*"], "Dup": "11"}}),
            &[],
        )
        .err()
        .unwrap();
        assert_eq!(
            errors[0].path,
            vec![Seg::key("rfm_segments"), Seg::key("Dup")]
        );
        assert!(errors[0].message.contains("already in `Rest`"));
        let errors = configure(json!({"rfm_segments": {"Top": "5*"}}), &[])
            .err()
            .unwrap();
        assert!(errors[0].message.contains("not covered: 11"), "{errors:?}");
        assert!(
            configure(
                json!({"rfm_segments": {"Top": "5*", "Rest": "[1-4]*"}}),
                &[]
            )
            .is_ok()
        );

        // Upstream columns known at validation time.
        let cols = vec![Some(vec!["customer_id".to_string(), "date".to_string()])];
        let errors = configure(json!({}), &cols).err().unwrap();
        assert!(
            errors[0].message.contains("`order_id`, `amount`")
                && errors[0].message.contains("customer_id, date"),
            "{errors:?}"
        );
        let node = configure(json!({"analysis_date": "2024-01-31"}), &[None]).unwrap();
        assert_eq!(
            node.output_columns(&[None]).unwrap(),
            OUTPUT_COLUMNS.map(String::from).to_vec()
        );
    }

    #[tokio::test]
    async fn runs_as_a_node_with_a_custom_segment_map() {
        let node = configure(
            json!({
                "analysis_date": "2024-01-31",
                "rfm_segments": {"Best": ["5*", "4[4-5]"], "Others": ["[1-3]*", "4[1-3]"]},
            }),
            &[],
        )
        .unwrap();
        let inputs = Inputs(vec![Input {
            from: "extract".into(),
            case: None,
            data: Data::Table(table(&shop())),
        }]);
        let out = node.run(test_support::ctx(), inputs).await.unwrap();
        let t = out_table(&out);
        assert_eq!(
            strs(t, "rfm_segment"),
            vec![
                s("Others"),
                s("Best"),
                s("Others"),
                s("Others"),
                s("Others")
            ]
        );
        let err = node
            .run(
                test_support::ctx(),
                Inputs(vec![Input {
                    from: "x".into(),
                    case: None,
                    data: Data::Json(json!(1)),
                }]),
            )
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("transactions table"), "{err}");
    }

    /// CPU time (user + system, all threads) of this process so far, in ms (Linux), so timings
    /// can be read on a machine shared with other jobs.
    fn process_cpu_ms() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Fields 14 and 15 of stat (utime, stime) in clock ticks of 10 ms.
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (ticks(11) + ticks(12)) * 10
    }

    /// 1M lines / 100k customers in release mode:
    /// `cargo test --release --lib -- --ignored --nocapture metrics_1m_timing`.
    #[test]
    #[ignore]
    fn metrics_1m_timing() {
        let start = std::time::Instant::now();
        let batch = generated_table(100_000, 11, 730, 1.7);
        println!(
            "generated {} lines, {} customers in {:?}",
            batch.num_rows(),
            100_000,
            start.elapsed()
        );
        assert!(batch.num_rows() >= 1_000_000);
        // As a POS export: by date, so rows of a customer are scattered.
        let dates = batch.column(2).as_primitive::<Date32Type>();
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_by_key(|&i| dates.value(i as usize));
        let batch =
            arrow_select::take::take_record_batch(&batch, &arrow_array::UInt32Array::from(order))
                .unwrap();
        for (label, cfg) in [
            ("fit: bgnbd", MetricsConfig::default()),
            (
                "fit: none",
                MetricsConfig {
                    fit: false,
                    ..Default::default()
                },
            ),
        ] {
            let (mut wall, mut cpu) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                let (start, cpu_start) = (std::time::Instant::now(), process_cpu_ms());
                let out = compute(&batch, &cfg).unwrap();
                wall.push(start.elapsed().as_millis());
                cpu.push(process_cpu_ms() - cpu_start);
                assert_eq!(out.rows(), 100_000);
                assert!(!out.meta.contains_key("model_fallback") || !cfg.fit);
            }
            println!("metrics ({label}): wall ms {wall:?}, process CPU ms {cpu:?}");
        }
    }
}
