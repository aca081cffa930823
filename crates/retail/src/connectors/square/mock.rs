//! A local Square server for tests, behaving as the API documents: cursor paging (the query must
//! not change across pages), 429 with `Retry-After`, Square's error shape, customer groups and
//! custom attributes kept in memory so tests assert the final remote state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

/// The server's data and behaviour switches.
#[derive(Debug, Default)]
pub struct State {
    pub locations: Vec<Json>,
    pub orders: Vec<Json>,
    pub customers: Vec<Json>,
    pub catalog: Vec<Json>,
    /// group id → name.
    pub groups: BTreeMap<String, String>,
    /// customer id → group ids.
    pub memberships: BTreeMap<String, BTreeSet<String>>,
    /// custom attribute key → definition.
    pub definitions: BTreeMap<String, Json>,
    /// (customer id, key) → value.
    pub attributes: BTreeMap<(String, String), Json>,
    /// Items per page (orders, customers, catalog objects, groups).
    pub page_size: usize,
    /// The first page of each listing is empty but has a cursor.
    pub empty_first_page: bool,
    /// Answer the next N requests with 429 and `Retry-After: retry_after` (default 0).
    pub throttle: u32,
    pub retry_after: String,
    /// Answer the next N requests with 503.
    pub unavailable: u32,
    /// Answer 401 (Square's error shape) unless the bearer token is this one.
    pub require_token: Option<String>,
    /// Replace the next answer of this path with this body (status 200).
    pub garble: Option<(String, Json)>,
    /// Wait this long before answering each request (widens the windows a test kills in).
    pub delay: std::time::Duration,
    /// Answer every request after the first N of the log with 503 (a server down midway).
    pub fail_after: Option<usize>,
    /// Group idempotency key → group id.
    pub group_keys: BTreeMap<String, String>,
    /// Every request: "METHOD /path".
    pub log: Vec<String>,
    pub tokens_seen: BTreeSet<String>,
    pub versions_seen: BTreeSet<String>,
}

/// A running server; stops with the test process.
#[derive(Debug, Clone)]
pub struct Mock {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Mock {
    pub fn start(state: State) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            page_size: if state.page_size == 0 {
                100
            } else {
                state.page_size
            },
            ..state
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = shared.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        Mock { url, state }
    }

    /// Requests whose "METHOD /path" starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Customer id → names of its groups.
    pub fn groups_of(&self) -> BTreeMap<String, Vec<String>> {
        let s = self.state.lock().unwrap();
        s.memberships
            .iter()
            .map(|(c, gs)| {
                let mut names: Vec<String> = gs.iter().map(|g| s.groups[g].clone()).collect();
                names.sort();
                (c.clone(), names)
            })
            .filter(|(_, gs): &(String, Vec<String>)| !gs.is_empty())
            .collect()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect();
        let (status, extra, answer) = {
            let mut s = state.lock().unwrap();
            s.log.push(format!("{method} {path}"));
            if let Some(t) = headers.get("authorization") {
                s.tokens_seen.insert(t.clone());
            }
            if let Some(v) = headers.get("square-version") {
                s.versions_seen.insert(v.clone());
            }
            let refused = s
                .require_token
                .as_ref()
                .is_some_and(|t| headers.get("authorization") != Some(&format!("Bearer {t}")));
            if refused {
                let detail = "This request could not be authorized.";
                let e = error("AUTHENTICATION_ERROR", "UNAUTHORIZED", detail, None);
                (401, String::new(), e)
            } else if s.fail_after.is_some_and(|n| s.log.len() > n) || s.unavailable > 0 {
                s.unavailable = s.unavailable.saturating_sub(1);
                let e = error("API_ERROR", "SERVICE_UNAVAILABLE", "down", None);
                (503, String::new(), e)
            } else if s.throttle > 0 {
                s.throttle -= 1;
                let after = if s.retry_after.is_empty() {
                    "0"
                } else {
                    s.retry_after.as_str()
                };
                let e = error("RATE_LIMIT_ERROR", "RATE_LIMITED", "slow down", None);
                (429, format!("Retry-After: {after}\r\n"), e)
            } else if s.garble.as_ref().is_some_and(|(p, _)| p == path) {
                let (_, g) = s.garble.take().unwrap();
                (200, String::new(), g)
            } else {
                let (st, a) = route(&mut s, &method, path, &query, &body);
                (st, String::new(), a)
            }
        };
        let delay = state.lock().unwrap().delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let text = answer.to_string();
        let reason = if status < 300 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
            text.len()
        );
        // One write: a head and a body in two small writes meet Nagle's algorithm and the
        // client's delayed ACK (40 ms per request).
        if out.write_all(format!("{head}{text}").as_bytes()).is_err() {
            return;
        }
    }
}

