//! Square activation (`square:` block of `segmentation.deploy`): one customer group per segment,
//! memberships kept in step, and the profile in customer custom attributes.
//!
//! - **Groups**: `group_prefix` + the segment's label (`Segment: VIP`); listed with
//!   `GET /v2/customers/groups`, missing ones created (`POST /v2/customers/groups` with an
//!   idempotency key). Every group whose name starts with the prefix is a segment group.
//! - **Memberships**: the customers are listed (`GET /v2/customers`, their `group_ids`) and only
//!   the differences are written: `PUT /v2/customers/{id}/groups/{group}` into the customer's
//!   segment group, `DELETE` from every other segment group. Both calls set a state, so a
//!   repeat is harmless. Square customers with no profile in this run are taken out of every
//!   segment group.
//! - **Profile**: custom attributes `flow-segment`, `flow-clv`, `flow-p-alive`,
//!   `flow-recommended-products`, `flow-action` (String values, definitions created once,
//!   read-only for other apps and visible to the seller) written with
//!   `POST /v2/customers/custom-attributes/bulk-upsert`, 25 values (5 customers) per call. Not the
//!   customer `note`: the note is the free text staff write, and overwriting it would destroy it.
//! - Customers whose id is not a Square customer id (a profile from another source) are
//!   counted in `not_square_customers` and left alone.
//!
//! Every write goes through the effect ledger ([`NodeContext::once`]), one item per chunk of
//! 100 customers (memberships and attributes; a ledger write per customer would cost a disk
//! sync each): a resumed run skips the chunks an earlier attempt finished, and redoes the one
//! it was in; what it had not finished is recomputed from Square's current state, so an
//! interrupted push converges to the same remote state. The token comes from
//! `token_env` (environment or secrets file) and is sent only in the `Authorization` header.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use flow_engine::source::Seg;

use super::*;
use crate::connectors::square::client::{Client, Method, SquareConfig, SquareError, encode};
use crate::connectors::square::customers;
use crate::connectors::square::json::Node as JsonNode;

/// The keys of the profile's custom attributes, with their names in the Square Dashboard.
pub(crate) const ATTRIBUTES: [(&str, &str); 5] = [
    ("flow-segment", "Segment"),
    ("flow-clv", "Customer lifetime value"),
    ("flow-p-alive", "Probability still active"),
    ("flow-recommended-products", "Recommended products"),
    ("flow-action", "Recommended action"),
];

/// Values per bulk upsert (Square's maximum).
const UPSERT_MAX: usize = 25;

/// The `square:` block.
#[derive(Debug, Clone)]
pub(crate) struct SquarePush {
    pub(crate) config: SquareConfig,
    pub(crate) token_env: String,
    pub(crate) group_prefix: String,
}

impl SquarePush {
    /// Parses the block; problems are pushed to `errors` under `square.KEY`.
    pub(crate) fn parse(value: &Json, errors: &mut Vec<ParamError>) -> Option<SquarePush> {
        let Some(map) = value.as_object() else {
            errors.push(ParamError::new(
                "square",
                "must be a mapping (token_env, group_prefix, ...)",
            ));
            return None;
        };
        let mut push = SquarePush {
            config: SquareConfig::default(),
            token_env: "SQUARE_ACCESS_TOKEN".into(),
            group_prefix: "Segment: ".into(),
        };
        let start = errors.len();
        let mut err = |k: &str, m: String| {
            errors.push(ParamError::at(vec![Seg::key("square"), Seg::key(k)], m))
        };
        for (k, v) in map {
            let s = v.as_str().map(str::trim);
            match (k.as_str(), s) {
                ("token_env", Some(s)) if is_env_name(s) => push.token_env = s.into(),
                ("token_env", _) => err(k, "must name an environment variable (letters, digits and _), not hold the token".into()),
                ("api_version", Some(s)) if !s.is_empty() => push.config.api_version = s.into(),
                ("base_url", Some(s)) => match pos::check_url(s) {
                    Ok(()) => push.config.base_url = s.trim_end_matches('/').into(),
                    Err(e) => err(k, e),
                },
                ("group_prefix", Some(_)) if !v.as_str().unwrap_or("").is_empty() => {
                    push.group_prefix = v.as_str().unwrap_or("").into();
                }
                ("retries", _) => match v.as_u64() {
                    Some(n) if n <= 20 => push.config.retries = n as u32,
                    _ => err(k, format!("must be a whole number from 0 to 20, got {v}")),
                },
                ("backoff", Some(s)) => match humantime_like(s) {
                    Some(d) => push.config.backoff = d,
                    None => err(k, format!("`{s}` is not a duration (500ms, 2s)")),
                },
                ("api_version" | "base_url" | "group_prefix" | "backoff", _) => {
                    err(k, format!("must be a non-empty string, got {v}"));
                }
                _ => err(
                    k,
                    "is not a parameter of square (token_env, api_version, base_url, group_prefix, retries, backoff)"
                        .into(),
                ),
            }
        }
        (errors.len() == start).then_some(push)
    }

