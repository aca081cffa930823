//! Webhook triggers on the real `flow serve --http`: signatures and tokens, replayed
//! deliveries, the body and headers a run sees, and answering with a node's output.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http_support::{Served, get, post};
use crate::support::Workspace;

const SECRET: &str = "whsec-7b1f0c9e";

const SIGNED: &str = r#"name: orders
nodes:
  - id: order_created
    kind: trigger
    type: webhook
    with: { secret_env: ORDERS_HOOK_SECRET, headers: [X-Shop-Topic] }
  - id: record
    kind: action
    type: core.shell
    needs: [order_created]
    with: { command: "sh record.sh && cat \"$FLOW_INPUT_ORDER_CREATED\"", output: json }
"#;

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn serve(ws: &Workspace) -> Served {
    Served::start(ws, &["flow.yaml"], &[("ORDERS_HOOK_SECRET", SECRET)])
}

fn runs(served: &Served, ws: &Workspace) -> Vec<serde_json::Value> {
    let _ = served;
    let out = ws.flow().args(["runs", "--json"]).run();
    out.json().as_array().cloned().unwrap_or_default()
}

fn wait_for_runs(
    served: &Served,
    ws: &Workspace,
    n: usize,
    status: &str,
) -> Vec<serde_json::Value> {
    let mut last = Vec::new();
    let ok = crate::support::wait_until(std::time::Duration::from_secs(30), || {
        last = runs(served, ws);
        last.len() == n && last.iter().all(|r| r["status"] == status)
    });
    assert!(
        ok,
        "expected {n} {status} runs, got {last:#?}\nlog:\n{}",
        served.log()
    );
    last
}

#[test]
fn a_signed_delivery_starts_one_run_that_sees_the_body_and_selected_headers() {
    let ws = Workspace::with_workflow(SIGNED);
    let served = serve(&ws);
    let url = served.url("/hooks/orders/order_created");
    let body = r#"{"order_id": 1001, "customer": "Zoë <z@example.com>"}"#.as_bytes();
    let sig = sign(body);
    let headers = [
        ("X-Flow-Signature-256", sig.as_str()),
        ("X-Flow-Delivery", "delivery-1"),
        ("X-Shop-Topic", "orders/create"),
        ("X-Not-Selected", "hidden"),
        ("Content-Type", "application/json"),
    ];
    let first = post(&url, &headers, body);
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.header("content-type"), Some("application/json"));
    let run_id = first.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(first.json()["duplicate"], false);

    // The same delivery again (a sender retrying after a timeout): no second run.
    let again = post(&url, &headers, body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["run_id"], run_id.as_str());
    assert_eq!(again.json()["duplicate"], true);

    let listed = wait_for_runs(&served, &ws, 1, "succeeded");
    assert_eq!(listed[0]["trigger"]["fired_by"], "webhook");
    assert_eq!(ws.counts().get("record"), Some(&1));

    // The trigger's output, as the next node read it: body and the selected header only.
    let out = ws
        .flow()
        .args(["runs", "output", &run_id, "record", "--format", "json"])
        .run();
    let seen = out.json();
    assert_eq!(seen["body"]["order_id"], 1001);
    assert_eq!(seen["body"]["customer"], "Zoë <z@example.com>");
    assert_eq!(seen["headers"]["x-shop-topic"], "orders/create");
    assert!(seen["headers"].get("x-not-selected").is_none(), "{seen}");
    assert_eq!(seen["delivery"], "delivery-1");

    // A new delivery id is a new run.
    let other = post(
        &url,
        &[
            ("X-Flow-Signature-256", sig.as_str()),
            ("X-Flow-Delivery", "delivery-2"),
        ],
        body,
    );
    assert_eq!(other.status, 202, "{}", other.body);
    wait_for_runs(&served, &ws, 2, "succeeded");
    let (code, log) = served.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(SECRET), "the secret reached the log:\n{log}");
}

