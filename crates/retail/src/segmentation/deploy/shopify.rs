//! Shopify activation: `shopify: {shop, token_env, ...}` tags every customer with its segment
//! and writes its profile (segment, CLV, P(alive), recommended products, recommended action)
//! to customer metafields (see [`crate::connectors::shopify::push`]).
//!
//! Customers are sorted by id and cut into batches; each batch goes through
//! [`NodeContext::once`], so a resumed run does not send a batch Shopify already acknowledged.
//! Every batch sets the remote state to the desired one (tags and metafields compared first),
//! so a batch sent again changes nothing. Customer ids that are not Shopify's (an email from a
//! CSV export, another POS's ids) are counted and reported, not sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Value as Json, json};

use crate::connectors::shopify::client::{Client, ClientConfig};
use crate::connectors::shopify::push::{self, BatchOutcome, MetafieldType, Profile, PushTarget};
use flow_engine::node::{NodeContext, NodeError, ParamError, Params, noted};
use flow_engine::source::Seg;

const KEYS: [&str; 11] = [
    "shop",
    "base_url",
    "api_version",
    "token_env",
    "timeout",
    "retries",
    "tag_prefix",
    "metafield_namespace",
    "metafield_type",
    "batch_size",
    "enabled",
];

/// The `shopify:` block.
#[derive(Debug, Clone)]
pub(crate) struct ShopifyPush {
    client: ClientConfig,
    token_env: String,
    target: PushTarget,
    batch_size: usize,
}

/// What the push did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct ShopifyReport {
    pub(crate) endpoint: String,
    pub(crate) customers: u64,
    /// Ids that are not Shopify customer ids: not sent.
    pub(crate) not_shopify_ids: u64,
    pub(crate) batches: u64,
    pub(crate) sent: u64,
    /// Acknowledged by an earlier attempt of this run: not sent again.
    pub(crate) already_sent: u64,
    pub(crate) tags_added: u64,
    pub(crate) tags_removed: u64,
    pub(crate) metafields_set: u64,
    pub(crate) unchanged: u64,
    /// Ids Shopify does not know (deleted customers).
    pub(crate) not_found: u64,
    pub(crate) requests: u64,
}

/// Parses `shopify:`; `None` when absent, empty or `enabled: false`.
pub(crate) fn parse(params: &Params, errors: &mut Vec<ParamError>) -> Option<ShopifyPush> {
    let map = match params.get("shopify") {
        None | Some(Json::Null) => return None,
        Some(Json::Object(m)) if m.is_empty() => return None,
        Some(Json::Object(m)) => m.clone(),
        Some(other) => {
            errors.push(ParamError::new(
                "shopify",
                format!("must be a mapping (shop, token_env, ...), got {other}"),
            ));
            return None;
        }
    };
    if map.get("enabled") == Some(&Json::Bool(false)) {
        return None;
    }
    let mut local = Vec::new();
    for key in map.keys() {
        if !KEYS.contains(&key.as_str()) {
            local.push(ParamError::new(
                key,
                format!("is not a setting of the Shopify push ({})", KEYS.join(", ")),
            ));
        }
    }
    let sub = Params::new(map, ".");
    let (client, token_env) = crate::connectors::shopify::connection(&sub, &mut local);
    let text = |name: &str, default: &str, local: &mut Vec<ParamError>| match sub.opt_str(name) {
        Ok(v) => v.unwrap_or(default).to_string(),
        Err(e) => {
            local.push(e);
            default.to_string()
        }
    };
    let tag_prefix = text("tag_prefix", "flow-segment:", &mut local);
    if tag_prefix.trim().is_empty() || tag_prefix.contains(',') || tag_prefix.len() > 200 {
        local.push(ParamError::new(
            "tag_prefix",
            "must be a non-empty tag start without commas, e.g. flow-segment:",
        ));
    }
    let namespace = text("metafield_namespace", "flow", &mut local);
    if !(3..=255).contains(&namespace.len())
        || !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        local.push(ParamError::new(
            "metafield_namespace",
            "must be 3 to 255 letters, digits, _ or -",
        ));
    }
    let metafield_type = match text("metafield_type", "json", &mut local).as_str() {
        "json" => MetafieldType::Json,
        "single_line_text_field" => MetafieldType::Text,
        other => {
            local.push(ParamError::new(
                "metafield_type",
                format!("must be json or single_line_text_field, got `{other}`"),
            ));
            MetafieldType::Json
        }
    };
    let batch_size = noted(&mut local, sub.u64_between("batch_size", 25, 1, 250), 25) as usize;
    for mut e in local {
        e.path.insert(0, Seg::key("shopify"));
        errors.push(e);
    }
    Some(ShopifyPush {
        client,
        token_env,
        target: PushTarget {
            tag_prefix,
            namespace,
            metafield_type,
        },
        batch_size,
    })
}