    /// The token; an error naming the variable (never a value) when it is not set.
    pub(crate) fn token(&self) -> Result<String, NodeError> {
        flow_engine::secret::require("square.token_env", &self.token_env)
            .map_err(|e| NodeError::msg(format!("Square: {e}")))
    }
}

fn humantime_like(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// One customer's profile as pushed to Square.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SquareProfile {
    pub(crate) customer_id: String,
    pub(crate) segment: String,
    pub(crate) label: String,
    pub(crate) clv: Option<f64>,
    pub(crate) p_alive: Option<f64>,
    pub(crate) products: Option<String>,
    pub(crate) action: Option<String>,
}

/// The profiles of the campaign inputs: the first row of each customer, by customer id.
pub(crate) fn profiles(campaigns: &[RecordBatch]) -> Result<Vec<SquareProfile>, NodeError> {
    let camp = normalize(campaigns, &CAMPAIGN_COLUMNS)?;
    let (ids, segs, labels) = (
        text(&camp, "customer_id"),
        text(&camp, "segment"),
        text(&camp, "segment_label"),
    );
    let (clv, p_alive) = (floats(&camp, "clv"), floats(&camp, "p_alive"));
    let (products, action) = (
        text(&camp, "recommended_products"),
        text(&camp, "recommended_action"),
    );
    let mut out: BTreeMap<String, SquareProfile> = BTreeMap::new();
    for i in 0..camp.num_rows() {
        let Some(id) = opt_str(ids, i) else { continue };
        if out.contains_key(id) {
            continue;
        }
        let segment = opt_str(segs, i).unwrap_or("").to_string();
        let label = opt_str(labels, i)
            .filter(|l| !l.is_empty())
            .unwrap_or(&segment)
            .to_string();
        out.insert(
            id.to_string(),
            SquareProfile {
                customer_id: id.to_string(),
                segment,
                label,
                clv: opt_f64(clv, i),
                p_alive: opt_f64(p_alive, i),
                products: opt_str(products, i).map(str::to_string),
                action: opt_str(action, i).map(str::to_string),
            },
        );
    }
    Ok(out.into_values().collect())
}

/// What the push did.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct SquareReport {
    pub(crate) groups: usize,
    pub(crate) groups_created: usize,
    pub(crate) memberships_added: usize,
    pub(crate) memberships_removed: usize,
    pub(crate) customers_updated: usize,
    /// Writes an earlier attempt of this run finished: skipped.
    pub(crate) already_done: usize,
    pub(crate) not_square_customers: usize,
    pub(crate) requests: u64,
}

async fn call(
    client: &Arc<Client>,
    method: Method,
    endpoint: &'static str,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Json>,
) -> Result<Json, SquareError> {
    let c = client.clone();
    flow_engine::node::spawn_blocking(move || {
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.call(method, endpoint, &path, &q, body.as_ref())
    })
    .await
    .unwrap_or_else(|e| Err(SquareError::Config(format!("Square request stopped: {e}"))))
}