#[test]
fn unsigned_and_badly_signed_requests_start_nothing() {
    let ws = Workspace::with_workflow(SIGNED);
    let served = serve(&ws);
    let url = served.url("/hooks/orders/order_created");
    let body = br#"{"order_id": 1}"#;
    let cases: [(&str, Vec<(&str, String)>); 4] = [
        ("no signature", vec![]),
        (
            "signed with another key",
            vec![(
                "X-Flow-Signature-256",
                "sha256=".to_string() + &"ab".repeat(32),
            )],
        ),
        (
            "signature of another body",
            vec![("X-Flow-Signature-256", sign(br#"{"order_id": 2}"#))],
        ),
        (
            "not hex",
            vec![("X-Flow-Signature-256", "sha256=xyz".into())],
        ),
    ];
    for (what, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = post(&url, &headers, body);
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "unauthorized", "{what}");
        assert!(!reply.body.contains(SECRET), "{what}: {}", reply.body);
    }
    // Signed but not JSON: refused with the reason, nothing started.
    let text = b"order=1";
    let reply = post(&url, &[("X-Flow-Signature-256", &sign(text))], text);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    // Unknown workflow and trigger: JSON 404s.
    for path in ["/hooks/nope/order_created", "/hooks/orders/nope"] {
        let reply = post(&served.url(path), &[], body);
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "not_found");
    }
    assert!(runs(&served, &ws).is_empty());
    served.stop();
}

#[test]
fn a_secret_missing_from_the_environment_refuses_requests_without_naming_more_than_the_variable() {
    let ws = Workspace::with_workflow(SIGNED);
    let served = Served::start(&ws, &["flow.yaml"], &[]);
    let body = b"{}";
    let reply = post(
        &served.url("/hooks/orders/order_created"),
        &[("X-Flow-Signature-256", &sign(body))],
        body,
    );
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("ORDERS_HOOK_SECRET"), "{}", reply.body);
    assert!(runs(&served, &ws).is_empty());
    served.stop();
}

#[test]
fn bearer_tokens_open_triggers_and_oversized_bodies() {
    let ws = Workspace::with_workflow(
        r#"name: feeds
nodes:
  - id: with_token
    kind: trigger
    type: webhook
    with: { auth: bearer, secret_env: FEED_TOKEN, max_body_kb: 1 }
  - id: open
    kind: trigger
    type: webhook
    with: { auth: none }
  - id: work
    kind: action
    type: core.shell
    needs: [with_token, open]
    trigger_rule: none_failed_min_one_success
    with: { command: "sh record.sh" }
"#,
    );
    let served = Served::start(&ws, &["flow.yaml"], &[("FEED_TOKEN", "tok-123")]);
    let url = served.url("/hooks/feeds/with_token");
    assert_eq!(post(&url, &[], b"{}").status, 401);
    assert_eq!(
        post(&url, &[("Authorization", "Bearer tok-124")], b"{}").status,
        401
    );
    let ok = post(&url, &[("Authorization", "Bearer tok-123")], b"{}");
    assert_eq!(ok.status, 202, "{}", ok.body);
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2000));
    let too_big = post(&url, &[("Authorization", "Bearer tok-123")], big.as_bytes());
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert_eq!(too_big.json()["error"]["code"], "payload_too_large");
    let open = post(&served.url("/hooks/feeds/open"), &[], b"");
    assert_eq!(open.status, 202, "{}", open.body);
    wait_for_runs(&served, &ws, 2, "succeeded");
    // GET is not how hooks are called: a JSON 405, not an HTML page.
    let wrong = get(&served.url("/hooks/feeds/open"), &[]);
    assert_eq!(wrong.status, 405);
    served.stop();
}

