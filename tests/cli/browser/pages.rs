//! The pages against the fake API: rendering, hostile text, actions and live updates.

use std::time::Duration;

use serde_json::json;

use super::fake_api::{self, CSRF, FAILED_RUN, HOSTILE};
use super::harness::{Browser, chromium_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_shows_runs_filters_them_and_takes_new_ones_live() {
    if !chromium_available() {
        return;
    }
    let server = fake_api::start().await;
    let b = Browser::start(&server.base).await;
    b.open("/").await;
    b.find(&format!("tr[data-run='{FAILED_RUN}']")).await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/runs")
    );
    let row = b.text(&format!("tr[data-run='{FAILED_RUN}']")).await;
    assert!(
        row.contains("failed") && row.contains("retail-segmentation"),
        "{row}"
    );
    assert!(row.contains("2 min 5 s"), "human duration: {row}");
    // The run's error holds markup: it shows as text and creates nothing.
    assert!(row.contains("<img src=x"), "{row}");
    assert_eq!(b.injected_elements().await, 0);
    b.wait_text("#live", "live").await;
    b.screenshots("runs").await;

    // A run announced by the server appears at the top without a reload.
    b.mark_document().await;
    let mut new_run = json!({
        "id": "01JNEWWEBHOOKRUN0000000003", "workflow": "retail-segmentation", "workflow_key": "retail-segmentation",
        "workflow_path": "/srv/flow/workflows/segmentation.yaml", "status": "running", "fired_by": "webhook",
        "triggers": ["pos_push"], "created_at": chrono_now(), "finished_at": null, "duration_secs": null,
        "executions": 1, "error": null, "live": true
    });
    server.fake.emit("run", new_run.clone());
    b.find("tbody tr:first-child[data-run='01JNEWWEBHOOKRUN0000000003']")
        .await;
    b.wait_text("tr[data-run='01JNEWWEBHOOKRUN0000000003']", "running")
        .await;
    new_run["status"] = json!("succeeded");
    new_run["duration_secs"] = json!(3.2);
    server.fake.emit("run", new_run);
    b.wait_text("tr[data-run='01JNEWWEBHOOKRUN0000000003']", "succeeded")
        .await;
    b.wait_text("tr[data-run='01JNEWWEBHOOKRUN0000000003']", "3.2 s")
        .await;
    b.assert_not_reloaded().await;

    // Filtering by status asks the server and keeps the choice in the address.
    b.find("#filter-status")
        .await
        .select_by_value("failed")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = b
        .js("return [...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.status)")
        .await;
    assert_eq!(rows, json!(["failed"]));
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap_or_default()
            .contains("status=failed")
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_page_shows_the_failed_node_and_resumes_it_live() {
    if !chromium_available() {
        return;
    }
    let server = fake_api::start().await;
    let b = Browser::start(&server.base).await;
    b.open(&format!("/runs/{FAILED_RUN}")).await;
    b.find("svg.dag g[data-node='rfm'].st-failed").await;
    let retry = b
        .find("#timeline .bar[data-node='rfm'][data-attempt='2']")
        .await;
    assert!(
        retry.text().await.unwrap().contains("#2"),
        "retries are visible"
    );

    b.click("svg.dag g[data-node='rfm']").await;
    let error = b
        .wait_text("#panel [data-section='error']", "has no orders")
        .await;
    assert!(error.contains(HOSTILE), "the error shows as text: {error}");
    let attempts = b.text("#panel [data-section='attempts']").await;
    assert!(attempts.contains("timeout"), "{attempts}");
    let params = b.text("#panel [data-section='params']").await;
    assert!(params.contains("<img src=x onerror="), "{params}");
    let meta = b.text("#panel [data-section='meta']").await;
    assert!(meta.contains("fitted_k"), "{meta}");
    b.wait_text("#panel [data-section='logs']", "bad row").await;
    assert_eq!(b.injected_elements().await, 0);
    assert!(b.text("#files").await.contains("report.html"));
    b.screenshots("run-failed-panel").await;

    // A node with output: a preview table with hostile cells and downloads.
    b.click("svg.dag g[data-node='load_orders']").await;
    let preview = b
        .wait_text("#panel [data-section='output']", "First 20 of 5,000 rows")
        .await;
    assert!(preview.contains(HOSTILE), "{preview}");
    let csv = b
        .find("#panel [data-section='output'] a[href$='output.csv']")
        .await;
    assert!(
        csv.attr("href")
            .await
            .unwrap()
            .unwrap()
            .ends_with("/nodes/load_orders/output.csv")
    );
    assert_eq!(b.injected_elements().await, 0);

    // Resume asks first; cancelling the dialog sends nothing.
    b.mark_document().await;
    b.click("#resume").await;
    b.wait_text("dialog.confirm", "These nodes run again").await;
    assert!(b.text("dialog.confirm").await.contains("rfm"));
    b.click("dialog.confirm [data-action='cancel']").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.fake.posts.lock().unwrap().is_empty());
    b.click("#resume").await;
    b.click("dialog.confirm [data-action='confirm']").await;
    // The server's events turn the run green without a reload.
    b.wait_text("h1", "succeeded").await;
    b.find("svg.dag g[data-node='rfm'].st-succeeded").await;
    b.find("svg.dag g[data-node='winback_campaign_with_a_long_name'].st-skipped")
        .await;
    b.find("svg.dag g.edge-label.skipped[data-case='lapsed']")
        .await;
    b.assert_not_reloaded().await;
    let posts = server.fake.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, format!("/api/runs/{FAILED_RUN}/resume"));
    assert_eq!(posts[0].1, CSRF, "the session's CSRF token is sent");
    assert_eq!(posts[0].2, json!({ "from": null }));

    // The decision's panel: rows per case and the skipped branch.
    b.click("svg.dag g[data-node='route']").await;
    let cases = b.wait_text("#panel [data-section='cases']", "lapsed").await;
    assert!(
        cases.contains("3,600") && cases.contains("skipped"),
        "{cases}"
    );
    b.screenshots("run-succeeded-decision").await;
    b.js("document.getElementById('timeline').scrollIntoView(); return null")
        .await;
    b.screenshot("run-timeline", 1366, 768).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_pages_show_errors_schedules_and_refuse_a_bad_param() {
    if !chromium_available() {
        return;
    }
    let server = fake_api::start().await;
    let b = Browser::start(&server.base).await;
    b.open("/workflows").await;
    let broken = b
        .wait_text("article[data-key='broken']", "broken.yaml:12:7")
        .await;
    assert!(broken.contains("unknown node type"), "{broken}");
    assert!(broken.contains(HOSTILE), "{broken}");
    let seg = b.text("article[data-key='retail-segmentation']").await;
    assert!(
        seg.contains("0 6 * * *") && seg.contains("Europe/London"),
        "{seg}"
    );
    assert!(seg.contains("/hooks/retail-segmentation/pos_push"), "{seg}");
    assert_eq!(b.injected_elements().await, 0);
    b.screenshots("workflows").await;

    b.open("/workflows/retail-segmentation").await;
    let firings = b.wait_text("#firings", "missed").await;
    assert!(firings.contains("the server was down"), "{firings}");
    assert!(
        firings.contains("skipped") && firings.contains("still running"),
        "{firings}"
    );
    b.find("#recent-runs tr[data-run]").await;
    b.find("#dag svg.dag g[data-node='route']").await;
    // Inputs follow the declared types, defaults prefilled.
    let kinds = b.js("return ['min_customers','tier','dry_run','label','stores'].map(n => { const el = document.getElementById('param-' + n); return el.tagName.toLowerCase() + ':' + (el.type || ''); })").await;
    assert_eq!(
        kinds,
        json!([
            "input:number",
            "select:select-one",
            "input:checkbox",
            "input:text",
            "textarea:textarea"
        ])
    );
    let label = b
        .js("return document.getElementById('param-label').value")
        .await;
    assert_eq!(label, json!(HOSTILE));
    b.screenshots("workflow").await;

    let n = b.find("#param-min_customers").await;
    n.clear().await.unwrap();
    n.send_keys("0").await.unwrap();
    b.click("#run-now").await;
    b.wait_text("dialog.confirm", "min_customers").await;
    b.click("dialog.confirm [data-action='confirm']").await;
    let message = b.wait_text("#run-error", "less than the minimum 1").await;
    assert!(message.contains("min_customers"), "{message}");
    b.find(".field.bad[data-param='min_customers']").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/workflows/retail-segmentation")
    );
    b.screenshot("workflow-422", 1366, 768).await;

    // A list typed as bad JSON is stopped before anything is sent.
    let sent = server.fake.posts.lock().unwrap().len();
    let stores = b.find("#param-stores").await;
    stores.clear().await.unwrap();
    stores.send_keys("[north").await.unwrap();
    b.click("#run-now").await;
    b.wait_text("#run-error", "not valid JSON").await;
    assert_eq!(server.fake.posts.lock().unwrap().len(), sent);

    // A wide graph scrolls inside its box; the page itself does not widen.
    b.open("/workflows/big").await;
    b.find("#dag svg.dag g[data-node='step_11_10']").await;
    let widths = b.js("const d = document.getElementById('dag'); return [d.scrollWidth > d.clientWidth, document.documentElement.scrollWidth <= window.innerWidth]").await;
    assert_eq!(widths, json!([true, true]));
    b.js("document.getElementById('dag').scrollIntoView(); return null")
        .await;
    b.screenshots("workflow-big").await;
    b.close().await;
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
