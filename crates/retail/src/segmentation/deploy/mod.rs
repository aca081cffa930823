//! `segmentation.deploy`: delivers what the segment branches produced.
//!
//! Inputs: every branch's campaign rows (identified by a `send` column) and recommendations (a
//! `rank` column), concatenated per kind; a skipped branch is simply absent. Written into
//! `out_dir`, each file atomically (a temporary file renamed into place):
//!
//! - `segments.csv`: one profile per customer: segment, scores, CLV, P(alive), predicted
//!   conversion, recommended products and the recommended action for sales staff.
//! - `recommendations.csv`: every recommendation (customer, rank, product, score, reason).
//! - `messages/`: the campaign messages that are sent (`send = true`): one RFC 5322 file per
//!   message at `messages/<segment>/<customer>.eml` (`messages: eml`), or one CSV per segment at
//!   `messages/<segment>.csv` (`messages: csv`). The folder is replaced as a whole.
//! - `summary.json` and `report.html`: per segment and overall: customers, revenue, average
//!   order value, mean CLV, predicted conversion (mean `p_purchase`), messages; and the changes
//!   since the previous run.
//!
//! # Changes between runs
//! The profiles (customer → segment, CLV) are kept in the node state, per workflow file, node
//! and effective parameters (see [`lineage`]). The next run of the same workflow with the same
//! parameters compares with them: customers who moved
//! between segments (`12 customers moved from vip to at_risk`), new customers and customers no
//! longer in the export (in the previous profiles, absent now: not customers a branch lost, which
//! fail the run instead; see [`routed`]), and the
//! total and mean CLV before and after. A retried or resumed attempt of the same run compares
//! with the same previous run, not with itself.
//!
//! # POS activation
//! With `pos_url`, profile and recommendation updates are POSTed in batches (see [`pos`]).
//! Files and state are written first, so a failing endpoint leaves the files in place; a resumed
//! run sends only the batches the endpoint has not acknowledged.

mod lineage;
mod message;
mod overview;
mod pos;
mod private_files;
mod recipients;
mod report;
mod routed;
mod staging;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_array::{StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::retail_inputs::{Sorted, TableKind, kind_of_columns};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use message::{Draft, Unsubscribe};
use pos::{PosConfig, PosReport};
pub(crate) use private_files::write_atomic;

const NODE: &str = "segmentation.deploy";

/// The campaign columns deploy reads, with their types.
const CAMPAIGN_COLUMNS: [(&str, DataType); 29] = [
    ("customer_id", DataType::Utf8),
    ("segment", DataType::Utf8),
    ("segment_label", DataType::Utf8),
    ("first_purchase", DataType::Date32),
    ("last_purchase", DataType::Date32),
    ("days_since_last", DataType::Int64),
    ("email", DataType::Utf8),
    ("customer_name", DataType::Utf8),
    ("accepts_marketing", DataType::Boolean),
    ("r_score", DataType::Int64),
    ("f_score", DataType::Int64),
    ("m_score", DataType::Int64),
    ("rfm", DataType::Utf8),
    ("rfm_segment", DataType::Utf8),
    ("clv", DataType::Float64),
    ("p_alive", DataType::Float64),
    ("p_purchase", DataType::Float64),
    ("orders", DataType::Int64),
    ("total_spend", DataType::Float64),
    ("avg_order_value", DataType::Float64),
    ("recommended_products", DataType::Utf8),
    ("recommended_action", DataType::Utf8),
    ("channel", DataType::Utf8),
    ("offer", DataType::Utf8),
    ("send", DataType::Boolean),
    ("skip_reason", DataType::Utf8),
    ("subject", DataType::Utf8),
    ("body_html", DataType::Utf8),
    ("sender", DataType::Utf8),
];

/// The recommendation columns, with their types.
const RECOMMENDATION_COLUMNS: [(&str, DataType); 9] = [
    ("customer_id", DataType::Utf8),
    ("segment", DataType::Utf8),
    ("rank", DataType::Int64),
    ("product_id", DataType::Utf8),
    ("product_name", DataType::Utf8),
    ("category", DataType::Utf8),
    ("score", DataType::Float64),
    ("reason", DataType::Utf8),
    ("strategy", DataType::Utf8),
];

/// The columns of `segments.csv`: (output name, campaign column).
const PROFILE_COLUMNS: [(&str, &str); 21] = [
    ("customer_id", "customer_id"),
    ("customer_name", "customer_name"),
    ("email", "email"),
    ("segment", "segment"),
    ("rfm_segment", "rfm_segment"),
    ("r_score", "r_score"),
    ("f_score", "f_score"),
    ("m_score", "m_score"),
    ("rfm", "rfm"),
    ("orders", "orders"),
    ("total_spend", "total_spend"),
    ("avg_order_value", "avg_order_value"),
    ("clv", "clv"),
    ("p_alive", "p_alive"),
    ("p_purchase", "p_purchase"),
    ("accepts_marketing", "accepts_marketing"),
    ("recommended_products", "recommended_products"),
    ("recommended_action", "recommended_action"),
    ("offer", "offer"),
    ("message_sent", "send"),
    ("skip_reason", "skip_reason"),
];

/// The columns of `messages/<segment>.csv`.
const MESSAGE_CSV_COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "customer_name",
    "from",
    "subject",
    "body_html",
    "offer",
    "message_id",
];

