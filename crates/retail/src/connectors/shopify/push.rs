//! The push: each customer tagged with its segment and its profile written to metafields.
//!
//! Per batch of customers: one query reads their tags and metafields (`nodes(ids:)`), then one
//! mutation document sets what differs: `tagsRemove` for every tag with the prefix other than
//! the current segment's, `tagsAdd` for the current one if missing, and `metafieldsSet` (at
//! most 25 metafields per call) for the profile values that changed. The writes bring the
//! remote state to the desired one rather than adding to it, so running twice, or resuming
//! after any failure, leaves the same state; a batch already in step costs one read.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use super::ShopifyError;
use super::client::Client;
use super::queries;

/// How profiles are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetafieldType {
    /// One `json` metafield, key `profile`.
    Json,
    /// One `single_line_text_field` per value: `segment`, `clv`, `p_alive`,
    /// `recommended_products` (comma-separated), `recommended_action`.
    Text,
}

/// Where tags and metafields go.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub tag_prefix: String,
    pub namespace: String,
    pub metafield_type: MetafieldType,
}

/// One customer's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub customer_id: String,
    pub segment: String,
    pub clv: Option<f64>,
    pub p_alive: Option<f64>,
    pub recommended_products: Vec<String>,
    pub recommended_action: Option<String>,
}

/// What one batch changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BatchOutcome {
    pub tags_added: u64,
    pub tags_removed: u64,
    pub metafields_set: u64,
    /// Customers already in step.
    pub unchanged: u64,
    /// Ids Shopify does not know (deleted customers, another shop).
    pub not_found: u64,
}

/// The GID of a customer id: a numeric id, or a GID already; `None` for anything else (an
/// email from a CSV export, a Square id).
pub fn customer_gid(id: &str) -> Option<String> {
    let id = id.trim();
    if let Some(n) = id.strip_prefix("gid://shopify/Customer/") {
        return (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string());
    }
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("gid://shopify/Customer/{id}"))
}

/// Rounded for storage: the same profile gives the same text on every run.
fn number(v: Option<f64>, digits: i32) -> Json {
    v.filter(|v| v.is_finite())
        .and_then(|v| {
            let p = 10f64.powi(digits);
            serde_json::Number::from_f64((v * p).round() / p)
        })
        .map_or(Json::Null, Json::Number)
}

/// The metafields (key → value) a profile is written as.
pub fn metafields(p: &Profile, kind: MetafieldType) -> Vec<(&'static str, String)> {
    match kind {
        MetafieldType::Json => {
            let v = json!({
                "segment": p.segment,
                "clv": number(p.clv, 2),
                "p_alive": number(p.p_alive, 4),
                "recommended_products": p.recommended_products,
                "recommended_action": p.recommended_action,
            });
            vec![("profile", v.to_string())]
        }
        MetafieldType::Text => {
            let mut out = vec![("segment", p.segment.clone())];
            let text = |v: Json| match v {
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let Some(v) = text(number(p.clv, 2)) {
                out.push(("clv", v));
            }
            if let Some(v) = text(number(p.p_alive, 4)) {
                out.push(("p_alive", v));
            }
            if !p.recommended_products.is_empty() {
                out.push(("recommended_products", p.recommended_products.join(", ")));
            }
            if let Some(a) = p
                .recommended_action
                .as_ref()
                .filter(|a| !a.trim().is_empty())
            {
                out.push(("recommended_action", a.replace('\n', " ")));
            }
            out
        }
    }
}

fn same_value(kind: MetafieldType, remote: &str, desired: &str) -> bool {
    match kind {
        // Shopify may reformat JSON; compare the values.
        MetafieldType::Json => {
            serde_json::from_str::<Json>(remote).ok() == serde_json::from_str::<Json>(desired).ok()
        }
        MetafieldType::Text => remote == desired,
    }
}

fn user_errors(data: &Json) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(map) = data.as_object() {
        for (alias, result) in map {
            for e in result
                .get("userErrors")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let msg = e.get("message").and_then(Json::as_str).unwrap_or("?");
                let field = e
                    .get("field")
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default();
                out.push(format!("{alias}: {msg}{field}"));
            }
        }
    }
    out
}

