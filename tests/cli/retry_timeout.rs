//! Retries with backoff, and per-node timeouts that kill the command.

use std::time::{Duration, Instant};

use chrono_free::seconds_between;
use serde_json::Value as Json;

use crate::support::{Workspace, counts_of, wait_until};

/// RFC 3339 timestamps without pulling chrono into the tests.
mod chrono_free {
    /// Seconds since midnight of an RFC 3339 UTC timestamp (`2026-01-01T10:11:12.123Z`).
    fn day_seconds(ts: &str) -> f64 {
        let time = ts
            .split('T')
            .nth(1)
            .unwrap_or_else(|| panic!("not RFC 3339: {ts}"));
        let time = time.trim_end_matches('Z').split('+').next().unwrap();
        let mut parts = time.split(':');
        let h: f64 = parts.next().unwrap().parse().unwrap();
        let m: f64 = parts.next().unwrap().parse().unwrap();
        let s: f64 = parts.next().unwrap().parse().unwrap();
        h * 3600.0 + m * 60.0 + s
    }

    /// `b - a` in seconds (both on the same day, or b just after midnight).
    pub fn seconds_between(a: &str, b: &str) -> f64 {
        let d = day_seconds(b) - day_seconds(a);
        if d < -43_200.0 { d + 86_400.0 } else { d }
    }
}

fn attempts(node: &Json) -> Vec<Json> {
    node["attempts"].as_array().expect("attempts").clone()
}

fn outcomes(node: &Json) -> Vec<String> {
    attempts(node)
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_retry_then_success_records_every_attempt() {
    let ws = Workspace::with_workflow(
        r#"
name: flaky
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: flaky
    kind: action
    type: core.shell
    needs: [start]
    retry: { max_attempts: 5, backoff: 50ms }
    with:
      command: |
        sh record.sh
        n=$(cat counter 2>/dev/null || echo 0)
        n=$((n + 1))
        echo $n > counter
        if [ "$n" -lt 3 ]; then echo "not yet: $n" >&2; exit 1; fi
        echo "done at attempt $FLOW_ATTEMPT"
  - id: after
    kind: action
    type: core.shell
    needs: [flaky]
    with: { command: 'sh record.sh && cat "$FLOW_INPUT_FLAKY"' }
"#,
    );
    let id = ws.run().run().run_id();
    let log = ws.log();
    let flaky: Vec<u32> = log
        .iter()
        .filter(|e| e.node == "flaky")
        .map(|e| e.attempt)
        .collect();
    assert_eq!(flaky, [1, 2, 3], "FLOW_ATTEMPT counts the attempts");
    assert_eq!(ws.counts(), counts_of(&[("flaky", 3), ("after", 1)]));

    let nodes = ws.node_records(&id);
    let flaky = &nodes["flaky"];
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(outcomes(flaky), ["failed", "failed", "succeeded"]);
    let attempts = attempts(flaky);
    let numbers: Vec<u64> = attempts
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("not yet: 1"),
        "{:?}",
        attempts[0]
    );
    assert!(
        attempts[1]["error"]
            .as_str()
            .unwrap()
            .contains("not yet: 2"),
        "{:?}",
        attempts[1]
    );
    assert!(attempts[2].get("error").is_none_or(Json::is_null));
    assert!(
        flaky.get("error").is_none_or(Json::is_null),
        "a node that succeeded has no error"
    );
    assert_eq!(nodes["after"]["attempts"].as_array().unwrap().len(), 1);

    let out = ws.flow().args(["runs", "output", &id, "after"]).run();
    assert_eq!(out.stdout.trim(), "done at attempt 3");
}

