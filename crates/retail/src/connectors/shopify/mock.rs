//! A local stand-in for a shop's Admin GraphQL API, for tests: it behaves as Shopify documents
//! it for the operations the connector uses, keeps the customers' tags and metafields, counts
//! requests, and injects faults on demand.
//!
//! - Auth: `X-Shopify-Access-Token` must match, else HTTP 401.
//! - Cost: every query costs `query_cost` points out of a leaky bucket (`bucket_max`, refilled at
//!   `restore_rate` per second), reported in `extensions.cost.throttleStatus`; a query the bucket
//!   cannot pay gets a `THROTTLED` error.
//! - Bulk operations: `CREATED`, then `RUNNING`, then `COMPLETED` on successive polls, the result
//!   a JSONL file (children after their parent, with `__parentId`); one at a time.
//! - Orders and products: `updated_at:>='…'` filters, `UPDATED_AT` order, `first`/`after` cursors.
//! - Mutations: `tagsAdd`, `tagsRemove`, `metafieldsSet` (at most 25 metafields per call).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

/// A customer's remote state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteCustomer {
    pub tags: BTreeSet<String>,
    /// (namespace, key) → (type, value).
    pub metafields: BTreeMap<(String, String), (String, String)>,
}

/// Requests served, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub shop: u64,
    pub bulk_runs: u64,
    pub bulk_polls: u64,
    pub downloads: u64,
    pub order_pages: u64,
    pub order_line_pages: u64,
    pub product_pages: u64,
    pub state_reads: u64,
    pub mutations: u64,
    pub throttled: u64,
    pub unauthorized: u64,
    pub faults: u64,
    /// Time spent answering (building pages and files), for benches to tell it apart.
    pub busy: Duration,
}

type Transform = Box<dyn FnMut(&str, &mut Json) + Send>;

/// Everything the mock knows; tests read and change it through [`MockShop::state`].
pub struct State {
    pub token: String,
    pub time_zone: String,
    /// By GID; line items under `lineItems` and refunds under `refunds` (each with its
    /// `refundLineItems`), as plain lists.
    pub orders: BTreeMap<String, Json>,
    pub products: BTreeMap<String, Json>,
    pub customers: BTreeMap<String, RemoteCustomer>,
    pub query_cost: f64,
    pub bucket_max: f64,
    pub restore_rate: f64,
    available: f64,
    refilled_at: Instant,
    /// Polls a bulk operation takes to complete (first poll: RUNNING).
    pub bulk_polls: u32,
    /// Make the next bulk operation end FAILED with this error code.
    pub bulk_fail: Option<String>,
    /// Every bulk operation (id, what, polls, done); the last is the current one.
    bulk: Vec<(String, String, u32, bool)>,
    bulk_seq: u32,
    /// Time reported as the bulk operation's start.
    pub now: String,
    /// Statuses returned (one per request) before serving normally.
    pub fail_next: Vec<u16>,
    /// Changes a reply before it is sent: `(kind, body)` (kind: `shop`, `orders`, `bulk_poll`...).
    pub transform: Option<Transform>,
    /// A full last page is followed by an empty page with `hasNextPage: false`.
    pub trailing_empty_page: bool,
    /// Wait before answering each request.
    pub delay: Duration,
    pub counts: Counts,
    /// API versions requested.
    pub versions: BTreeSet<String>,
    /// Size of every `metafieldsSet` call.
    pub metafields_per_call: Vec<usize>,
    /// `http://127.0.0.1:PORT`, set when the server starts.
    pub base: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            token: "shpat_test_token_0000".into(),
            time_zone: "America/New_York".into(),
            orders: BTreeMap::new(),
            products: BTreeMap::new(),
            customers: BTreeMap::new(),
            query_cost: 10.0,
            bucket_max: 1000.0,
            restore_rate: 50.0,
            available: 1000.0,
            refilled_at: Instant::now(),
            bulk_polls: 2,
            bulk_fail: None,
            bulk: Vec::new(),
            bulk_seq: 0,
            now: "2026-01-10T06:00:00Z".into(),
            fail_next: Vec::new(),
            transform: None,
            trailing_empty_page: false,
            delay: Duration::ZERO,
            counts: Counts::default(),
            versions: BTreeSet::new(),
            metafields_per_call: Vec::new(),
            base: String::new(),
        }
    }
}

