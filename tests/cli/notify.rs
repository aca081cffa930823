//! `on_failure` and `on_success` with the real binary: a local HTTP receiver (a plain
//! `TcpListener` on a thread, recording every request) and commands get exactly one message
//! per finished execution; retries, unreachable receivers and secrets never change a run's
//! status or exit code, nor show up in output or in the store.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{Workspace, sigterm, wait_until};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver answering with `statuses` in turn, then 200.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, statuses) = (requests.clone(), statuses.to_vec());
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                seen.lock().unwrap().push(request);
                let status = statuses.next().unwrap_or(200);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Status\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbody"
                );
            }
        });
        Receiver { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A workflow whose `work` node fails with a two-line error until `fixed` exists, with the
/// given `on_failure` / `on_success` YAML appended.
fn workflow(notifications: &str) -> String {
    format!(
        r#"name: nightly
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: work
    kind: action
    type: core.shell
    needs: [go]
    with:
      command: "test -f fixed || {{ echo 'first line of the error' >&2; echo 'second <!channel> line' >&2; exit 3; }}"
{notifications}"#
    )
}

#[test]
fn a_failed_run_posts_one_message_and_its_resume_posts_the_success() {
    let rx = Receiver::start(&[]);
    let ws = Workspace::with_workflow(&workflow(&format!(
        "on_failure:\n  - post: {}\non_success:\n  - post: {}\n    format: slack\n",
        rx.url("/failed"),
        rx.url("/ok")
    )));
    let out = ws.run().expect_exit(1).run();
    let run_id = out.run_id();
    let failed = rx.to("/failed");
    assert_eq!(failed.len(), 1, "{failed:#?}\n{out}");
    assert!(rx.to("/ok").is_empty());
    let request = &failed[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let m = request.json();
    assert_eq!(m["workflow"], "nightly");
    assert_eq!(m["run_id"], run_id.as_str());
    assert_eq!(m["status"], "failed");
    assert_eq!(m["fired_by"], "manual");
    assert_eq!(m["execution"], 1);
    assert_eq!(
        m["workflow_file"],
        ws.path("flow.yaml").display().to_string()
    );
    assert_eq!(m["failed_nodes"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["failed_nodes"][0]["node"], "work");
    let error = m["failed_nodes"][0]["error"].as_str().unwrap();
    assert!(error.contains("first line of the error"), "{error}");
    assert!(error.contains("second <!channel> line"), "{error}");
    assert_eq!(
        m["resume_command"],
        format!("flow resume {run_id} --state {}", ws.state_dir().display())
    );
    assert!(m.get("ui_url").is_none(), "no UI behind `flow run`: {m}");
    assert!(m["duration_secs"].is_number() && m["started_at"].is_string());
    assert!(!out.stderr.contains("warning"), "{out}");

    // The resumed execution succeeds: one success message, no second failure message.
    ws.write("fixed", "");
    let resumed = ws.resume(&run_id).run();
    assert!(!resumed.stderr.contains("warning"), "{resumed}");
    assert_eq!(rx.to("/failed").len(), 1);
    let ok = rx.to("/ok");
    assert_eq!(ok.len(), 1, "{ok:#?}");
    let slack = ok[0].json();
    assert!(slack["text"].as_str().unwrap().contains(&run_id), "{slack}");
    assert!(slack["blocks"].as_array().is_some_and(|b| !b.is_empty()));
}

#[test]
fn a_succeeded_run_posts_only_on_success() {
    let rx = Receiver::start(&[]);
    let ws = Workspace::with_workflow(&workflow(&format!(
        "on_failure:\n  - post: {}\non_success:\n  - post: {}\n    format: teams\n",
        rx.url("/failed"),
        rx.url("/ok")
    )));
    ws.write("fixed", "");
    let out = ws.run().run();
    assert_eq!(rx.requests().len(), 1, "{:#?}", rx.requests());
    let card = rx.to("/ok")[0].json();
    assert_eq!(card["type"], "message");
    let text = card.to_string();
    assert!(
        text.contains(&out.run_id()) && text.contains("succeeded"),
        "{card}"
    );
}

#[test]
fn server_errors_are_retried_and_never_change_the_run() {
    let rx = Receiver::start(&[500, 500]);
    let ws = Workspace::with_workflow(&workflow(&format!(
        "on_failure:\n  - post: {}\n",
        rx.url("/hook")
    )));
    let out = ws.run().expect_exit(1).run();
    let got = rx.to("/hook");
    assert_eq!(got.len(), 3, "{got:#?}\n{out}");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same message"
    );
    assert!(!out.stderr.contains("warning: notification"), "{out}");
    out.assert_stderr_contains("failed. Fix the cause, then resume it with");
    assert_eq!(ws.show(&out.run_id())["run"]["status"], "failed");
}

#[test]
fn an_unreachable_receiver_is_a_warning_not_a_failure() {
    let port = closed_port();
    let ws = Workspace::with_workflow(&workflow(&format!(
        "on_failure:\n  - post: http://127.0.0.1:{port}/hook\non_success:\n  - post: http://127.0.0.1:{port}/hook\n    timeout: 2s\n"
    )));
    let out = ws.run().expect_exit(1).run();
    out.assert_stderr_contains(&format!(
        "warning: notification json POST to 127.0.0.1:{port} for run {} failed after 3 attempts",
        out.run_id()
    ));
    assert_eq!(ws.show(&out.run_id())["run"]["status"], "failed");

    // A successful run stays successful: exit code 0 despite the failed notification.
    ws.write("fixed", "");
    let ok = ws.run().run();
    ok.assert_stderr_contains("warning: notification");
    assert_eq!(ws.show(&ok.run_id())["run"]["status"], "succeeded");
}

#[test]
fn a_command_gets_the_json_message_on_stdin() {
    let ws = Workspace::with_workflow(&workflow(
        "on_failure:\n  - command: [sh, -c, 'cat > notified.json; echo \"$FLOW_STATUS $FLOW_FAILED_NODE $FLOW_RUN_ID\" > notified.env']\n",
    ));
    let out = ws.run().expect_exit(1).run();
    let run_id = out.run_id();
    let m: Json = serde_json::from_str(&ws.read("notified.json")).expect("JSON on stdin");
    assert_eq!(m["run_id"], run_id.as_str());
    assert_eq!(m["failed_nodes"][0]["node"], "work");
    assert_eq!(
        ws.read("notified.env").trim(),
        format!("failed work {run_id}")
    );
}

#[test]
fn secrets_from_the_environment_stay_out_of_output_and_the_store() {
    const URL_SECRET: &str = "T0SECRETPATH9x";
    const TOKEN: &str = "tok-Hs83Kd02Lq";
    let rx = Receiver::start(&[500, 500, 500]);
    let ws = Workspace::with_workflow(&workflow(
        "on_failure:\n  - post_env: FLOW_TEST_HOOK_URL\n    format: slack\n    headers:\n      Authorization: { env: FLOW_TEST_HOOK_TOKEN }\n",
    ));
    let out = ws
        .run()
        .arg("-v")
        .env(
            "FLOW_TEST_HOOK_URL",
            rx.url(&format!("/services/{URL_SECRET}")),
        )
        .env("FLOW_TEST_HOOK_TOKEN", format!("Bearer {TOKEN}"))
        .expect_exit(1)
        .run();
    let got = rx.requests();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0].path, format!("/services/{URL_SECRET}"));
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    out.assert_stderr_contains(
        "warning: notification slack POST to the URL in $FLOW_TEST_HOOK_URL",
    );
    let show = ws
        .flow()
        .args(["runs", "show", &out.run_id(), "--json"])
        .run();
    for (what, text) in [
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
        ("runs show", &show.stdout),
    ] {
        assert!(!text.contains(URL_SECRET), "{what} shows the URL\n{out}");
        assert!(!text.contains(TOKEN), "{what} shows the token\n{out}");
    }
    for (path, bytes) in ws.snapshot(".flow") {
        for secret in [URL_SECRET, TOKEN] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret",
                path.display()
            );
        }
    }
}

