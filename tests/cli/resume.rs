//! `flow resume`: after a failure it runs exactly the failed node and its downstream; `--from`
//! re-runs a node and its downstream; a changed workflow re-runs exactly the changed nodes and
//! their downstream; a renamed or removed node is reported, not a crash.

use std::collections::BTreeMap;

use crate::support::{Workspace, counts_of, statuses_of};

const PIPELINE: &str = r#"
name: pipeline
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: extract
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "sh record.sh && echo extracted" }
  - id: side
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "sh record.sh && echo side" }
  # Fails until ready.txt exists.
  - id: transform
    kind: action
    type: core.shell
    needs: [extract]
    with: { command: 'sh record.sh && cat ready.txt && cat "$FLOW_INPUT_EXTRACT"' }
  - id: load
    kind: action
    type: core.shell
    needs: [transform]
    with: { command: 'sh record.sh && cat "$FLOW_INPUT_TRANSFORM"' }
  - id: report
    kind: action
    type: core.shell
    needs: [load, side]
    with: { command: 'sh record.sh && echo "$(cat "$FLOW_INPUT_LOAD") + $(cat "$FLOW_INPUT_SIDE")"' }
  - id: publish
    kind: output
    type: file.write
    needs: [report]
    with: { path: out/report.txt }
"#;

fn plan(out: &crate::support::Output) -> BTreeMap<String, String> {
    out.plan().into_iter().collect()
}

fn plan_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn resume_after_a_failure_runs_exactly_the_failed_node_and_its_downstream() {
    let ws = Workspace::with_workflow(PIPELINE);
    let first = ws.run().expect_exit(1).run();
    let id = first.run_id();
    first.assert_stderr_contains(&format!("flow resume {id}"));
    assert_eq!(
        ws.counts(),
        counts_of(&[("extract", 1), ("side", 1), ("transform", 1)])
    );
    assert_eq!(
        ws.statuses(&id),
        statuses_of(&[
            ("start", "succeeded"),
            ("extract", "succeeded"),
            ("side", "succeeded"),
            ("transform", "failed"),
            ("load", "upstream_failed"),
            ("report", "upstream_failed"),
            ("publish", "upstream_failed"),
        ])
    );
    assert!(!ws.exists("out/report.txt"));

    // Fix the cause, then resume.
    ws.write("ready.txt", "ready\n");
    let resumed = ws.resume(&id).run();
    assert_eq!(
        plan(&resumed),
        plan_of(&[
            ("transform", "it was failed"),
            ("load", "it was upstream failed"),
            ("report", "it was upstream failed"),
            ("publish", "it was upstream failed"),
        ])
    );
    resumed.assert_stderr_contains("reusing 3 finished nodes from checkpoints");
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("extract", 1),
            ("side", 1),
            ("transform", 2),
            ("load", 1),
            ("report", 1)
        ]),
        "only the failed node and its downstream run again"
    );
    // Reused outputs (extract, side) were loaded from their checkpoints.
    assert_eq!(ws.read("out/report.txt"), "ready\nextracted + side");

    let show = ws.show(&id);
    assert_eq!(show["run"]["status"], "succeeded");
    assert_eq!(
        show["run"]["executions"], 2,
        "a resume continues the same run record"
    );
    let nodes = ws.node_records(&id);
    let transform: Vec<(u64, String)> = nodes["transform"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["execution"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        transform,
        [(1, "failed".to_string()), (2, "succeeded".to_string())]
    );
    assert_eq!(nodes["extract"]["execution"], 1);
    assert_eq!(nodes["load"]["execution"], 2);

    // A succeeded run has nothing to resume.
    ws.resume("last")
        .expect_exit(2)
        .run()
        .assert_stderr_contains("nothing to resume");
    assert_eq!(ws.counts()["transform"], 2);
}

