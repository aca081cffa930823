//! Decisions, skip propagation and trigger rules, in every combination:
//! - a branch with an empty partition is skipped, and so is every node below it that keeps the
//!   default rule (`all_success`), whatever its other inputs did;
//! - a join (`trigger_rule: none_failed_min_one_success`) runs when all inputs are succeeded or
//!   skipped and at least one succeeded, and then receives only the live inputs;
//! - a join whose inputs were all skipped is skipped;
//! - a node with a failed (or upstream-failed) input does not run (`upstream_failed`), whatever
//!   its other inputs did, and the run fails; an `all_done` node runs anyway.

use crate::support::{Exec, Workspace, counts_of, statuses_of};

const ORDERS: &str = "id,amount\n1,5\n2,50\n3,500\n";

/// A shell node that records its execution; `extra` runs after the record.
fn shell(id: &str, needs: &[&str], extra: &str) -> String {
    let command = if extra.is_empty() {
        "sh record.sh".to_string()
    } else {
        format!("sh record.sh && {extra}")
    };
    format!(
        "  - id: {id}\n    kind: action\n    type: core.shell\n    needs: [{}]\n    with: {{ command: '{command}' }}\n",
        needs.join(", ")
    )
}

/// A shell node that joins branches: it runs with whichever inputs succeeded.
fn join(id: &str, needs: &[&str], extra: &str) -> String {
    with_rule(&shell(id, needs, extra), "none_failed_min_one_success")
}

/// `node` (as written by [`shell`]) with a trigger rule.
fn with_rule(node: &str, rule: &str) -> String {
    node.replacen(
        "    with:",
        &format!("    trigger_rule: {rule}\n    with:"),
        1,
    )
}

fn exec_of<'a>(log: &'a [Exec], node: &str) -> &'a Exec {
    let mut found = log.iter().filter(|e| e.node == node);
    let exec = found
        .next()
        .unwrap_or_else(|| panic!("`{node}` never ran; log: {log:?}"));
    assert!(
        found.next().is_none(),
        "`{node}` ran more than once; log: {log:?}"
    );
    exec
}

/// A row-routing decision with two non-empty cases and one empty case, subscribers on each,
/// chains below the empty one and every kind of join over them.
fn routing_workflow() -> String {
    let mut yaml = String::from(
        r#"name: routing
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: orders
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "sh record.sh && cat orders.csv", output: csv }
  - id: split
    kind: decision
    type: core.switch
    needs: [orders]
    with:
      rules:
        - { case: small, when: "amount < 10" }
        - { case: large, when: "amount >= 10 and amount < 1000" }
        - { case: huge, when: "amount >= 1000" }
"#,
    );
    yaml.push_str(&shell("small_n", &["split.small"], ""));
    yaml.push_str(
        r#"  - id: large_n
    kind: action
    type: core.shell
    needs: [split.large]
    with: { command: 'sh record.sh && cat "$FLOW_INPUT_SPLIT_LARGE"', output: csv }
"#,
    );
    yaml.push_str(&shell("huge_n", &["split.huge"], ""));
    yaml.push_str(&shell("huge_child", &["huge_n"], ""));
    yaml.push_str(&shell("huge_grandchild", &["huge_child"], ""));
    // (succeeded, skipped) -> runs with the live input only.
    yaml.push_str(&join("live_join", &["large_n", "huge_n"], ""));
    // The same inputs under the default rule: inside the untaken branch, so skipped.
    yaml.push_str(&shell("strict_join", &["large_n", "huge_n"], ""));
    // (skipped, skipped) -> skipped.
    yaml.push_str(&join("dead_join", &["huge_n", "huge_child"], ""));
    // Two cases of one decision, both non-empty.
    yaml.push_str(&shell("two_cases", &["split.small", "split.large"], ""));
    // Two cases of one decision, one of them empty: a join runs, the default rule skips.
    yaml.push_str(&join(
        "case_and_empty_case",
        &["split.large", "split.huge"],
        "",
    ));
    yaml.push_str(&shell("strict_cases", &["split.large", "split.huge"], ""));
    // (skipped join, succeeded) -> runs.
    yaml.push_str(&join("after_dead", &["dead_join", "small_n"], ""));
    // Under `none_failed`, even (skipped, skipped) runs, with no inputs.
    yaml.push_str(&with_rule(
        &shell("none_failed", &["huge_n", "huge_child"], ""),
        "none_failed",
    ));
    yaml
}