#[derive(Debug)]
pub struct Deploy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Messages {
    Eml,
    Csv,
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct DeployConfig {
    out_dir: PathBuf,
    messages: Messages,
    pos: Option<PosConfig>,
    unsubscribe: Unsubscribe,
    /// ISO 4217 code the report names for amounts.
    currency: Option<String>,
}

impl NodeType for Deploy {
    fn name(&self) -> &'static str {
        NODE
    }
    fn summary(&self) -> &'static str {
        "Writes segment profiles, recommendations, campaign messages (.eml or CSV), summary.json \
         and an HTML report; reports changes since the previous run; optionally updates a POS."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "out_dir",
                ParamType::Path,
                "output directory, e.g. out/{{ run.date }}",
            ),
            ParamSpec::with_default(
                "messages",
                ParamType::String,
                "eml",
                "eml (one RFC 5322 file per message), csv (one file per segment) or none",
            ),
            ParamSpec::optional(
                "currency",
                ParamType::String,
                "ISO 4217 code of the amounts (USD, EUR, GBP, ...), named in the report",
            ),
            ParamSpec::optional(
                "pos_url",
                ParamType::String,
                "http(s) endpoint receiving profile and recommendation updates in batches",
            ),
            ParamSpec::optional(
                "pos_token_env",
                ParamType::String,
                "name of the environment variable holding the POS bearer token",
            ),
            ParamSpec::with_default(
                "batch_size",
                ParamType::Integer,
                "500",
                "customers per POS batch",
            ),
            ParamSpec::with_default(
                "pos_retries",
                ParamType::Integer,
                "3",
                "retries of a batch after a connection error, timeout or 5xx",
            ),
            ParamSpec::with_default(
                "pos_timeout",
                ParamType::Duration,
                "30s",
                "time limit of one POS request",
            ),
            ParamSpec::with_default(
                "pos_backoff",
                ParamType::Duration,
                "500ms",
                "wait before the first retry; doubled for each further retry",
            ),
            ParamSpec::optional(
                "unsubscribe_url",
                ParamType::String,
                "https URL for one-click unsubscribe (List-Unsubscribe); {customer_id} and \
                 {segment} are filled in",
            ),
            ParamSpec::optional(
                "unsubscribe_email",
                ParamType::String,
                "address for unsubscribe requests by email (List-Unsubscribe mailto:)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        // When every input declares its columns, one of them must be campaign rows or
        // recommendations.
        let declared: Option<Vec<Option<TableKind>>> = cx
            .input_columns
            .iter()
            .map(|cols| {
                cols.as_ref()
                    .map(|cols| kind_of_columns(|c| cols.iter().any(|x| x == c)))
            })
            .collect();
        if let Some(kinds) = declared
            && !kinds.is_empty()
            && !kinds
                .iter()
                .any(|k| matches!(k, Some(TableKind::Campaign | TableKind::Recommendations)))
        {
            errors.push(ParamError::node(format!(
                "{NODE} needs {} or {} among its inputs (`needs`), and none of them has one",
                TableKind::Campaign.describe(),
                TableKind::Recommendations.describe()
            )));
        }
        let out_dir = match params.path("out_dir") {
            Ok(Some(p)) => p,
            Ok(None) => {
                errors.push(ParamError::new("out_dir", "is required"));
                PathBuf::new()
            }
            Err(e) => {
                errors.push(e);
                PathBuf::new()
            }
        };
        let messages = match params.str_or("messages", "eml") {
            Ok("eml") => Messages::Eml,
            Ok("csv") => Messages::Csv,
            Ok("none") => Messages::None,
            Ok(other) => {
                errors.push(ParamError::new(
                    "messages",
                    format!("must be eml, csv or none, got `{other}`"),
                ));
                Messages::None
            }
            Err(e) => {
                errors.push(e);
                Messages::None
            }
        };
        let mut take = |r: Result<u64, ParamError>, name: &str, min: u64, max: u64| match r {
            Ok(v) if (min..=max).contains(&v) => v,
            Ok(v) => {
                errors.push(ParamError::new(
                    name,
                    format!("must be between {min} and {max}, got {v}"),
                ));
                min
            }
            Err(e) => {
                errors.push(e);
                min
            }
        };
        let batch_size = take(params.u64_or("batch_size", 500), "batch_size", 1, 100_000);
        let retries = take(params.u64_or("pos_retries", 3), "pos_retries", 0, 20);
        let mut duration = |name: &str, default: Duration| match params.duration(name) {
            Ok(d) => d.unwrap_or(default),
            Err(e) => {
                errors.push(e);
                default
            }
        };
        let timeout = duration("pos_timeout", Duration::from_secs(30));
        let backoff = duration("pos_backoff", Duration::from_millis(500));
        let token_env = match params.opt_str("pos_token_env") {
            Ok(Some(v)) if is_env_name(v) => Some(v.to_string()),
            Ok(Some(v)) => {
                errors.push(ParamError::new(
                    "pos_token_env",
                    format!(
                        "`{v}` is not an environment variable name (letters, digits and _); \
                         give the variable's name, not the token"
                    ),
                ));
                None
            }
            Ok(None) => None,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        // An empty URL (a `{{ params.pos_url }}` left at its empty default) means no POS push;
        // the token variable then goes unused, so one workflow serves both setups.
        let pos = match params
            .opt_str("pos_url")
            .map(|u| u.filter(|u| !u.trim().is_empty()))
        {
            Ok(Some(url)) => {
                if let Err(e) = pos::check_url(url) {
                    errors.push(ParamError::new("pos_url", e));
                }
                Some(PosConfig {
                    url: url.to_string(),
                    token_env,
                    batch_size: batch_size as usize,
                    retries: retries as u32,
                    timeout,
                    backoff,
                })
            }
            Ok(None) => None,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let unsubscribe = unsubscribe(params, &mut errors);
        let currency = match params
            .opt_str("currency")
            .map(|c| c.map(overview::currency).transpose())
        {
            Ok(Ok(c)) => c.flatten(),
            Ok(Err(e)) => {
                errors.push(ParamError::new("currency", e));
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if errors.is_empty() {
            Ok(Arc::new(Configured {
                cfg: DeployConfig {
                    out_dir,
                    messages,
                    pos,
                    unsubscribe,
                    currency,
                },
            }))
        } else {
            Err(errors)
        }
    }
}

/// The unsubscribe parameters; an empty value (a parameter left at its empty default) is none.
fn unsubscribe(params: &Params, errors: &mut Vec<ParamError>) -> Unsubscribe {
    let mut get = |name: &str| match params.opt_str(name) {
        Ok(v) => v
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let (url, email) = (get("unsubscribe_url"), get("unsubscribe_email"));
    let mut out = Unsubscribe::default();
    if let Some(url) = url {
        match Unsubscribe::check_url(&url) {
            Ok(()) => out.url = Some(url),
            Err(e) => errors.push(ParamError::new("unsubscribe_url", e)),
        }
    }
    if let Some(email) = email {
        match message::recipient_address(&email) {
            Ok(a) => out.email = Some(a),
            Err(e) => errors.push(ParamError::new("unsubscribe_email", e.to_string())),
        }
    }
    out
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Configured {
    cfg: DeployConfig,
}

#[async_trait]
impl Node for Configured {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        // A missing token fails before anything is written.
        let token = match &self.cfg.pos {
            Some(pos) => pos.token()?,
            None => None,
        };
        let sorted = Sorted::new(&inputs);
        let campaigns: Vec<RecordBatch> = sorted
            .all(TableKind::Campaign)
            .into_iter()
            .cloned()
            .collect();
        let recommendations: Vec<RecordBatch> = sorted
            .all(TableKind::Recommendations)
            .into_iter()
            .cloned()
            .collect();
        if campaigns.is_empty() && recommendations.is_empty() {
            return Err(NodeError::msg(format!(
                "{NODE} needs {} or {} among its inputs; inputs received: {}",
                TableKind::Campaign.describe(),
                TableKind::Recommendations.describe(),
                sorted.received
            )));
        }
        routed::check(&ctx.routed, &campaigns)?;
        let cfg = self.cfg.clone();
        let job_ctx = ctx.clone();
        let written = flow_engine::node::spawn_blocking(move || {
            write_outputs(&cfg, &job_ctx, &campaigns, &recommendations)
        })
        .await
        .map_err(|e| NodeError::msg(format!("deploy stopped: {e}")))??;

        let pos_report = match &self.cfg.pos {
            Some(pos) => Some(pos::deliver(&ctx, pos, token, written.batches).await?),
            None => None,
        };
        Ok(output(&written.summary, pos_report.as_ref()))
    }
}

/// Per-segment key metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SegmentStats {
    pub(crate) segment: String,
    /// The readable name: the classify rule's label, else the name humanised.
    pub(crate) label: String,
    /// The campaign's offer (`20% off`, `free shipping`, `no offer`).
    pub(crate) offer: Option<String>,
    /// The campaign's channel (`email`, `none`).
    pub(crate) channel: Option<String>,
    pub(crate) customers: u64,
    pub(crate) messages_sent: u64,
    pub(crate) recommendations: u64,
    pub(crate) revenue: f64,
    pub(crate) orders: u64,
    pub(crate) avg_order_value: Option<f64>,
    pub(crate) mean_clv: Option<f64>,
    /// Mean P(purchase in the horizon).
    pub(crate) predicted_conversion: Option<f64>,
    #[serde(skip)]
    clv: (f64, u64),
    #[serde(skip)]
    conversion: (f64, u64),
}

impl SegmentStats {
    fn named(segment: &str) -> Self {
        SegmentStats {
            segment: segment.to_string(),
            label: super::classify::humanize(segment),
            ..Default::default()
        }
    }

    fn add(&mut self, row: &ProfileRow) {
        self.customers += 1;
        self.messages_sent += u64::from(row.sent);
        self.revenue += row.spend.unwrap_or(0.0);
        self.orders += row.orders.unwrap_or(0).max(0) as u64;
        if let Some(c) = row.clv {
            self.clv.0 += c;
            self.clv.1 += 1;
        }
        if let Some(p) = row.p_purchase {
            self.conversion.0 += p;
            self.conversion.1 += 1;
        }
    }

    fn finish(&mut self) {
        self.avg_order_value = (self.orders > 0).then(|| self.revenue / self.orders as f64);
        self.mean_clv = (self.clv.1 > 0).then(|| self.clv.0 / self.clv.1 as f64);
        self.predicted_conversion =
            (self.conversion.1 > 0).then(|| self.conversion.0 / self.conversion.1 as f64);
    }
}

/// Customers who moved from one segment to another.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Transition {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) customers: u64,
}

/// Total and mean CLV now and in the previous run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClvChange {
    pub(crate) previous_total: f64,
    pub(crate) current_total: f64,
    pub(crate) total_change: f64,
    pub(crate) previous_mean: Option<f64>,
    pub(crate) current_mean: Option<f64>,
    pub(crate) mean_change: Option<f64>,
}

/// What changed since the previous run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Changes {
    pub(crate) previous_run_id: String,
    pub(crate) previous_run_at: String,
    /// Customers in both runs.
    pub(crate) customers_compared: u64,
    /// Of those, customers whose segment changed.
    pub(crate) moved: u64,
    /// Largest first.
    pub(crate) transitions: Vec<Transition>,
    pub(crate) new_customers: u64,
    /// Customers in the previous run's profiles who are absent from this export (not customers
    /// a branch dropped: those stop deploy with an error).
    pub(crate) customers_gone_since_previous: u64,
    pub(crate) clv: ClvChange,
    /// The transitions in words: "12 customers moved from vip to at_risk".
    pub(crate) sentences: Vec<String>,
}

