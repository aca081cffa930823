//! `segmentation.campaign`: a campaign message and a profile row per customer of a segment.
//!
//! Inputs (identified by columns, see [`super::retail_inputs`]): the customers of a segment
//! branch (`segment`) and, optionally, that branch's recommendations (`rank`; an absent or
//! skipped recommendation node just means no products).
//!
//! The `subject`, `body` and `action` templates (minijinja, strict: an unknown variable is an
//! error) are rendered per customer with:
//!
//! - `customer`: every column of the customer's row, plus `first_name` (the first word of
//!   `customer_name`; empty without a name). Null values print as nothing.
//! - `segment`: the customer's segment.
//! - `offer`: `type`, `value` and `label` (`"10% off"`, `"free shipping"`, `"early access"`,
//!   `"no offer"`, or the offer's own `label`).
//! - `products`: the recommendations in rank order, each with `name`, `category`, `reason`,
//!   `product_id`, `rank` and `score`.
//! - `params`: the run's parameters.
//!
//! The body is HTML and auto-escaped: `{{ p.name }}` of a product called `<b>Tea & Co</b>`
//! comes out as `&lt;b&gt;Tea &amp; Co&lt;/b&gt;` (use `|safe` only for trusted markup). The
//! subject and action are plain text; line breaks and other control characters in the subject
//! (from the template or from customer data) become spaces.
//!
//! Consent: a customer gets a message (`send = true`) only when `accepts_marketing` is true
//! and the email address is usable; otherwise `skip_reason` says why (`no marketing consent`,
//! `no email address`, `invalid email address`, `channel is none`). Every customer gets a row
//! either way, with the recommended products and the recommended action for sales staff.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use minijinja::value::{Enumerator, Object};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use serde::Deserialize;

use flow_engine::template_limits::checked_template;

use super::retail_inputs::{Sorted, TableKind, check_declared_inputs};
use super::{
    FastHash, TextColumn, bool_column, date_column, day_string, f64_column, missing_column,
    text_column,
};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

const NODE: &str = "segmentation.campaign";

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 29] = [
    "customer_id",
    "segment",
    "segment_label",
    "email",
    "customer_name",
    "accepts_marketing",
    "r_score",
    "f_score",
    "m_score",
    "rfm",
    "rfm_segment",
    "clv",
    "p_alive",
    "p_purchase",
    "orders",
    "total_spend",
    "avg_order_value",
    "first_purchase",
    "last_purchase",
    "days_since_last",
    "recommended_products",
    "recommended_action",
    "channel",
    "offer",
    "send",
    "skip_reason",
    "subject",
    "body_html",
    "sender",
];

/// Customer columns copied to the output, with their output type (the label and dates let a
/// report name the segment and the analysed period).
const PROFILE_COLUMNS: [(&str, DataType); 18] = [
    ("segment_label", DataType::Utf8),
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
    ("first_purchase", DataType::Date32),
    ("last_purchase", DataType::Date32),
    ("days_since_last", DataType::Int64),
];

/// Template variables besides minijinja's own globals.
const TEMPLATE_ROOTS: [&str; 5] = ["customer", "segment", "offer", "products", "params"];
const BUILTIN_GLOBALS: [&str; 7] = [
    "range",
    "dict",
    "debug",
    "namespace",
    "cycler",
    "joiner",
    "lipsum",
];
const OFFER_FIELDS: [&str; 3] = ["type", "value", "label"];

#[derive(Debug)]
pub struct Campaign;

/// The offer of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Offer {
    pub(crate) kind: String,
    pub(crate) value: Option<f64>,
    pub(crate) label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferSpec {
    #[serde(rename = "type")]
    kind: String,
    value: Option<f64>,
    label: Option<String>,
}

impl Offer {
    fn none() -> Self {
        Offer {
            kind: "none".into(),
            value: None,
            label: "no offer".into(),
        }
    }

    fn from_params(params: &Params) -> Result<Self, ParamError> {
        let Some(spec) = params.parse::<OfferSpec>("offer").map_err(|e| {
            ParamError::new(
                "offer",
                format!(
                    "{}; write it as {{ type: discount|free_shipping|early_access|none, value: 10 }}",
                    e.message
                ),
            )
        })?
        else {
            return Ok(Offer::none());
        };
        let bad = |msg: String| ParamError::new("offer", msg);
        let default_label = match (spec.kind.as_str(), spec.value) {
            ("discount", Some(v)) if v > 0.0 && v <= 100.0 => format!("{}% off", number(v)),
            ("discount", Some(v)) => {
                return Err(bad(format!(
                    "a discount `value` is a percentage above 0 and at most 100, got {v}"
                )));
            }
            ("discount", None) => {
                return Err(bad(
                    "a discount needs a `value`, the percentage off (e.g. value: 10)".into(),
                ));
            }
            ("free_shipping" | "early_access" | "none", Some(_)) => {
                return Err(bad(format!(
                    "`value` applies to discounts only, not to `{}`",
                    spec.kind
                )));
            }
            ("free_shipping", None) => "free shipping".to_string(),
            ("early_access", None) => "early access".to_string(),
            ("none", None) => "no offer".to_string(),
            (other, _) => {
                return Err(bad(format!(
                    "`type` must be discount, free_shipping, early_access or none, got `{other}`"
                )));
            }
        };
        Ok(Offer {
            label: spec.label.unwrap_or(default_label),
            kind: spec.kind,
            value: spec.value,
        })
    }