impl ShopifyPush {
    /// The access token; read before anything is written so a missing one fails early.
    pub(crate) fn token(&self) -> Result<String, NodeError> {
        flow_engine::secret::require("shopify.token_env", &self.token_env)
            .map_err(|e| NodeError::msg(format!("Shopify push: {e}")))
    }
}

fn text_at(batch: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let col = batch.column_by_name(name)?;
    if col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i).to_string()),
        _ => None,
    }
}

fn float_at(batch: &RecordBatch, name: &str, i: usize) -> Option<f64> {
    let col = batch.column_by_name(name)?;
    (col.data_type() == &DataType::Float64 && !col.is_null(i))
        .then(|| col.as_primitive::<Float64Type>().value(i))
}

/// One profile per customer of the campaign rows, sorted by customer id (stable batches
/// across resumes).
pub(crate) fn profiles(campaigns: &[RecordBatch]) -> Vec<Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    for batch in campaigns {
        for i in 0..batch.num_rows() {
            let (Some(id), Some(segment)) = (
                text_at(batch, "customer_id", i),
                text_at(batch, "segment", i),
            ) else {
                continue;
            };
            let products = text_at(batch, "recommended_products", i)
                .map(|s| {
                    s.split("; ")
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            out.insert(
                id.clone(),
                Profile {
                    customer_id: id,
                    segment,
                    clv: float_at(batch, "clv", i),
                    p_alive: float_at(batch, "p_alive", i),
                    recommended_products: products,
                    recommended_action: text_at(batch, "recommended_action", i),
                },
            );
        }
    }
    out.into_values().collect()
}

/// Brings every customer's tags and metafields in step, batch by batch.
pub(crate) async fn deliver(
    ctx: &NodeContext,
    cfg: &ShopifyPush,
    token: String,
    profiles: Vec<Profile>,
) -> Result<ShopifyReport, NodeError> {
    let client = Arc::new(Client::new(cfg.client.clone(), token));
    let mut report = ShopifyReport {
        endpoint: client.endpoint().to_string(),
        customers: profiles.len() as u64,
        ..Default::default()
    };
    let profiles = Arc::new(profiles);
    let items: Vec<(String, usize)> = profiles
        .iter()
        .enumerate()
        .filter_map(|(i, p)| push::customer_gid(&p.customer_id).map(|g| (g, i)))
        .collect();
    report.not_shopify_ids = report.customers - items.len() as u64;
    if report.not_shopify_ids > 0 {
        tracing::warn!(
            count = report.not_shopify_ids,
            "customer ids that are not Shopify customer ids are not pushed to Shopify"
        );
    }
    let chunks: Vec<Vec<(String, usize)>> =
        items.chunks(cfg.batch_size).map(<[_]>::to_vec).collect();
    report.batches = chunks.len() as u64;
    for (n, chunk) in chunks.into_iter().enumerate() {
        let mut outcome = None;
        let done = ctx
            .once(&format!("shopify-batch-{}", n + 1), |_key| {
                let (client, profiles, target) =
                    (client.clone(), profiles.clone(), cfg.target.clone());
                let outcome = &mut outcome;
                async move {
                    let o = flow_engine::node::spawn_blocking(move || {
                        let batch: Vec<(String, &Profile)> = chunk
                            .iter()
                            .map(|(g, i)| (g.clone(), &profiles[*i]))
                            .collect();
                        push::push_batch(&client, &target, &batch)
                    })
                    .await
                    .map_err(|e| NodeError::msg(format!("Shopify push stopped: {e}")))?
                    .map_err(|e| NodeError::msg(e.to_string()))?;
                    *outcome = Some(o);
                    Ok(json!(o))
                }
            })
            .await;
        match done {
            Ok(true) => {
                report.sent += 1;
                add(&mut report, outcome.unwrap_or_default());
            }
            Ok(false) => report.already_sent += 1,
            Err(e) => {
                let acked = report.sent + report.already_sent;
                return Err(NodeError::msg(format!(
                    "Shopify push: batch {} of {} failed: {e}. {acked} earlier batches were \
                     applied and will not be sent again when the run is resumed",
                    n + 1,
                    report.batches
                )));
            }
        }
    }
    report.requests = client.requests();
    Ok(report)
}

fn add(report: &mut ShopifyReport, o: BatchOutcome) {
    report.tags_added += o.tags_added;
    report.tags_removed += o.tags_removed;
    report.metafields_set += o.metafields_set;
    report.unchanged += o.unchanged;
    report.not_found += o.not_found;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::shopify::mock::{MockShop, RemoteCustomer, State};
    use arrow_array::{ArrayRef, Float64Array, StringArray};

    fn params(v: Json) -> Params {
        Params::new(v.as_object().unwrap().clone(), ".")
    }

    #[test]
    fn the_block_is_checked_and_errors_point_inside_it() {
        let mut errors = Vec::new();
        assert!(parse(&params(json!({})), &mut errors).is_none());
        assert!(
            parse(
                &params(json!({ "shopify": { "enabled": false, "shop": "x" } })),
                &mut errors
            )
            .is_none()
        );
        let p = parse(
            &params(json!({ "shopify": { "shop": "my-shop.myshopify.com" } })),
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(p.client.base_url, "https://my-shop.myshopify.com");
        assert_eq!(p.token_env, "SHOPIFY_ACCESS_TOKEN");
        assert_eq!(
            (p.target.tag_prefix.as_str(), p.target.namespace.as_str()),
            ("flow-segment:", "flow")
        );
        parse(
            &params(
                json!({ "shopify": { "shop": "my shop", "metafield_type": "xml", "token_env": "shpat_abc-1",
                "batch_size": 0, "tag_prefix": "a,b", "colour": 1 } }),
            ),
            &mut errors,
        );
        let at: Vec<String> = errors.iter().map(|e| format!("{:?}", e.path)).collect();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(at.iter().all(|p| p.contains("shopify")), "{at:?}");
        assert!(
            !errors.iter().any(|e| e.message.contains("shpat_abc")),
            "{errors:?}"
        );
    }

    fn campaign(ids: &[&str], segments: &[&str]) -> RecordBatch {
        let n = ids.len();
        RecordBatch::try_from_iter(vec![
            (
                "customer_id",
                Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "segment",
                Arc::new(StringArray::from(segments.to_vec())) as ArrayRef,
            ),
            (
                "clv",
                Arc::new(Float64Array::from(vec![Some(10.5); n])) as ArrayRef,
            ),
            (
                "p_alive",
                Arc::new(Float64Array::from(vec![None; n])) as ArrayRef,
            ),
            (
                "recommended_products",
                Arc::new(StringArray::from(vec!["Tea; Mug"; n])) as ArrayRef,
            ),
            (
                "recommended_action",
                Arc::new(StringArray::from(vec!["Call"; n])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_sent_once_per_run_and_foreign_ids_are_counted() {
        let mut state = State::default();
        for i in 1..=30 {
            state.customers.insert(
                format!("gid://shopify/Customer/{i}"),
                RemoteCustomer::default(),
            );
        }
        let shop = MockShop::start(state);
        let mut errors = Vec::new();
        let cfg = parse(
            &params(json!({ "shopify": { "base_url": shop.base_url(), "batch_size": 10 } })),
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let ids: Vec<String> = (1..=30).map(|i| i.to_string()).collect();
        let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
        all.extend(["ann@example.com", "bob@example.com"]);
        let segs: Vec<&str> = all.iter().map(|_| "vip").collect();
        let profiles = profiles(&[campaign(&all, &segs)]);
        assert_eq!(profiles[0].recommended_products, vec!["Tea", "Mug"]);
        let ctx = flow_engine::testing::context();
        let token = "shpat_test_token_0000".to_string();
        let first = deliver(&ctx, &cfg, token.clone(), profiles.clone())
            .await
            .unwrap();
        assert_eq!(
            (
                first.customers,
                first.not_shopify_ids,
                first.batches,
                first.sent
            ),
            (32, 2, 3, 3)
        );
        assert_eq!(first.tags_added, 30);
        // A resumed attempt of the same run: nothing sent again.
        let again = deliver(&ctx, &cfg, token.clone(), profiles.clone())
            .await
            .unwrap();
        assert_eq!((again.sent, again.already_sent, again.requests), (0, 3, 0));
        // The next run: read, found in step, nothing written.
        let mutations = shop.counts().mutations;
        let next = deliver(&ctx.clone().with_run_id("r2"), &cfg, token, profiles)
            .await
            .unwrap();
        assert_eq!((next.sent, next.unchanged), (3, 30));
        assert_eq!(shop.counts().mutations, mutations);
        assert_eq!(shop.tags("7", "flow-segment:"), vec!["flow-segment:vip"]);
    }
}