#[test]
fn an_interrupted_run_sends_nothing() {
    let rx = Receiver::start(&[]);
    let ws = Workspace::with_workflow(&format!(
        r#"name: slow
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: wait
    kind: action
    type: core.shell
    needs: [go]
    with: {{ command: "touch started && sleep 30" }}
on_failure:
  - post: {}
on_success:
  - post: {}
"#,
        rx.url("/failed"),
        rx.url("/ok")
    ));
    let mut child = ws
        .command(["run", "flow.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow run");
    assert!(wait_until(Duration::from_secs(20), || ws.exists("started")));
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&child);
    let ended = wait_until(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    assert!(ended, "flow run did not stop");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was interrupted"), "{stderr}");
    assert!(rx.requests().is_empty(), "{:#?}", rx.requests());
}

#[test]
fn a_scheduled_failing_run_in_serve_posts_exactly_one_message() {
    let rx = Receiver::start(&[]);
    // Fails on its first run only; later runs succeed and have nothing to send.
    let ws = Workspace::with_workflow(&format!(
        r#"name: ticker
nodes:
  - id: tick
    kind: trigger
    type: schedule
    with: {{ cron: "* * * * * *", timezone: UTC }}
  - id: work
    kind: action
    type: core.shell
    needs: [tick]
    with: {{ command: "sh record.sh; if [ ! -f failed-once ]; then touch failed-once; echo 'disk full' >&2; exit 1; fi" }}
on_failure:
  - post: {}
"#,
        rx.url("/failed")
    ));
    let server = ws
        .command(["serve", "flow.yaml", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow serve");
    let posted = wait_until(Duration::from_secs(30), || !rx.requests().is_empty());
    // Two more runs end after the failure: neither may post.
    let more = wait_until(Duration::from_secs(30), || {
        ws.counts().get("work").copied().unwrap_or(0) >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&server);
    let log = server.wait_with_output().expect("wait for flow serve");
    let log = String::from_utf8_lossy(&log.stderr).into_owned();
    assert!(posted && more, "{log}");
    let got = rx.requests();
    assert_eq!(got.len(), 1, "{got:#?}\n{log}");
    let m = got[0].json();
    assert_eq!(m["workflow"], "ticker");
    assert_eq!(m["fired_by"], "schedule");
    assert_eq!(m["failed_nodes"][0]["node"], "work");
    assert!(
        m["failed_nodes"][0]["error"]
            .as_str()
            .unwrap()
            .contains("disk full"),
        "{m}"
    );
    let run_id = m["run_id"].as_str().unwrap();
    assert_eq!(
        m["resume_command"],
        format!("flow resume {run_id} --state {}", ws.state_dir().display())
    );
    assert_eq!(ws.show(run_id)["run"]["status"], "failed");
    // With the web UI on, the message links to the run's page on the address it listens on.
    let listening = log
        .split("HTTP API and web UI on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address in the log")
        .trim_end_matches('/');
    assert_eq!(m["ui_url"], format!("{listening}/runs/{run_id}"), "{m}");
}

#[test]
fn the_schema_describes_both_kinds_of_notification() {
    let ws = Workspace::new();
    let schema = ws.flow().arg("schema").run().json();
    for key in ["on_failure", "on_success"] {
        assert_eq!(
            schema["properties"][key]["items"]["$ref"],
            "#/$defs/NotificationDef"
        );
    }
    let defs = &schema["$defs"];
    assert_eq!(
        defs["NotificationDef"]["anyOf"].as_array().unwrap().len(),
        2
    );
    let post = &defs["PostNotificationDef"]["properties"];
    for key in ["post", "post_env", "format", "headers", "timeout"] {
        assert!(post.get(key).is_some(), "{key}");
    }
    assert_eq!(
        defs["CommandNotificationDef"]["required"],
        serde_json::json!(["command"])
    );
    let formats = defs["NotifyFormat"].to_string();
    for f in ["json", "slack", "teams"] {
        assert!(formats.contains(f), "{formats}");
    }
}