#[test]
fn resume_from_a_node_reruns_it_and_its_downstream_only() {
    let ws = Workspace::with_workflow(PIPELINE);
    ws.write("ready.txt", "ready\n");
    let id = ws.run().run().run_id();
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("extract", 1),
            ("side", 1),
            ("transform", 1),
            ("load", 1),
            ("report", 1)
        ])
    );
    ws.write("ready.txt", "ready again\n");

    let out = ws.resume(&id).args(["--from", "load"]).run();
    assert_eq!(
        plan(&out),
        plan_of(&[
            ("load", "--from"),
            ("report", "downstream of `load`"),
            ("publish", "downstream of `report`")
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("extract", 1),
            ("side", 1),
            ("transform", 1),
            ("load", 2),
            ("report", 2)
        ]),
        "--from load must not re-run transform"
    );
    // load read transform's checkpoint (made before ready.txt changed).
    assert_eq!(ws.read("out/report.txt"), "ready\nextracted + side");

    // A unique prefix of the run id works too; an unknown node is a usage error.
    let prefix = &id[..id.len() - 1];
    ws.resume(prefix)
        .args(["--from", "nope"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("no node `nope`");
    ws.resume("no-such-run").expect_exit(2).run();
    assert_eq!(ws.counts()["load"], 2);
}

/// a -> b -> c and a -> d -> e, where b fails until ready.txt exists.
fn diamond(d_says: &str, e_id: &str) -> String {
    format!(
        r#"
name: changes
nodes:
  - {{ id: start, kind: trigger, type: manual }}
  - id: a
    kind: action
    type: core.shell
    needs: [start]
    with: {{ command: "sh record.sh && echo a" }}
  - id: b
    kind: action
    type: core.shell
    needs: [a]
    with: {{ command: "sh record.sh && cat ready.txt" }}
  - id: c
    kind: action
    type: core.shell
    needs: [b]
    with: {{ command: "sh record.sh && echo c" }}
  - id: d
    kind: action
    type: core.shell
    needs: [a]
    with: {{ command: "sh record.sh && echo {d_says}" }}
  - id: {e_id}
    kind: action
    type: core.shell
    needs: [d]
    with: {{ command: 'sh record.sh && cat "$FLOW_INPUT_D" > e.txt' }}
"#
    )
}

#[test]
fn a_changed_node_reruns_with_its_downstream_on_resume() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    let id = ws.run().expect_exit(1).run().run_id();
    assert_eq!(
        ws.counts(),
        counts_of(&[("a", 1), ("b", 1), ("d", 1), ("e", 1)])
    );
    assert_eq!(ws.read("e.txt").trim_end(), "d-v1");

    ws.workflow(&diamond("d-v2", "e"));
    ws.write("ready.txt", "ok");
    let out = ws.resume(&id).run();
    out.assert_stderr_contains("the workflow changed since this run");
    assert_eq!(
        plan(&out),
        plan_of(&[
            ("b", "it was failed"),
            ("c", "it was upstream failed"),
            ("d", "its definition changed"),
            ("e", "downstream of `d`"),
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[("a", 1), ("b", 2), ("c", 1), ("d", 2), ("e", 2)]),
        "exactly the failed node, the changed node and their downstream run again"
    );
    assert_eq!(ws.read("e.txt").trim_end(), "d-v2");
    assert_eq!(ws.show(&id)["run"]["status"], "succeeded");
}

#[test]
fn a_changed_node_reruns_on_resume_of_a_succeeded_run() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    ws.write("ready.txt", "ok");
    let id = ws.run().run().run_id();
    ws.workflow(&diamond("d-v2", "e"));
    let out = ws.resume(&id).run();
    assert_eq!(
        plan(&out),
        plan_of(&[("d", "its definition changed"), ("e", "downstream of `d`")])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 2)])
    );
    assert_eq!(ws.read("e.txt").trim_end(), "d-v2");
}

#[test]
fn comments_and_key_order_are_not_changes() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    ws.write("ready.txt", "ok");
    let id = ws.run().run().run_id();
    // The same definitions, reformatted: comments, flow style and key order.
    let reformatted = diamond("d-v1", "e").replace(
        "  - id: d\n    kind: action\n    type: core.shell\n    needs: [a]\n",
        "  # d, reformatted\n  - type: core.shell\n    needs:\n      - a\n    id: d\n    kind: action\n",
    );
    assert_ne!(reformatted, diamond("d-v1", "e"));
    ws.workflow(&reformatted);
    ws.resume(&id)
        .expect_exit(2)
        .run()
        .assert_stderr_contains("nothing to resume");
    assert_eq!(ws.counts()["d"], 1);
}