fn node_err(e: SquareError) -> NodeError {
    NodeError::msg(e.to_string())
}

/// A Square idempotency key (at most 45 characters) for a ledger item.
fn idempotency_key(ctx: &NodeContext, item: &str) -> String {
    let digest = sha2::Sha256::digest(ctx.idempotency_key(item).as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// Pushes the profiles to Square.
pub(crate) async fn push(
    ctx: &NodeContext,
    cfg: &SquarePush,
    token: String,
    profiles: Vec<SquareProfile>,
) -> Result<SquareReport, NodeError> {
    let client = Arc::new(Client::new(cfg.config.clone(), token));
    let mut report = SquareReport::default();
    let done = |r: bool, report: &mut SquareReport| {
        if !r {
            report.already_done += 1;
        }
        r
    };

    // Custom attribute definitions.
    for (key, name) in ATTRIBUTES {
        let endpoint = "GET /v2/customers/custom-attribute-definitions/{key}";
        match call(
            &client,
            Method::Get,
            endpoint,
            format!("/v2/customers/custom-attribute-definitions/{key}"),
            vec![],
            None,
        )
        .await
        {
            Ok(_) => continue,
            Err(SquareError::Http { status: 404, .. }) => {}
            Err(e) => return Err(node_err(e)),
        }
        let item = format!("square-attribute-definition-{key}");
        let body = json!({
            "custom_attribute_definition": {
                "key": key,
                "name": name,
                "description": "Written by flow's segmentation.deploy",
                "visibility": "VISIBILITY_READ_ONLY",
                "schema": {"$ref": "https://developer-production-s.squarecdn.com/schemas/v1/common.json#squareup.common.String"},
            },
            "idempotency_key": idempotency_key(ctx, &item),
        });
        let r = ctx
            .once(&item, |_| async {
                let endpoint = "POST /v2/customers/custom-attribute-definitions";
                match call(
                    &client,
                    Method::Post,
                    endpoint,
                    "/v2/customers/custom-attribute-definitions".into(),
                    vec![],
                    Some(body),
                )
                .await
                {
                    // Created meanwhile (an earlier attempt whose answer was lost).
                    Ok(_) | Err(SquareError::Http { status: 409, .. }) => Ok(json!({"key": key})),
                    Err(e) => Err(node_err(e)),
                }
            })
            .await?;
        done(r, &mut report);
    }

    // Segment groups.
    let mut groups = list_groups(&client, &cfg.group_prefix).await?;
    let wanted: BTreeSet<String> = profiles
        .iter()
        .map(|p| format!("{}{}", cfg.group_prefix, p.label))
        .collect();
    let mut created = false;
    for name in &wanted {
        if groups.contains_key(name) {
            continue;
        }
        let item = format!("square-group-{name}");
        let body = json!({"group": {"name": name}, "idempotency_key": idempotency_key(ctx, &item)});
        let r = ctx
            .once(&item, |_| async {
                call(
                    &client,
                    Method::Post,
                    "POST /v2/customers/groups",
                    "/v2/customers/groups".into(),
                    vec![],
                    Some(body),
                )
                .await
                .map_err(node_err)?;
                Ok(json!({"group": name}))
            })
            .await?;
        if done(r, &mut report) {
            report.groups_created += 1;
        }
        created = true;
    }
    if created {
        groups = list_groups(&client, &cfg.group_prefix).await?;
    }
    if let Some(missing) = wanted.iter().find(|n| !groups.contains_key(*n)) {
        return Err(NodeError::msg(format!(
            "Square: the customer group `{missing}` was created but is not listed by GET /v2/customers/groups"
        )));
    }
    report.groups = wanted.len();
    let segment_groups: BTreeSet<&str> = groups.values().map(String::as_str).collect();

    // Memberships: only the differences with Square's current state are written.
    let c = client.clone();
    let current: HashMap<String, Vec<String>> = flow_engine::node::spawn_blocking(move || {
        let mut all = HashMap::new();
        customers::fetch(&c, None, &mut |sc| {
            all.insert(sc.customer.customer_id, sc.group_ids);
        })
        .map(|()| all)
    })
    .await
    .map_err(|e| NodeError::msg(format!("Square request stopped: {e}")))?
    .map_err(node_err)?;
    let mut in_square: Vec<(&SquareProfile, &str)> = Vec::new();
    for p in &profiles {
        if current.contains_key(&p.customer_id) {
            let name = format!("{}{}", cfg.group_prefix, p.label);
            in_square.push((p, groups[&name].as_str()));
        } else {
            report.not_square_customers += 1;
        }
    }
    // Square customers without a profile leave the segment groups (one ledger item each: the
    // set changes as they are taken out, so it cannot be cut into stable chunks).
    let mut strays: Vec<&str> = current
        .iter()
        .filter(|(id, gs)| {
            !in_square.iter().any(|(p, _)| &p.customer_id == *id)
                && gs.iter().any(|g| segment_groups.contains(g.as_str()))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    strays.sort_unstable();
    for id in strays {
        let (add, remove) = membership_changes(&current[id], None, &segment_groups);
        let r = ctx
            .once(&format!("square-groups-{id}"), |_| {
                write_memberships(&client, vec![(id, add, remove)])
            })
            .await?;
        if done(r, &mut report) {
            report.memberships_removed += current[id].len();
        }
    }
    // Profiled customers in chunks (sorted by id, so a resume cuts the same chunks): one ledger
    // item per chunk covers its memberships and its custom attributes. A chunk cut short is
    // redone whole on resume: both writes set a state, so a repeat changes nothing.
    for (n, chunk) in in_square.chunks(CHUNK).enumerate() {
        let changes: Vec<(&str, Vec<&str>, Vec<&str>)> = chunk
            .iter()
            .map(|(p, g)| {
                let (add, remove) =
                    membership_changes(&current[&p.customer_id], Some(g), &segment_groups);
                (p.customer_id.as_str(), add, remove)
            })
            .filter(|(_, a, r)| !a.is_empty() || !r.is_empty())
            .collect();
        let (added, removed) = changes
            .iter()
            .fold((0, 0), |(a, r), c| (a + c.1.len(), r + c.2.len()));
        let r = ctx
            .once(&format!("square-customers-{}", n + 1), |_| async {
                write_memberships(&client, changes).await?;
                let per_call = UPSERT_MAX / ATTRIBUTES.len();
                for part in chunk.chunks(per_call) {
                    upsert_attributes(&client, part.iter().map(|(p, _)| *p)).await?;
                }
                Ok(json!({"customers": chunk.len()}))
            })
            .await?;
        if done(r, &mut report) {
            report.memberships_added += added;
            report.memberships_removed += removed;
            report.customers_updated += chunk.len();
        }
    }
    report.requests = client.requests();
    Ok(report)
}

/// Customers per ledger item of the push.
const CHUNK: usize = 100;

/// The segment groups to add `have` to and remove it from so that it is in `want` only.
fn membership_changes<'a>(
    have: &'a [String],
    want: Option<&'a str>,
    segment_groups: &BTreeSet<&str>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let have: Vec<&str> = have
        .iter()
        .map(String::as_str)
        .filter(|g| segment_groups.contains(g))
        .collect();
    let add = want.filter(|w| !have.contains(w)).into_iter().collect();
    let remove = have.into_iter().filter(|g| Some(*g) != want).collect();
    (add, remove)
}

/// `PUT` / `DELETE /v2/customers/{customer_id}/groups/{group_id}` for each change.
async fn write_memberships(
    client: &Arc<Client>,
    changes: Vec<(&str, Vec<&str>, Vec<&str>)>,
) -> Result<Json, NodeError> {
    for (id, add, remove) in &changes {
        for (method, gids) in [(Method::Put, add), (Method::Delete, remove)] {
            let endpoint = if method == Method::Put {
                "PUT /v2/customers/{customer_id}/groups/{group_id}"
            } else {
                "DELETE /v2/customers/{customer_id}/groups/{group_id}"
            };
            for g in gids {
                let path = format!("/v2/customers/{}/groups/{}", encode(id), encode(g));
                call(client, method, endpoint, path, vec![], None)
                    .await
                    .map_err(node_err)?;
            }
        }
    }
    Ok(json!({"customers": changes.len()}))
}

/// One bulk upsert of the profiles' attributes (at most 25 values).
async fn upsert_attributes<'a>(
    client: &Arc<Client>,
    profiles: impl Iterator<Item = &'a SquareProfile>,
) -> Result<(), NodeError> {
    const ENDPOINT: &str = "POST /v2/customers/custom-attributes/bulk-upsert";
    let mut values = serde_json::Map::new();
    for p in profiles {
        for (key, value) in attribute_values(p) {
            values.insert(
                format!("{}:{key}", p.customer_id),
                json!({"customer_id": p.customer_id, "custom_attribute": {"key": key, "value": value}}),
            );
        }
    }
    let body = json!({ "values": values });
    let answer = call(
        client,
        Method::Post,
        ENDPOINT,
        "/v2/customers/custom-attributes/bulk-upsert".into(),
        vec![],
        Some(body),
    )
    .await
    .map_err(node_err)?;
    check_upsert(ENDPOINT, &answer).map_err(node_err)
}

/// The attribute values of a profile (String values; missing ones as empty strings, so a
/// value from an earlier run does not linger).
fn attribute_values(p: &SquareProfile) -> [(&'static str, String); 5] {
    let num = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    [
        ("flow-segment", p.label.clone()),
        ("flow-clv", num(p.clv, 2)),
        ("flow-p-alive", num(p.p_alive, 3)),
        (
            "flow-recommended-products",
            p.products.clone().unwrap_or_default(),
        ),
        ("flow-action", p.action.clone().unwrap_or_default()),
    ]
}

/// A bulk upsert answers 200 with per-value errors: any error fails the call.
fn check_upsert(endpoint: &str, answer: &Json) -> Result<(), SquareError> {
    let root = JsonNode::root(endpoint, answer);
    let values = root.req("values")?;
    let Some(map) = values.value().as_object() else {
        return Err(root.malformed("values", "is not an object"));
    };
    for (k, v) in map {
        if let Some(errors) = v
            .get("errors")
            .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(SquareError::Http {
                endpoint: endpoint.into(),
                status: 200,
                message: format!("value `{k}`: {}", client_error(errors)),
            });
        }
    }
    Ok(())
}

fn client_error(errors: &Json) -> String {
    crate::connectors::square::client::error_message(&json!({ "errors": errors }).to_string())
}

/// Segment groups (name starts with `prefix`): name → id.
async fn list_groups(
    client: &Arc<Client>,
    prefix: &str,
) -> Result<BTreeMap<String, String>, NodeError> {
    const ENDPOINT: &str = "GET /v2/customers/groups";
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "50".to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let answer = call(
            client,
            Method::Get,
            ENDPOINT,
            "/v2/customers/groups".into(),
            q,
            None,
        )
        .await
        .map_err(node_err)?;
        let root = JsonNode::root(ENDPOINT, &answer);
        for g in root.list("groups").map_err(node_err)? {
            let name = g.str("name").map_err(node_err)?;
            if name.starts_with(prefix) {
                out.insert(name.to_string(), g.str("id").map_err(node_err)?.to_string());
            }
        }
        match root.cursor().map_err(node_err)? {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            Some(_) => {
                return Err(node_err(
                    root.malformed("cursor", "repeats the cursor just sent"),
                ));
            }
            None => return Ok(out),
        }
    }
}
