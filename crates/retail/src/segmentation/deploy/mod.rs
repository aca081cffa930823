//! `segmentation.deploy`: delivers what the segment branches produced.
//!
//! Inputs, by role: every branch's `campaign` rows and `recommendations`, concatenated per role;
//! a skipped branch is simply absent. Written into `out_dir`, each file atomically (a temporary file renamed into place):
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
//! # Measured outcomes
//! Each send of a campaign with a control group is recorded in the campaign ledger (see
//! [`ledger`]) and measured on the `transactions` input of later runs (see [`attribution`]):
//! treated against control conversion, revenue per customer and average order value inside
//! the attribution window, with the lift and its interval (see [`outcomes`]).
//!
//! # POS activation
//! With `pos_url`, profile and recommendation updates are POSTed in batches (see [`pos`]).
//! Files and state are written first, so a failing endpoint leaves the files in place; a resumed
//! run sends only the batches the endpoint has not acknowledged.
//!
//! # Shopify
//! With `shopify: {shop, token_env, ...}`, every customer is tagged with its segment and its
//! profile written to metafields (see [`shopify`]), after the files, the POS batches and the
//! email.

mod attribution;
mod backtests;
mod columns;
mod ledger;
mod lineage;
mod message;
mod message_files;
mod outcomes;
mod outgoing;
mod outputs;
mod overview;
mod plain_text;
mod pooled;
mod pos;
mod pos_batches;
mod private_files;
mod recipients;
mod report;
mod report_backtests;
mod report_outcomes;
mod routed;
mod shopify;
mod smtp;
mod smtp_send;
mod square;
mod staging;
mod summary;

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

use super::retail_inputs::ByRole;
use super::tables;
use super::{TextColumn, text_column};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, InputSpec, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError,
    ParamSpec, ParamType, Params,
};
use message::{Draft, Unsubscribe};
use pos::{PosConfig, PosReport};
pub(crate) use private_files::write_atomic;

use columns::*;
pub(crate) use columns::{CAMPAIGN_COLUMNS, RECOMMENDATION_COLUMNS};
use message_files::*;
use outputs::*;
use pos_batches::*;
use summary::*;