#[test]
fn a_renamed_node_is_reported_not_a_crash() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    let id = ws.run().expect_exit(1).run().run_id();
    ws.workflow(&diamond("d-v1", "e_renamed"));
    ws.write("ready.txt", "ok");
    let out = ws.resume(&id).run();
    out.assert_stderr_contains("node `e` is no longer in the workflow");
    assert_eq!(
        plan(&out),
        plan_of(&[
            ("b", "it was failed"),
            ("c", "it was upstream failed"),
            ("e_renamed", "new node")
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("a", 1),
            ("b", 2),
            ("c", 1),
            ("d", 1),
            ("e", 1),
            ("e_renamed", 1)
        ])
    );
    let statuses = ws.statuses(&id);
    assert_eq!(statuses["e_renamed"], "succeeded");
    assert_eq!(ws.show(&id)["run"]["status"], "succeeded");
    // Inspecting the run still works with the old node's record in it.
    ws.flow().args(["runs", "show", &id]).run();
}

#[test]
fn a_removed_node_is_reported_and_the_rest_resumes() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    let id = ws.run().expect_exit(1).run().run_id();
    let without_e = diamond("d-v1", "e");
    let cut = without_e.find("  - id: e\n").expect("e");
    ws.workflow(&without_e[..cut]);
    ws.write("ready.txt", "ok");
    let out = ws.resume(&id).run();
    out.assert_stderr_contains("node `e` is no longer in the workflow");
    assert_eq!(
        plan(&out),
        plan_of(&[("b", "it was failed"), ("c", "it was upstream failed")])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[("a", 1), ("b", 2), ("c", 1), ("d", 1), ("e", 1)])
    );
}

#[test]
fn resume_of_a_run_whose_workflow_file_is_gone_is_a_clear_error() {
    let ws = Workspace::with_workflow(&diamond("d-v1", "e"));
    let id = ws.run().expect_exit(1).run().run_id();
    std::fs::remove_file(ws.path(crate::support::WORKFLOW)).unwrap();
    ws.resume(&id)
        .expect_exit(2)
        .run()
        .assert_stderr_contains("no longer exists");
}

#[test]
fn a_changed_decision_input_reroutes_its_branches_on_resume() {
    let workflow = |answer: &str| {
        format!(
            r#"
name: reroute
nodes:
  - id: ask
    kind: action
    type: core.shell
    with: {{ command: "sh record.sh && echo {answer}" }}
  - id: route
    kind: decision
    type: core.switch
    needs: [ask]
    with:
      rules:
        - {{ case: approve, when: "value == 'yes'" }}
        - {{ case: reject, when: "value == 'no'" }}
  - id: on_approve
    kind: action
    type: core.shell
    needs: [route.approve]
    with: {{ command: "sh record.sh" }}
  - id: on_reject
    kind: action
    type: core.shell
    needs: [route.reject]
    with: {{ command: "sh record.sh" }}
  - id: after
    kind: action
    type: core.shell
    needs: [on_approve, on_reject]
    trigger_rule: none_failed_min_one_success
    with: {{ command: "sh record.sh" }}
"#
        )
    };
    let ws = Workspace::with_workflow(&workflow("yes"));
    let id = ws.run().run().run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(
        (
            statuses["on_approve"].as_str(),
            statuses["on_reject"].as_str()
        ),
        ("succeeded", "skipped")
    );

    ws.workflow(&workflow("no"));
    let out = ws.resume(&id).run();
    assert_eq!(
        plan(&out),
        plan_of(&[
            ("ask", "its definition changed"),
            ("route", "downstream of `ask`"),
            ("on_approve", "downstream of `route`"),
            ("on_reject", "downstream of `route`"),
            ("after", "downstream of `on_approve`"),
        ])
    );
    let statuses = ws.statuses(&id);
    assert_eq!(
        (
            statuses["on_approve"].as_str(),
            statuses["on_reject"].as_str()
        ),
        ("skipped", "succeeded"),
        "the branch taken before must not be reused once the decision changed"
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("ask", 2),
            ("on_approve", 1),
            ("on_reject", 1),
            ("after", 2)
        ])
    );
    let inputs: Vec<Vec<String>> = ws
        .log()
        .iter()
        .filter(|e| e.node == "after")
        .map(|e| e.inputs.clone())
        .collect();
    assert_eq!(
        inputs,
        [
            vec!["on_approve".to_string()],
            vec!["on_reject".to_string()]
        ]
    );
}
