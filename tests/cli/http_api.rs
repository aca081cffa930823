//! The HTTP API of `flow serve --http` with a real server process and a real HTTP client:
//! every endpoint, pagination and filters, error codes, authentication off loopback, CSRF,
//! secrets kept out of every answer, live events, and the shipped segmentation run's files.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{Workspace, sigterm};

/// A webhook secret the server holds; no answer may contain it.
const HOOK_SECRET: &str = "hook-secret-value-7f3a9c";
/// An access token for the off-loopback server; no answer may contain it.
const TOKEN: &str = "api-token-value-5d1e8b2f0a";

const HELLO: &str = r#"name: hello
description: Says hello.
params:
  greeting: { type: string, default: hi, description: What to say }
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: hook
    kind: trigger
    type: webhook
    with: { secret_env: HOOK_SECRET }
  - id: say
    kind: action
    type: core.shell
    needs: [go, hook]
    trigger_rule: none_failed_min_one_success
    with: { command: "echo {{ params.greeting }}" }
  - id: table
    kind: action
    type: file.read
    needs: [say]
    with: { path: people.csv }
"#;

const SLOW: &str = r#"name: slow
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: wait
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "sleep 4" }
"#;

const FLAKY: &str = r#"name: flaky
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: check
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "test -f ok || { echo 'no ok file' >&2; exit 3; }" }
"#;

const PEOPLE: &str =
    "id,name,spend\n1,Ada,10.5\n2,=HYPERLINK(\"http://evil.example\"),-3\n3,Bob,7\n";

/// A running `flow serve --http`, stopped on drop; its log collects as it runs.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(
        ws: &Workspace,
        http: &str,
        files: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let mut args = vec!["serve", "--http", http, "--reload-interval", "200ms"];
        args.extend_from_slice(files);
        let mut cmd = ws.command(args);
        cmd.env_remove("FLOW_HTTP_TOKEN")
            .env("HOOK_SECRET", HOOK_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn flow serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("HTTP API and web UI on http://").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('/').to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "flow serve did not announce its address; log:\n{}",
                    log.lock().unwrap()
                )
            });
        // A server bound to 0.0.0.0 is reached on loopback.
        let port = addr.rsplit(':').next().unwrap().to_string();
        Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            sigterm(&child);
            let mut child = child;
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            if !std::thread::panicking() {
                panic!("flow serve did not stop within 20 s of SIGTERM");
            }
        }
    }
}

/// An answer: status, headers we look at, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The error code of a JSON error answer.
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A client that records every answer's body, to check that no secret is in any.
struct Client {
    agent: ureq::Agent,
    seen: Mutex<Vec<String>>,
}

impl Client {
    fn new() -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            agent: config.into(),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = match body {
            Some(b) => self.agent.run(builder.body(b.to_string()).unwrap()),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
        let answer = Answer {
            status,
            content_type: headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            headers,
            body,
        };
        let mut seen = self.seen.lock().unwrap();
        seen.push(format!("{method} {url}: {}", answer.text()));
        for (k, v) in &answer.headers {
            seen.push(format!("{method} {url} header {k}: {v}"));
        }
        answer
    }

    fn get(&self, url: &str) -> Answer {
        self.request("GET", url, &[], None)
    }

    fn post_json(&self, url: &str, body: &Json) -> Answer {
        self.request(
            "POST",
            url,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        )
    }

    /// Fails if any answer so far contained one of `secrets`.
    fn assert_no_secret(&self, secrets: &[&str]) {
        let seen = self.seen.lock().unwrap();
        assert!(seen.len() > 5, "answers were recorded");
        for answer in seen.iter() {
            for secret in secrets {
                assert!(!answer.contains(secret), "a secret leaked in {answer}");
            }
        }
    }
}

