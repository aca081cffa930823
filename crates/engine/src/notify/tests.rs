//! Messages, formats (with hostile data in error texts) and delivery with retries.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use super::*;
use crate::executor::RunOutcome;
use crate::store::{NodeRecord, NodeStatus, RunRecord, RunStatus};

const HOSTILE: &str = "boom <!channel> <@U123> </code> ```\n*bold* _it_ [x](http://evil) \"quoted\" & done\n<at>Everyone</at>";

fn outcome(status: RunStatus, errors: &[(&str, &str)]) -> RunOutcome {
    let mut run = RunRecord::new_for_test("20260101-000000-abcd");
    run.workflow_name = "nightly `sales` *report*".into();
    run.workflow_path = "/srv/flows/nightly.yaml".into();
    run.status = status;
    run.finished_at = Some(run.created_at + chrono::TimeDelta::milliseconds(65_400));
    let mut nodes = vec![{
        let mut ok = NodeRecord::new("load");
        ok.status = NodeStatus::Succeeded;
        ok
    }];
    for (id, error) in errors {
        let mut n = NodeRecord::new(id);
        n.status = NodeStatus::Failed;
        n.error = Some(error.to_string());
        nodes.push(n);
    }
    RunOutcome { run, nodes }
}

fn cx() -> MessageContext {
    MessageContext {
        state_dir: Some("/var/lib/my flow".into()),
        ui_base: Some("http://127.0.0.1:8080/".into()),
    }
}

#[test]
fn a_failed_run_message_names_the_node_its_error_and_how_to_resume() {
    let long: String = (1..=15).map(|i| format!("line {i}\n")).collect();
    let m = Message::build(&outcome(RunStatus::Failed, &[("score", &long)]), &cx());
    assert_eq!(m.run_id, "20260101-000000-abcd");
    assert_eq!(m.status_str(), "failed");
    assert_eq!(m.fired_by, "manual");
    assert_eq!(m.duration_secs, 65.4);
    assert_eq!(m.failed_nodes.len(), 1);
    let node = &m.failed_nodes[0];
    assert_eq!(node.node, "score");
    assert!(node.truncated);
    assert_eq!(node.error.lines().count(), 10, "{}", node.error);
    assert!(node.error.starts_with("line 1\n") && node.error.ends_with("line 10…"));
    assert_eq!(
        m.resume_command.as_deref(),
        Some("flow resume 20260101-000000-abcd --state '/var/lib/my flow'")
    );
    assert_eq!(
        m.ui_url.as_deref(),
        Some("http://127.0.0.1:8080/runs/20260101-000000-abcd")
    );
    let json = render(NotifyFormat::Json, &m);
    assert_eq!(json["status"], "failed");
    assert_eq!(json["workflow_file"], "/srv/flows/nightly.yaml");
    assert_eq!(json["failed_nodes"][0]["node"], "score");
    assert_eq!(json["failed_nodes"][0]["truncated"], true);
    assert!(json["started_at"].is_string() && json["finished_at"].is_string());
}

#[test]
fn errors_are_cut_at_the_character_limit_and_short_ones_kept_whole() {
    let (text, cut) = excerpt(&"é".repeat(4_000));
    assert!(cut);
    assert_eq!(text.chars().count(), message::ERROR_CHARS + 1);
    assert_eq!(excerpt("  one\ntwo  \n"), ("one\ntwo".to_string(), false));
}

#[test]
fn a_succeeded_run_has_no_resume_command_and_no_failed_nodes() {
    let m = Message::build(
        &outcome(RunStatus::Succeeded, &[]),
        &MessageContext::default(),
    );
    assert!(m.failed_nodes.is_empty());
    assert_eq!(m.resume_command, None);
    assert_eq!(m.ui_url, None);
    let json = render(NotifyFormat::Json, &m);
    assert!(json.get("resume_command").is_none());
    assert_eq!(json["failed_nodes"], serde_json::json!([]));
    assert_eq!(resume_command("r1", None), "flow resume r1");
}

