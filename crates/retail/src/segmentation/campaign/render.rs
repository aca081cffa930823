//! Rendering the messages per customer and building the output table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use minijinja::{Value, context};

use super::config::{ACTION, BODY, CampaignConfig, SUBJECT};
use super::customer_row::{Columns, CustomerRow};
use super::holdout::{CONTROL_ACTION, CONTROL_OFFER, CONTROL_REASON};
use super::profile::{PROFILE_COLUMNS, profile_column};
use super::template_check::template_error;
use crate::segmentation::{
    FastHash, TextColumn, bool_column, f64_column, missing_column, text_column,
};
use flow_engine::data::Output;
use flow_engine::node::NodeError;

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
    let (mut control, mut control_eligible) = (0u64, 0u64);
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
        let mut offer_col = StringBuilder::new();
        let mut group_col = StringBuilder::new();
        let mut eligible_col = BooleanBuilder::with_capacity(n);
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
            // The comparison is among the customers the campaign would reach: for email, those
            // it would message; without a channel, everyone. The group itself is drawn for
            // every customer, from the id alone.
            let eligible = skip.is_none() || !cfg.email;
            let held_out = cfg.holdout.is_control(id);
            let skip = if held_out {
                control += 1;
                if eligible {
                    control_eligible += 1;
                    Some(CONTROL_REASON)
                } else {
                    skip
                }
            } else {
                skip
            };
            group_col.append_value(if held_out { "control" } else { "treated" });
            eligible_col.append_value(eligible);
            offer_col.append_value(if held_out {
                CONTROL_OFFER
            } else {
                cfg.offer.label.as_str()
            });
            let needs_context = !held_out && (skip.is_none() || action_t.is_some());
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
                _ if held_out => action_col.append_value(CONTROL_ACTION),
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
            ("offer", DataType::Utf8, Arc::new(offer_col.finish())),
            ("group", DataType::Utf8, Arc::new(group_col.finish())),
            (
                "eligible",
                DataType::Boolean,
                Arc::new(eligible_col.finish()),
            ),
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
        .with_meta("offer", cfg.offer.label.clone())
        .with_meta("holdout_share", cfg.holdout.share)
        .with_meta("holdout_key", cfg.holdout.key.clone())
        .with_meta("control_customers", control)
        .with_meta("control_customers_eligible", control_eligible))
}