    fn to_value(&self) -> Value {
        context! { type => self.kind, value => self.value, label => self.label }
    }
}

/// `10` for 10.0, `12.5` otherwise.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct CampaignConfig {
    pub(crate) offer: Offer,
    pub(crate) email: bool,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) action: Option<String>,
    pub(crate) sender: String,
}

const SUBJECT: &str = "subject.txt";
const BODY: &str = "body.html";
const ACTION: &str = "action.txt";

impl CampaignConfig {
    /// The template environment: strict undefined, HTML escaping for the body, nulls print
    /// as nothing.
    fn environment(&self) -> Result<Environment<'_>, (&'static str, minijinja::Error)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.set_keep_trailing_newline(true);
        if self.email {
            checked_template(&self.subject)
                .and_then(|t| env.add_template(SUBJECT, t))
                .map_err(|e| ("subject", e))?;
            checked_template(&self.body)
                .and_then(|t| env.add_template(BODY, t))
                .map_err(|e| ("body", e))?;
        }
        if let Some(action) = &self.action {
            checked_template(action)
                .and_then(|t| env.add_template(ACTION, t))
                .map_err(|e| ("action", e))?;
        }
        Ok(env)
    }
}

#[cfg(test)]
impl CampaignConfig {
    /// An email campaign with a 10% discount.
    pub(crate) fn for_tests(subject: &str, body: &str, action: Option<&str>) -> Self {
        CampaignConfig {
            offer: Offer {
                kind: "discount".into(),
                value: Some(10.0),
                label: "10% off".into(),
            },
            email: true,
            subject: subject.into(),
            body: body.into(),
            action: action.map(str::to_string),
            sender: "shop@example.com".into(),
        }
    }
}

/// The first word of a name.
fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or("")
}

/// Whether an address is one a message can be sent to: it parses as an RFC 5322 address
/// (the same check deploy makes before writing the message).
fn valid_email(email: &str) -> bool {
    email.parse::<lettre::Address>().is_ok()
}

/// A rendered subject on one line: line breaks, tabs and other control characters (and the
/// Unicode line and paragraph separators) become single spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl NodeType for Campaign {
    fn name(&self) -> &'static str {
        NODE
    }
    fn summary(&self) -> &'static str {
        "Per-customer campaign messages for a segment (offer, subject and HTML body templates, \
         marketing consent) and the profile row with recommended products and action."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::with_default(
                "offer",
                ParamType::Map,
                "{ type: none }",
                "{ type: discount|free_shipping|early_access|none, value: PERCENT, label: TEXT }",
            ),
            ParamSpec::with_default("channel", ParamType::String, "email", "email or none"),
            ParamSpec::optional(
                "subject",
                ParamType::Template,
                "subject line template, per customer (required for email)",
            ),
            ParamSpec::optional(
                "body",
                ParamType::Template,
                "HTML body template, per customer, auto-escaped (required for email)",
            ),
            ParamSpec::optional(
                "action",
                ParamType::Template,
                "recommended action for sales staff, per customer",
            ),
            ParamSpec::with_default(
                "sender",
                ParamType::String,
                "shop@example.com",
                "the From address of the messages",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let offer = Offer::from_params(params).unwrap_or_else(|e| {
            errors.push(e);
            Offer::none()
        });
        let email = match params.str_or("channel", "email") {
            Ok("email") => true,
            Ok("none") => false,
            Ok(other) => {
                errors.push(ParamError::new(
                    "channel",
                    format!("must be `email` or `none`, got `{other}`"),
                ));
                false
            }
            Err(e) => {
                errors.push(e);
                false
            }
        };
        let mut template = |name: &str, required: bool| match params.opt_str(name) {
            Ok(Some(t)) => Some(t.to_string()),
            Ok(None) => {
                if required {
                    errors.push(ParamError::new(name, "is required when `channel` is email"));
                }
                None
            }
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let subject = template("subject", email).unwrap_or_default();
        let body = template("body", email).unwrap_or_default();
        let action = template("action", false);
        let sender = match params.str_or("sender", "shop@example.com") {
            Ok(s) if s.trim().parse::<lettre::message::Mailbox>().is_ok() => s.to_string(),
            Ok(s) => {
                errors.push(ParamError::new(
                    "sender",
                    format!("`{s}` is not an email address (write shop@example.com or Shop <shop@example.com>)"),
                ));
                String::new()
            }
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        let cfg = CampaignConfig {
            offer,
            email,
            subject,
            body,
            action,
            sender,
        };
        check_templates(&cfg, cx, &mut errors);
        check_declared_inputs(cx, NODE, &[TableKind::Customers], &mut errors);
        if errors.is_empty() {
            Ok(Arc::new(Configured { cfg: Arc::new(cfg) }))
        } else {
            Err(errors)
        }
    }
}

/// Syntax errors, and variables no customer can have, at validation time.
fn check_templates(cfg: &CampaignConfig, cx: &ConfigureCx<'_>, errors: &mut Vec<ParamError>) {
    let env = match cfg.environment() {
        Ok(env) => env,
        Err((param, e)) => {
            errors.push(ParamError::new(param, template_error(&e)));
            return;
        }
    };
    let known = cx.known_columns();
    let mut names = Vec::new();
    if cfg.email {
        names.push(("subject", SUBJECT));
        names.push(("body", BODY));
    }
    if cfg.action.is_some() {
        names.push(("action", ACTION));
    }
    for (param, name) in names {
        let Ok(template) = env.get_template(name) else {
            continue;
        };
        let mut problems = BTreeSet::new();
        for var in template.undeclared_variables(true) {
            let mut parts = var.splitn(3, '.');
            let root = parts.next().unwrap_or("");
            let field = parts.next();
            if BUILTIN_GLOBALS.contains(&root) {
                continue;
            }
            if !TEMPLATE_ROOTS.contains(&root) {
                problems.insert(format!(
                    "unknown variable `{root}` (available: {})",
                    TEMPLATE_ROOTS.join(", ")
                ));
                continue;
            }
            match (root, field) {
                ("offer", Some(f)) if !OFFER_FIELDS.contains(&f) => {
                    problems.insert(format!(
                        "`offer` has no field `{f}` (it has {})",
                        OFFER_FIELDS.join(", ")
                    ));
                }
                ("customer", Some(f))
                    if f != "first_name"
                        && known.as_ref().is_some_and(|cols| !cols.contains(&f)) =>
                {
                    problems.insert(format!(
                        "`customer` has no field `{f}`: the input has no such column"
                    ));
                }
                _ => {}
            }
        }
        for p in problems {
            errors.push(ParamError::new(param, p));
        }
    }
}

/// A minijinja error with its location and detail, on one line.
fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(detail) = e.detail()
        && !msg.contains(detail)
    {
        msg.push_str(&format!(": {detail}"));
    }
    msg
}