/// The files written.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Files {
    pub(crate) out_dir: String,
    pub(crate) segments: String,
    pub(crate) recommendations: String,
    pub(crate) summary: String,
    pub(crate) report: String,
    pub(crate) messages: Option<String>,
    pub(crate) message_files: u64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) run_id: String,
    pub(crate) generated_at: String,
    /// ISO 4217 code of every amount, when the workflow states it.
    pub(crate) currency: Option<String>,
    /// The dates the data covers.
    pub(crate) period: Option<overview::Period>,
    pub(crate) totals: SegmentStats,
    pub(crate) segments: Vec<SegmentStats>,
    pub(crate) messages_skipped: BTreeMap<String, u64>,
    pub(crate) changes: Option<Changes>,
    pub(crate) files: Files,
    pub(crate) pos: Option<Json>,
}

/// A profile as the next run sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    run_id: String,
    at: String,
    /// customer_id -> (segment, clv)
    profiles: BTreeMap<String, (String, Option<f64>)>,
}

/// What the node keeps in its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    version: u32,
    current: Snapshot,
    /// The run `current` was compared with (kept so a resumed run compares with it again).
    baseline: Option<Snapshot>,
}

/// One customer's profile fields deploy computes with.
struct ProfileRow {
    segment: usize,
    sent: bool,
    spend: Option<f64>,
    orders: Option<i64>,
    clv: Option<f64>,
    p_purchase: Option<f64>,
}