fn error(category: &str, code: &str, detail: &str, field: Option<&str>) -> Json {
    json!({"errors": [{"category": category, "code": code, "detail": detail, "field": field}]})
}

fn bad(detail: &str, field: Option<&str>) -> (u16, Json) {
    (
        400,
        error("INVALID_REQUEST_ERROR", "BAD_REQUEST", detail, field),
    )
}

/// One page of `items` after `cursor` (`"<offset>|<query>"`): an error when the query changed.
fn page(
    s: &State,
    items: Vec<Json>,
    cursor: Option<&str>,
    limit: usize,
    query: &str,
    key: &str,
) -> Result<Json, (u16, Json)> {
    let start = match cursor {
        None => 0,
        Some(c) => {
            let (off, q) = c
                .split_once('|')
                .ok_or_else(|| bad("invalid cursor", Some("cursor")))?;
            if q != query {
                return Err(bad(
                    "the query must be the same as the one the cursor came from",
                    Some("cursor"),
                ));
            }
            off.parse()
                .map_err(|_| bad("invalid cursor", Some("cursor")))?
        }
    };
    if s.empty_first_page && cursor.is_none() {
        return Ok(json!({ key: [], "cursor": format!("0|{query}") }));
    }
    let limit = limit.min(s.page_size);
    let end = (start + limit).min(items.len());
    let mut out = json!({ key: items[start.min(end)..end] });
    if end < items.len() {
        out["cursor"] = Json::from(format!("{end}|{query}"));
    }
    Ok(out)
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &Json,
) -> (u16, Json) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (method, segs.as_slice()) {
        ("GET", ["v2", "locations"]) => Ok(json!({"locations": s.locations})),
        ("POST", ["v2", "orders", "search"]) => search_orders(s, body),
        ("GET", ["v2", "customers"]) => {
            let items = s.customers.iter().map(|c| with_groups(s, c)).collect();
            page(
                s,
                items,
                query.get("cursor").map(String::as_str),
                100,
                "list",
                "customers",
            )
        }
        ("POST", ["v2", "customers", "search"]) => {
            let since = body
                .pointer("/query/filter/updated_at/start_at")
                .and_then(Json::as_str)
                .unwrap_or("");
            let items = s
                .customers
                .iter()
                .filter(|c| c["updated_at"].as_str().unwrap_or("") >= since)
                .map(|c| with_groups(s, c))
                .collect();
            let mut q = body.clone();
            q.as_object_mut().unwrap().remove("cursor");
            page(
                s,
                items,
                body["cursor"].as_str(),
                100,
                &q.to_string(),
                "customers",
            )
        }
        ("GET", ["v2", "catalog", "list"]) => {
            let types = query.get("types").cloned().unwrap_or_default();
            let items = s
                .catalog
                .iter()
                .filter(|o| types.split(',').any(|t| o["type"] == t))
                .cloned()
                .collect();
            page(
                s,
                items,
                query.get("cursor").map(String::as_str),
                100,
                &types,
                "objects",
            )
        }
        ("GET", ["v2", "customers", "groups"]) => {
            let items = s
                .groups
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect();
            page(
                s,
                items,
                query.get("cursor").map(String::as_str),
                50,
                "groups",
                "groups",
            )
        }
        ("POST", ["v2", "customers", "groups"]) => {
            let Some(name) = body.pointer("/group/name").and_then(Json::as_str) else {
                return bad("group.name is required", Some("group.name"));
            };
            let key = body["idempotency_key"].as_str().unwrap_or("").to_string();
            if let Some(id) = s.group_keys.get(&key).filter(|_| !key.is_empty()) {
                return (200, json!({"group": {"id": id, "name": s.groups[id]}}));
            }
            if s.groups.values().any(|n| n == name) {
                return bad("a group with this name exists", Some("group.name"));
            }
            let id = format!("G{}", s.groups.len() + 1);
            s.groups.insert(id.clone(), name.to_string());
            if !key.is_empty() {
                s.group_keys.insert(key, id.clone());
            }
            Ok(json!({"group": {"id": id, "name": name}}))
        }
        ("PUT" | "DELETE", ["v2", "customers", cid, "groups", gid]) => {
            if !s.customers.iter().any(|c| c["id"] == *cid) {
                return (
                    404,
                    error(
                        "INVALID_REQUEST_ERROR",
                        "NOT_FOUND",
                        "customer not found",
                        None,
                    ),
                );
            }
            if !s.groups.contains_key(*gid) {
                return (
                    404,
                    error(
                        "INVALID_REQUEST_ERROR",
                        "NOT_FOUND",
                        "group not found",
                        None,
                    ),
                );
            }
            let set = s.memberships.entry(cid.to_string()).or_default();
            if method == "PUT" {
                set.insert(gid.to_string());
            } else {
                set.remove(*gid);
            }
            Ok(json!({}))
        }
        ("GET", ["v2", "customers", "custom-attribute-definitions", key]) => {
            match s.definitions.get(*key) {
                Some(d) => Ok(json!({"custom_attribute_definition": d})),
                None => Err((
                    404,
                    error(
                        "INVALID_REQUEST_ERROR",
                        "NOT_FOUND",
                        "no such definition",
                        None,
                    ),
                )),
            }
        }
        ("POST", ["v2", "customers", "custom-attribute-definitions"]) => {
            let d = &body["custom_attribute_definition"];
            let Some(key) = d["key"].as_str() else {
                return bad("key is required", Some("custom_attribute_definition.key"));
            };
            if s.definitions.contains_key(key) {
                return (
                    409,
                    error("INVALID_REQUEST_ERROR", "CONFLICT", "key exists", None),
                );
            }
            s.definitions.insert(key.to_string(), d.clone());
            Ok(json!({"custom_attribute_definition": d}))
        }
        ("POST", ["v2", "customers", "custom-attributes", "bulk-upsert"]) => {
            let Some(values) = body["values"].as_object() else {
                return bad("values is required", Some("values"));
            };
            if values.len() > 25 {
                return bad("at most 25 values", Some("values"));
            }
            let mut out = serde_json::Map::new();
            for (k, v) in values {
                let (Some(cid), Some(key)) = (
                    v["customer_id"].as_str(),
                    v.pointer("/custom_attribute/key").and_then(Json::as_str),
                ) else {
                    return bad(
                        "customer_id and custom_attribute.key are required",
                        Some("values"),
                    );
                };
                if !s.definitions.contains_key(key) {
                    out.insert(k.clone(), json!({"errors": [{"category": "INVALID_REQUEST_ERROR", "code": "NOT_FOUND", "detail": "no definition"}]}));
                    continue;
                }
                s.attributes.insert(
                    (cid.to_string(), key.to_string()),
                    v["custom_attribute"]["value"].clone(),
                );
                out.insert(
                    k.clone(),
                    json!({"customer_id": cid, "custom_attribute": v["custom_attribute"]}),
                );
            }
            Ok(json!({"values": out}))
        }
        _ => Err((
            404,
            error(
                "INVALID_REQUEST_ERROR",
                "NOT_FOUND",
                "no such endpoint",
                None,
            ),
        )),
    };
    match result {
        Ok(a) => (200, a),
        Err(e) => e,
    }
}