impl State {
    /// Sets the bucket to `available` points now.
    pub fn set_available(&mut self, available: f64) {
        self.available = available;
        self.refilled_at = Instant::now();
    }
}

/// A running mock shop.
pub struct MockShop {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for MockShop {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl MockShop {
    /// Starts a mock on a free loopback port, on its own thread.
    pub fn start(state: State) -> MockShop {
        let state = Arc::new(Mutex::new(state));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                shared.lock().expect("state").base = format!("http://{addr}");
                addr_tx.send(addr).expect("send");
                let app = Router::new()
                    .route("/admin/api/{version}/graphql.json", post(graphql))
                    .route("/bulk/{file}", get(download))
                    .with_state(shared.clone());
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("mock address");
        MockShop {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("mock state")
    }

    pub fn counts(&self) -> Counts {
        self.state().counts.clone()
    }

    /// The tags of a customer (by numeric id) with the prefix.
    pub fn tags(&self, id: &str, prefix: &str) -> Vec<String> {
        self.state()
            .customers
            .get(&format!("gid://shopify/Customer/{id}"))
            .map(|c| {
                c.tags
                    .iter()
                    .filter(|t| t.starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn money(amount: &str, currency: &str) -> Json {
    json!({ "shopMoney": { "amount": amount, "currencyCode": currency } })
}

/// A plain order for tests: `lines` are (product id, quantity, unit price) in `currency`.
pub fn order(
    id: u64,
    customer: Option<u64>,
    processed_at: &str,
    updated_at: &str,
    lines: &[(u64, i64, &str)],
) -> Json {
    let items: Vec<Json> = lines
        .iter()
        .enumerate()
        .map(|(i, (product, qty, price))| {
            let unit = crate::connectors::shopify::mapping::Decimal::parse(price).expect("price");
            let mut total = crate::connectors::shopify::mapping::Decimal::default();
            for _ in 0..*qty {
                total = total + unit;
            }
            json!({
                "id": format!("gid://shopify/LineItem/{}", id * 100 + i as u64),
                "name": format!("Product {product} - Default"),
                "title": format!("Product {product}"),
                "sku": format!("SKU-{product}"),
                "quantity": qty,
                "currentQuantity": qty,
                "originalUnitPriceSet": money(price, "USD"),
                "discountedTotalSet": money(&total.to_f64().to_string(), "USD"),
                "variant": { "id": format!("gid://shopify/ProductVariant/{}", product * 10) },
                "product": { "id": format!("gid://shopify/Product/{product}"), "productType": format!("Type {}", product % 3) },
            })
        })
        .collect();
    json!({
        "id": format!("gid://shopify/Order/{id}"),
        "name": format!("#{}", 1000 + id),
        "createdAt": processed_at,
        "updatedAt": updated_at,
        "processedAt": processed_at,
        "cancelledAt": null,
        "customer": customer.map(|c| json!({
            "id": format!("gid://shopify/Customer/{c}"),
            "email": format!("Customer{c}@Example.com"),
            "firstName": "Cus", "lastName": format!("Tomer{c}"), "displayName": format!("Cus Tomer{c}"),
            "emailMarketingConsent": { "marketingState": if c % 2 == 0 { "SUBSCRIBED" } else { "UNSUBSCRIBED" } },
        })),
        "refunds": [],
        "lineItems": items,
    })
}

fn reply(status: StatusCode, body: Json) -> Response {
    (status, axum::Json(body)).into_response()
}

fn cost_ext(s: &State, requested: f64) -> Json {
    json!({ "cost": { "requestedQueryCost": requested, "actualQueryCost": requested,
        "throttleStatus": { "maximumAvailable": s.bucket_max, "currentlyAvailable": s.available,
            "restoreRate": s.restore_rate } } })
}

fn kind_of(query: &str) -> &'static str {
    if query.contains("bulkOperationRunQuery") {
        "bulk_run"
    } else if query.contains("currentBulkOperation") {
        "bulk_current"
    } else if query.contains("BulkOperation") {
        "bulk_poll"
    } else if query.contains("shop {") {
        "shop"
    } else if query.contains("OrdersSince") {
        "orders"
    } else if query.contains("OrderLines") {
        "order_lines"
    } else if query.contains("ProductsSince") {
        "products"
    } else if query.contains("CustomerState") {
        "customer_state"
    } else if query.contains("mutation") {
        "mutation"
    } else {
        "unknown"
    }
}

async fn graphql(
    AxState(state): AxState<Arc<Mutex<State>>>,
    path: Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let started = Instant::now();
    let response = answer_graphql(state.clone(), path, headers, body).await;
    state.lock().expect("state").counts.busy += started.elapsed();
    response
}

async fn answer_graphql(
    state: Arc<Mutex<State>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let delay = state.lock().expect("state").delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().expect("state");
    s.counts.total += 1;
    s.versions.insert(version);
    if let Some(status) = (!s.fail_next.is_empty()).then(|| s.fail_next.remove(0)) {
        s.counts.faults += 1;
        return reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({ "errors": "Internal error, please retry" }),
        );
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(s.token.as_str()) {
        s.counts.unauthorized += 1;
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }),
        );
    }
    let Ok(req) = serde_json::from_str::<Json>(&body) else {
        return reply(StatusCode::BAD_REQUEST, json!({ "errors": "bad JSON" }));
    };
    let query = req
        .get("query")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let vars = req.get("variables").cloned().unwrap_or(Json::Null);
    // The leaky bucket.
    let now = Instant::now();
    let refill = now.duration_since(s.refilled_at).as_secs_f64() * s.restore_rate;
    s.available = (s.available + refill).min(s.bucket_max);
    s.refilled_at = now;
    let cost = s.query_cost;
    if s.available < cost {
        s.counts.throttled += 1;
        let ext = cost_ext(&s, cost);
        return reply(
            StatusCode::OK,
            json!({ "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits" } }],
                "extensions": ext }),
        );
    }
    s.available -= cost;
    let kind = kind_of(&query);
    let data = match kind {
        "shop" => {
            s.counts.shop += 1;
            json!({ "shop": { "ianaTimezone": s.time_zone, "currencyCode": "USD" } })
        }
        "bulk_run" => bulk_run(&mut s, &vars),
        "bulk_poll" => bulk_poll(&mut s, &vars),
        "bulk_current" => {
            // The operation runs on whoever polls (its own client may be gone).
            s.counts.bulk_polls += 1;
            let needed = s.bulk_polls;
            match s.bulk.last_mut() {
                Some((id, _, polls, done)) => {
                    *polls += 1;
                    *done |= *polls >= needed;
                    json!({ "currentBulkOperation": {
                        "id": id, "status": if *done { "COMPLETED" } else { "RUNNING" } } })
                }
                None => json!({ "currentBulkOperation": null }),
            }
        }
        "orders" => {
            s.counts.order_pages += 1;
            page(&s, &vars, true)
        }
        "products" => {
            s.counts.product_pages += 1;
            page(&s, &vars, false)
        }
        "order_lines" => {
            s.counts.order_line_pages += 1;
            let id = vars.get("id").and_then(Json::as_str).unwrap_or("");
            let from = vars
                .get("after")
                .and_then(Json::as_str)
                .and_then(|c| c.strip_prefix("li:"))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let items = s
                .orders
                .get(id)
                .and_then(|o| o["lineItems"].as_array().cloned())
                .unwrap_or_default();
            let end = (from + 250).min(items.len());
            let more = end < items.len();
            json!({ "order": { "lineItems": {
                "pageInfo": { "hasNextPage": more, "endCursor": format!("li:{end}") },
                "nodes": items[from.min(end)..end].to_vec() } } })
        }
        "customer_state" => {
            s.counts.state_reads += 1;
            customer_state(&s, &vars)
        }
        "mutation" => {
            s.counts.mutations += 1;
            match mutation(&mut s, &query, &vars) {
                Ok(d) => d,
                Err(e) => {
                    let ext = cost_ext(&s, cost);
                    return reply(
                        StatusCode::OK,
                        json!({ "errors": [{ "message": e }], "extensions": ext }),
                    );
                }
            }
        }
        _ => {
            return reply(
                StatusCode::OK,
                json!({ "errors": [{ "message": "unknown query" }] }),
            );
        }
    };
    let mut body = json!({ "data": data, "extensions": cost_ext(&s, cost) });
    if let Some(t) = s.transform.as_mut() {
        t(kind, &mut body);
    }
    reply(StatusCode::OK, body)
}

fn bulk_run(s: &mut State, vars: &Json) -> Json {
    s.counts.bulk_runs += 1;
    if s.bulk.last().is_some_and(|b| !b.3) {
        return json!({ "bulkOperationRunQuery": { "bulkOperation": null, "userErrors": [
            { "field": null, "message": "A bulk query operation for this app and shop is already in progress." }] } });
    }
    let q = vars.get("query").and_then(Json::as_str).unwrap_or("");
    let what = if q.contains("orders") {
        "orders"
    } else {
        "products"
    };
    s.bulk_seq += 1;
    let id = format!("gid://shopify/BulkOperation/{}", s.bulk_seq);
    s.bulk.push((id.clone(), what.to_string(), 0, false));
    json!({ "bulkOperationRunQuery": { "bulkOperation": { "id": id, "status": "CREATED" }, "userErrors": [] } })
}

fn bulk_poll(s: &mut State, vars: &Json) -> Json {
    s.counts.bulk_polls += 1;
    let asked = vars.get("id").and_then(Json::as_str).unwrap_or("");
    let polls_needed = s.bulk_polls;
    let fail = s.bulk_fail.clone();
    let now = s.now.clone();
    let base = s.base.clone();
    let (orders, products) = (s.orders.len(), s.products.len());
    let Some(op) = s.bulk.iter_mut().find(|b| b.0 == asked) else {
        return json!({ "node": null });
    };
    op.2 += 1;
    let status = if op.2 < polls_needed {
        "RUNNING"
    } else if fail.is_some() {
        op.3 = true;
        "FAILED"
    } else {
        op.3 = true;
        "COMPLETED"
    };
    let file = format!("{}-{}.jsonl", op.1, op.0.rsplit('/').next().unwrap_or("0"));
    let done = status == "COMPLETED";
    let count = if done {
        match op.1.as_str() {
            "orders" => orders,
            _ => products,
        }
    } else {
        0
    };
    json!({ "node": {
        "id": asked, "status": status, "errorCode": if status == "FAILED" { fail.map(Json::from).unwrap_or(Json::Null) } else { Json::Null },
        "objectCount": count.to_string(), "createdAt": now, "completedAt": if done { Json::from(now.clone()) } else { Json::Null },
        "url": if done { Json::from(format!("{}/bulk/{file}?X-Goog-Signature=secret-signature", base)) } else { Json::Null },
        "partialDataUrl": null,
    } })
}

/// The bulk result: each object, then its children with `__parentId`.
fn jsonl(s: &State, what: &str) -> String {
    let mut out = String::new();
    let mut line = |v: &Json| {
        out.push_str(&v.to_string());
        out.push('\n');
    };
    if what == "orders" {
        for o in s.orders.values() {
            let mut top = o.clone();
            let items = top
                .as_object_mut()
                .and_then(|m| m.remove("lineItems"))
                .unwrap_or(json!([]));
            let refunds = top.get("refunds").cloned().unwrap_or(json!([]));
            // Refunds are a list field: inline, without their nested connection.
            if let Some(list) = top.get_mut("refunds").and_then(Json::as_array_mut) {
                for r in list {
                    if let Some(m) = r.as_object_mut() {
                        m.remove("refundLineItems");
                    }
                }
            }
            line(&top);
            let parent = o["id"].clone();
            for li in items.as_array().into_iter().flatten() {
                let mut li = li.clone();
                li["__parentId"] = parent.clone();
                line(&li);
            }
            for r in refunds.as_array().into_iter().flatten() {
                for rli in r
                    .get("refundLineItems")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mut rli = rli.clone();
                    rli["__parentId"] = r["id"].clone();
                    line(&rli);
                }
            }
        }
    } else {
        for p in s.products.values() {
            let mut top = p.clone();
            let m = top.as_object_mut().expect("object");
            let collections = m.remove("collections").unwrap_or(json!([]));
            let variants = m.remove("variants").unwrap_or(json!([]));
            line(&top);
            for c in collections
                .as_array()
                .into_iter()
                .flatten()
                .chain(variants.as_array().into_iter().flatten())
            {
                let mut c = c.clone();
                c["__parentId"] = p["id"].clone();
                line(&c);
            }
        }
    }
    out
}