struct Written {
    summary: Summary,
    batches: Vec<Vec<u8>>,
}

/// The run's time: the trigger's firing time, else now.
fn run_time(ctx: &NodeContext) -> DateTime<FixedOffset> {
    ctx.trigger
        .get("time")
        .and_then(Json::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| chrono::Utc::now().fixed_offset())
}

/// Concatenates tables into one with exactly `columns` (cast; absent columns are null).
fn normalize(
    tables: &[RecordBatch],
    columns: &[(&str, DataType)],
) -> Result<RecordBatch, NodeError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, dt) in columns {
        let mut parts: Vec<ArrayRef> = Vec::new();
        for t in tables {
            parts.push(match t.column_by_name(name) {
                Some(a) if a.data_type() == dt => a.clone(),
                Some(a) => arrow_cast::cast(a, dt).map_err(|e| {
                    NodeError::msg(format!("column `{name}` cannot be read as {dt}: {e}"))
                })?,
                None => new_null_array(dt, t.num_rows()),
            });
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        arrays.push(if refs.is_empty() {
            new_null_array(dt, 0)
        } else {
            arrow_select::concat::concat(&refs)?
        });
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn text<'a>(t: &'a RecordBatch, name: &str) -> &'a StringArray {
    t.column_by_name(name)
        .expect("normalized")
        .as_string::<i32>()
}
fn floats<'a>(t: &'a RecordBatch, name: &str) -> &'a Float64Array {
    t.column_by_name(name)
        .expect("normalized")
        .as_primitive::<Float64Type>()
}
fn ints<'a>(t: &'a RecordBatch, name: &str) -> &'a Int64Array {
    t.column_by_name(name)
        .expect("normalized")
        .as_primitive::<Int64Type>()
}
fn bools<'a>(t: &'a RecordBatch, name: &str) -> &'a BooleanArray {
    t.column_by_name(name).expect("normalized").as_boolean()
}
fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}
fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i))
        .then(|| a.value(i))
        .filter(|v| v.is_finite())
}
fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Decimals written for a float column: cents for money, 4 for probabilities and scores, so
/// a file reads `695.81`, not `695.8100000000001`.
fn decimals(column: &str) -> i32 {
    const MONEY: [&str; 6] = ["spend", "value", "clv", "revenue", "amount", "price"];
    if MONEY.iter().any(|m| column.contains(m)) {
        2
    } else {
        4
    }
}