#[test]
fn empty_branches_are_skipped_and_joins_get_only_live_inputs() {
    let ws = Workspace::with_workflow(&routing_workflow());
    ws.write("orders.csv", ORDERS);
    let id = ws.run().run().run_id();

    assert_eq!(
        ws.statuses(&id),
        statuses_of(&[
            ("start", "succeeded"),
            ("orders", "succeeded"),
            ("split", "succeeded"),
            ("small_n", "succeeded"),
            ("large_n", "succeeded"),
            ("huge_n", "skipped"),
            ("huge_child", "skipped"),
            ("huge_grandchild", "skipped"),
            ("live_join", "succeeded"),
            ("strict_join", "skipped"),
            ("dead_join", "skipped"),
            ("two_cases", "succeeded"),
            ("case_and_empty_case", "succeeded"),
            ("strict_cases", "skipped"),
            ("after_dead", "succeeded"),
            ("none_failed", "succeeded"),
        ])
    );
    let log = ws.log();
    assert_eq!(
        crate::support::count(&log),
        counts_of(&[
            ("orders", 1),
            ("small_n", 1),
            ("large_n", 1),
            ("live_join", 1),
            ("two_cases", 1),
            ("case_and_empty_case", 1),
            ("after_dead", 1),
            ("none_failed", 1),
        ]),
        "skipped nodes must not execute"
    );
    assert_eq!(exec_of(&log, "small_n").inputs, ["split.small"]);
    assert_eq!(
        exec_of(&log, "live_join").inputs,
        ["large_n"],
        "a join gets only its live inputs"
    );
    assert_eq!(
        exec_of(&log, "two_cases").inputs,
        ["split.small", "split.large"]
    );
    assert_eq!(exec_of(&log, "case_and_empty_case").inputs, ["split.large"]);
    assert_eq!(exec_of(&log, "after_dead").inputs, ["small_n"]);
    assert!(exec_of(&log, "none_failed").inputs.is_empty());

    // Rows were routed by the rules; rows_in counts only live inputs.
    let nodes = ws.node_records(&id);
    assert_eq!(
        nodes["split"]["case_rows"],
        serde_json::json!({"small": 1, "large": 2, "huge": 0})
    );
    assert_eq!(nodes["large_n"]["rows_in"], 2);
    assert_eq!(nodes["two_cases"]["rows_in"], 3);
    assert_eq!(nodes["case_and_empty_case"]["rows_in"], 2);
    let large = ws
        .flow()
        .args(["runs", "output", &id, "large_n", "--format", "csv"])
        .run();
    assert_eq!(large.stdout, "id,amount\n2,50\n3,500\n");
    // The skip reasons name the cause.
    assert!(
        nodes["huge_n"]["reason"]
            .as_str()
            .unwrap()
            .contains("branch `split.huge` was empty")
    );
    assert!(
        nodes["huge_child"]["reason"]
            .as_str()
            .unwrap()
            .contains("`huge_n` was skipped")
    );
    assert_eq!(nodes["strict_join"]["reason"], "`huge_n` was skipped");
    assert_eq!(
        nodes["strict_cases"]["reason"],
        "branch `split.huge` was empty"
    );
    assert_eq!(
        nodes["dead_join"]["reason"],
        "every input was skipped (`huge_n` was skipped; `huge_child` was skipped)"
    );
}

#[test]
fn a_decision_over_an_empty_table_skips_every_branch_and_their_join() {
    let ws = Workspace::with_workflow(&routing_workflow());
    ws.write("orders.csv", "id,amount\n");
    let id = ws.run().run().run_id();
    let statuses = ws.statuses(&id);
    for node in [
        "small_n",
        "large_n",
        "huge_n",
        "huge_child",
        "live_join",
        "strict_join",
        "dead_join",
        "two_cases",
        "strict_cases",
        "after_dead",
    ] {
        assert_eq!(statuses[node], "skipped", "`{node}`: {statuses:?}");
    }
    assert_eq!(statuses["split"], "succeeded");
    assert_eq!(statuses["none_failed"], "succeeded");
    assert_eq!(ws.counts(), counts_of(&[("orders", 1), ("none_failed", 1)]));
    assert_eq!(
        ws.show(&id)["run"]["status"],
        "succeeded",
        "skips do not fail a run"
    );
}