/// Every string in a JSON document, with its path.
fn strings(v: &Json, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Json::String(s) => out.push((path, s.clone())),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, format!("{path}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (k, item) in map {
                strings(item, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn slack_escapes_hostile_error_text_so_no_mention_link_or_fence_can_form() {
    let m = Message::build(&outcome(RunStatus::Failed, &[("score", HOSTILE)]), &cx());
    let body = render(NotifyFormat::Slack, &m);
    assert!(body["text"].as_str().unwrap().contains("failed"));
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] == "section"));
    let mut texts = Vec::new();
    strings(&body, String::new(), &mut texts);
    for (path, text) in &texts {
        assert!(!text.contains("<!"), "{path}: {text}");
        assert!(!text.contains("<@"), "{path}: {text}");
        assert!(!text.contains("<http://evil"), "{path}: {text}");
        // The only `<` left is the run's link, written by flow.
        let links = text.matches('<').count();
        if text.contains("Open the run") {
            assert_eq!(links, 1, "{path}: {text}");
        } else {
            assert_eq!(links, 0, "{path}: {text}");
        }
    }
    let node = blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap_or_default())
        .find(|t| t.contains("failed:"))
        .expect("a block for the failed node");
    assert!(node.contains("&lt;!channel&gt;"), "{node}");
    assert!(node.contains("&amp; done"), "{node}");
    assert!(node.contains("\"quoted\""), "{node}");
    // The data's own ``` cannot close the code block: exactly the two fences flow wrote.
    assert_eq!(node.matches("```").count(), 2, "{node}");
    // The workflow name's backquotes cannot close its code span.
    let head = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(head.contains("`nightly ˋsalesˋ *report*`"), "{head}");
    // A serialized body keeps quotes and newlines as JSON escapes.
    let raw = serde_json::to_string(&body).unwrap();
    assert!(raw.contains(r#"\"quoted\""#));
}

#[test]
fn slack_sections_stay_under_slacks_length_limit() {
    let error = "<".repeat(1_500);
    let m = Message::build(&outcome(RunStatus::Failed, &[("n", &error)]), &cx());
    let body = render(NotifyFormat::Slack, &m);
    for block in body["blocks"].as_array().unwrap() {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        assert!(text.chars().count() <= 3_000, "{}", text.len());
        assert!(!text.contains('<') || text.contains("Open the run"));
    }
    assert!(slack_escape("a&b").ends_with("a&amp;b"));
}

#[test]
fn teams_puts_data_only_in_text_runs_which_take_no_markup() {
    let m = Message::build(&outcome(RunStatus::Failed, &[("score", HOSTILE)]), &cx());
    let body = render(NotifyFormat::Teams, &m);
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert!(card.get("msteams").is_none(), "no mention entities");
    assert_eq!(card["actions"][0]["url"], m.ui_url.clone().unwrap());
    let mut texts = Vec::new();
    strings(card, String::new(), &mut texts);
    let hostile: Vec<&(String, String)> = texts
        .iter()
        .filter(|(_, t)| t.contains("<!channel>") || t.contains(&m.workflow))
        .collect();
    assert!(!hostile.is_empty());
    for (path, _) in &hostile {
        assert!(path.ends_with(".text"), "{path}");
    }
    // Every element carrying text is a TextRun inside a RichTextBlock.
    for block in card["body"].as_array().unwrap() {
        assert_eq!(block["type"], "RichTextBlock", "{block}");
        for inline in block["inlines"].as_array().unwrap() {
            assert_eq!(inline["type"], "TextRun", "{inline}");
        }
    }
    let error = texts.iter().find(|(_, t)| t.starts_with("boom")).unwrap();
    assert_eq!(
        error.1, HOSTILE,
        "shown as written, in a run that renders no markup"
    );
}

/// A receiver answering each request with the next status; returns the bodies it got.
fn receiver(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook/secret-path", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            bodies.push(String::from_utf8(body).unwrap());
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            )
            .unwrap();
        }
        bodies
    });
    (url, handle)
}

fn fast() -> SendOptions {
    SendOptions {
        retry_delays: vec![Duration::ZERO, Duration::ZERO],
        ..Default::default()
    }
}

