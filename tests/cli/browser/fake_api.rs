//! A stand-in for the JSON API: contract-shaped fixtures (hostile strings included) served
//! beside the real UI router, so the pages can be tested before and apart from the real API.
//! It records the state-changing requests it gets, and the test pushes live events through it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Markup that must show as text: it would run a script if it became HTML.
pub const HOSTILE: &str = "<img src=x onerror=\"window.__flowPwned=1\">";
pub const CSRF: &str = "csrf-fixture-token";
pub const FAILED_RUN: &str = "01JFAILEDRUN000000000000001";
const OK_RUN: &str = "01JOKRUN0000000000000000002";

#[derive(Clone)]
pub struct Fake {
    events: broadcast::Sender<(String, Value)>,
    /// `(path, X-Flow-CSRF header, body)` of every POST.
    pub posts: Arc<Mutex<Vec<(String, String, Value)>>>,
    failed_run_fixed: Arc<Mutex<bool>>,
}

pub struct FakeServer {
    pub base: String,
    pub fake: Fake,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Sends a live event to every open page.
    pub fn emit(&self, event: &str, data: Value) {
        let _ = self.events.send((event.to_string(), data));
    }
}

pub async fn start() -> FakeServer {
    let (events, _) = broadcast::channel(64);
    let fake = Fake {
        events,
        posts: Arc::default(),
        failed_run_fixed: Arc::default(),
    };
    let api = Router::new()
        .route(
            "/api/session",
            get(|| async { Json(json!({ "csrf": CSRF, "authenticated": false })) }),
        )
        .route(
            "/api/workflows",
            get(|| async { Json(json!({ "workflows": [segmentation(), broken(), big()] })) }),
        )
        .route("/api/workflows/{key}", get(workflow))
        .route("/api/workflows/{key}/runs", post(start_run))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/api/runs/{id}/resume", post(resume))
        .route("/api/runs/{id}/nodes/{node}/output", get(output))
        .route("/api/runs/{id}/nodes/{node}/logs", get(logs))
        .route("/api/events", get(stream))
        .with_state(fake.clone());
    let app = flow_web::ui_router().merge(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeServer { base, fake, task }
}

fn not_found(what: &str) -> Response {
    let body = json!({ "error": { "code": "not_found", "message": format!("no {what}") } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn record(fake: &Fake, path: String, headers: &HeaderMap, body: Value) -> bool {
    let csrf = headers
        .get("x-flow-csrf")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ok = csrf == CSRF;
    fake.posts.lock().unwrap().push((path, csrf, body));
    ok
}

fn forbidden() -> Response {
    let body =
        json!({ "error": { "code": "forbidden", "message": "missing or wrong CSRF token" } });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

async fn workflow(Path(key): Path<String>) -> Response {
    let mut wf = match key.as_str() {
        "retail-segmentation" => segmentation(),
        "broken" => broken(),
        "big" => big(),
        _ => return not_found("such workflow"),
    };
    let extra = json!({
        "params": [
            { "name": "min_customers", "type": "integer", "default": 500, "description": "smallest segment worth a campaign", "allowed": null, "min": 1, "max": 100000 },
            { "name": "tier", "type": "string", "default": "gold", "description": null, "allowed": ["gold", "silver", "bronze"], "min": null, "max": null },
            { "name": "dry_run", "type": "boolean", "default": false, "description": "compute without sending", "allowed": null, "min": null, "max": null },
            { "name": "label", "type": "string", "default": HOSTILE, "description": "campaign label", "allowed": null, "min": null, "max": null },
            { "name": "stores", "type": "list", "default": ["north", "south"], "description": null, "allowed": null, "min": null, "max": null }
        ],
        "graph": if key == "big" { big_graph() } else { segmentation_graph() },
        "firings": [
            { "trigger": "daily", "scheduled_for": "2026-12-01T06:00:00Z", "at": "2026-12-01T06:00:01Z", "outcome": "fired", "run_id": FAILED_RUN, "reason": null },
            { "trigger": "daily", "scheduled_for": "2026-11-30T06:00:00Z", "at": "2026-11-30T06:00:00Z", "outcome": "skipped", "run_id": null, "reason": "the previous run was still running (overlap: skip)" },
            { "trigger": "daily", "scheduled_for": "2026-11-29T06:00:00Z", "at": "2026-11-29T09:12:00Z", "outcome": "missed", "run_id": null, "reason": "the server was down; catchup: none" }
        ],
        "recent_runs": [failed_summary(false), ok_summary()]
    });
    for (k, v) in extra.as_object().unwrap() {
        wf[k] = v.clone();
    }
    Json(wf).into_response()
}

async fn start_run(
    State(fake): State<Fake>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !record(
        &fake,
        format!("/api/workflows/{key}/runs"),
        &headers,
        body.clone(),
    ) {
        return forbidden();
    }
    if body["params"]["min_customers"]
        .as_i64()
        .is_some_and(|n| n < 1)
    {
        let message = "param `min_customers`: 0 is less than the minimum 1";
        let body = json!({ "error": { "code": "invalid", "message": message } });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": OK_RUN, "queued": false })),
    )
        .into_response()
}

async fn runs(State(fake): State<Fake>, Query(q): Query<Vec<(String, String)>>) -> Json<Value> {
    let fixed = *fake.failed_run_fixed.lock().unwrap();
    let mut all = vec![failed_summary(fixed), ok_summary()];
    for i in 0..8 {
        let mut r = ok_summary();
        r["id"] = json!(format!("01JOLDER{i:019}"));
        r["created_at"] = json!(format!("2026-11-2{i}T06:00:00Z"));
        r["fired_by"] = json!("schedule");
        all.push(r);
    }
    for (k, v) in &q {
        if k == "status" {
            all.retain(|r| r["status"] == v.as_str());
        }
        if k == "workflow" {
            all.retain(|r| r["workflow_key"] == v.as_str());
        }
    }
    Json(json!({ "runs": all, "next_cursor": null }))
}

async fn run(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    if id != FAILED_RUN {
        return not_found("such run");
    }
    Json(failed_detail(*fake.failed_run_fixed.lock().unwrap())).into_response()
}

async fn resume(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !record(&fake, format!("/api/runs/{id}/resume"), &headers, body) {
        return forbidden();
    }
    // The run then executes: a node event, then the run's new state.
    let after = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        *after.failed_run_fixed.lock().unwrap() = true;
        after.emit("node", json!({ "run_id": FAILED_RUN, "node": { "id": "rfm", "status": "succeeded", "duration_ms": 900, "rows_out": 4000, "error": null, "started_at": "2026-12-01T06:10:00Z", "finished_at": "2026-12-01T06:10:01Z" } }));
        after.emit("run", failed_summary(true));
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": id, "queued": false })),
    )
        .into_response()
}

async fn output(
    Path((_, node)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Json<Value> {
    if node == "route" && !q.iter().any(|(k, _)| k == "case") {
        return Json(
            json!({ "kind": "cases", "columns": [], "rows": [], "total_rows": 0, "offset": 0, "limit": 20, "json": null, "cases": ["vip", "regular", "lapsed"] }),
        );
    }
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({ "customer_id": i, "name": if i == 0 { HOSTILE.to_string() } else { format!("Customer {i}") }, "segment": "vip", "monetary": 1234.5 + f64::from(i) }))
        .collect();
    Json(json!({
        "kind": "table",
        "columns": [ { "name": "customer_id", "type": "Int64" }, { "name": "name", "type": "Utf8" }, { "name": "segment", "type": "Utf8" }, { "name": "monetary", "type": "Float64" } ],
        "rows": rows, "total_rows": 5000, "offset": 0, "limit": 20, "json": null, "cases": null
    }))
}

async fn logs() -> Json<Value> {
    Json(json!({ "lines": [
        { "at": "2026-12-01T06:00:02Z", "level": "info", "message": "reading 5,000 customers" },
        { "at": "2026-12-01T06:00:03Z", "level": "error", "message": format!("bad row: {HOSTILE}") }
    ] }))
}

async fn stream(State(fake): State<Fake>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = fake.events.subscribe();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((name, data)) => {
                    let event = Event::default().event(name).data(data.to_string());
                    return Some((Ok(event), rx));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn segmentation() -> Value {
    json!({
        "key": "retail-segmentation", "name": "retail-segmentation",
        "path": "/srv/flow/workflows/segmentation.yaml",
        "description": "Weekly RFM segments of the loyalty customers, with a campaign list per segment.",
        "valid": true, "errors": [],
        "triggers": [
            { "id": "daily", "type": "schedule", "cron": "0 6 * * *", "timezone": "Europe/London",
              "next": ["2026-12-02T06:00:00Z", "2026-12-03T06:00:00Z", "2026-12-04T06:00:00Z", "2026-12-05T06:00:00Z", "2026-12-06T06:00:00Z"] },
            { "id": "pos_push", "type": "webhook", "url": "/hooks/retail-segmentation/pos_push", "auth": "hmac" },
            { "id": "by_hand", "type": "manual" }
        ],
        "running": null, "queued": 0, "last_run": failed_summary(false)
    })
}

fn broken() -> Value {
    json!({
        "key": "broken", "name": "broken", "path": "/srv/flow/workflows/broken.yaml",
        "description": HOSTILE, "valid": false,
        "errors": [
            "/srv/flow/workflows/broken.yaml:12:7: node `score`: unknown node type `segmentation.rmf` (did you mean `segmentation.rfm`?)",
            format!("/srv/flow/workflows/broken.yaml:20:3: node `send`: needs `{HOSTILE}`, which is not a node")
        ],
        "triggers": [], "running": null, "queued": 0, "last_run": null
    })
}

fn big() -> Value {
    json!({
        "key": "big", "name": "a-very-long-workflow-name-that-keeps-going-for-quite-a-while-to-test-wrapping",
        "path": "/srv/flow/workflows/big.yaml", "description": null, "valid": true, "errors": [],
        "triggers": [ { "id": "by_hand", "type": "manual" } ],
        "running": null, "queued": 0, "last_run": ok_summary()
    })
}

fn summary(id: &str, status: &str, error: Option<String>) -> Value {
    json!({
        "id": id, "workflow": "retail-segmentation", "workflow_key": "retail-segmentation",
        "workflow_path": "/srv/flow/workflows/segmentation.yaml", "status": status,
        "fired_by": "schedule", "triggers": ["daily"], "created_at": "2026-12-01T06:00:01Z",
        "finished_at": "2026-12-01T06:02:06Z", "duration_secs": 125.0, "executions": 1,
        "error": error, "live": false
    })
}

fn failed_summary(fixed: bool) -> Value {
    if fixed {
        let mut s = summary(FAILED_RUN, "succeeded", None);
        s["executions"] = json!(2);
        s
    } else {
        summary(
            FAILED_RUN,
            "failed",
            Some(format!(
                "node `rfm` failed: customer {HOSTILE} has no orders"
            )),
        )
    }
}

fn ok_summary() -> Value {
    let mut s = summary(OK_RUN, "succeeded", None);
    s["created_at"] = json!("2026-11-30T06:00:01Z");
    s["fired_by"] = json!("webhook");
    s["triggers"] = json!(["pos_push"]);
    s
}

fn segmentation_graph() -> Value {
    let node = |id: &str, kind: &str, ty: &str, layer: u32, row: u32| json!({ "id": id, "kind": kind, "type": ty, "layer": layer, "row": row, "cases": null });
    let mut route = node("route", "decision", "core.switch", 3, 0);
    route["cases"] = json!(["vip", "regular", "lapsed"]);
    json!({
        "nodes": [
            node("daily", "trigger", "schedule", 0, 0),
            node("load_orders", "action", "pos.orders", 1, 0),
            node("rfm", "action", "segmentation.rfm", 2, 0),
            route,
            node("vip_campaign", "output", "campaign.list", 4, 0),
            node("regular_campaign", "output", "campaign.list", 4, 1),
            node("winback_campaign_with_a_long_name", "output", "campaign.list", 4, 2)
        ],
        "edges": [
            { "from": "daily", "to": "load_orders", "case": null },
            { "from": "load_orders", "to": "rfm", "case": null },
            { "from": "rfm", "to": "route", "case": null },
            { "from": "route", "to": "vip_campaign", "case": "vip" },
            { "from": "route", "to": "regular_campaign", "case": "regular" },
            { "from": "route", "to": "winback_campaign_with_a_long_name", "case": "lapsed" }
        ],
        "layers": 5, "rows": 3
    })
}

/// 120 nodes in 12 layers, for layout at scale.
fn big_graph() -> Value {
    let mut nodes = vec![
        json!({ "id": "start", "kind": "trigger", "type": "manual", "layer": 0, "row": 0, "cases": null }),
    ];
    let mut edges = Vec::new();
    for layer in 1..12u32 {
        for row in 0..11u32 {
            let id = format!("step_{layer}_{row}");
            let parent = if layer == 1 {
                "start".to_string()
            } else {
                format!("step_{}_{}", layer - 1, row)
            };
            edges.push(json!({ "from": parent, "to": id, "case": null }));
            nodes.push(json!({ "id": id, "kind": "action", "type": "core.shell", "layer": layer, "row": row, "cases": null }));
        }
    }
    json!({ "nodes": nodes, "edges": edges, "layers": 12, "rows": 11 })
}

fn node_detail(id: &str, kind: &str, ty: &str, status: &str) -> Value {
    json!({
        "id": id, "kind": kind, "type": ty, "status": status,
        "attempts": [ { "number": 1, "execution": 1, "started_at": "2026-12-01T06:00:02Z", "finished_at": "2026-12-01T06:00:40Z", "outcome": status, "error": null } ],
        "started_at": "2026-12-01T06:00:02Z", "finished_at": "2026-12-01T06:00:40Z", "duration_ms": 38000,
        "rows_in": 5000, "rows_out": 5000, "case_rows": null, "skipped_cases": null, "meta": {},
        "error": null, "reason": null, "warnings": [], "params": {}, "has_output": true
    })
}

fn failed_detail(fixed: bool) -> Value {
    let mut run = failed_summary(fixed);
    let trigger = node_detail("daily", "trigger", "schedule", "succeeded");
    let load = node_detail("load_orders", "action", "pos.orders", "succeeded");
    let mut rfm = node_detail(
        "rfm",
        "action",
        "segmentation.rfm",
        if fixed { "succeeded" } else { "failed" },
    );
    rfm["attempts"] = json!([
        { "number": 1, "execution": 1, "started_at": "2026-12-01T06:00:40Z", "finished_at": "2026-12-01T06:01:10Z", "outcome": "failed", "error": "timeout" },
        { "number": 2, "execution": 1, "started_at": "2026-12-01T06:01:15Z", "finished_at": "2026-12-01T06:02:06Z", "outcome": "failed", "error": format!("customer {HOSTILE} has no orders") }
    ]);
    rfm["params"] = json!({ "min_customers": 500, "label": HOSTILE });
    rfm["meta"] =
        json!({ "model": { "recency_bins": [30, 90, 180], "fitted_k": 4 }, "note": HOSTILE });
    if fixed {
        rfm["attempts"].as_array_mut().unwrap().push(json!({ "number": 1, "execution": 2, "started_at": "2026-12-01T06:10:00Z", "finished_at": "2026-12-01T06:10:01Z", "outcome": "succeeded", "error": null }));
    } else {
        rfm["error"] = json!(format!(
            "customer {HOSTILE} has no orders\n  at line 12 of orders.csv"
        ));
        rfm["has_output"] = json!(false);
    }
    let mut route = node_detail(
        "route",
        "decision",
        "core.switch",
        if fixed { "succeeded" } else { "pending" },
    );
    if fixed {
        route["case_rows"] = json!({ "vip": 400, "regular": 3600, "lapsed": 0 });
        route["skipped_cases"] = json!(["lapsed"]);
    } else {
        route["attempts"] = json!([]);
        route["has_output"] = json!(false);
    }
    let later = |id: &str, st: &str| {
        let mut n = node_detail(id, "output", "campaign.list", st);
        if st == "pending" || st == "skipped" {
            n["attempts"] = json!([]);
            n["has_output"] = json!(false);
        }
        n
    };
    let nodes = vec![
        trigger,
        load,
        rfm,
        route,
        later("vip_campaign", if fixed { "succeeded" } else { "pending" }),
        later(
            "regular_campaign",
            if fixed { "succeeded" } else { "pending" },
        ),
        later(
            "winback_campaign_with_a_long_name",
            if fixed { "skipped" } else { "pending" },
        ),
    ];
    let extra = json!({
        "params": { "min_customers": 500, "label": HOSTILE },
        "trigger": { "fired_by": "schedule", "triggers": ["daily"], "time": "2026-12-01T06:00:00Z", "scheduled_for": "2026-12-01T06:00:00Z", "payload": null },
        "nodes": nodes,
        "graph": segmentation_graph(),
        "resume": if fixed {
            json!({ "possible": false, "reason": "the run succeeded", "reused": [], "reruns": [], "command": format!("flow resume {FAILED_RUN} --state /srv/flow/state") })
        } else {
            json!({ "possible": true, "reason": null, "reused": ["daily", "load_orders"], "reruns": [ { "node": "rfm", "reason": "failed" } ], "command": format!("flow resume {FAILED_RUN} --state /srv/flow/state") })
        },
        "files": [
            { "node": "load_orders", "name": "report.html", "url": format!("/runs/{FAILED_RUN}/files/load_orders/report.html"), "bytes": 48213 },
            { "node": "load_orders", "name": "segments/vip.csv", "url": format!("/runs/{FAILED_RUN}/files/load_orders/segments/vip.csv"), "bytes": 1200 }
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        run[k] = v.clone();
    }
    run
}