/// A switch that routes a shell command's whole output by its value.
const VALUE_SWITCH: &str = r#"
name: approve
params: { answer: "yes" }
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: ask
    kind: action
    type: core.shell
    needs: [start]
    with: { command: 'sh record.sh && echo "$FLOW_PARAM_ANSWER"' }
  - id: route
    kind: decision
    type: core.switch
    needs: [ask]
    with:
      rules:
        - { case: approve, when: "value == 'yes'" }
        - { case: reject, when: "value == 'no'" }
  - id: on_approve
    kind: action
    type: core.shell
    needs: [route.approve]
    with: { command: 'sh record.sh && cat "$FLOW_INPUT_ROUTE_APPROVE" > approved.txt' }
  - id: on_reject
    kind: action
    type: core.shell
    needs: [route.reject]
    with: { command: 'sh record.sh && cat "$FLOW_INPUT_ROUTE_REJECT" > rejected.txt' }
  - id: either
    kind: action
    type: core.shell
    needs: [route.approve, route.reject]
    trigger_rule: none_failed_min_one_success
    with: { command: "sh record.sh" }
  - id: after
    kind: action
    type: core.shell
    needs: [on_approve, on_reject]
    trigger_rule: none_failed_min_one_success
    with: { command: "sh record.sh" }
"#;

#[test]
fn a_switch_routes_a_whole_shell_output_by_its_value() {
    // yes -> approve.
    let ws = Workspace::with_workflow(VALUE_SWITCH);
    let id = ws.run().run().run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(
        (
            statuses["on_approve"].as_str(),
            statuses["on_reject"].as_str(),
            statuses["after"].as_str()
        ),
        ("succeeded", "skipped", "succeeded")
    );
    assert_eq!(
        ws.read("approved.txt").trim_end(),
        "yes",
        "the subscriber receives the routed value"
    );
    assert!(!ws.exists("rejected.txt"));
    let log = ws.log();
    assert_eq!(exec_of(&log, "after").inputs, ["on_approve"]);
    assert_eq!(exec_of(&log, "either").inputs, ["route.approve"]);
    assert_eq!(ws.node_records(&id)["route"]["meta"]["chosen"], "approve");

    // no -> reject.
    let ws = Workspace::with_workflow(VALUE_SWITCH);
    let id = ws.run().param("answer", "no").run().run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(
        (
            statuses["on_approve"].as_str(),
            statuses["on_reject"].as_str(),
            statuses["after"].as_str()
        ),
        ("skipped", "succeeded", "succeeded")
    );
    assert_eq!(ws.read("rejected.txt").trim_end(), "no");
    let log = ws.log();
    assert_eq!(exec_of(&log, "after").inputs, ["on_reject"]);
    assert_eq!(exec_of(&log, "either").inputs, ["route.reject"]);

    // Neither rule matches and there is no default: every branch and the join are skipped.
    let ws = Workspace::with_workflow(VALUE_SWITCH);
    let id = ws.run().param("answer", "maybe").run().run_id();
    let statuses = ws.statuses(&id);
    for node in ["on_approve", "on_reject", "either", "after"] {
        assert_eq!(statuses[node], "skipped", "`{node}`: {statuses:?}");
    }
    assert_eq!(ws.counts(), counts_of(&[("ask", 1)]));
}

#[test]
fn a_switch_default_case_catches_unmatched_values() {
    let yaml = VALUE_SWITCH.replace(
        "        - { case: reject, when: \"value == 'no'\" }\n",
        "        - { case: reject, when: \"value == 'no'\" }\n      default: reject\n",
    );
    assert_ne!(yaml, VALUE_SWITCH);
    let ws = Workspace::with_workflow(&yaml);
    let id = ws.run().param("answer", "maybe").run().run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(
        (
            statuses["on_approve"].as_str(),
            statuses["on_reject"].as_str()
        ),
        ("skipped", "succeeded")
    );
    assert_eq!(ws.read("rejected.txt").trim_end(), "maybe");
}