fn rounded(batch: &RecordBatch) -> Result<RecordBatch, NodeError> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(
            |(field, column)| match column.as_any().downcast_ref::<arrow_array::Float64Array>() {
                Some(values) => {
                    let scale = 10f64.powi(decimals(field.name()));
                    let rounded: arrow_array::Float64Array = values.unary(|v| {
                        if v.is_finite() {
                            (v * scale).round() / scale
                        } else {
                            v
                        }
                    });
                    Arc::new(rounded) as arrow_array::ArrayRef
                }
                None => column.clone(),
            },
        )
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn csv_bytes(batch: &RecordBatch) -> Result<Vec<u8>, NodeError> {
    let batch = &rounded(batch)?;
    let mut buf = Vec::new();
    // These files are opened in spreadsheets: formula-like text cells are neutralised.
    flow_engine::spreadsheet::write_csv_for_spreadsheets(batch, &mut buf)?;
    if batch.num_rows() == 0 {
        // The Arrow writer writes no header for an empty batch; a reader still wants one.
        let schema = batch.schema();
        let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        buf = format!("{}\n", header.join(",")).into_bytes();
    }
    Ok(buf)
}

/// A file name from an id: letters, digits and `._@+-` kept, anything else `_`.
fn file_stem(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s.truncate(120);
    s
}

fn write_outputs(
    cfg: &DeployConfig,
    ctx: &NodeContext,
    campaigns: &[RecordBatch],
    recommendations: &[RecordBatch],
) -> Result<Written, NodeError> {
    let now = run_time(ctx);
    let camp = recipients::unsendable_to_skipped(&normalize(campaigns, &CAMPAIGN_COLUMNS)?)?;
    let recs = normalize(recommendations, &RECOMMENDATION_COLUMNS)?;
    private_files::create_dirs(&cfg.out_dir)?;
    // Staging folders a killed deploy left behind hold partial messages: remove them first. The
    // lock is held until this deploy's own messages are in place.
    let (staging_lock, removed) = staging::lock_and_sweep(&cfg.out_dir)?;
    for dir in removed {
        tracing::info!("removed the leftover staging folder {}", dir.display());
    }

    // --- Profiles ------------------------------------------------------------------------------
    let ids = text(&camp, "customer_id");
    let segs = text(&camp, "segment");
    let send = bools(&camp, "send");
    let clv = floats(&camp, "clv");
    let (skip_reason, spend) = (text(&camp, "skip_reason"), floats(&camp, "total_spend"));
    let (orders, p_purchase) = (ints(&camp, "orders"), floats(&camp, "p_purchase"));
    let mut segment_index: HashMap<String, usize> = HashMap::new();
    // Looked up by `&str` first: only a new segment's name is copied.
    let mut segment_of = |seg: &str, stats: &mut Vec<SegmentStats>| match segment_index.get(seg) {
        Some(&s) => s,
        None => {
            stats.push(SegmentStats::named(seg));
            segment_index.insert(seg.to_string(), stats.len() - 1);
            stats.len() - 1
        }
    };
    let mut stats: Vec<SegmentStats> = Vec::new();
    let mut profiles: Vec<(usize, ProfileRow)> = Vec::new(); // (row, profile)
    let mut seen: rustc_hash::FxHashSet<&str> = Default::default();
    let mut duplicates = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..camp.num_rows() {
        let Some(id) = opt_str(ids, i) else { continue };
        if !seen.insert(id) {
            duplicates += 1;
            continue;
        }
        let s = segment_of(opt_str(segs, i).unwrap_or(""), &mut stats);
        let sent = send.is_valid(i) && send.value(i);
        if !sent {
            let reason = opt_str(skip_reason, i).unwrap_or("not sent");
            match skipped.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    skipped.insert(reason.to_string(), 1);
                }
            }
        }
        profiles.push((
            i,
            ProfileRow {
                segment: s,
                sent,
                spend: opt_f64(spend, i),
                orders: opt_i64(orders, i),
                clv: opt_f64(clv, i),
                p_purchase: opt_f64(p_purchase, i),
            },
        ));
    }
    let mut totals = SegmentStats::named("all");
    totals.label = "All customers".into();
    for (_, p) in &profiles {
        stats[p.segment].add(p);
        totals.add(p);
    }
    let rec_seg = text(&recs, "segment");
    for i in 0..recs.num_rows() {
        let s = segment_of(opt_str(rec_seg, i).unwrap_or(""), &mut stats);
        stats[s].recommendations += 1;
        totals.recommendations += 1;
    }
    for s in &mut stats {
        s.finish();
    }
    totals.finish();
    overview::label_and_offer(
        &mut stats,
        &camp,
        profiles.iter().map(|(i, p)| (*i, p.segment)),
    );
    let period = overview::period(&camp, profiles.iter().map(|(i, _)| *i));

    // --- Files ---------------------------------------------------------------------------------
    let out = &cfg.out_dir;
    let segments_path = out.join("segments.csv");
    let recommendations_path = out.join("recommendations.csv");
    let summary_path = out.join("summary.json");
    let report_path = out.join("report.html");

    let profile_rows: Vec<u32> = profiles.iter().map(|(i, _)| *i as u32).collect();
    let picked = arrow_select::take::take_record_batch(
        &camp,
        &arrow_array::UInt32Array::from(profile_rows),
    )?;
    let profile_table = RecordBatch::try_new(
        Arc::new(Schema::new(
            PROFILE_COLUMNS
                .iter()
                .map(|(out, from)| {
                    let f = picked
                        .schema()
                        .field_with_name(from)
                        .expect("normalized")
                        .clone();
                    f.with_name(*out)
                })
                .collect::<Vec<_>>(),
        )),
        PROFILE_COLUMNS
            .iter()
            .map(|(_, from)| picked.column_by_name(from).expect("normalized").clone())
            .collect(),
    )?;
    write_atomic(&segments_path, &csv_bytes(&profile_table)?)?;
    write_atomic(&recommendations_path, &csv_bytes(&recs)?)?;
    let message_files = match cfg.messages {
        Messages::None => 0,
        format => write_messages(out, format, ctx, &camp, &profiles, &now, &cfg.unsubscribe)?,
    };
    drop(staging_lock);

    // --- Changes since the previous run ----------------------------------------------------------
    let current = Snapshot {
        run_id: ctx.run_id.clone(),
        at: now.to_rfc3339(),
        profiles: profiles
            .iter()
            .map(|(i, p)| {
                (
                    ids.value(*i).to_string(),
                    (stats[p.segment].segment.clone(), p.clv),
                )
            })
            .collect(),
    };
    let key = lineage::state_key(ctx);
    let stored: Option<Stored> = match ctx.state.get(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes).ok(),
        None => None,
    };
    let baseline = match stored {
        Some(s) if s.current.run_id == ctx.run_id => s.baseline,
        Some(s) => Some(s.current),
        None => None,
    };
    let changes = baseline.as_ref().map(|b| compare(b, &current));

    let files = Files {
        out_dir: out.display().to_string(),
        segments: segments_path.display().to_string(),
        recommendations: recommendations_path.display().to_string(),
        summary: summary_path.display().to_string(),
        report: report_path.display().to_string(),
        messages: (cfg.messages != Messages::None)
            .then(|| out.join("messages").display().to_string()),
        message_files,
    };

    // --- POS batches (sorted by customer for stable batch contents across resumes) ---------------
    let (batches, pos_summary) = match &cfg.pos {
        Some(pos) => {
            let batches = pos_batches(ctx, &camp, &recs, &profiles, pos.batch_size)?;
            let info = json!({ "url": pos.shown_url(), "batches": batches.len(), "batch_size": pos.batch_size });
            (batches, Some(info))
        }
        None => (Vec::new(), None),
    };

    let mut summary = Summary {
        run_id: ctx.run_id.clone(),
        generated_at: now.to_rfc3339(),
        currency: cfg.currency.clone(),
        period,
        totals,
        segments: stats,
        messages_skipped: skipped,
        changes,
        files,
        pos: pos_summary,
    };
    if duplicates > 0 {
        summary
            .messages_skipped
            .insert("duplicate customer rows (ignored)".into(), duplicates);
    }
    let json_bytes = serde_json::to_vec_pretty(&summary)
        .map_err(|e| NodeError::msg(format!("summary.json: {e}")))?;
    write_atomic(&summary_path, &json_bytes)?;
    write_atomic(&report_path, report::render(&summary).as_bytes())?;

    // The profiles become the next run's baseline only once every file is in place.
    let stored = Stored {
        version: 1,
        current,
        baseline,
    };
    let bytes =
        serde_json::to_vec(&stored).map_err(|e| NodeError::msg(format!("profiles: {e}")))?;
    ctx.state.put(&key, &bytes)?;

    Ok(Written { summary, batches })
}

