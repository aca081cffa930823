//! `flow schedule` and `flow serve` with the real binary: fire times, firing on a real clock,
//! other commands reaching the store through the server, reloads, and a clean stop.
//! (Calendar semantics — DST, catch-up, overlap, restarts — are tested on a hand-moved clock
//! in `src/serve/tests.rs`.)

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{Workspace, sigterm, wait_until};

pub(crate) const EVERY_SECOND: &str = r#"name: ticker
nodes:
  - id: tick
    kind: trigger
    type: schedule
    with: { cron: "* * * * * *", timezone: Europe/London }
  - id: work
    kind: action
    type: core.shell
    needs: [tick]
    with: { command: "sh record.sh && echo tick" }
"#;

const MANUAL: &str = r#"name: by-hand
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: hello
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "echo hello" }
"#;

pub(crate) fn spawn_serve(ws: &Workspace, args: &[&str]) -> Child {
    ws.command(["serve"].iter().chain(args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow serve")
}

/// Stops the server with SIGTERM; its exit code and log.
fn stop(child: Child) -> (i32, String) {
    sigterm(&child);
    let out = child.wait_with_output().expect("wait for flow serve");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Scheduled runs that succeeded, from `flow runs --json` (through the server while it runs).
fn scheduled_successes(ws: &Workspace) -> usize {
    let out = ws.flow().args(["runs", "--json"]).any_exit().run();
    if out.code != 0 {
        return 0;
    }
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["fired_by"] == "schedule" && r["status"] == "succeeded")
        .count()
}

#[test]
fn schedule_prints_next_fire_times_in_local_time_and_utc() {
    let ws = Workspace::with_workflow(
        r#"name: daily
nodes:
  - id: six
    kind: trigger
    type: schedule
    with: { cron: "0 6 * * MON-FRI", timezone: America/New_York, catchup: all }
"#,
    );
    let out = ws
        .flow()
        .args(["schedule", "flow.yaml", "--count", "3"])
        .run();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("0 6 * * MON-FRI") && lines[0].contains("catchup: all"));
    for line in &lines[1..] {
        // `Mon 2026-11-23 06:00:00 EST  2026-11-23 11:00:00 UTC`
        assert!(line.contains(" 06:00:00 E"), "{line}");
        assert!(
            line.ends_with(" 11:00:00 UTC") || line.ends_with(" 10:00:00 UTC"),
            "{line}"
        );
        assert!(
            !line.starts_with("Sat") && !line.starts_with("Sun"),
            "{line}"
        );
    }
}

#[test]
fn schedule_reports_a_bad_expression_at_its_line() {
    let ws = Workspace::with_workflow(
        r#"name: daily
nodes:
  - id: six
    kind: trigger
    type: schedule
    with:
      cron: "0 6 * * MON-FRY"
"#,
    );
    let out = ws
        .flow()
        .args(["schedule", "flow.yaml"])
        .expect_exit(2)
        .run();
    out.assert_stderr_contains("flow.yaml:7:");
    out.assert_stderr_contains("MON-FRY");
}

#[test]
fn serve_fires_while_other_commands_use_the_store_then_stops_cleanly() {
    let ws = Workspace::with_workflow(EVERY_SECOND);
    ws.write("manual.yaml", MANUAL);
    let server = spawn_serve(&ws, &["flow.yaml"]);
    let fired = wait_until(Duration::from_secs(30), || scheduled_successes(&ws) >= 2);

    // Everything below goes through the server, which holds the store.
    let list = ws.flow().args(["runs"]).any_exit().run();
    let manual = ws.flow().args(["run", "manual.yaml"]).any_exit().run();
    let shown = ws.flow().args(["runs", "show", "last"]).any_exit().run();
    let (code, log) = stop(server);

    assert!(fired, "no scheduled run succeeded within 30 s; log:\n{log}");
    assert_eq!(list.code, 0, "{list}");
    assert!(list.stdout.contains("schedule"), "{list}");
    assert_eq!(manual.code, 0, "`flow run` beside the server: {manual}");
    assert_eq!(shown.code, 0, "{shown}");
    assert_eq!(code, 0, "SIGTERM stops the server with 0; log:\n{log}");
    for expected in [
        "loaded `ticker`",
        "fired `ticker` trigger `tick`",
        "started",
        "succeeded in",
        "stopped",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
    for out in [&list, &manual, &shown] {
        assert!(!out.stderr.contains("in use"), "{out}");
    }

    // The store is released and holds both kinds of runs, each scheduled run with its time.
    let runs = ws
        .flow()
        .args(["runs", "--json", "--limit", "1000"])
        .run()
        .json();
    let runs = runs.as_array().unwrap();
    assert!(
        runs.iter()
            .any(|r| r["workflow_name"] == "by-hand" && r["status"] == "succeeded")
    );
    let scheduled: Vec<_> = runs
        .iter()
        .filter(|r| r["trigger"]["fired_by"] == "schedule")
        .collect();
    assert!(scheduled.len() >= 2);
    assert!(
        scheduled
            .iter()
            .all(|r| r["trigger"]["scheduled_for"].is_string())
    );
    // A drained stop lets the last run finish: nothing is left half-done.
    assert!(
        scheduled
            .iter()
            .all(|r| r["status"] == "succeeded" || r["status"] == "interrupted"),
        "{runs:?}"
    );
    assert!(
        !ws.state_dir().join("serve.sock").exists(),
        "socket removed"
    );
}

#[test]
fn serve_reloads_a_changed_file_and_keeps_the_old_one_when_invalid() {
    let ws = Workspace::with_workflow(&EVERY_SECOND.replace("* * * * * *", "0 0 6 * * *"));
    let server = spawn_serve(&ws, &["flow.yaml", "--reload-interval", "100ms"]);
    assert!(wait_until(Duration::from_secs(20), || ws
        .state_dir()
        .join("serve.sock")
        .exists()));
    std::thread::sleep(Duration::from_millis(300));
    ws.workflow(&EVERY_SECOND.replace("timezone: Europe/London", "timezone: Mars/Olympus"));
    std::thread::sleep(Duration::from_millis(600));
    ws.workflow(EVERY_SECOND);
    let fired = wait_until(Duration::from_secs(30), || scheduled_successes(&ws) >= 1);
    let (code, log) = stop(server);
    assert!(fired, "the valid change was not picked up:\n{log}");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("changed but is invalid; keeping the previous definition"),
        "{log}"
    );
    assert!(
        log.contains("flow.yaml:6:"),
        "the error names its line:\n{log}"
    );
    assert!(log.contains("reloaded `ticker`"), "{log}");
}

#[test]
fn serve_refuses_an_invalid_workflow_and_a_second_server() {
    let ws = Workspace::with_workflow(&EVERY_SECOND.replace("* * * * * *", "0 6 * * * * *"));
    let out = ws.flow().args(["serve", "flow.yaml"]).expect_exit(2).run();
    out.assert_stderr_contains("flow.yaml:6:");

    ws.workflow(&EVERY_SECOND.replace("* * * * * *", "0 0 6 * * *"));
    let server = spawn_serve(&ws, &["flow.yaml"]);
    assert!(wait_until(Duration::from_secs(20), || ws
        .state_dir()
        .join("serve.sock")
        .exists()));
    let second = ws.flow().args(["serve", "flow.yaml"]).expect_exit(2).run();
    second.assert_stderr_contains("already serving");
    let (code, log) = stop(server);
    assert_eq!(code, 0, "{log}");
}

#[test]
fn serve_waits_for_a_command_that_holds_the_store() {
    let ws = Workspace::with_workflow(&EVERY_SECOND.replace("* * * * * *", "0 0 6 * * *"));
    ws.write(
        "slow.yaml",
        MANUAL.replace("echo hello", "touch started && sleep 2"),
    );
    let run = ws
        .command(["run", "slow.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow run");
    assert!(wait_until(Duration::from_secs(20), || ws.exists("started")));
    let server = spawn_serve(&ws, &["flow.yaml"]);
    let served = wait_until(Duration::from_secs(30), || {
        ws.state_dir().join("serve.sock").exists()
    });
    let run = run.wait_with_output().expect("flow run ends");
    let (code, log) = stop(server);
    assert!(run.status.success());
    assert!(served, "{log}");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("is in use by another flow command; waiting"),
        "{log}"
    );
}

#[test]
fn serve_killed_mid_run_resumes_it_on_restart() {
    let ws = Workspace::with_workflow(
        &EVERY_SECOND
            .replace(
                "timezone: Europe/London }",
                "timezone: Europe/London, resume_interrupted: true }",
            )
            .replace(
                "sh record.sh && echo tick",
                "sh record.sh; if [ ! -f slept ]; then touch slept started; sleep 5; fi",
            ),
    );
    let mut server = spawn_serve(&ws, &["flow.yaml"]);
    assert!(wait_until(Duration::from_secs(30), || ws.exists("started")));
    server.kill().expect("SIGKILL flow serve");
    let first = server.wait_with_output().expect("wait");
    let first_log = String::from_utf8_lossy(&first.stderr).into_owned();
    let run_id = first_log
        .lines()
        .find_map(|l| l.split("-> run ").nth(1))
        .unwrap_or_else(|| panic!("no firing logged:\n{first_log}"))
        .trim()
        .to_string();

    let server = spawn_serve(&ws, &["flow.yaml"]);
    let resumed = wait_until(Duration::from_secs(30), || {
        let show = ws
            .flow()
            .args(["runs", "show", &run_id, "--json"])
            .any_exit()
            .run();
        show.code == 0 && show.json()["run"]["status"] == "succeeded"
    });
    let (code, log) = stop(server);
    assert!(resumed, "run {run_id} was not resumed:\n{log}");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!(
            "run {run_id} of `ticker` was left unfinished; resuming it"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("run {run_id} of `ticker` resumed")),
        "{log}"
    );
    let show = ws.show(&run_id);
    assert_eq!(show["run"]["executions"], 2);
    // The trigger's checkpoint was reused (the firing is not redone); `work` ran again.
    let nodes = ws.node_records(&run_id);
    assert_eq!(nodes["tick"]["execution"], 1);
    assert_eq!(nodes["work"]["execution"], 2);
    assert_eq!(nodes["work"]["status"], "succeeded");
}