/// Polls the run until it is in one of `statuses`.
fn wait_status(client: &Client, server: &Server, run: &str, statuses: &[&str]) -> Json {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail = client.get(&server.url(&format!("/api/runs/{run}"))).json();
        if statuses.contains(&detail["status"].as_str().unwrap_or("")) {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} did not reach {statuses:?}: {detail}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_run(client: &Client, server: &Server, key: &str, body: &Json) -> String {
    let answer = client.post_json(&server.url(&format!("/api/workflows/{key}/runs")), body);
    assert_eq!(answer.status, 202, "{}", answer.text());
    answer.json()["run_id"].as_str().unwrap().to_string()
}

/// One server event: its name and data.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Json,
}

/// Reads `/api/events` on a thread; events arrive on the returned channel once the stream
/// says it is connected.
fn subscribe(server: &Server, query: &str) -> mpsc::Receiver<Event> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(server.url(&format!("/api/events{query}")))
        .call()
        .expect("GET /api/events");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(response.body_mut().as_reader());
        let (mut name, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line == ": connected" {
                let _ = ready_tx.send(());
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            } else if line.is_empty() && !name.is_empty() {
                let parsed = serde_json::from_str(&data).unwrap_or(Json::Null);
                if tx
                    .send(Event {
                        name: std::mem::take(&mut name),
                        data: parsed,
                    })
                    .is_err()
                {
                    return;
                }
                data.clear();
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the event stream says it is connected");
    rx
}

/// Events until `done` holds for one (or the time runs out).
fn events_until(
    rx: &mpsc::Receiver<Event>,
    limit: Duration,
    done: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) => {
                let stop = done(&e);
                out.push(e);
                if stop {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

pub(crate) fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("hello.yaml", HELLO)
        .write("slow.yaml", SLOW)
        .write("flaky.yaml", FLAKY)
        .write("people.csv", PEOPLE);
    ws
}

#[test]
fn every_endpoint_answers_with_json_and_pages_runs_without_gaps() {
    let ws = workspace();
    let server = Server::start(
        &ws,
        "127.0.0.1:0",
        &["hello.yaml", "slow.yaml", "flaky.yaml"],
        &[],
    );
    let c = Client::new();

    let health = c.get(&server.url("/api/health"));
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    // Security headers on every answer.
    assert!(
        health
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(health.header("referrer-policy"), Some("no-referrer"));

    // Workflows.
    let list = c.get(&server.url("/api/workflows")).json();
    let keys: Vec<&str> = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["flaky", "hello", "slow"]);
    let hello = &list["workflows"][1];
    assert_eq!(hello["valid"], true);
    assert_eq!(hello["description"], "Says hello.");
    let hook = hello["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "hook")
        .unwrap();
    assert_eq!(hook["type"], "webhook");
    assert_eq!(hook["url"], "/hooks/hello/hook");
    assert_eq!(hook["auth"], "hmac");
    let detail = c.get(&server.url("/api/workflows/hello")).json();
    assert_eq!(detail["params"][0]["name"], "greeting");
    assert_eq!(detail["params"][0]["type"], "string");
    assert_eq!(detail["params"][0]["default"], "hi");
    let layers: Vec<(String, u64)> = detail["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["layer"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            ("go".into(), 0),
            ("hook".into(), 0),
            ("say".into(), 1),
            ("table".into(), 2)
        ]
    );
    assert_eq!(detail["graph"]["layers"], 3);
    assert_eq!(detail["graph"]["edges"].as_array().unwrap().len(), 3);
    let missing = c.get(&server.url("/api/workflows/nope"));
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "not_found")
    );

    // A run started through the API, watched over the event stream.
    let events = subscribe(&server, "");
    let run = start_run(
        &c,
        &server,
        "hello",
        &json!({ "params": { "greeting": "hey-there" } }),
    );
    let seen = events_until(&events, Duration::from_secs(30), |e| {
        e.name == "run" && e.data["id"] == run.as_str() && e.data["status"] == "succeeded"
    });
    let statuses: Vec<&str> = seen
        .iter()
        .filter(|e| e.name == "run" && e.data["id"] == run.as_str())
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"queued"), "{seen:?}");
    assert!(statuses.contains(&"running"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"succeeded"), "{statuses:?}");
    let node_events: BTreeSet<(String, String)> = seen
        .iter()
        .filter(|e| e.name == "node" && e.data["run_id"] == run.as_str())
        .map(|e| {
            (
                e.data["node"]["id"].as_str().unwrap().into(),
                e.data["node"]["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        node_events.contains(&("say".into(), "running".into())),
        "{node_events:?}"
    );
    assert!(
        node_events.contains(&("table".into(), "succeeded".into())),
        "{node_events:?}"
    );

    // The run in full.
    let detail = wait_status(&c, &server, &run, &["succeeded"]);
    assert_eq!(detail["fired_by"], "api");
    assert_eq!(detail["workflow_key"], "hello");
    assert_eq!(detail["params"]["greeting"], "hey-there");
    let nodes = detail["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["go", "hook", "say", "table"]);
    let say = &nodes[2];
    assert_eq!(say["kind"], "action");
    assert_eq!(say["type"], "core.shell");
    assert_eq!(
        say["params"]["command"], "echo hey-there",
        "params as rendered"
    );
    assert_eq!(say["attempts"][0]["outcome"], "succeeded");
    assert_eq!(nodes[3]["rows_out"], 3);
    assert_eq!(detail["resume"]["possible"], false);
    assert!(
        detail["resume"]["command"]
            .as_str()
            .unwrap()
            .starts_with(&format!("flow resume {run}"))
    );
    assert_eq!(detail["graph"]["nodes"].as_array().unwrap().len(), 4);

    // Output: a page, CSV that a spreadsheet cannot evaluate, Arrow IPC, logs.
    let page = c
        .get(&server.url(&format!(
            "/api/runs/{run}/nodes/table/output?offset=1&limit=1"
        )))
        .json();
    assert_eq!(page["kind"], "table");
    assert_eq!(page["total_rows"], 3);
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["rows"][0]["name"],
        "=HYPERLINK(\"http://evil.example\")"
    );
    assert_eq!(page["columns"][0]["name"], "id");
    let text = c
        .get(&server.url(&format!("/api/runs/{run}/nodes/say/output")))
        .json();
    assert_eq!(text["kind"], "json");
    let csv = c.get(&server.url(&format!("/api/runs/{run}/nodes/table/output.csv")));
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    assert!(csv.text().contains("'=HYPERLINK"), "{}", csv.text());
    assert!(
        csv.text().contains(",-3"),
        "numbers stay numbers: {}",
        csv.text()
    );
    let arrow = c.get(&server.url(&format!("/api/runs/{run}/nodes/table/output.arrow")));
    assert_eq!(arrow.status, 200);
    assert_eq!(arrow.content_type, "application/vnd.apache.arrow.stream");
    assert_eq!(
        &arrow.body[..4],
        &[0xff, 0xff, 0xff, 0xff],
        "an IPC stream message"
    );
    let not_table = c.get(&server.url(&format!("/api/runs/{run}/nodes/say/output.csv")));
    assert_eq!(not_table.status, 400);
    let logs = c
        .get(&server.url(&format!("/api/runs/{run}/nodes/say/logs")))
        .json();
    let messages: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("attempt 1 started")),
        "{messages:?}"
    );

    // Error codes.
    for (path, status, code) in [
        ("/api/runs/nope", 404, "not_found"),
        (
            &*format!("/api/runs/{run}/nodes/nope/output"),
            404,
            "not_found",
        ),
        (
            &*format!("/api/runs/{run}/nodes/nope/logs"),
            404,
            "not_found",
        ),
        (
            &*format!("/api/runs/{run}/nodes/table/output?limit=5000"),
            400,
            "bad_request",
        ),
        (
            &*format!("/api/runs/{run}/nodes/table/output?offset=-1"),
            400,
            "bad_request",
        ),
        (
            &*format!("/api/runs/{run}/nodes/table/output?case=vip"),
            400,
            "bad_request",
        ),
        ("/api/runs?limit=0", 400, "bad_request"),
        ("/api/runs?limit=501", 400, "bad_request"),
        ("/api/runs?limit=ten", 400, "bad_request"),
        ("/api/runs?status=bogus", 400, "bad_request"),
        ("/api/runs?since=yesterday", 400, "bad_request"),
        ("/api/runs?cursor=zz", 400, "bad_request"),
        ("/api/runs?workflow=nope", 400, "bad_request"),
        ("/api/runs?colour=red", 400, "bad_request"),
        ("/api/nope", 404, "not_found"),
        ("/runs/nope/files/x/report.html", 404, "not_found"),
        (
            &*format!("/runs/{run}/files/table/..%2F..%2Fetc%2Fpasswd"),
            404,
            "not_found",
        ),
    ] {
        let a = c.get(&server.url(path));
        assert_eq!(
            (a.status, a.code().as_str()),
            (status, code),
            "{path}: {}",
            a.text()
        );
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}"
        );
    }
    let wrong_method = c.request("DELETE", &server.url("/api/runs"), &[], None);
    assert_eq!(
        (wrong_method.status, wrong_method.code().as_str()),
        (405, "method_not_allowed")
    );
    let bad_json = c.request(
        "POST",
        &server.url("/api/workflows/hello/runs"),
        &[("content-type", "application/json")],
        Some("{nope"),
    );
    assert_eq!(
        (bad_json.status, bad_json.code().as_str()),
        (400, "bad_request")
    );
    let bad_param = c.post_json(
        &server.url("/api/workflows/hello/runs"),
        &json!({ "params": { "colour": 1 } }),
    );
    assert_eq!(
        (bad_param.status, bad_param.code().as_str()),
        (422, "invalid"),
        "{}",
        bad_param.text()
    );
    let bad_shape = c.post_json(
        &server.url("/api/workflows/hello/runs"),
        &json!({ "params": 5 }),
    );
    assert_eq!(bad_shape.status, 422, "{}", bad_shape.text());
    let unknown = c.post_json(&server.url("/api/workflows/nope/runs"), &json!({}));
    assert_eq!(unknown.status, 404);
    let rebinding = c.request(
        "GET",
        &server.url("/api/runs"),
        &[("host", "evil.example")],
        None,
    );
    assert_eq!(
        rebinding.status, 403,
        "a loopback server answers loopback host names only"
    );
    let cross_site = c.request(
        "POST",
        &server.url("/api/workflows/hello/runs"),
        &[
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ],
        Some("{}"),
    );
    assert_eq!(
        (cross_site.status, cross_site.code().as_str()),
        (403, "forbidden")
    );

    // A failed run, resumed through the API after the cause is fixed.
    let failed = start_run(&c, &server, "flaky", &json!({}));
    let detail = wait_status(&c, &server, &failed, &["failed"]);
    let check = detail["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "check")
        .unwrap()
        .clone();
    assert!(
        check["error"].as_str().unwrap().contains("no ok file"),
        "{check}"
    );
    assert_eq!(detail["resume"]["possible"], true);
    assert_eq!(detail["resume"]["reruns"][0]["node"], "check");
    let logs = c
        .get(&server.url(&format!("/api/runs/{failed}/nodes/check/logs")))
        .json();
    assert!(
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["level"] == "error"),
        "{logs}"
    );
    // What the command wrote to stderr, captured from the node's own log.
    assert!(
        logs["lines"].as_array().unwrap().iter().any(|l| {
            let m = l["message"].as_str().unwrap_or_default();
            m.starts_with("command stderr") && m.contains("no ok file")
        }),
        "{logs}"
    );
    let from_unknown = c.post_json(
        &server.url(&format!("/api/runs/{failed}/resume")),
        &json!({ "from": "nope" }),
    );
    assert_eq!(from_unknown.status, 422, "{}", from_unknown.text());
    let filtered = c.get(&server.url("/api/runs?status=failed")).json();
    let failed_ids: Vec<&str> = filtered["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed_ids, [failed.as_str()]);
    ws.write("ok", "");
    let resumed = c.post_json(
        &server.url(&format!("/api/runs/{failed}/resume")),
        &json!({}),
    );
    assert_eq!(resumed.status, 202, "{}", resumed.text());
    assert_eq!(resumed.json()["run_id"], failed.as_str());
    let detail = wait_status(&c, &server, &failed, &["succeeded"]);
    assert_eq!(detail["executions"], 2);

    // A running run: resume is a conflict, cancel stops it, a second cancel is a conflict.
    let slow = start_run(&c, &server, "slow", &json!({}));
    wait_status(&c, &server, &slow, &["running"]);
    let busy = c.post_json(&server.url(&format!("/api/runs/{slow}/resume")), &json!({}));
    assert_eq!(
        (busy.status, busy.code().as_str()),
        (409, "conflict"),
        "{}",
        busy.text()
    );
    let cancel = c.request(
        "POST",
        &server.url(&format!("/api/runs/{slow}/cancel")),
        &[],
        None,
    );
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    wait_status(&c, &server, &slow, &["interrupted"]);
    let again = c.request(
        "POST",
        &server.url(&format!("/api/runs/{slow}/cancel")),
        &[],
        None,
    );
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(
        c.request("POST", &server.url("/api/runs/nope/cancel"), &[], None)
            .status,
        404
    );

    // Pagination: many runs, pages of 4, no run twice and none left out, newest first.
    for _ in 0..9 {
        start_run(&c, &server, "hello", &json!({}));
    }
    let all = loop {
        let page = c.get(&server.url("/api/runs?limit=500")).json();
        let runs: Vec<Json> = page["runs"].as_array().unwrap().clone();
        if runs.len() == 12
            && runs
                .iter()
                .all(|r| r["status"] != "queued" && r["status"] != "running")
        {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let all_ids: Vec<String> = all
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = all_ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(all_ids, sorted, "newest first");
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/runs?limit=4&cursor={c}"),
            None => "/api/runs?limit=4".to_string(),
        };
        let page = c.get(&server.url(&q)).json();
        pages += 1;
        paged.extend(
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all_ids);
    let by_workflow = c
        .get(&server.url("/api/runs?workflow=hello&status=succeeded,failed&limit=100"))
        .json();
    assert_eq!(by_workflow["runs"].as_array().unwrap().len(), 10);
    let slow_only = c
        .get(&server.url("/api/runs?workflow=slow&status=interrupted"))
        .json();
    assert_eq!(slow_only["runs"][0]["id"], slow.as_str());
    let oldest = all.last().unwrap()["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let before = c
        .get(&server.url(&format!("/api/runs?until={}", oldest.replace('+', "%2B"))))
        .json();
    assert!(before["runs"].as_array().unwrap().is_empty(), "{before}");
    let since = c
        .get(&server.url(&format!(
            "/api/runs?since={}&status=queued&status=succeeded",
            oldest.replace('+', "%2B")
        )))
        .json();
    assert_eq!(since["runs"].as_array().unwrap().len(), 11);

    // A webhook delivery, with the secret only the server knows.
    let hook = c.post_json(&server.url("/hooks/hello/hook"), &json!({ "order": 1 }));
    assert_eq!(hook.status, 401, "unsigned: {}", hook.text());

    // The OpenAPI document lists every route served, and the router serves every route in it.
    let doc = c.get(&server.url("/api/openapi.json")).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let concrete = path
                .replace("{id}", &run)
                .replace("{node}", "table")
                .replace("{key}", "hello")
                .replace("{workflow}", "hello")
                .replace("{trigger}", "hook")
                .replace("{path}", "nothing.txt");
            if concrete == "/api/events" {
                continue;
            }
            let a = if method == "post" {
                c.request(
                    "POST",
                    &server.url(&concrete),
                    &[("content-type", "application/json")],
                    Some("{}"),
                )
            } else {
                c.request(&method.to_uppercase(), &server.url(&concrete), &[], None)
            };
            assert!(
                a.status != 405 && !(a.status == 404 && a.text().contains("no such endpoint")),
                "{method} {path} is documented but not served: {} {}",
                a.status,
                a.text()
            );
        }
    }
    let served = [
        "GET /api/health",
        "GET /api/workflows",
        "GET /api/workflows/{key}",
        "POST /api/workflows/{key}/runs",
        "GET /api/runs",
        "GET /api/runs/{id}",
        "POST /api/runs/{id}/resume",
        "POST /api/runs/{id}/cancel",
        "GET /api/runs/{id}/nodes/{node}/output",
        "GET /api/runs/{id}/nodes/{node}/output.csv",
        "GET /api/runs/{id}/nodes/{node}/output.arrow",
        "GET /api/runs/{id}/nodes/{node}/logs",
        "GET /api/events",
        "GET /api/openapi.json",
        "GET /api/session",
        "GET /login",
        "POST /login",
        "POST /logout",
        "GET /runs/{id}/files/{node}/{path}",
        "POST /hooks/{workflow}/{trigger}",
    ];
    let served: HashSet<String> = served.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, served);

    let session = c.get(&server.url("/api/session")).json();
    assert_eq!(session["authenticated"], false);
    assert!(session["csrf"].as_str().unwrap().len() >= 32);
    let login = c.get(&server.url("/login"));
    assert_eq!(login.status, 200);
    assert!(login.text().contains("<form"));

    c.assert_no_secret(&[HOOK_SECRET]);
    drop(events);
    let log = server.log();
    assert!(!log.contains(HOOK_SECRET), "{log}");
}