fn compare(before: &Snapshot, now: &Snapshot) -> Changes {
    let mut moves: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let (mut compared, mut moved, mut new_customers) = (0u64, 0u64, 0u64);
    for (id, (segment, _)) in &now.profiles {
        match before.profiles.get(id) {
            Some((old, _)) => {
                compared += 1;
                if old != segment {
                    moved += 1;
                    *moves.entry((old.as_str(), segment.as_str())).or_default() += 1;
                }
            }
            None => new_customers += 1,
        }
    }
    let lost = before
        .profiles
        .keys()
        .filter(|id| !now.profiles.contains_key(*id))
        .count() as u64;
    let mut transitions: Vec<Transition> = moves
        .into_iter()
        .map(|((from, to), customers)| Transition {
            from: from.to_string(),
            to: to.to_string(),
            customers,
        })
        .collect();
    transitions.sort_by_key(|t| std::cmp::Reverse(t.customers));
    let clv_stats = |s: &Snapshot| {
        let values: Vec<f64> = s.profiles.values().filter_map(|(_, c)| *c).collect();
        let total: f64 = values.iter().sum();
        (
            total,
            (!values.is_empty()).then(|| total / values.len() as f64),
        )
    };
    let (previous_total, previous_mean) = clv_stats(before);
    let (current_total, current_mean) = clv_stats(now);
    let sentences = transitions
        .iter()
        .map(|t| {
            format!(
                "{} customer{} moved from {} to {}",
                t.customers,
                if t.customers == 1 { "" } else { "s" },
                t.from,
                t.to
            )
        })
        .collect();
    Changes {
        previous_run_id: before.run_id.clone(),
        previous_run_at: before.at.clone(),
        customers_compared: compared,
        moved,
        transitions,
        new_customers,
        customers_gone_since_previous: lost,
        clv: ClvChange {
            previous_total,
            current_total,
            total_change: current_total - previous_total,
            previous_mean,
            current_mean,
            mean_change: current_mean.zip(previous_mean).map(|(c, p)| c - p),
        },
        sentences,
    }
}