struct Configured {
    cfg: Arc<CampaignConfig>,
}

#[async_trait]
impl Node for Configured {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(OUTPUT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let sorted = Sorted::new(&inputs);
        let customers: Vec<RecordBatch> = sorted
            .all(TableKind::Customers)
            .into_iter()
            .cloned()
            .collect();
        // An empty segment (the node's rule let it run anyway) gets no messages.
        let customers = if customers.is_empty() {
            vec![super::classify::no_customers()]
        } else {
            customers
        };
        let recommendations: Vec<RecordBatch> = sorted
            .all(TableKind::Recommendations)
            .into_iter()
            .cloned()
            .collect();
        let cfg = self.cfg.clone();
        let params = Value::from_serialize(&ctx.params);
        flow_engine::node::spawn_blocking(move || {
            campaign(&cfg, &customers, &recommendations, params)
        })
        .await
        .map_err(|e| NodeError::msg(format!("campaign rendering stopped: {e}")))?
    }
}

/// A typed view of one column, for template values.
enum Cell {
    Text(TextColumn),
    Float(Float64Array),
    Int(Int64Array),
    Bool(BooleanArray),
    Date(Date32Array),
}

impl Cell {
    fn read(batch: &RecordBatch, name: &str) -> Result<Option<Cell>, NodeError> {
        let Some(array) = batch.column_by_name(name) else {
            return Ok(None);
        };
        Ok(Some(match array.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                Cell::Float(f64_column(batch, name)?.expect("present"))
            }
            dt if dt.is_integer() => {
                let cast = arrow_cast::cast(array, &DataType::Int64)?;
                Cell::Int(cast.as_primitive::<Int64Type>().clone())
            }
            DataType::Boolean => Cell::Bool(bool_column(batch, name)?.expect("present")),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                Cell::Date(date_column(batch, name)?.expect("present"))
            }
            _ => match text_column(batch, name) {
                Ok(Some(t)) => Cell::Text(t),
                _ => return Ok(None),
            },
        }))
    }

    fn value(&self, i: usize) -> Value {
        match self {
            Cell::Text(c) => c.get(i).map_or(Value::from(()), Value::from),
            Cell::Float(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Int(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Bool(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Date(a) => nullable(a, i, |a| Value::from(day_string(a.value(i)))),
        }
    }
}

fn nullable<A: Array>(a: &A, i: usize, f: impl FnOnce(&A) -> Value) -> Value {
    if a.is_null(i) { Value::from(()) } else { f(a) }
}

/// The columns of a customers table, shared by the per-row template objects.
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    cells: Vec<Cell>,
    name_col: Option<usize>,
}

impl Columns {
    fn new(batch: &RecordBatch) -> Result<Self, NodeError> {
        let mut names = Vec::new();
        let mut cells = Vec::new();
        for field in batch.schema().fields() {
            if let Some(cell) = Cell::read(batch, field.name())? {
                names.push(field.name().clone());
                cells.push(cell);
            }
        }
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Ok(Columns {
            name_col: index.get("customer_name").copied(),
            names,
            index,
            cells,
        })
    }
}

/// `customer` in templates: one row, read on demand.
struct CustomerRow {
    columns: Arc<Columns>,
    row: usize,
}

impl std::fmt::Debug for CustomerRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, cell) in self.columns.names.iter().zip(&self.columns.cells) {
            map.entry(name, &cell.value(self.row));
        }
        map.finish()
    }
}