#[test]
fn a_trigger_can_answer_with_a_nodes_output_once_the_run_ends() {
    let ws = Workspace::with_workflow(
        r#"name: quote
nodes:
  - id: ask
    kind: trigger
    type: webhook
    with: { auth: none, respond: output, respond_node: price, respond_timeout: 20s }
  - id: price
    kind: action
    type: core.shell
    needs: [ask]
    with: { command: "echo '[{\"sku\": \"A-1\", \"price\": 9.5}]'", output: json }
  - id: broken
    kind: trigger
    type: webhook
    with: { auth: none, respond: output, respond_node: fails }
  - id: fails
    kind: action
    type: core.shell
    needs: [broken]
    with: { command: "echo no stock >&2; exit 4" }
"#,
    );
    let served = Served::start(&ws, &["flow.yaml"], &[]);
    let reply = post(&served.url("/hooks/quote/ask"), &[], b"{\"sku\": \"A-1\"}");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["status"], "succeeded");
    assert_eq!(answer["output"][0]["price"], 9.5);
    let failed = post(&served.url("/hooks/quote/broken"), &[], b"{}");
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert_eq!(failed.json()["status"], "failed");
    assert_eq!(failed.json()["error"]["code"], "run_failed");
    served.stop();
}

#[test]
fn an_invalid_webhook_trigger_is_reported_with_its_line() {
    let ws = Workspace::with_workflow(
        r#"name: bad
nodes:
  - id: hook
    kind: trigger
    type: webhook
    with: { respond: output }
  - id: work
    kind: action
    type: core.noop
    needs: [hook]
"#,
    );
    let out = ws
        .flow()
        .args(["validate", "flow.yaml"])
        .expect_exit(2)
        .run();
    let err = &out.stderr;
    assert!(err.contains("flow.yaml:6:"), "{err}");
    assert!(err.contains("secret_env"), "{err}");
    assert!(err.contains("respond_node"), "{err}");
}

#[test]
fn deliveries_survive_kill_9_of_the_server_and_are_still_not_run_twice() {
    let ws = Workspace::with_workflow(
        r#"name: slow
nodes:
  - id: hook
    kind: trigger
    type: webhook
    with: { auth: none }
  - id: work
    kind: action
    type: core.shell
    needs: [hook]
    with: { command: "sh record.sh && sleep 2" }
"#,
    );
    let served = Served::start(&ws, &["flow.yaml"], &[]);
    let url = served.url("/hooks/slow/hook");
    let first = post(&url, &[("X-Flow-Delivery", "d-1")], b"{}");
    assert_eq!(first.status, 202, "{}", first.body);
    let second = post(&url, &[("X-Flow-Delivery", "d-2")], b"{}");
    assert_eq!(second.status, 202, "{}", second.body);
    assert_eq!(second.json()["queued"], true, "{}", second.body);
    let (a, b) = (
        first.json()["run_id"].as_str().unwrap().to_string(),
        second.json()["run_id"].as_str().unwrap().to_string(),
    );
    assert!(crate::support::wait_until(
        std::time::Duration::from_secs(10),
        || ws.counts().get("work") == Some(&1)
    ));
    drop(served); // SIGKILL

    let served = Served::start(&ws, &["flow.yaml"], &[]);
    let url = served.url("/hooks/slow/hook");
    for (delivery, run) in [("d-1", &a), ("d-2", &b)] {
        let again = post(&url, &[("X-Flow-Delivery", delivery)], b"{}");
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.json()["run_id"], run.as_str());
        assert_eq!(again.json()["duplicate"], true);
    }
    // The accepted run that had not started runs now; the one the kill cut short waits for a
    // resume.
    let ok = crate::support::wait_until(std::time::Duration::from_secs(20), || {
        ws.show(&b)["run"]["status"] == "succeeded"
    });
    assert!(ok, "{}\n{}", ws.show(&b), served.log());
    assert_eq!(ws.show(&a)["run"]["status"], "interrupted");
    assert_eq!(ws.counts().get("work"), Some(&2));
    served.stop();
}