/// Brings one batch of customers (GID, profile) in step with their profiles.
pub fn push_batch(
    client: &Client,
    target: &PushTarget,
    batch: &[(String, &Profile)],
) -> Result<BatchOutcome, ShopifyError> {
    let mut outcome = BatchOutcome::default();
    if batch.is_empty() {
        return Ok(outcome);
    }
    let ids: Vec<&str> = batch.iter().map(|(g, _)| g.as_str()).collect();
    let data = client.graphql(
        "customer tags and metafields",
        queries::CUSTOMERS_STATE,
        json!({ "ids": ids, "ns": target.namespace }),
        (batch.len() as f64 * 12.0).min(1000.0),
    )?;
    let nodes =
        data.get("nodes")
            .and_then(Json::as_array)
            .ok_or_else(|| ShopifyError::Malformed {
                endpoint: client.endpoint().to_string(),
                field: "nodes".into(),
                reason: "is missing or not a list in the customer state reply".into(),
            })?;
    let mut remote: HashMap<&str, &Json> = HashMap::new();
    for n in nodes {
        if let Some(id) = n.get("id").and_then(Json::as_str) {
            remote.insert(id, n);
        }
    }

    let mut declared: Vec<String> = Vec::new();
    let mut body: Vec<String> = Vec::new();
    let mut vars = Map::new();
    let mut pending: Vec<Json> = Vec::new();
    let mut mutations = 0usize;
    for (k, (gid, profile)) in batch.iter().enumerate() {
        let Some(node) = remote.get(gid.as_str()) else {
            outcome.not_found += 1;
            continue;
        };
        let want = format!("{}{}", target.tag_prefix, profile.segment);
        let tags: Vec<&str> = node
            .get("tags")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        let remove: Vec<&str> = tags
            .iter()
            .copied()
            .filter(|t| t.starts_with(&target.tag_prefix) && *t != want)
            .collect();
        let add = !tags.contains(&want.as_str());
        let mut changed = false;
        if !remove.is_empty() || add {
            vars.insert(format!("id{k}"), json!(gid));
            declared.push(format!("$id{k}: ID!"));
        }
        if !remove.is_empty() {
            outcome.tags_removed += remove.len() as u64;
            vars.insert(format!("rm{k}"), json!(remove));
            declared.push(format!("$rm{k}: [String!]!"));
            body.push(format!(
                "r{k}: tagsRemove(id: $id{k}, tags: $rm{k}) {{ userErrors {{ field message }} }}"
            ));
            mutations += 1;
            changed = true;
        }
        if add {
            outcome.tags_added += 1;
            vars.insert(format!("add{k}"), json!([want]));
            declared.push(format!("$add{k}: [String!]!"));
            body.push(format!(
                "a{k}: tagsAdd(id: $id{k}, tags: $add{k}) {{ userErrors {{ field message }} }}"
            ));
            mutations += 1;
            changed = true;
        }
        let current: HashMap<&str, &str> = super::mapping::items(node.get("metafields"))
            .into_iter()
            .filter_map(|m| Some((m.get("key")?.as_str()?, m.get("value")?.as_str()?)))
            .collect();
        let kind = match target.metafield_type {
            MetafieldType::Json => "json",
            MetafieldType::Text => "single_line_text_field",
        };
        for (key, value) in metafields(profile, target.metafield_type) {
            if current
                .get(key)
                .is_some_and(|r| same_value(target.metafield_type, r, &value))
            {
                continue;
            }
            pending.push(json!({
                "ownerId": gid, "namespace": target.namespace, "key": key, "type": kind, "value": value,
            }));
            changed = true;
        }
        if !changed {
            outcome.unchanged += 1;
        }
    }
    for (c, chunk) in pending.chunks(25).enumerate() {
        outcome.metafields_set += chunk.len() as u64;
        vars.insert(format!("mf{c}"), Json::Array(chunk.to_vec()));
        declared.push(format!("$mf{c}: [MetafieldsSetInput!]!"));
        body.push(format!(
            "m{c}: metafieldsSet(metafields: $mf{c}) {{ userErrors {{ field message code }} }}"
        ));
        mutations += 1;
    }
    if body.is_empty() {
        return Ok(outcome);
    }
    let doc = format!(
        "mutation SetProfiles({}) {{ {} }}",
        declared.join(", "),
        body.join(" ")
    );
    let data = client.graphql(
        "customer tags and metafields update",
        &doc,
        Json::Object(vars),
        (mutations as f64 * 10.0).min(1000.0),
    )?;
    let errors = user_errors(&data);
    if !errors.is_empty() {
        return Err(ShopifyError::GraphQl {
            endpoint: client.endpoint().to_string(),
            what: "customer tags and metafields update".into(),
            message: errors.join("; "),
        });
    }
    Ok(outcome)
}
