//! `on_failure` and `on_success`: valid entries compiled, every bad one reported at its line.

use std::time::Duration;

use super::*;
use crate::notify::{NotifyFormat, Secret, Target};

const NODES: &str = "\
nodes:
  - { id: go, kind: trigger, type: manual }
";

#[test]
fn valid_notifications_are_compiled_with_their_defaults() {
    let text = format!(
        "\
name: n
on_failure:
  - post: https://hooks.slack.com/services/T/B/X
    format: slack
  - post_env: TEAMS_URL
    format: teams
    headers:
      Authorization: {{ env: HOOK_TOKEN }}
      X-Source: flow
    timeout: 3s
  - command: [notify-send, flow failed]
on_success:
  - post: http://127.0.0.1:9000/hook
    timeout: 1.5
{NODES}"
    );
    let wf = compile_str(&text).expect("valid");
    let n = &wf.notifications;
    assert_eq!(n.on_failure.len(), 3);
    assert_eq!(n.on_success.len(), 1);
    assert_eq!(
        n.on_failure[0].target,
        Target::Post {
            url: Secret::Text("https://hooks.slack.com/services/T/B/X".into()),
            format: NotifyFormat::Slack,
            headers: vec![],
        }
    );
    assert_eq!(n.on_failure[0].timeout, Duration::from_secs(10));
    assert_eq!(
        n.on_failure[1].target,
        Target::Post {
            url: Secret::Env("TEAMS_URL".into()),
            format: NotifyFormat::Teams,
            headers: vec![
                ("Authorization".into(), Secret::Env("HOOK_TOKEN".into())),
                ("X-Source".into(), Secret::Text("flow".into())),
            ],
        }
    );
    assert_eq!(n.on_failure[1].timeout, Duration::from_secs(3));
    assert_eq!(
        n.on_failure[2].target,
        Target::Command {
            argv: vec!["notify-send".into(), "flow failed".into()]
        }
    );
    assert_eq!(n.on_success[0].timeout, Duration::from_millis(1500));
    match &n.on_success[0].target {
        Target::Post { format, .. } => assert_eq!(*format, NotifyFormat::Json),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notifications_do_not_change_the_workflow_fingerprint() {
    let plain = compile_str(&format!("name: n\n{NODES}")).unwrap();
    let notified = compile_str(&format!(
        "name: n\non_failure:\n  - command: [\"true\"]\n{NODES}"
    ))
    .unwrap();
    assert_eq!(plain.fingerprint, notified.fingerprint);
}

#[test]
fn bad_notifications_are_reported_at_their_lines() {
    let text = format!(
        "\
name: n
on_failure:
  - post: http://example.com/hook
    command: [echo, hi]
  - post: http://example.com/hook
    format: discord
  - command: []
  - post: ftp://example.com/x
    timeout: soon
  - post_env: 9BAD
  - command: echo hi
  - format: slack
  - post: http://example.com/hook
    headers: {{ Authorization: {{ env: TOKEN, extra: 1 }} }}
    retries: 3
  - command: [sh, -c, exit 1]
    format: slack
    timeout: 0s
  - just text
on_success: nope
{NODES}"
    );
    let errs = errors(&text);
    let expect = [
        (4, "not `post` and `command`; write two entries"),
        (
            6,
            "unknown format `discord` (expected one of: json, slack, teams)",
        ),
        (7, "`command` is empty"),
        (
            8,
            "`post`: `ftp://example.com/x` must start with http:// or https://",
        ),
        (9, "`timeout`:"),
        (10, "`post_env` must name an environment variable"),
        (11, "`command` must be a list"),
        (
            12,
            "a notification needs one of `post: URL`, `post_env: VAR` or `command",
        ),
        (
            14,
            "header `Authorization` must be a one-line text or `{ env: VAR }`",
        ),
        (15, "unknown notification key `retries`"),
        (17, "`format` applies to `post`"),
        (18, "`timeout` must be longer than zero"),
        (19, "a `on_failure` item must be a mapping"),
        (20, "`on_success` must be a list of notifications"),
    ];
    for (line, text) in expect {
        assert!(
            errs.iter().any(|(l, m)| *l == line && m.contains(text)),
            "missing line {line}: {text}\ngot: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(errs.iter().all(|(_, m)| m.starts_with("wf.yaml:")));
}

#[test]
fn a_bad_url_is_quoted_without_its_credentials() {
    let errs = errors(&format!(
        "name: n\non_failure:\n  - post: \"ftp://bob:hunter2@example.com/x?token=abc\"\n{NODES}"
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        !errs[0].1.contains("hunter2") && !errs[0].1.contains("abc"),
        "{errs:#?}"
    );
}