/// Writes the messages of the customers with `send` into a fresh folder that replaces
/// `out/messages` as a whole. Returns the number of files.
fn write_messages(
    out: &Path,
    format: Messages,
    ctx: &NodeContext,
    camp: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    now: &DateTime<FixedOffset>,
    unsubscribe: &Unsubscribe,
) -> Result<u64, NodeError> {
    let staging = tempfile::Builder::new()
        .prefix(staging::PREFIX)
        .tempdir_in(out)
        .map_err(|e| NodeError::io(format!("cannot create a folder in {}", out.display()), e))?;
    let root = staging.path();
    private_files::set_dir_mode(root)?;
    let io =
        |p: &Path, e: std::io::Error| NodeError::io(format!("cannot write {}", p.display()), e);
    let ids = text(camp, "customer_id");
    let segs = text(camp, "segment");
    let emails = text(camp, "email");
    let names = text(camp, "customer_name");
    let subjects = text(camp, "subject");
    let bodies = text(camp, "body_html");
    let senders = text(camp, "sender");
    let offers = text(camp, "offer");
    let date = std::time::SystemTime::from(*now);
    let mut senders_parsed: HashMap<&str, lettre::message::Mailbox> = HashMap::new();
    let mut files = 0u64;
    let mut used: HashSet<PathBuf> = HashSet::new();
    let mut made_dirs: HashSet<PathBuf> = HashSet::new();
    // For csv: rows per segment, in order.
    let mut per_segment: BTreeMap<String, Vec<[String; 8]>> = BTreeMap::new();
    for (i, p) in profiles {
        if !p.sent {
            continue;
        }
        let i = *i;
        let id = ids.value(i);
        let segment = opt_str(segs, i).unwrap_or("");
        let sender = opt_str(senders, i).unwrap_or("shop@example.com");
        let from = match senders_parsed.get(sender) {
            Some(m) => m.clone(),
            None => {
                let m = message::sender_mailbox(sender).map_err(|e| {
                    NodeError::msg(format!("customer {id} (segment {segment}): {e}"))
                })?;
                senders_parsed.insert(sender, m.clone());
                m
            }
        };
        let key = ctx.idempotency_key(&format!("message/{segment}/{id}"));
        let message_id = format!(
            "<{}@{}>",
            message_id_local(&key),
            domain_of(from.email.as_ref())
        );
        let email = opt_str(emails, i).unwrap_or("");
        let name = opt_str(names, i).unwrap_or("");
        let subject = opt_str(subjects, i).unwrap_or("");
        let body = opt_str(bodies, i).unwrap_or("");
        match format {
            Messages::Eml => {
                let dir = root.join(file_stem(segment));
                if made_dirs.insert(dir.clone()) {
                    private_files::create_dirs(&dir)?;
                }
                let stem = file_stem(id);
                let mut path = dir.join(format!("{stem}.eml"));
                let mut n = 2;
                while !used.insert(path.clone()) {
                    path = dir.join(format!("{stem}-{n}.eml"));
                    n += 1;
                }
                let to = message::recipient_address(email).map_err(|e| {
                    NodeError::msg(format!("customer {id} (segment {segment}): {e}"))
                })?;
                let eml = message::eml(&Draft {
                    from: &from,
                    name,
                    to,
                    subject,
                    date,
                    message_id: &message_id,
                    body_html: body,
                    segment,
                    customer: id,
                    unsubscribe,
                })
                .map_err(|e| NodeError::msg(format!("customer {id} (segment {segment}): {e}")))?;
                private_files::write_new(&path, &eml)?;
                files += 1;
            }
            Messages::Csv => per_segment.entry(segment.to_string()).or_default().push([
                id.to_string(),
                email.to_string(),
                name.to_string(),
                sender.to_string(),
                subject.to_string(),
                body.to_string(),
                opt_str(offers, i).unwrap_or("").to_string(),
                message_id,
            ]),
            Messages::None => {}
        }
    }
    for (segment, rows) in per_segment {
        let columns: Vec<ArrayRef> = (0..MESSAGE_CSV_COLUMNS.len())
            .map(|c| {
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r[c].as_str()),
                )) as ArrayRef
            })
            .collect();
        let schema = Schema::new(
            MESSAGE_CSV_COLUMNS
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        let table = RecordBatch::try_new(Arc::new(schema), columns)?;
        let path = root.join(format!("{}.csv", file_stem(&segment)));
        private_files::write_new(&path, &csv_bytes(&table)?)?;
        files += 1;
    }
    // Swap the folder in: the old one is removed only once the new one is complete.
    let target = out.join("messages");
    let staged = staging.keep();
    if target.exists() {
        let old = out.join(format!("{}old-{}", staging::PREFIX, std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&target, &old).map_err(|e| io(&target, e))?;
        std::fs::rename(&staged, &target).map_err(|e| io(&target, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, &target).map_err(|e| io(&target, e))?;
    }
    Ok(files)
}

/// The idempotency key as the local part of a Message-ID (RFC 5322 `dot-atom-text`): characters
/// outside `atext` are %-escaped, so the key stays readable and distinct keys stay distinct.
fn message_id_local(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "!#$&'*+-/=?^_`{|}~".contains(c) {
            out.push(c);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn domain_of(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .unwrap_or("flow.localhost")
}

/// The POS update batches: one item per customer (profiles and customers with only
/// recommendations), sorted by customer id.
fn pos_batches(
    ctx: &NodeContext,
    camp: &RecordBatch,
    recs: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    batch_size: usize,
) -> Result<Vec<Vec<u8>>, NodeError> {
    let mut items: BTreeMap<String, serde_json::Map<String, Json>> = BTreeMap::new();
    let ids = text(camp, "customer_id");
    for (i, _) in profiles {
        let i = *i;
        let mut item = serde_json::Map::new();
        for (name, dt) in &CAMPAIGN_COLUMNS {
            if matches!(
                *name,
                "subject" | "body_html" | "sender" | "channel" | "skip_reason" | "send"
            ) {
                continue;
            }
            let col = camp.column_by_name(name).expect("normalized");
            let v = if col.is_null(i) {
                Json::Null
            } else {
                match dt {
                    DataType::Utf8 => Json::from(col.as_string::<i32>().value(i)),
                    DataType::Int64 => Json::from(col.as_primitive::<Int64Type>().value(i)),
                    DataType::Float64 => {
                        let v = col.as_primitive::<Float64Type>().value(i);
                        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
                    }
                    DataType::Boolean => Json::from(col.as_boolean().value(i)),
                    _ => Json::Null,
                }
            };
            item.insert((*name).to_string(), v);
        }
        item.insert(
            "message_sent".into(),
            Json::from(bools(camp, "send").is_valid(i) && bools(camp, "send").value(i)),
        );
        item.insert("recommendations".into(), Json::Array(Vec::new()));
        items.insert(ids.value(i).to_string(), item);
    }
    let (rid, rseg) = (text(recs, "customer_id"), text(recs, "segment"));
    let (rank, score) = (ints(recs, "rank"), floats(recs, "score"));
    let (pid, pname, cat, reason) = (
        text(recs, "product_id"),
        text(recs, "product_name"),
        text(recs, "category"),
        text(recs, "reason"),
    );
    for i in 0..recs.num_rows() {
        let Some(id) = opt_str(rid, i) else { continue };
        let item = items.entry(id.to_string()).or_insert_with(|| {
            let mut m = serde_json::Map::new();
            m.insert("customer_id".into(), Json::from(id));
            m.insert("segment".into(), json!(opt_str(rseg, i)));
            m.insert("recommendations".into(), Json::Array(Vec::new()));
            m
        });
        if let Some(Json::Array(list)) = item.get_mut("recommendations") {
            list.push(json!({
                "rank": opt_i64(rank, i),
                "product_id": opt_str(pid, i),
                "product_name": opt_str(pname, i),
                "category": opt_str(cat, i),
                "score": opt_f64(score, i),
                "reason": opt_str(reason, i),
            }));
        }
    }
    for item in items.values_mut() {
        if let Some(Json::Array(list)) = item.get_mut("recommendations") {
            list.sort_by_key(|r| r["rank"].as_i64().unwrap_or(i64::MAX));
        }
    }
    let items: Vec<Json> = items.into_values().map(Json::Object).collect();
    let total = items.len().div_ceil(batch_size);
    items
        .chunks(batch_size)
        .enumerate()
        .map(|(n, chunk)| {
            serde_json::to_vec(&json!({
                "run_id": ctx.run_id,
                "batch": n + 1,
                "batches": total,
                "customers": chunk,
            }))
            .map_err(|e| NodeError::msg(format!("POS batch: {e}")))
        })
        .collect()
}

/// The node's output: the summary as JSON, and the key metrics as metadata.
fn output(summary: &Summary, pos: Option<&PosReport>) -> Output {
    let t = &summary.totals;
    let mut value = json!({
        "out_dir": summary.files.out_dir,
        "files": summary.files,
        "customers": t.customers,
        "recommendations": t.recommendations,
        "messages_sent": t.messages_sent,
        "messages_skipped": summary.messages_skipped,
        "segments": summary.segments.iter().map(|s| json!({
            "segment": s.segment, "customers": s.customers, "messages_sent": s.messages_sent,
        })).collect::<Vec<_>>(),
        "changes": summary.changes,
    });
    if let Some(p) = pos {
        value["pos"] = json!(p);
    }
    let mut out = Output::json(value)
        .with_meta("customers", t.customers)
        .with_meta("segments", summary.segments.len() as u64)
        .with_meta("recommendations", t.recommendations)
        .with_meta("messages_sent", t.messages_sent)
        .with_meta("revenue", round2(t.revenue))
        .with_meta("out_dir", summary.files.out_dir.clone());
    if let Some(v) = t.avg_order_value {
        out = out.with_meta("avg_order_value", round2(v));
    }
    if let Some(v) = t.mean_clv {
        out = out.with_meta("mean_clv", round2(v));
    }
    if let Some(v) = t.predicted_conversion {
        out = out.with_meta("predicted_conversion", (v * 10_000.0).round() / 10_000.0);
    }
    match &summary.changes {
        Some(c) => {
            out = out
                .with_meta("previous_run", c.previous_run_id.clone())
                .with_meta("customers_moved", c.moved)
                .with_meta("transitions", c.sentences.clone())
                .with_meta("new_customers", c.new_customers)
                .with_meta(
                    "customers_gone_since_previous",
                    c.customers_gone_since_previous,
                )
                .with_meta("clv_total_change", round2(c.clv.total_change));
            if let Some(m) = c.clv.mean_change {
                out = out.with_meta("clv_mean_change", round2(m));
            }
        }
        None => out = out.with_meta("previous_run", Json::Null),
    }
    if let Some(p) = pos {
        out = out
            .with_meta("pos_batches", p.batches as u64)
            .with_meta("pos_batches_sent", p.sent as u64)
            .with_meta("pos_batches_already_sent", p.already_sent as u64);
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
