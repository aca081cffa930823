//! `segmentation.campaign`: a campaign message and a profile row per customer of a segment.
//!
//! Inputs, by role (see [`super::tables`]): `customers`, the customers of a segment branch, and
//! optionally `recommendations`, that branch's recommendations (an absent or skipped
//! recommendation node just means no products).
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
//!
//! Control group (`holdout`, see [`holdout`]): a stable share of the customers gets no
//! message, no offer and a staff action saying so; `group` marks them and `eligible` says who
//! is in the comparison deploy measures (for email: who would be messaged if treated).

mod config;
mod customer_row;
mod holdout;
mod offer;
mod profile;
mod render;
mod template_check;

use std::sync::Arc;

use async_trait::async_trait;
use minijinja::Value;

use super::retail_inputs::ByRole;
use super::tables;
pub(crate) use config::CampaignConfig;
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, InputSpec, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError,
    ParamSpec, ParamType, Params, TableKind,
};
pub(crate) use holdout::CONTROL_REASON;
use holdout::Holdout;
use offer::Offer;
pub(crate) use render::{campaign, one_line};
use template_check::check_templates;

const NODE: &str = "segmentation.campaign";

/// The output columns, in order.
pub const OUTPUT_COLUMNS: [&str; 31] = [
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
    "group",
    "eligible",
    "send",
    "skip_reason",
    "subject",
    "body_html",
    "sender",
];

#[derive(Debug)]
pub struct Campaign;

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
            ParamSpec::optional(
                "holdout",
                ParamType::Any,
                "control group: the share held out (10% or 0.1; default 10% for email, 0 for \
                 channel none), or { share: 10%, key: TEXT } (the key defaults to the node id)",
            ),
        ]
    }
    fn inputs(&self) -> Vec<InputSpec> {
        vec![
            InputSpec::many(
                "customers",
                tables::customers(),
                "the customers to write to",
            ),
            InputSpec::many(
                "recommendations",
                tables::recommendations(),
                "their recommendations, offered as `products`",
            )
            .optional(),
        ]
    }
    fn output_kind(&self) -> Option<TableKind> {
        Some(tables::campaign())
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
        let holdout = Holdout::from_params(params, cx.node_id, email).unwrap_or_else(|e| {
            errors.push(e);
            Holdout {
                share: 0.0,
                key: String::new(),
            }
        });
        let cfg = CampaignConfig {
            offer,
            email,
            subject,
            body,
            action,
            sender,
            holdout,
        };
        check_templates(&cfg, cx, &mut errors);
        if errors.is_empty() {
            Ok(Arc::new(Configured { cfg: Arc::new(cfg) }))
        } else {
            Err(errors)
        }
    }
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
        let by = ByRole::new(&inputs, NODE);
        let customers = by.all("customers");
        // An empty segment (the node's rule let it run anyway) gets no messages.
        let customers = if customers.is_empty() {
            vec![super::classify::no_customers()]
        } else {
            customers
        };
        let recommendations = by.all("recommendations");
        let cfg = self.cfg.clone();
        let params = Value::from_serialize(&ctx.params);
        flow_engine::node::spawn_compute(move || {
            campaign(&cfg, &customers, &recommendations, params)
        })
        .await
        .map_err(|e| NodeError::msg(format!("campaign rendering stopped: {e}")))?
    }
}

#[cfg(test)]
mod tests;