impl Object for CustomerRow {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if key == "first_name" && !self.columns.index.contains_key("first_name") {
            let name = match self.columns.name_col {
                Some(c) => self.columns.cells[c].value(self.row),
                None => Value::from(()),
            };
            return Some(Value::from(name.as_str().map(first_name).unwrap_or("")));
        }
        let c = *self.columns.index.get(key)?;
        Some(self.columns.cells[c].value(self.row))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self
            .columns
            .names
            .iter()
            .map(|n| Value::from(n.as_str()))
            .collect();
        if !self.columns.index.contains_key("first_name") {
            keys.push(Value::from("first_name"));
        }
        Enumerator::Values(keys)
    }
}

/// One recommendation of a customer.
struct Rec<'a> {
    rank: i64,
    product_id: &'a str,
    name: &'a str,
    category: Option<&'a str>,
    reason: Option<&'a str>,
    score: Option<f64>,
}

/// Renders the messages and builds the output table.
pub(crate) fn campaign(
    cfg: &CampaignConfig,
    customers: &[RecordBatch],
    recommendations: &[RecordBatch],
    params: Value,
) -> Result<Output, NodeError> {
    let env = cfg
        .environment()
        .map_err(|(param, e)| NodeError::msg(format!("`{param}`: {}", template_error(&e))))?;
    let subject_t = cfg.email.then(|| env.get_template(SUBJECT)).transpose();
    let body_t = cfg.email.then(|| env.get_template(BODY)).transpose();
    let action_t = cfg
        .action
        .as_ref()
        .map(|_| env.get_template(ACTION))
        .transpose();
    let (subject_t, body_t, action_t) = match (subject_t, body_t, action_t) {
        (Ok(s), Ok(b), Ok(a)) => (s, b, a),
        _ => return Err(NodeError::msg("campaign templates could not be loaded")),
    };
    let offer = cfg.offer.to_value();

    // Recommendations by customer, in rank order.
    struct RecColumns {
        customer: TextColumn,
        rank: Float64Array,
        product_id: TextColumn,
        name: Option<TextColumn>,
        category: Option<TextColumn>,
        reason: Option<TextColumn>,
        score: Option<Float64Array>,
        rows: usize,
    }
    let mut rec_columns = Vec::new();
    for batch in recommendations {
        let need = |name: &str| missing_column(batch, name, "a recommendations column");
        rec_columns.push(RecColumns {
            customer: text_column(batch, "customer_id")?.ok_or_else(|| need("customer_id"))?,
            rank: f64_column(batch, "rank")?.ok_or_else(|| need("rank"))?,
            product_id: text_column(batch, "product_id")?.ok_or_else(|| need("product_id"))?,
            name: text_column(batch, "product_name")?,
            category: text_column(batch, "category")?,
            reason: text_column(batch, "reason")?,
            score: f64_column(batch, "score")?,
            rows: batch.num_rows(),
        });
    }
    let mut recs: HashMap<&str, Vec<Rec<'_>>, FastHash> = HashMap::default();
    for cols in &rec_columns {
        for i in 0..cols.rows {
            let (Some(c), Some(p)) = (cols.customer.get(i), cols.product_id.get(i)) else {
                continue;
            };
            recs.entry(c).or_default().push(Rec {
                rank: if cols.rank.is_valid(i) {
                    cols.rank.value(i) as i64
                } else {
                    i64::MAX
                },
                product_id: p,
                name: cols.name.as_ref().and_then(|n| n.get(i)).unwrap_or(p),
                category: cols.category.as_ref().and_then(|n| n.get(i)),
                reason: cols.reason.as_ref().and_then(|n| n.get(i)),
                score: cols
                    .score
                    .as_ref()
                    .filter(|s| s.is_valid(i))
                    .map(|s| s.value(i)),
            });
        }
    }
    for list in recs.values_mut() {
        list.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.product_id.cmp(b.product_id)));
    }

    let mut parts = Vec::new();
    let (mut sent, mut no_consent, mut no_email, mut bad_email, mut with_products) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut matched_recs = 0usize;
    let mut total = 0usize;
    for batch in customers {
        let n = batch.num_rows();
        total += n;
        let ids = text_column(batch, "customer_id")?
            .ok_or_else(|| missing_column(batch, "customer_id", "the customer key"))?;
        let segments = text_column(batch, "segment")?
            .ok_or_else(|| missing_column(batch, "segment", "the customer's segment"))?;
        let emails = text_column(batch, "email")?;
        let consent = bool_column(batch, "accepts_marketing")?;
        let columns = Arc::new(Columns::new(batch)?);

        let mut products_col = StringBuilder::new();
        let mut action_col = StringBuilder::new();
        let mut send_col = BooleanBuilder::with_capacity(n);
        let mut skip_col = StringBuilder::new();
        let mut subject_col = StringBuilder::new();
        let mut body_col = StringBuilder::new();
        for i in 0..n {
            let id = ids.get(i).unwrap_or("");
            let segment = segments.get(i).unwrap_or("");
            let mine: &[Rec<'_>] = recs.get(id).map_or(&[], |v| v.as_slice());
            if !mine.is_empty() {
                with_products += 1;
                matched_recs += mine.len();
            }
            let names: Vec<&str> = mine.iter().map(|r| r.name).collect();
            products_col.append_value(names.join("; "));

            let email = emails.as_ref().and_then(|e| e.get(i)).map(str::trim);
            let skip = if !cfg.email {
                Some("channel is none")
            } else if !consent
                .as_ref()
                .is_some_and(|c| c.is_valid(i) && c.value(i))
            {
                no_consent += 1;
                Some("no marketing consent")
            } else if email.is_none_or(str::is_empty) {
                no_email += 1;
                Some("no email address")
            } else if !email.is_some_and(valid_email) {
                bad_email += 1;
                Some("invalid email address")
            } else {
                None
            };
            let needs_context = skip.is_none() || action_t.is_some();
            let vars = needs_context.then(|| {
                let products: Vec<Value> = mine
                    .iter()
                    .map(|r| {
                        context! {
                            name => r.name,
                            category => r.category,
                            reason => r.reason,
                            product_id => r.product_id,
                            rank => r.rank,
                            score => r.score,
                        }
                    })
                    .collect();
                context! {
                    customer => Value::from_object(CustomerRow { columns: columns.clone(), row: i }),
                    segment => segment,
                    offer => offer.clone(),
                    products => products,
                    params => params.clone(),
                }
            });
            let render = |t: &minijinja::Template<'_, '_>, what: &str| {
                t.render(vars.as_ref().expect("context built"))
                    .map_err(|e| {
                        NodeError::msg(format!(
                            "rendering `{what}` for customer {id} (segment {segment}): {}",
                            template_error(&e)
                        ))
                    })
            };
            match &action_t {
                Some(t) => action_col.append_value(render(t, "action")?.trim()),
                None => action_col.append_null(),
            }
            match (skip, &subject_t, &body_t) {
                (None, Some(s), Some(b)) => {
                    subject_col.append_value(one_line(&render(s, "subject")?));
                    body_col.append_value(render(b, "body")?);
                    send_col.append_value(true);
                    skip_col.append_null();
                    sent += 1;
                }
                (skip, _, _) => {
                    subject_col.append_null();
                    body_col.append_null();
                    send_col.append_value(false);
                    skip_col.append_value(skip.unwrap_or("channel is none"));
                }
            }
        }

        let mut fields = vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("segment", DataType::Utf8, true),
        ];
        let mut arrays: Vec<ArrayRef> = vec![
            arrow_cast::cast(
                batch.column_by_name("customer_id").expect("checked"),
                &DataType::Utf8,
            )?,
            arrow_cast::cast(
                batch.column_by_name("segment").expect("checked"),
                &DataType::Utf8,
            )?,
        ];
        for (name, dt) in &PROFILE_COLUMNS {
            fields.push(Field::new(*name, dt.clone(), true));
            arrays.push(profile_column(batch, name, dt)?);
        }
        let constant =
            |v: &str| -> ArrayRef { Arc::new(arrow_array::StringArray::from(vec![v; n])) };
        let mut tail: Vec<(&str, DataType, ArrayRef)> = vec![
            (
                "recommended_products",
                DataType::Utf8,
                Arc::new(products_col.finish()),
            ),
            (
                "recommended_action",
                DataType::Utf8,
                Arc::new(action_col.finish()),
            ),
            (
                "channel",
                DataType::Utf8,
                constant(if cfg.email { "email" } else { "none" }),
            ),
            ("offer", DataType::Utf8, constant(&cfg.offer.label)),
            ("send", DataType::Boolean, Arc::new(send_col.finish())),
            ("skip_reason", DataType::Utf8, Arc::new(skip_col.finish())),
            ("subject", DataType::Utf8, Arc::new(subject_col.finish())),
            ("body_html", DataType::Utf8, Arc::new(body_col.finish())),
        ];
        tail.push(("sender", DataType::Utf8, constant(&cfg.sender)));
        for (name, dt, array) in tail {
            fields.push(Field::new(name, dt, true));
            arrays.push(array);
        }
        parts.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?);
    }
    let schema = parts[0].schema();
    let table = arrow_select::concat::concat_batches(&schema, &parts)?;
    let total_recs: usize = rec_columns.iter().map(|c| c.rows).sum();
    Ok(Output::table(table)
        .with_meta("customers", total as u64)
        .with_meta("messages", sent)
        .with_meta("skipped_no_consent", no_consent)
        .with_meta("skipped_no_email", no_email)
        .with_meta("skipped_invalid_email", bad_email)
        .with_meta("customers_with_products", with_products)
        .with_meta(
            "recommendations_unmatched",
            (total_recs - matched_recs) as u64,
        )
        .with_meta("offer", cfg.offer.label.clone()))
}