fn post(url: Secret, format: NotifyFormat) -> Notification {
    Notification {
        target: Target::Post {
            url,
            format,
            headers: vec![],
        },
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_post_is_retried_after_server_errors_and_stops_at_the_first_success() {
    let (url, server) = receiver(vec![500, 503, 200]);
    let m = Message::build(&outcome(RunStatus::Failed, &[("score", "bad")]), &cx());
    let delivery = deliver(&post(Secret::Text(url), NotifyFormat::Slack), &m, &fast()).await;
    assert_eq!(delivery.error, None);
    assert_eq!(delivery.attempts, 3);
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 3);
    let body: Json = serde_json::from_str(&bodies[2]).unwrap();
    assert!(body["blocks"].is_array());
}

#[tokio::test]
async fn an_undeliverable_post_reports_its_error_without_the_secret_url() {
    // A port nothing listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = format!("http://127.0.0.1:{port}/services/T000/B000/TOPSECRET");
    let opts = SendOptions {
        env: std::sync::Arc::new(move |name: &str| {
            (name == "FLOW_TEST_NOTIFY_URL_1").then(|| secret.clone())
        }),
        ..fast()
    };
    let m = Message::build(&outcome(RunStatus::Failed, &[("score", "bad")]), &cx());
    let n = post(
        Secret::Env("FLOW_TEST_NOTIFY_URL_1".into()),
        NotifyFormat::Json,
    );
    let delivery = deliver(&n, &m, &opts).await;
    assert_eq!(delivery.attempts, 3);
    let error = delivery.error.expect("failed");
    assert!(!error.contains("TOPSECRET"), "{error}");
    assert!(delivery.target.contains("$FLOW_TEST_NOTIFY_URL_1"));
    assert!(!delivery.target.contains("TOPSECRET"));

    let missing = post(
        Secret::Env("FLOW_TEST_NOTIFY_UNSET".into()),
        NotifyFormat::Json,
    );
    let delivery = deliver(&missing, &m, &opts).await;
    assert_eq!(delivery.attempts, 1, "a missing variable is not retried");
    assert!(delivery.error.unwrap().contains("FLOW_TEST_NOTIFY_UNSET"));
}

#[tokio::test]
async fn a_command_gets_the_json_message_on_stdin_and_the_fields_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.json");
    let env = dir.path().join("env.txt");
    let script = format!(
        "cat > '{}'; echo \"$FLOW_RUN_ID|$FLOW_WORKFLOW|$FLOW_STATUS|$FLOW_FAILED_NODE|$FLOW_RESUME_COMMAND\" > '{}'",
        out.display(),
        env.display()
    );
    let n = Notification {
        target: Target::Command {
            argv: vec!["sh".into(), "-c".into(), script],
        },
        timeout: Duration::from_secs(10),
    };
    let m = Message::build(
        &outcome(RunStatus::Failed, &[("score", "bad\nworse")]),
        &cx(),
    );
    let delivery = deliver(&n, &m, &fast()).await;
    assert_eq!(delivery.error, None);
    let got: Json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(got["failed_nodes"][0]["error"], "bad\nworse");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap().trim(),
        format!(
            "20260101-000000-abcd|{}|failed|score|{}",
            m.workflow,
            m.resume_command.clone().unwrap()
        )
    );
}

#[tokio::test]
async fn a_failing_command_is_tried_three_times_and_a_slow_one_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let n = Notification {
        target: Target::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("echo x >> '{}'; echo nope >&2; exit 3", count.display()),
            ],
        },
        timeout: Duration::from_secs(10),
    };
    let m = Message::build(&outcome(RunStatus::Succeeded, &[]), &cx());
    let delivery = deliver(&n, &m, &fast()).await;
    assert_eq!(delivery.attempts, 3);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    assert_eq!(delivery.error.as_deref(), Some("exited with code 3: nope"));

    let slow = Notification {
        target: Target::Command {
            argv: vec!["sleep".into(), "5".into()],
        },
        timeout: Duration::from_millis(200),
    };
    let started = std::time::Instant::now();
    let delivery = deliver(&slow, &m, &fast()).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(delivery.error.unwrap().contains("no answer within 200ms"));

    let missing = Notification {
        target: Target::Command {
            argv: vec!["/nonexistent/flow-notify".into()],
        },
        timeout: Duration::from_secs(1),
    };
    let delivery = deliver(&missing, &m, &fast()).await;
    assert_eq!(delivery.attempts, 1);
    assert!(delivery.error.unwrap().contains("cannot start"));
}

#[test]
fn only_finished_runs_pick_a_list() {
    let post = post(Secret::Text("http://x".into()), NotifyFormat::Json);
    let n = Notifications {
        on_failure: vec![post.clone()],
        on_success: vec![post.clone(), post],
    };
    assert_eq!(for_status(&n, RunStatus::Failed).len(), 1);
    assert_eq!(for_status(&n, RunStatus::Succeeded).len(), 2);
    assert!(for_status(&n, RunStatus::Interrupted).is_empty());
    assert!(for_status(&n, RunStatus::Running).is_empty());
    let _ = Path::new("");
}
