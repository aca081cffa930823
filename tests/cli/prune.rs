//! `flow runs prune`, the store size in `flow runs`, and retention in `flow serve`: old runs go
//! with everything of theirs, resumable and live runs stay, and a pruned run is gone for good.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{Workspace, sigterm, wait_until};

/// Fails while `fail` exists; its output is over 256 KiB, so it is kept in a file.
const WORKFLOW: &str = r#"
name: nightly
nodes:
  - id: big
    kind: action
    type: core.shell
    with: { command: "sh record.sh && test ! -e fail && head -c 300000 /dev/zero | tr '\\0' x" }
  - id: small
    kind: action
    type: core.shell
    needs: [big]
    with: { command: "echo done" }
"#;

fn run_ids(ws: &Workspace) -> Vec<String> {
    ws.flow()
        .args(["runs", "--json", "--limit", "1000"])
        .run()
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

/// Runs the workflow: `fail` makes the run fail. Returns the run id.
fn one_run(ws: &Workspace, fail: bool) -> String {
    if fail {
        ws.write("fail", "");
        let out = ws.run().expect_exit(1).run();
        std::fs::remove_file(ws.path("fail")).unwrap();
        out.run_id()
    } else {
        ws.run().run().run_id()
    }
}

/// Three succeeded runs with a failed one before the newest: oldest first.
fn four_runs(ws: &Workspace) -> Vec<String> {
    let mut ids = Vec::new();
    for fail in [false, false, true, false] {
        ids.push(one_run(ws, fail));
        // Run ids carry the second they started in; keep them in order.
        std::thread::sleep(Duration::from_millis(1100));
    }
    ids
}

fn prune(ws: &Workspace, args: &[&str]) -> Json {
    ws.flow()
        .args(["runs", "prune", "--json"])
        .args(args)
        .run()
        .json()
}

#[test]
fn prune_keeps_the_newest_and_resumable_runs_and_removes_the_rest_entirely() {
    let ws = Workspace::with_workflow(WORKFLOW);
    let ids = four_runs(&ws);
    for id in &ids[..2] {
        assert!(ws.exists(&format!(".flow/outputs/{id}/big.out")), "{id}");
    }

    let out = ws.flow().args(["runs", "prune", "--keep", "1"]).run();
    for id in &ids[..2] {
        out.assert_stdout_contains(&format!("removed run {id} of `nightly` (succeeded"));
        assert!(
            !ws.exists(&format!(".flow/outputs/{id}")),
            "the output files of {id} are gone"
        );
    }
    out.assert_stdout_contains("removed 2 runs");
    out.assert_stdout_contains("kept 1 failed or interrupted run that could still be resumed");
    assert_eq!(run_ids(&ws), [ids[3].clone(), ids[2].clone()]);
    for id in &ids[..2] {
        let shown = ws.flow().args(["runs", "show", id]).expect_exit(2).run();
        shown.assert_stderr_contains(&format!("no run `{id}`"));
    }
    // The kept runs are whole: their outputs read back.
    let exported = ws.flow().args(["runs", "output", &ids[3], "big"]).run();
    assert_eq!(exported.stdout.trim_end().len(), 300_000);

    // Asked to, it removes the failed run too; the newest stays.
    let removed = prune(&ws, &["--keep", "1", "--include-resumable"]);
    assert_eq!(removed["runs"][0]["id"], ids[2].as_str(), "{removed:#}");
    assert_eq!(removed["runs"][0]["status"], "failed");
    // Opened directly (no flow serve), the database was rewritten to give its space back.
    assert_eq!(removed["compacted"], true, "{removed:#}");
    assert_eq!(run_ids(&ws), [ids[3].clone()]);
}

#[test]
fn dry_run_lists_what_would_go_and_changes_nothing() {
    let ws = Workspace::with_workflow(WORKFLOW);
    let ids = four_runs(&ws);
    let before = run_ids(&ws);
    let out = ws
        .flow()
        .args(["runs", "prune", "--keep", "1", "--dry-run"])
        .run();
    out.assert_stdout_contains(&format!("would remove run {}", ids[0]));
    out.assert_stdout_contains(&format!("would remove run {}", ids[1]));
    out.assert_stdout_contains("nothing was changed");
    assert_eq!(run_ids(&ws), before);
    for id in &ids {
        if id != &ids[2] {
            assert!(ws.exists(&format!(".flow/outputs/{id}/big.out")));
        }
    }
    let json = prune(&ws, &["--keep", "1", "--dry-run"]);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json["bytes_removed"], 0);
    assert_eq!(json["compacted"], false);
    assert_eq!(run_ids(&ws), before);
}