async fn download(
    AxState(state): AxState<Arc<Mutex<State>>>,
    Path(file): Path<String>,
) -> Response {
    let started = Instant::now();
    let mut s = state.lock().expect("state");
    s.counts.downloads += 1;
    s.counts.total += 1;
    let what = if file.starts_with("orders") {
        "orders"
    } else {
        "products"
    };
    let mut text = jsonl(&s, what);
    if let Some(t) = s.transform.as_mut() {
        let mut v = Json::String(text);
        t("download", &mut v);
        text = v.as_str().unwrap_or("").to_string();
    }
    s.counts.busy += started.elapsed();
    (StatusCode::OK, text).into_response()
}

fn updated(v: &Json) -> String {
    v.get("updatedAt")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string()
}

/// One page of orders or products after the filter.
fn page(s: &State, vars: &Json, orders: bool) -> Json {
    let q = vars.get("q").and_then(Json::as_str).unwrap_or("");
    let since = q
        .strip_prefix("updated_at:>='")
        .and_then(|r| r.strip_suffix('\''))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let first = vars
        .get("first")
        .and_then(Json::as_u64)
        .unwrap_or(50)
        .clamp(1, 250) as usize;
    let after = vars
        .get("after")
        .and_then(Json::as_str)
        .and_then(|c| c.strip_prefix("cursor:"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let source = if orders { &s.orders } else { &s.products };
    // UTC times written alike (`2026-01-10T09:30:00Z`) compare as text, which keeps a page
    // of a big shop cheap to serve; other forms are parsed.
    let utc = |t: &str| t.len() == 20 && t.ends_with('Z');
    let since_text = since.map(|t| t.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let mut all: Vec<&Json> = source
        .values()
        .filter(|v| {
            since.is_none_or(|t| {
                let u = v.get("updatedAt").and_then(Json::as_str).unwrap_or("");
                match &since_text {
                    Some(st) if utc(u) => u >= st.as_str(),
                    _ => chrono::DateTime::parse_from_rfc3339(u).is_ok_and(|u| u >= t),
                }
            })
        })
        .collect();
    all.sort_by_key(|v| (updated(v), v["id"].as_str().unwrap_or("").to_string()));
    let end = (after + first).min(all.len());
    let nodes: Vec<Json> = all[after.min(end)..end]
        .iter()
        .map(|v| {
            let mut v = (*v).clone();
            if orders {
                // At most 100 line items per order in a page, as the connector asks.
                let items = v["lineItems"].as_array().cloned().unwrap_or_default();
                let more = items.len() > 100;
                let first: Vec<Json> = items.into_iter().take(100).collect();
                v["lineItems"] = json!({ "pageInfo": { "hasNextPage": more,
                    "endCursor": if more { Json::from("li:100") } else { Json::Null } }, "nodes": first });
                if let Some(list) = v.get_mut("refunds").and_then(Json::as_array_mut) {
                    for r in list {
                        let rl = r["refundLineItems"].clone();
                        r["refundLineItems"] = json!({ "nodes": rl });
                    }
                }
            } else {
                for key in ["collections", "variants"] {
                    let items = v[key].clone();
                    v[key] = json!({ "nodes": items });
                }
            }
            v
        })
        .collect();
    let more = end < all.len()
        || (s.trailing_empty_page && end == all.len() && !nodes.is_empty() && end > after);
    let field = if orders { "orders" } else { "products" };
    json!({ field: {
        "pageInfo": { "hasNextPage": more, "endCursor": if nodes.is_empty() { Json::Null } else { Json::from(format!("cursor:{end}")) } },
        "nodes": nodes,
    } })
}

fn customer_state(s: &State, vars: &Json) -> Json {
    let ns = vars.get("ns").and_then(Json::as_str).unwrap_or("");
    let nodes: Vec<Json> = vars
        .get("ids")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|id| {
            let id = id.as_str().unwrap_or("");
            match s.customers.get(id) {
                Some(c) => json!({
                    "id": id,
                    "tags": c.tags.iter().collect::<Vec<_>>(),
                    "metafields": { "nodes": c.metafields.iter()
                        .filter(|((n, _), _)| n == ns)
                        .map(|((_, k), (_, v))| json!({ "key": k, "value": v })).collect::<Vec<_>>() },
                }),
                None => Json::Null,
            }
        })
        .collect();
    json!({ "nodes": nodes })
}

/// `(alias, [variable names])` of each call of `field` in a mutation document.
fn calls<'a>(doc: &'a str, field: &'a str) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out = Vec::new();
    let pat = format!("{field}(");
    let mut from = 0;
    while let Some(pos) = doc[from..].find(&pat) {
        let start = from + pos;
        let alias = doc[..start]
            .trim_end()
            .strip_suffix(':')
            .map(|s| {
                s.trim_end()
                    .rsplit(|c: char| c.is_whitespace() || c == '{')
                    .next()
                    .unwrap_or("")
            })
            .unwrap_or(field);
        let args_end = doc[start..].find(')').map_or(doc.len(), |e| start + e);
        let vars = doc[start + pat.len()..args_end]
            .split('$')
            .skip(1)
            .map(|v| {
                let end = v
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(v.len());
                &v[..end]
            })
            .collect();
        out.push((alias, vars));
        from = args_end;
    }
    out
}

fn mutation(s: &mut State, doc: &str, vars: &Json) -> Result<Json, String> {
    let mut data = serde_json::Map::new();
    let not_found = |alias: &str| json!({ "userErrors": [{ "field": ["id"], "message": format!("Customer does not exist ({alias})") }] });
    // Mutations run in document order.
    let mut ops: Vec<(usize, &str, &str, Vec<&str>)> = Vec::new();
    for f in ["tagsRemove", "tagsAdd", "metafieldsSet"] {
        for (alias, v) in calls(doc, f) {
            let at = doc.find(&format!("{alias}: {f}(")).unwrap_or(0);
            ops.push((at, f, alias, v));
        }
    }
    ops.sort_by_key(|o| o.0);
    for (_, f, alias, v) in ops {
        match f {
            "tagsAdd" | "tagsRemove" => {
                let id = vars.get(v[0]).and_then(Json::as_str).unwrap_or("");
                let tags: Vec<String> = vars
                    .get(v[1])
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                let Some(c) = s.customers.get_mut(id) else {
                    data.insert(alias.into(), not_found(alias));
                    continue;
                };
                for t in tags {
                    if f == "tagsAdd" {
                        c.tags.insert(t);
                    } else {
                        c.tags.remove(&t);
                    }
                }
                data.insert(
                    alias.into(),
                    json!({ "node": { "id": id }, "userErrors": [] }),
                );
            }
            _ => {
                let list = vars
                    .get(v[0])
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                if list.len() > 25 {
                    return Err(format!(
                        "The input array size of {} is greater than the maximum allowed of 25.",
                        list.len()
                    ));
                }
                s.metafields_per_call.push(list.len());
                let mut errors = Vec::new();
                for m in &list {
                    let get = |k: &str| m.get(k).and_then(Json::as_str).unwrap_or("").to_string();
                    let (owner, ty, value) = (get("ownerId"), get("type"), get("value"));
                    if ty == "json" && serde_json::from_str::<Json>(&value).is_err() {
                        errors.push(json!({ "field": ["metafields", "value"], "message": "Value is invalid JSON", "code": "INVALID_VALUE" }));
                        continue;
                    }
                    if ty == "single_line_text_field" && (value.contains('\n') || value.is_empty())
                    {
                        errors.push(json!({ "field": ["metafields", "value"], "message": "Value is invalid", "code": "INVALID_VALUE" }));
                        continue;
                    }
                    match s.customers.get_mut(&owner) {
                        Some(c) => {
                            c.metafields.insert((get("namespace"), get("key")), (ty, value));
                        }
                        None => errors.push(json!({ "field": ["metafields", "ownerId"], "message": "Owner does not exist", "code": "INVALID" })),
                    }
                }
                data.insert(
                    alias.into(),
                    json!({ "metafields": [], "userErrors": errors }),
                );
            }
        }
    }
    Ok(Json::Object(data))
}