const NODE: &str = "segmentation.deploy";

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
    shopify: Option<shopify::ShopifyPush>,
    email: Option<smtp::EmailConfig>,
    square: Option<square::SquarePush>,
    unsubscribe: Unsubscribe,
    /// ISO 4217 code the report names for amounts.
    currency: Option<String>,
    /// The date this run's sends are recorded under (Date32 day); `None`: the run's date.
    sent_on: Option<i32>,
    /// Days after a send whose purchases are attributed to it.
    attribution_days: u32,
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
                "shopify",
                ParamType::Map,
                "tag customers with their segment and write their profile to metafields in a \
                 Shopify shop: {shop, token_env, api_version, base_url, tag_prefix, \
                 metafield_namespace, metafield_type, batch_size}",
            ),
            ParamSpec::optional(
                "square",
                ParamType::Map,
                "Square push: {token_env, group_prefix, api_version, base_url, retries, backoff}; \
                 one customer group per segment and the profile in custom attributes",
            ),
            ParamSpec::optional(
                "unsubscribe_url",
                ParamType::String,
                "https URL for one-click unsubscribe (List-Unsubscribe); {customer_id} and \
                 {segment} are filled in",
            ),
            ParamSpec::optional(
                "sent_on",
                ParamType::String,
                "YYYY-MM-DD the campaigns of this run count as sent on (default: the run's date)",
            ),
            ParamSpec::with_default(
                "attribution_days",
                ParamType::Integer,
                "14",
                "purchases on the 1st to the Nth day after a send are attributed to it",
            ),
            ParamSpec::optional(
                "email",
                ParamType::Map,
                "send the messages over SMTP: {host, port, tls: starttls|tls|none, username_env, \
                 password_env, rate: 10/s, timeout, retries, backoff}",
            ),
            ParamSpec::optional(
                "unsubscribe_email",
                ParamType::String,
                "address for unsubscribe requests by email (List-Unsubscribe mailto:)",
            ),
        ]
    }
    fn inputs(&self) -> Vec<InputSpec> {
        vec![
            InputSpec::many(
                "campaign",
                tables::campaign(),
                "every branch's profiles and messages",
            )
            .optional(),
            InputSpec::many(
                "recommendations",
                tables::recommendations(),
                "every branch's recommendations",
            )
            .optional(),
            InputSpec::one(
                "metrics",
                tables::metrics(),
                "the customer metrics; deploy reports their backtest of the purchase forecast",
            )
            .context()
            .declared_columns_only(),
            InputSpec::one(
                "transactions",
                tables::transactions(),
                "the purchases that measure earlier campaigns against their control groups",
            )
            .context()
            .declared_columns_only(),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
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
        let shopify = shopify::parse(params, &mut errors);
        let square = params
            .get("square")
            .and_then(|v| square::SquarePush::parse(v, &mut errors));
        let unsubscribe = unsubscribe(params, &mut errors);
        let email = smtp::parse(params, &mut errors);
        let sent_on = crate::segmentation::date_param(params, "sent_on").unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let attribution_days = match params.u64_or("attribution_days", 14) {
            Ok(v) if (1..=365).contains(&v) => v as u32,
            Ok(v) => {
                errors.push(ParamError::new(
                    "attribution_days",
                    format!("must be between 1 and 365, got {v}"),
                ));
                14
            }
            Err(e) => {
                errors.push(e);
                14
            }
        };
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
                    shopify,
                    email,
                    square,
                    unsubscribe,
                    currency,
                    sent_on,
                    attribution_days,
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
        let shopify_token = match &self.cfg.shopify {
            Some(s) => Some(s.token()?),
            None => None,
        };
        let smtp_credentials = match &self.cfg.email {
            Some(email) => email.credentials()?,
            None => None,
        };
        let square_token = match &self.cfg.square {
            Some(sq) => Some(sq.token()?),
            None => None,
        };
        let by = ByRole::new(&inputs, NODE);
        let campaigns = by.all("campaign");
        let recommendations = by.all("recommendations");
        if campaigns.is_empty() && recommendations.is_empty() {
            return Err(by.missing(&[
                ("campaign", &tables::campaign()),
                ("recommendations", &tables::recommendations()),
            ]));
        }
        routed::check(&ctx.routed, &campaigns)?;
        let profiles = self
            .cfg
            .shopify
            .as_ref()
            .map(|_| shopify::profiles(&campaigns));
        let measure = Measure {
            sources: outcomes::sources(&inputs),
            transactions: by.first("transactions").cloned(),
        };
        let backtests = backtests::collect(&inputs);
        let square_profiles = match &self.cfg.square {
            Some(_) => square::profiles(&campaigns)?,
            None => Vec::new(),
        };
        // Each table is let go of once used (this run holds the only copies); at 10M lines
        // the inputs are gigabytes.
        drop(inputs);
        let cfg = self.cfg.clone();
        let job_ctx = ctx.clone();
        let written = flow_engine::node::spawn_compute(move || {
            write_outputs(
                &cfg,
                &job_ctx,
                campaigns,
                recommendations,
                measure,
                backtests,
            )
        })
        .await
        .map_err(|e| NodeError::msg(format!("deploy stopped: {e}")))??;

        let pos_report = match &self.cfg.pos {
            Some(pos) => Some(pos::deliver(&ctx, pos, token, written.batches).await?),
            None => None,
        };
        let email_report = match &self.cfg.email {
            Some(email) => Some(
                smtp_send::deliver(
                    &ctx,
                    email,
                    smtp_credentials,
                    written.emails,
                    &self.cfg.out_dir,
                    &written.sent_on,
                )
                .await?,
            ),
            None => None,
        };
        let square_report = match (&self.cfg.square, square_token) {
            (Some(sq), Some(token)) => Some(square::push(&ctx, sq, token, square_profiles).await?),
            _ => None,
        };
        let mut out = output(&written.summary, pos_report.as_ref(), email_report.as_ref());
        if let (Some(cfg), Some(token)) = (&self.cfg.shopify, shopify_token) {
            let report = shopify::deliver(&ctx, cfg, token, profiles.unwrap_or_default()).await?;
            out = out.with_meta("shopify", json!(report));
        }
        if let Some(r) = square_report {
            if let flow_engine::data::Body::Data(flow_engine::data::Data::Json(v)) = &mut out.body {
                v["square"] = json!(r);
            }
            out = out
                .with_meta(
                    "square_memberships_changed",
                    (r.memberships_added + r.memberships_removed) as u64,
                )
                .with_meta("square_not_square_customers", r.not_square_customers as u64);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
