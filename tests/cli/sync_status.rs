//! `flow sync status` and `flow sync reset` on a synced history, and credentials: a literal
//! secret in the workflow is refused, a secrets file readable by others too.

use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use flow_engine::sync::{History, history_name};
use serde_json::json;

use crate::support::Workspace;

const WF: &str = "name: shop\nnodes:\n  - id: start\n    kind: trigger\n    type: manual\n";

/// A history for node `orders` of the workspace's workflow with orders o1, o2 (three lines).
fn seed(ws: &Workspace) {
    let dir =
        ws.state_dir()
            .join("nodes")
            .join(history_name(&ws.path("flow.yaml"), "orders", "sync"));
    let mut h = History::open(&dir).unwrap();
    let mut c = h.begin(false);
    let batch = RecordBatch::try_from_iter(vec![
        (
            "order_id",
            Arc::new(StringArray::from(vec!["o1", "o1", "o2"])) as _,
        ),
        (
            "product_id",
            Arc::new(StringArray::from(vec!["a", "b", "a"])) as _,
        ),
    ])
    .unwrap();
    c.upsert("lines", "order_id", batch).unwrap();
    c.commit(
        json!({ "updated_at": "2026-12-01T06:00:00Z" }),
        json!({ "requests": 4 }),
    )
    .unwrap();
}

#[test]
fn status_shows_what_each_history_holds_and_reset_asks_for_a_full_load() {
    let ws = Workspace::with_workflow(WF);
    let empty = ws.flow().args(["sync", "status", "flow.yaml"]).run();
    assert!(
        empty.stdout.contains("no synced history"),
        "{}",
        empty.stdout
    );

    seed(&ws);
    let out = ws.flow().args(["sync", "status", "flow.yaml"]).run();
    assert!(out.stdout.starts_with("orders\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("full load, 4 requests"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 orders (3 lines)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("2026-12-01T06:00:00Z"),
        "{}",
        out.stdout
    );

    let listed = ws
        .flow()
        .args(["sync", "status", "flow.yaml", "--json"])
        .run()
        .json();
    assert_eq!(listed[0]["node"], "orders");
    assert_eq!(listed[0]["status"]["tables"]["lines"]["keys"], 2);
    assert_eq!(listed[0]["status"]["reset_requested"], false);

    let err = ws
        .flow()
        .args(["sync", "reset", "flow.yaml", "order"])
        .expect_exit(2)
        .run();
    err.assert_stderr_contains(
        "node `order` of flow.yaml has no synced history (histories: orders)",
    );

    let out = ws.flow().args(["sync", "reset", "flow.yaml"]).run();
    assert!(
        out.stdout.contains("orders: the next run loads everything"),
        "{}",
        out.stdout
    );
    let listed = ws
        .flow()
        .args(["sync", "status", "flow.yaml", "--json"])
        .run()
        .json();
    assert_eq!(listed[0]["status"]["reset_requested"], true);
    assert_eq!(
        listed[0]["status"]["tables"]["lines"]["rows"], 3,
        "rows stay until the full load"
    );
}

#[test]
fn a_literal_secret_in_the_workflow_is_a_validation_error_with_its_line() {
    let ws = Workspace::with_workflow(
        "name: shop\nnodes:\n  - id: start\n    kind: trigger\n    type: manual\n  - id: push\n    kind: action\n    type: core.noop\n    needs: start\n    with:\n      smtp:\n        password: hunter2\n      note: shpat_0123456789abcdef0123456789\n",
    );
    let out = ws
        .flow()
        .args(["validate", "flow.yaml"])
        .expect_exit(2)
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("flow.yaml:12"), "{text}");
    assert!(text.contains("`password` holds a literal secret"), "{text}");
    assert!(text.contains("flow.yaml:13"), "{text}");
    assert!(text.contains("looks like an access token"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("shpat_0123"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn the_pos_token_comes_from_a_private_secrets_file_and_an_open_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    use crate::fake_pos::FakePos;
    use crate::shipped::{WF as SHIPPED, workspace, yaml_with_batches};

    const TOKEN: &str = "Fz7Qp2Lw9Kc4Xm8B";
    let pos = FakePos::start();
    let ws = workspace(&yaml_with_batches(400));
    ws.write(
        "secrets.env",
        format!("# the shop's POS\nFLOW_POS_TOKEN={TOKEN}\n"),
    );
    let secrets = ws.path("secrets.env");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws
        .flow()
        .args(["--secrets", "secrets.env", "run", SHIPPED])
        .param("pos_url", &pos.url)
        .expect_exit(1)
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("chmod 600"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(pos.requests().len(), 0);

    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ws
        .flow()
        .args(["run", SHIPPED])
        .param("pos_url", &pos.url)
        .env("FLOW_SECRETS_FILE", "secrets.env")
        .run();
    assert!(!format!("{}{}", out.stdout, out.stderr).contains(TOKEN));
    let requests = pos.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
}