/// A customer column converted to `dt`, or nulls when absent.
fn profile_column(batch: &RecordBatch, name: &str, dt: &DataType) -> Result<ArrayRef, NodeError> {
    let n = batch.num_rows();
    let Some(array) = batch.column_by_name(name) else {
        return Ok(arrow_array::new_null_array(dt, n));
    };
    Ok(match dt {
        DataType::Boolean => Arc::new(bool_column(batch, name)?.expect("present")),
        DataType::Float64 => Arc::new(f64_column(batch, name)?.expect("present")),
        DataType::Int64 if array.data_type().is_integer() => arrow_cast::cast(array, dt)?,
        DataType::Int64 => {
            let floats = f64_column(batch, name)?.expect("present");
            Arc::new(Int64Array::from_iter(
                floats.iter().map(|v| v.map(|v| v.round() as i64)),
            ))
        }
        _ => arrow_cast::cast(array, dt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;
    use flow_engine::data::{Body, Data};
    use flow_engine::node::Input;

    fn params(yaml: &str) -> Params {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        Params::new(value.as_object().unwrap().clone(), "/")
    }

    fn configure(
        yaml: &str,
        columns: &[Option<Vec<String>>],
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let cx = ConfigureCx {
            node_id: "campaign",
            kind: NodeKind::Action,
            workflow_dir: std::path::Path::new("/"),
            input_columns: columns,
        };
        Campaign.configure(&params(yaml), &cx)
    }

    fn customers() -> RecordBatch {
        let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        RecordBatch::try_from_iter(vec![
            (
                "customer_id",
                text(vec![
                    Some("C1"),
                    Some("C2"),
                    Some("C3"),
                    Some("C4"),
                    Some("C5"),
                ]),
            ),
            (
                "email",
                text(vec![
                    Some("ada@example.com"),
                    Some("bob@example.com"),
                    None,
                    Some("d@example.com"),
                    Some("not an address"),
                ]),
            ),
            (
                "customer_name",
                text(vec![
                    Some("Ada Lovelace"),
                    Some("Bob"),
                    Some("Cy"),
                    None,
                    Some("Eve"),
                ]),
            ),
            (
                "accepts_marketing",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    Some(true),
                    None,
                    Some(true),
                ])) as ArrayRef,
            ),
            // Scores as floats (as a CSV read may give them) become Int64.
            (
                "r_score",
                Arc::new(Float64Array::from(vec![5.0, 1.0, 3.0, 2.0, 4.0])) as ArrayRef,
            ),
            (
                "clv",
                Arc::new(Float64Array::from(vec![
                    Some(123.5),
                    None,
                    Some(1.0),
                    Some(2.0),
                    Some(3.0),
                ])) as ArrayRef,
            ),
            ("segment", text(vec![Some("vip"); 5])),
        ])
        .unwrap()
    }

    fn recommendations() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            (
                "customer_id",
                Arc::new(StringArray::from(vec!["C1", "C1", "C2"])) as ArrayRef,
            ),
            (
                "segment",
                Arc::new(StringArray::from(vec!["vip", "vip", "vip"])),
            ),
            ("rank", Arc::new(Int64Array::from(vec![2, 1, 1]))),
            (
                "product_id",
                Arc::new(StringArray::from(vec!["P6", "P1", "P4"])),
            ),
            (
                "product_name",
                Arc::new(StringArray::from(vec!["Cake", "<b>Tea & Co</b>", "Mug"])),
            ),
            (
                "category",
                Arc::new(StringArray::from(vec!["food", "drinks", "kitchen"])),
            ),
            (
                "reason",
                Arc::new(StringArray::from(vec![
                    "often bought with Tea",
                    "trending in drinks",
                    "x",
                ])),
            ),
        ])
        .unwrap()
    }

    const YAML: &str = r#"
