//! The UI on the real `flow serve --http`: real runs, the real API, real live events.
//! These need the JSON API (`/api/runs`, `/api/events`, actions) of `flow serve`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::harness::{Browser, chromium_available};
use crate::http_support::Served;
use crate::support::Workspace;

const HOSTILE: &str = "<img src=x onerror=window.__flowPwned=1>";

/// A POST with a JSON body over plain HTTP/1.1; the status code and the response body.
fn post(base: &str, path: &str, body: &str, headers: &[(&str, String)]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_a_failed_run_is_resumed_from_the_browser_and_turns_green() {
    if !chromium_available() {
        return;
    }
    let ws = Workspace::with_workflow(&format!(
        r#"name: nightly-report
nodes:
  - {{ id: go, kind: trigger, type: manual }}
  - id: fetch
    kind: action
    type: core.shell
    needs: [go]
    with: {{ command: "echo '{HOSTILE}' >&2; cat input.txt" }}
  - id: publish
    kind: action
    type: core.shell
    needs: [fetch]
    with: {{ command: "echo published" }}
"#
    ));
    let serve = Served::start(&ws, &["flow.yaml"], &[]);
    // Fails: input.txt is missing. Runs through the server, which holds the store.
    let failed = ws.flow().args(["run", "flow.yaml"]).any_exit().run();
    assert_ne!(failed.code, 0, "{failed}");
    let run_id = failed.run_id();

    let b = Browser::start(&serve.base).await;
    b.open("/runs").await;
    b.find(&format!("tr[data-run='{run_id}'][data-status='failed']"))
        .await;
    b.click(&format!("tr[data-run='{run_id}'] td:nth-child(2) a"))
        .await;
    b.find("svg.dag g[data-node='fetch'].st-failed").await;
    b.click("svg.dag g[data-node='fetch']").await;
    let error = b
        .wait_text("#panel [data-section='error']", "input.txt")
        .await;
    assert!(
        error.contains("<img src=x"),
        "stderr shows as text: {error}"
    );
    assert_eq!(b.injected_elements().await, 0);
    b.screenshots("e2e-run-failed").await;

    ws.write("input.txt", "rows\n");
    b.mark_document().await;
    b.click("#resume").await;
    b.click("dialog.confirm [data-action='confirm']").await;
    b.wait_text("h1", "succeeded").await;
    b.find("svg.dag g[data-node='publish'].st-succeeded").await;
    b.assert_not_reloaded().await;
    b.screenshots("e2e-run-resumed").await;
    b.close().await;
    drop(serve);
    assert_eq!(ws.statuses(&run_id)["publish"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_a_webhook_run_appears_in_the_open_runs_list() {
    if !chromium_available() {
        return;
    }
    let ws = Workspace::with_workflow(
        r#"name: pos-hook
nodes:
  - id: hook
    kind: trigger
    type: webhook
    with: { secret_env: FLOW_TEST_HOOK_SECRET }
  - id: note
    kind: action
    type: core.shell
    needs: [hook]
    with: { command: "echo received" }
"#,
    );
    let secret = "browser-test-secret";
    let serve = Served::start(&ws, &["flow.yaml"], &[("FLOW_TEST_HOOK_SECRET", secret)]);
    let b = Browser::start(&serve.base).await;
    b.open("/runs").await;
    b.wait_text("#live", "live").await;
    b.mark_document().await;

    let body = r#"{"order": 42}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (code, answer) = post(
        &serve.base,
        "/hooks/pos-hook/hook",
        body,
        &[
            ("X-Flow-Signature-256", format!("sha256={signature}")),
            ("X-Flow-Delivery", "delivery-1".into()),
        ],
    );
    assert_eq!(code, 202, "{answer}");
    let run_id = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let row = format!("tr[data-run='{run_id}']");
    b.find(&row).await;
    b.wait_text(&row, "webhook").await;
    b.wait_text(&row, "succeeded").await;
    b.assert_not_reloaded().await;
    b.screenshots("e2e-runs-webhook").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_run_now_with_a_bad_param_shows_the_servers_reason() {
    if !chromium_available() {
        return;
    }
    let ws = Workspace::with_workflow(
        r#"name: by-hand
params:
  batch: { type: integer, default: 10, min: 1, description: "customers per batch" }
  region: { type: string, default: north, allowed: [north, south] }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: work
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "echo {{ params.batch }}" }
"#,
    );
    let serve = Served::start(&ws, &["flow.yaml"], &[]);
    let b = Browser::start(&serve.base).await;
    b.open("/workflows").await;
    b.click("article[data-key='by-hand'] h2 a").await;
    let batch = b.find("#param-batch").await;
    assert_eq!(batch.prop("value").await.unwrap().as_deref(), Some("10"));
    batch.clear().await.unwrap();
    batch.send_keys("0").await.unwrap();
    b.click("#run-now").await;
    b.click("dialog.confirm [data-action='confirm']").await;
    let message = b.wait_text("#run-error", "batch").await;
    assert!(!message.trim().is_empty());
    b.find(".field.bad[data-param='batch']").await;
    b.screenshots("e2e-workflow-422").await;

    // A good value starts a run and opens its page.
    batch.clear().await.unwrap();
    batch.send_keys("5").await.unwrap();
    b.click("#run-now").await;
    b.click("dialog.confirm [data-action='confirm']").await;
    b.wait_text("h1", "succeeded").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_a_run_that_ends_before_the_live_stream_opens_shows_its_end() {
    if !chromium_available() {
        return;
    }
    let ws = Workspace::with_workflow(
        r#"name: quick
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: work
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "sleep 2; echo done" }
"#,
    );
    let serve = Served::start(&ws, &["flow.yaml"], &[]);
    let b = Browser::start(&serve.base).await;
    // A page that has its own live stream; the run page is drawn in place of its <main>.
    b.open("/runs/none").await;
    b.wait_text("main", "There is no run").await;
    // In this page, live streams now open 6 s late. The run page is drawn here for a run that
    // takes 2 s: its first fetch sees the run running, and the run has ended before the
    // stream opens, so no event tells the page; only a refetch when the stream opens does.
    b.js(r#"
        const Real = window.EventSource;
        window.EventSource = class {
            constructor(url, options) {
                this.listeners = [];
                setTimeout(() => {
                    if (this.closed) return;
                    this.source = new Real(url, options);
                    for (const [name, fn] of this.listeners) this.source.addEventListener(name, fn);
                }, 6000);
            }
            addEventListener(name, fn) {
                this.listeners.push([name, fn]);
                if (this.source) this.source.addEventListener(name, fn);
            }
            close() { this.closed = true; if (this.source) this.source.close(); }
        };
        (async () => {
            const api = await import('/assets/js/api.js');
            const run = await import('/assets/js/run.js');
            const started = await api.post('/api/workflows/quick/runs', { params: {}, trigger: null });
            // A fresh <main>: the page already here keeps drawing into the old one.
            const main = document.createElement('main');
            document.getElementById('main').replaceWith(main);
            await run.runPage(main, started.run_id);
        })();
        return true;
    "#)
    .await;
    b.wait_text("h1", "running").await;
    b.wait_text("h1", "succeeded").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_the_shipped_segmentation_run_shows_its_graph_branches_and_report() {
    if !chromium_available() {
        return;
    }
    let ws = crate::shipped::workspace(&crate::shipped::shipped_yaml());
    let serve = Served::start(&ws, &[crate::shipped::WF], &[]);
    let run = ws
        .flow()
        .args(["run", crate::shipped::WF])
        .timeout(Duration::from_secs(180))
        .run();
    let run_id = run.run_id();

    let b = Browser::start(&serve.base).await;
    b.open(&format!("/runs/{run_id}")).await;
    // Every node of the real workflow is drawn, and the decision's panel shows rows per case.
    b.find("svg.dag g[data-node='deploy'].st-succeeded").await;
    let drawn = b
        .js("return document.querySelectorAll('svg.dag g[data-node]').length")
        .await;
    assert_eq!(drawn.as_u64(), Some(19), "{drawn}");
    b.click("svg.dag g[data-node='classify']").await;
    b.wait_text("#panel", "vip").await;
    b.find("#files > li > a[href*='report.html']").await;
    // The per-customer messages are folded under their folder.
    let folded = b
        .js("return [...document.querySelectorAll('#files details summary')].map(s => s.textContent)")
        .await;
    assert!(folded.to_string().contains("messages/"), "{folded}");
    b.screenshots("e2e-segmentation-run").await;
    b.close().await;
}