#[test]
fn older_than_and_before_select_by_age() {
    let ws = Workspace::with_workflow(WORKFLOW);
    let first = one_run(&ws, false);
    // Nothing is a day old yet.
    assert!(
        prune(&ws, &["--older-than", "1d"])["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Everything was created before tomorrow.
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let removed = prune(&ws, &["--before", &tomorrow]);
    assert_eq!(removed["runs"][0]["id"], first.as_str());
    assert!(run_ids(&ws).is_empty());
    // A rule is required, and a bad value is named.
    ws.flow()
        .args(["runs", "prune"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("--keep N");
    ws.flow()
        .args(["runs", "prune", "--older-than", "soon"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("soon");
    ws.flow()
        .args(["runs", "prune", "--before", "31/01/2026"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("expected a date");
}

#[test]
fn a_pruned_run_cannot_be_resumed_and_says_why() {
    let ws = Workspace::with_workflow(WORKFLOW);
    ws.write("fail", "");
    let failed = ws.run().expect_exit(1).run().run_id();
    std::fs::remove_file(ws.path("fail")).unwrap();
    prune(&ws, &["--keep", "0", "--include-resumable"]);
    let out = ws.resume(&failed).expect_exit(2).run();
    out.assert_stderr_contains(&format!("no run `{failed}`"));
    out.assert_stderr_contains("removed");
}

#[test]
fn runs_and_runs_size_show_the_space_the_store_takes() {
    let ws = Workspace::with_workflow(WORKFLOW);
    one_run(&ws, false);
    std::thread::sleep(Duration::from_millis(1100));
    one_run(&ws, false);
    let state = ws.state_dir().display().to_string();
    let list = ws.flow().args(["runs"]).run();
    let footer = list.stdout.lines().last().unwrap_or_default().to_string();
    assert!(footer.starts_with("store: "), "{list}");
    assert!(footer.contains(" in 2 runs ("), "{footer}");
    assert!(footer.contains(&state), "{footer}");
    let size = ws.flow().args(["runs", "size", "--json"]).run().json();
    assert_eq!(size["runs"], 2);
    let outputs = size["output_file_bytes"].as_u64().unwrap();
    assert!(outputs >= 600_000, "{size:#}");
    assert!(size["bytes"].as_u64().unwrap() >= outputs + size["database_bytes"].as_u64().unwrap());
    // Pruning gives the output files' space back.
    prune(&ws, &["--keep", "1"]);
    let after = ws.flow().args(["runs", "size", "--json"]).run().json();
    assert_eq!(after["runs"], 1);
    assert!(
        after["output_file_bytes"].as_u64().unwrap() <= outputs / 2 + 8192,
        "{after:#}"
    );
}

const EVERY_SECOND: &str = r#"name: ticker
nodes:
  - id: tick
    kind: trigger
    type: schedule
    with: { cron: "* * * * * *", timezone: UTC }
  - id: work
    kind: action
    type: core.shell
    needs: [tick]
    with: { command: "sh record.sh && echo tick" }
"#;

#[test]
fn serve_keeps_runs_to_its_retention_and_prune_works_beside_it() {
    let ws = Workspace::with_workflow(EVERY_SECOND);
    let server = ws
        .command(["serve", "flow.yaml", "--keep-runs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow serve");
    let executed = || ws.log().len();
    let enough = wait_until(Duration::from_secs(40), || executed() >= 5);
    // Through the server: retention has kept the runs to 2 (and one more may be starting).
    let listed = ws
        .flow()
        .args(["runs", "--json", "--limit", "1000"])
        .any_exit()
        .run();
    let pruned = ws
        .flow()
        .args(["runs", "prune", "--keep", "1", "--json"])
        .any_exit()
        .run();
    sigterm(&server);
    let out = server.wait_with_output().expect("wait for flow serve");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(enough, "fewer than 5 runs in 40 s; log:\n{log}");
    assert_eq!(listed.code, 0, "{listed}");
    let kept = listed.json().as_array().unwrap().len();
    assert!((1..=3).contains(&kept), "{kept} runs kept; log:\n{log}");
    assert_eq!(
        pruned.code, 0,
        "`flow runs prune` beside the server: {pruned}"
    );
    assert!(log.contains("retention removed"), "{log}");
    assert!(!pruned.stderr.contains("in use"), "{pruned}");
    // Every fired firing-log entry left belongs to a run still in the store.
    let remaining = run_ids(&ws);
    let schedule = ws.flow().args(["schedule", "flow.yaml"]).run();
    for line in schedule
        .stderr
        .lines()
        .filter(|l| l.contains("fired -> run "))
    {
        let id = line.rsplit(' ').next().unwrap();
        assert!(remaining.iter().any(|r| r == id), "{line} ({remaining:?})");
    }
    // Started again with a retention, the server first compacts the database.
    let server = ws
        .command(["serve", "flow.yaml", "--keep-runs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow serve");
    let up = wait_until(Duration::from_secs(20), || ws.exists(".flow/serve.sock"));
    sigterm(&server);
    let out = server.wait_with_output().expect("wait for flow serve");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(up, "{log}");
    assert!(
        log.contains("compacted the state store's database: "),
        "{log}"
    );
}