#[test]
fn a_failed_input_stops_every_join_below_it_and_fails_the_run() {
    let mut yaml = String::from(
        r#"name: failing
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: ok
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "sh record.sh && echo x" }
  - id: gate
    kind: decision
    type: core.switch
    needs: [ok]
    with:
      rules:
        - { case: hit, when: "value == 'x'" }
        - { case: miss, when: "value == 'nope'" }
"#,
    );
    yaml.push_str(&shell("bad", &["start"], "echo boom >&2 && exit 3"));
    yaml.push_str(&shell("missed", &["gate.miss"], ""));
    yaml.push_str(&shell("hit", &["gate.hit"], ""));
    // (succeeded, failed) and (skipped, failed): neither runs, under either rule.
    yaml.push_str(&join("join_ok_bad", &["ok", "bad"], ""));
    yaml.push_str(&join("join_skip_bad", &["missed", "bad"], ""));
    yaml.push_str(&shell("strict_skip_bad", &["missed", "bad"], ""));
    // Below an upstream-failed node, and (skipped, upstream_failed).
    yaml.push_str(&shell("below", &["join_ok_bad"], ""));
    yaml.push_str(&join(
        "join_skip_upstream_failed",
        &["missed", "join_skip_bad"],
        "",
    ));
    // (succeeded, skipped) still runs, and independent branches carry on.
    yaml.push_str(&join("join_ok_skip", &["hit", "missed"], ""));
    yaml.push_str(&shell("independent", &["ok"], "sleep 0.2"));
    // `all_done` runs after (succeeded, skipped, failed) with the input that succeeded;
    // `one_failed` runs because `bad` failed.
    yaml.push_str(&with_rule(
        &shell("cleanup", &["hit", "missed", "bad"], ""),
        "all_done",
    ));
    yaml.push_str(&with_rule(
        &shell("alert", &["ok", "bad"], ""),
        "one_failed",
    ));
    yaml.push_str(&with_rule(
        &shell("no_alert", &["ok", "hit"], ""),
        "one_failed",
    ));

    let ws = Workspace::with_workflow(&yaml);
    let out = ws.run().expect_exit(1).run();
    let id = out.run_id();
    out.assert_stderr_contains(&format!("flow resume {id}"));
    assert_eq!(
        ws.statuses(&id),
        statuses_of(&[
            ("start", "succeeded"),
            ("ok", "succeeded"),
            ("gate", "succeeded"),
            ("bad", "failed"),
            ("missed", "skipped"),
            ("hit", "succeeded"),
            ("join_ok_bad", "upstream_failed"),
            ("join_skip_bad", "upstream_failed"),
            ("strict_skip_bad", "upstream_failed"),
            ("below", "upstream_failed"),
            ("join_skip_upstream_failed", "upstream_failed"),
            ("join_ok_skip", "succeeded"),
            ("independent", "succeeded"),
            ("cleanup", "succeeded"),
            ("alert", "succeeded"),
            ("no_alert", "skipped"),
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("ok", 1),
            ("bad", 1),
            ("hit", 1),
            ("join_ok_skip", 1),
            ("independent", 1),
            ("cleanup", 1),
            ("alert", 1),
        ])
    );
    assert_eq!(exec_of(&ws.log(), "join_ok_skip").inputs, ["hit"]);
    assert_eq!(exec_of(&ws.log(), "cleanup").inputs, ["hit"]);
    assert_eq!(exec_of(&ws.log(), "alert").inputs, ["ok"]);
    let show = ws.show(&id);
    assert_eq!(show["run"]["status"], "failed");
    assert_eq!(show["run"]["error"], "failed: bad");
    let nodes = ws.node_records(&id);
    let error = nodes["bad"]["error"].as_str().unwrap();
    assert!(
        error.contains("exit code 3") && error.contains("boom"),
        "{error}"
    );
    assert!(
        nodes["join_ok_bad"]["reason"]
            .as_str()
            .unwrap()
            .contains("`bad` did not succeed")
    );
}

#[test]
fn only_the_fired_trigger_runs_and_the_other_subtree_is_skipped() {
    let mut yaml = String::from(
        r#"name: two-triggers
nodes:
  - { id: morning, kind: trigger, type: manual }
  - id: evening
    kind: trigger
    type: schedule
    with: { cron: "0 18 * * *", timezone: Europe/London }
"#,
    );
    yaml.push_str(&shell("m", &["morning"], ""));
    yaml.push_str(&shell("e", &["evening"], ""));
    yaml.push_str(&shell("e_child", &["e"], ""));
    yaml.push_str(&join("both", &["m", "e"], ""));

    let ws = Workspace::with_workflow(&yaml);
    let id = ws.run().args(["--trigger", "morning"]).run().run_id();
    assert_eq!(
        ws.statuses(&id),
        statuses_of(&[
            ("morning", "succeeded"),
            ("evening", "skipped"),
            ("m", "succeeded"),
            ("e", "skipped"),
            ("e_child", "skipped"),
            ("both", "succeeded"),
        ])
    );
    assert_eq!(exec_of(&ws.log(), "both").inputs, ["m"]);

    // Without --trigger every trigger fires.
    let ws = Workspace::with_workflow(&yaml);
    ws.run().run();
    assert_eq!(
        ws.counts(),
        counts_of(&[("m", 1), ("e", 1), ("e_child", 1), ("both", 1)])
    );
    assert_eq!(exec_of(&ws.log(), "both").inputs, ["m", "e"]);
}