fn with_groups(s: &State, c: &Json) -> Json {
    let mut c = c.clone();
    let id = c["id"].as_str().unwrap_or("").to_string();
    if let Some(gs) = s.memberships.get(&id).filter(|g| !g.is_empty()) {
        c["group_ids"] = json!(gs);
    }
    c
}

fn search_orders(s: &State, body: &Json) -> Result<Json, (u16, Json)> {
    let ids: Vec<&str> = body["location_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 10 {
        return Err(bad(
            "location_ids must hold 1 to 10 ids",
            Some("location_ids"),
        ));
    }
    let limit = body["limit"].as_u64().unwrap_or(500) as usize;
    if limit > 1000 {
        return Err(bad("limit must be at most 1000", Some("limit")));
    }
    let since = body
        .pointer("/query/filter/date_time_filter/updated_at/start_at")
        .and_then(Json::as_str);
    if since.is_some()
        && body
            .pointer("/query/sort/sort_field")
            .and_then(Json::as_str)
            != Some("UPDATED_AT")
    {
        return Err(bad(
            "the sort field must match the date time filter",
            Some("query.sort.sort_field"),
        ));
    }
    let mut items: Vec<Json> = s
        .orders
        .iter()
        .filter(|o| ids.contains(&o["location_id"].as_str().unwrap_or("")))
        .filter(|o| since.is_none_or(|t| o["updated_at"].as_str().unwrap_or("") >= t))
        .cloned()
        .collect();
    items.sort_by(|a, b| {
        a["updated_at"]
            .as_str()
            .cmp(&b["updated_at"].as_str())
            .then(a["id"].as_str().cmp(&b["id"].as_str()))
    });
    let mut q = body.clone();
    q.as_object_mut().unwrap().remove("cursor");
    page(
        s,
        items,
        body["cursor"].as_str(),
        limit,
        &q.to_string(),
        "orders",
    )
}