#[test]
fn a_retry_that_exhausts_its_attempts_fails_with_the_last_error() {
    let ws = Workspace::with_workflow(
        r#"
name: hopeless
nodes:
  - id: hopeless
    kind: action
    type: core.shell
    retry: { max_attempts: 3, backoff: 10ms }
    with: { command: 'sh record.sh && echo "boom $FLOW_ATTEMPT" >&2 && exit 7' }
  - id: after
    kind: action
    type: core.shell
    needs: [hopeless]
    with: { command: "sh record.sh" }
"#,
    );
    let out = ws.run().expect_exit(1).run();
    let id = out.run_id();
    out.assert_stderr_contains(&format!("flow resume {id}"));
    assert_eq!(ws.counts(), counts_of(&[("hopeless", 3)]));
    let nodes = ws.node_records(&id);
    let node = &nodes["hopeless"];
    assert_eq!(node["status"], "failed");
    assert_eq!(outcomes(node), ["failed", "failed", "failed"]);
    let error = node["error"].as_str().unwrap();
    assert!(
        error.contains("boom 3"),
        "the last attempt's error: {error}"
    );
    assert!(
        !error.contains("boom 1") && !error.contains("boom 2"),
        "only the last error: {error}"
    );
    assert!(error.contains("exit code 7"), "{error}");
    assert!(error.contains("after 3 attempts"), "{error}");
    for (i, attempt) in attempts(node).iter().enumerate() {
        let e = attempt["error"].as_str().unwrap();
        assert!(
            e.contains(&format!("boom {}", i + 1)),
            "attempt {}: {e}",
            i + 1
        );
    }
    assert_eq!(nodes["after"]["status"], "upstream_failed");
}

#[test]
fn backoff_grows_by_its_factor_and_is_capped() {
    let ws = Workspace::with_workflow(
        r#"
name: backoff
nodes:
  - id: grows
    kind: action
    type: core.shell
    retry: { max_attempts: 3, backoff: 200ms, factor: 2 }
    with: { command: "sh record.sh && exit 1" }
  - id: capped
    kind: action
    type: core.shell
    retry: { max_attempts: 3, backoff: 200ms, factor: 4, max_backoff: 250ms }
    with: { command: "sh record.sh && exit 1" }
"#,
    );
    let id = ws.run().expect_exit(1).run().run_id();
    let nodes = ws.node_records(&id);
    let gaps = |node: &str| -> Vec<f64> {
        let attempts = attempts(&nodes[node]);
        attempts
            .windows(2)
            .map(|w| {
                seconds_between(
                    w[0]["finished_at"].as_str().unwrap(),
                    w[1]["started_at"].as_str().unwrap(),
                )
            })
            .collect()
    };
    let grows = gaps("grows");
    assert!(
        grows[0] >= 0.19 && grows[1] >= 0.39,
        "backoff 200ms then 400ms: {grows:?}"
    );
    assert!(grows[1] > grows[0], "{grows:?}");
    let capped = gaps("capped");
    assert!(capped[0] >= 0.19 && capped[1] >= 0.24, "{capped:?}");
    assert!(
        capped[1] < 0.75,
        "the 800ms backoff must be capped at 250ms: {capped:?}"
    );
}

fn process_is_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie has exited; it only waits to be reaped.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_timeout_fails_the_node_quickly_and_kills_the_command() {
    let ws = Workspace::with_workflow(
        r#"
name: slow
nodes:
  - id: slow
    kind: action
    type: core.shell
    timeout: 300ms
    with: { command: "sh record.sh; sleep 5 & echo $! > slow.pid; wait" }
  - id: slow_retried
    kind: action
    type: core.shell
    timeout: 200ms
    retry: { max_attempts: 2, backoff: 10ms }
    with: { command: "sh record.sh; sleep 5 & echo $! >> retried.pid; wait" }
  - id: after
    kind: action
    type: core.shell
    needs: [slow]
    with: { command: "sh record.sh" }
"#,
    );
    let started = Instant::now();
    let out = ws.run().expect_exit(1).run();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "a 300ms timeout took {elapsed:?}"
    );
    let id = out.run_id();

    let nodes = ws.node_records(&id);
    assert_eq!(nodes["slow"]["status"], "failed");
    assert_eq!(outcomes(&nodes["slow"]), ["timed_out"]);
    let error = nodes["slow"]["error"].as_str().unwrap();
    assert!(error.contains("timed out after 300ms"), "{error}");
    assert_eq!(nodes["slow_retried"]["status"], "failed");
    assert_eq!(outcomes(&nodes["slow_retried"]), ["timed_out", "timed_out"]);
    assert_eq!(nodes["after"]["status"], "upstream_failed");
    assert_eq!(ws.counts(), counts_of(&[("slow", 1), ("slow_retried", 2)]));

    // The commands' children were killed, not left sleeping.
    let mut pids: Vec<String> = vec![ws.read("slow.pid").trim().to_string()];
    pids.extend(ws.read("retried.pid").lines().map(str::to_string));
    assert_eq!(pids.len(), 3);
    for pid in &pids {
        assert!(
            wait_until(Duration::from_secs(2), || process_is_gone(pid)),
            "`sleep 5` (pid {pid}) outlived its node's timeout"
        );
    }
}