#[test]
fn off_loopback_the_api_needs_a_token_and_browsers_a_session_with_csrf() {
    let ws = workspace();
    // Without tokens it refuses to start.
    let out = ws
        .flow()
        .args(["serve", "--http", "0.0.0.0:0", "hello.yaml"])
        .env("HOOK_SECRET", HOOK_SECRET)
        .expect_exit(2)
        .timeout(Duration::from_secs(30))
        .run();
    out.assert_stderr_contains("needs access tokens");
    ws.write("tokens", format!("# operators\n{TOKEN}\n"));
    let tokens = ws.path("tokens");
    let server = Server::start(
        &ws,
        "0.0.0.0:0",
        &["hello.yaml", "--http-token-file", tokens.to_str().unwrap()],
        &[],
    );
    let c = Client::new();
    let bearer = format!("Bearer {TOKEN}");

    assert_eq!(
        c.get(&server.url("/api/health")).status,
        200,
        "the health check is open"
    );
    let anonymous = c.get(&server.url("/api/runs"));
    assert_eq!(
        (anonymous.status, anonymous.code().as_str()),
        (401, "unauthorized")
    );
    let wrong = c.request(
        "GET",
        &server.url("/api/runs"),
        &[("authorization", "Bearer not-the-token-123456")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let page = c.get(&server.url("/runs"));
    assert_eq!(page.status, 303, "pages send the browser to the login form");
    assert_eq!(page.header("location"), Some("/login"));
    let ok = c.request(
        "GET",
        &server.url("/api/runs"),
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let started = c.request(
        "POST",
        &server.url("/api/workflows/hello/runs"),
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(
        started.status,
        202,
        "a bearer token needs no CSRF header: {}",
        started.text()
    );

    // The login form gives a session cookie that is not the token.
    let form = "application/x-www-form-urlencoded";
    let refused = c.request(
        "POST",
        &server.url("/login"),
        &[("content-type", form)],
        Some("token=wrong-token-value-000"),
    );
    assert_eq!(refused.status, 401);
    let login = c.request(
        "POST",
        &server.url("/login"),
        &[("content-type", form)],
        Some(&format!("token={TOKEN}")),
    );
    assert_eq!(login.status, 303, "{}", login.text());
    let set_cookie = login.header("set-cookie").unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("flow_session=") && !cookie.contains(TOKEN));
    let session = c
        .request(
            "GET",
            &server.url("/api/session"),
            &[("cookie", &cookie)],
            None,
        )
        .json();
    assert_eq!(session["authenticated"], true);
    let csrf = session["csrf"].as_str().unwrap().to_string();

    // State changes by cookie need the CSRF header, and a same-origin Origin.
    let url = server.url("/api/workflows/hello/runs");
    let json_type = ("content-type", "application/json");
    let no_csrf = c.request("POST", &url, &[("cookie", &cookie), json_type], Some("{}"));
    assert_eq!(
        (no_csrf.status, no_csrf.code().as_str()),
        (403, "forbidden")
    );
    let wrong_csrf = c.request(
        "POST",
        &url,
        &[("cookie", &cookie), ("x-flow-csrf", "0000"), json_type],
        Some("{}"),
    );
    assert_eq!(wrong_csrf.status, 403);
    let cross = c.request(
        "POST",
        &url,
        &[
            ("cookie", &cookie),
            ("x-flow-csrf", &csrf),
            ("origin", "http://evil.example"),
            json_type,
        ],
        Some("{}"),
    );
    assert_eq!(cross.status, 403);
    let origin = server.base.clone();
    let good = c.request(
        "POST",
        &url,
        &[
            ("cookie", &cookie),
            ("x-flow-csrf", &csrf),
            ("origin", &origin),
            json_type,
        ],
        Some("{}"),
    );
    assert_eq!(good.status, 202, "{}", good.text());
    let reads = c.request(
        "GET",
        &server.url("/api/workflows"),
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(reads.status, 200);

    // Logging out ends the session.
    let out = c.request("POST", &server.url("/logout"), &[("cookie", &cookie)], None);
    assert_eq!(out.status, 303);
    assert_eq!(
        c.request(
            "GET",
            &server.url("/api/runs"),
            &[("cookie", &cookie)],
            None
        )
        .status,
        401
    );

    c.assert_no_secret(&[TOKEN, HOOK_SECRET]);
    let log = server.log();
    assert!(!log.contains(TOKEN) && !log.contains(HOOK_SECRET), "{log}");
}

#[test]
fn the_segmentation_run_page_links_its_report() {
    let ws = crate::shipped::workspace(&crate::shipped::shipped_yaml());
    let server = Server::start(&ws, "127.0.0.1:0", &[crate::shipped::WF], &[]);
    let c = Client::new();
    let run = start_run(&c, &server, "segmentation", &json!({}));
    let detail = wait_status(&c, &server, &run, &["succeeded", "failed"]);
    assert_eq!(detail["status"], "succeeded", "{detail}");
    let report = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "report.html")
        .unwrap_or_else(|| {
            panic!(
                "report.html among the {} files",
                detail["files"].as_array().unwrap().len()
            )
        })
        .clone();
    let page = c.get(&server.url(report["url"].as_str().unwrap()));
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert_eq!(
        page.header("content-security-policy"),
        Some("sandbox"),
        "scripts in it cannot run"
    );
    assert_eq!(page.body.len() as u64, report["bytes"].as_u64().unwrap());
    // A decision: rows per case, and the output asked for without a case lists the cases.
    let classify = detail["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "decision")
        .unwrap()
        .clone();
    assert!(classify["case_rows"].is_object(), "{classify}");
    let id = classify["id"].as_str().unwrap();
    let cases = c
        .get(&server.url(&format!("/api/runs/{run}/nodes/{id}/output")))
        .json();
    assert_eq!(cases["kind"], "cases");
    let first = cases["cases"][0].as_str().unwrap();
    let rows = c
        .get(&server.url(&format!(
            "/api/runs/{run}/nodes/{id}/output?case={first}&limit=5"
        )))
        .json();
    assert_eq!(rows["kind"], "table");
    // Fitted model parameters are in the nodes' metadata.
    assert!(
        detail["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| !n["meta"].as_object().unwrap().is_empty())
    );
}