offer: { type: discount, value: 10 }
subject: "{{ customer.first_name }}, {{ offer.label }} for you\n  in {{ segment }}"
body: "<p>Hi {{ customer.first_name }} ({{ customer.clv }})</p>{% for p in products %}<li>{{ p.rank }}. {{ p.name }} &ndash; {{ p.reason }}</li>{% endfor %}"
action: "Call {{ customer.customer_name }} about {{ products|length }} items"
"#;

    fn run(node: &Arc<dyn Node>, tables: Vec<RecordBatch>) -> Result<Output, NodeError> {
        let inputs = Inputs(
            tables
                .into_iter()
                .enumerate()
                .map(|(i, t)| Input {
                    from: format!("in{i}"),
                    case: None,
                    data: Data::Table(t),
                })
                .collect(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(node.run(flow_engine::testing::context(), inputs))
    }

    fn table(out: &Output) -> &RecordBatch {
        match &out.body {
            Body::Data(Data::Table(t)) => t,
            _ => panic!("not a table"),
        }
    }

    fn texts(t: &RecordBatch, name: &str) -> Vec<Option<String>> {
        t.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn renders_per_customer_with_html_escaping_and_consent_rules() {
        let node = configure(YAML, &[]).unwrap();
        let out = run(&node, vec![recommendations(), customers()]).unwrap();
        let t = table(&out);
        let names: Vec<String> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, OUTPUT_COLUMNS);
        assert_eq!(t.num_rows(), 5);

        let send: Vec<bool> = t
            .column_by_name("send")
            .unwrap()
            .as_boolean()
            .iter()
            .map(|v| v.unwrap())
            .collect();
        assert_eq!(send, [true, false, false, false, false]);
        let skip = texts(t, "skip_reason");
        assert_eq!(
            skip,
            [
                None,
                Some("no marketing consent".into()),
                Some("no email address".into()),
                Some("no marketing consent".into()), // unknown consent is not consent
                Some("invalid email address".into()),
            ]
        );
        let subject = texts(t, "subject");
        assert_eq!(subject[0].as_deref(), Some("Ada, 10% off for you in vip"));
        assert!(subject[1..].iter().all(Option::is_none));
        let body = texts(t, "body_html")[0].clone().unwrap();
        assert_eq!(
            body,
            "<p>Hi Ada (123.5)</p><li>1. &lt;b&gt;Tea &amp; Co&lt;&#x2f;b&gt; &ndash; trending in drinks</li>\
             <li>2. Cake &ndash; often bought with Tea</li>"
        );
        assert!(texts(t, "body_html")[1..].iter().all(Option::is_none));
        // The profile columns are plain text, and every customer gets the action.
        assert_eq!(
            texts(t, "recommended_products"),
            [
                Some("<b>Tea & Co</b>; Cake".into()),
                Some("Mug".into()),
                Some(String::new()),
                Some(String::new()),
                Some(String::new())
            ]
        );
        let action = texts(t, "recommended_action");
        assert_eq!(
            action[0].as_deref(),
            Some("Call Ada Lovelace about 2 items")
        );
        assert_eq!(action[1].as_deref(), Some("Call Bob about 1 items"));
        assert_eq!(
            action[3].as_deref(),
            Some("Call  about 0 items"),
            "a null prints as nothing"
        );
        assert_eq!(texts(t, "offer")[0].as_deref(), Some("10% off"));
        assert_eq!(texts(t, "sender")[0].as_deref(), Some("shop@example.com"));
        let r = t
            .column_by_name("r_score")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(r.value(0), 5);
        assert!(
            t.column_by_name("p_alive").unwrap().is_null(0),
            "absent columns are null"
        );
        assert_eq!(out.meta["messages"], 1);
        assert_eq!(out.meta["skipped_no_consent"], 2);

        // Without recommendations (the recommend node was skipped) everyone still gets a row.
        let out = run(&node, vec![customers()]).unwrap();
        assert_eq!(table(&out).num_rows(), 5);
        assert_eq!(
            texts(table(&out), "body_html")[0].as_deref(),
            Some("<p>Hi Ada (123.5)</p>")
        );
    }

    #[test]
    fn channel_none_sends_nothing_and_keeps_profiles() {
        let node = configure(
            "channel: none\naction: 'Say hi to {{ customer.first_name }}'\n",
            &[],
        )
        .unwrap();
        let out = run(&node, vec![customers()]).unwrap();
        let t = table(&out);
        assert_eq!(
            t.column_by_name("send").unwrap().as_boolean().true_count(),
            0
        );
        assert_eq!(
            texts(t, "skip_reason")[0].as_deref(),
            Some("channel is none")
        );
        assert_eq!(
            texts(t, "recommended_action")[0].as_deref(),
            Some("Say hi to Ada")
        );
        assert_eq!(texts(t, "offer")[0].as_deref(), Some("no offer"));
    }

    #[test]
    fn template_and_offer_mistakes_fail_validation() {
        let messages = |yaml: &str, cols: &[Option<Vec<String>>]| -> Vec<String> {
            configure(yaml, cols)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        flow_engine::source::path_to_string(&e.path),
                        e.message
                    )
                })
                .collect()
        };
        let m = messages("subject: hi\nbody: '{% for p in products %}'\n", &[]);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("body: ") && m[0].contains("syntax error"),
            "{m:?}"
        );
        let m = messages(
            "subject: '{{ custmer.name }}'\nbody: '{{ offer.percent }}'\n",
            &[],
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].contains("subject: unknown variable `custmer`"),
            "{m:?}"
        );
        assert!(
            m[1].contains("body: `offer` has no field `percent`"),
            "{m:?}"
        );
        let m = messages("subject: hi\n", &[]);
        assert_eq!(m, ["body: is required when `channel` is email"]);
        let cols = [Some(vec![
            "customer_id".to_string(),
            "segment".to_string(),
            "email".to_string(),
        ])];
        let m = messages(
            "subject: '{{ customer.first_name }} {{ customer.nickname }}'\nbody: x\n",
            &cols,
        );
        assert_eq!(
            m,
            ["subject: `customer` has no field `nickname`: the input has no such column"]
        );
        for (offer, want) in [
            ("{ type: discount }", "needs a `value`"),
            ("{ type: discount, value: 150 }", "at most 100"),
            ("{ type: free_shipping, value: 5 }", "discounts only"),
            (
                "{ type: bogo }",
                "must be discount, free_shipping, early_access or none",
            ),
            ("{ type: none, percent: 3 }", "unknown field `percent`"),
        ] {
            let m = messages(&format!("channel: none\noffer: {offer}\n"), &[]);
            assert!(
                m.len() == 1 && m[0].starts_with("offer: ") && m[0].contains(want),
                "{offer}: {m:?}"
            );
        }
        let m = messages("channel: none\nsender: nobody\n", &[]);
        assert!(m[0].starts_with("sender: "), "{m:?}");
        assert!(configure("channel: none\nsender: 'Shop <shop@example.com>'\noffer: { type: discount, value: 12.5 }\n", &[]).is_ok());
    }

    #[test]
    fn an_unknown_field_at_run_time_names_the_customer() {
        let node = configure("subject: hi\nbody: 'Dear {{ customer.nickname }}'\n", &[]).unwrap();
        let err = run(&node, vec![customers()]).err().unwrap().to_string();
        assert!(
            err.contains("rendering `body` for customer C1 (segment vip)"),
            "{err}"
        );
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn offer_labels() {
        let label = |yaml: &str| Offer::from_params(&params(yaml)).unwrap().label;
        assert_eq!(label("offer: { type: discount, value: 12.5 }"), "12.5% off");
        assert_eq!(label("offer: { type: discount, value: 20 }"), "20% off");
        assert_eq!(label("offer: { type: free_shipping }"), "free shipping");
        assert_eq!(
            label("offer: { type: early_access, label: Spring preview }"),
            "Spring preview"
        );
        assert_eq!(label("{}"), "no offer");
    }

    /// One customer with `name` (accepting marketing) and one recommendation.
    fn hostile(name: &str, email: &str, product: &str, category: &str) -> Vec<RecordBatch> {
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        let customers = RecordBatch::try_from_iter(vec![
            ("customer_id", text("C1")),
            ("email", text(email)),
            ("customer_name", text(name)),
            (
                "accepts_marketing",
                Arc::new(BooleanArray::from(vec![true])) as ArrayRef,
            ),
            ("segment", text("vip")),
        ])
        .unwrap();
        let recs = RecordBatch::try_from_iter(vec![
            ("customer_id", text("C1")),
            ("segment", text("vip")),
            ("rank", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("product_id", text("P1")),
            ("product_name", text(product)),
            ("category", text(category)),
            ("reason", text("x")),
        ])
        .unwrap();
        vec![recs, customers]
    }

    #[test]
    fn line_breaks_from_data_never_leave_the_subject_line() {
        let node = configure(
            "subject: \"Hi {{ customer.customer_name }}, {{ products[0].name }}\"\nbody: x\n",
            &[],
        )
        .unwrap();
        let out = run(
            &node,
            hostile(
                "Bob\r\nBcc: victim@evil.example",
                "bob@example.com",
                "Tea\u{2028}Cc: a@evil.example\u{85}\u{0b}x",
                "food",
            ),
        )
        .unwrap();
        assert_eq!(
            texts(table(&out), "subject")[0].as_deref(),
            Some("Hi Bob Bcc: victim@evil.example, Tea Cc: a@evil.example x")
        );
    }

    #[test]
    fn addresses_that_do_not_parse_get_no_message() {
        let node = configure("subject: hi\nbody: x\n", &[]).unwrap();
        for bad in [
            "bob@example.com\r\nBcc: victim@evil.example",
            "a@b@example.com",
            "a@example.com, b@example.com",
            "<a@example.com>",
            "a@-example.com",
        ] {
            let out = run(&node, hostile("Bob", bad, "Tea", "food")).unwrap();
            let t = table(&out);
            assert_eq!(
                texts(t, "skip_reason")[0].as_deref(),
                Some("invalid email address"),
                "{bad:?}"
            );
            assert_eq!(out.meta["skipped_invalid_email"], 1, "{bad:?}");
        }
        // The sender is checked when the workflow is validated.
        let Err(errs) = configure(
            "subject: hi\nbody: x\nsender: \"Shop <shop@example.com>\\r\\nBcc: x@evil.example\"\n",
            &[],
        ) else {
            panic!("a sender with a line break is accepted")
        };
        assert!(
            errs[0].message.contains("is not an email address"),
            "{errs:?}"
        );
        assert!(
            configure(
                "subject: hi\nbody: x\nsender: \"Corner Shop <shop@example.com>\"\n",
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn html_from_data_is_escaped_in_every_place() {
        let node = configure(
            "subject: hi\nbody: \"<p title=\\\"{{ customer.customer_name }}\\\">{{ customer.first_name }}</p>\
             {% for p in products %}<a title='{{ p.name }}'>{{ p.category }}</a>{% endfor %}\"\n",
            &[],
        )
        .unwrap();
        let out = run(
            &node,
            hostile(
                "<script>alert(1)</script>\"><img src=x onerror=alert(2)>",
                "a@example.com",
                "'><script>p()</script>",
                "<svg onload=c()>",
            ),
        )
        .unwrap();
        let body = texts(table(&out), "body_html")[0].clone().unwrap();
        assert_eq!(
            body,
            "<p title=\"&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&gt;&lt;img src=x \
             onerror=alert(2)&gt;\">&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&gt;&lt;img</p>\
             <a title='&#x27;&gt;&lt;script&gt;p()&lt;&#x2f;script&gt;'>&lt;svg onload=c()&gt;</a>"
        );
    }
}
