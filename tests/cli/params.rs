//! Typed params: `--param` values are read as the declared type before anything runs, rules
//! may only name declared params, and a resume runs with changed params (`--param` on the
//! resume, or a default edited in the file), re-running exactly the nodes that use them.

use std::collections::BTreeMap;

use crate::support::{Workspace, counts_of};

/// `check` fails unless `n >= 2`; `labelled` uses `label` through the environment; `plain`
/// uses no param; `gate` fails until ready.txt exists.
fn workflow(n: &str, label: &str) -> String {
    format!(
        r#"
name: params
params:
  n: {{ type: integer, default: {n}, min: 0, description: "how many" }}
  label: {label}
  rate: 300
nodes:
  - {{ id: start, kind: trigger, type: manual }}
  - id: check
    kind: action
    type: core.shell
    needs: [start]
    with: {{ command: 'sh record.sh && test {{{{ params.n }}}} -ge 2 && echo n={{{{ params.n }}}}' }}
  - id: after
    kind: action
    type: core.shell
    needs: [check]
    with: {{ command: 'sh record.sh && cat "$FLOW_INPUT_CHECK"' }}
  - id: labelled
    kind: action
    type: core.shell
    needs: [start]
    with: {{ command: 'sh record.sh && echo "label=$FLOW_PARAM_LABEL"' }}
  - id: plain
    kind: action
    type: core.shell
    needs: [start]
    with: {{ command: 'sh record.sh && echo plain' }}
  - id: gate
    kind: action
    type: core.shell
    needs: [plain]
    with: {{ command: 'sh record.sh && cat ready.txt' }}
  - id: publish
    kind: output
    type: file.write
    needs: [after]
    with: {{ path: out/n.txt }}
"#
    )
}

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
fn param_values_are_typed_and_checked_before_anything_runs() {
    let ws = Workspace::with_workflow(&workflow("1", "x"));
    ws.write("ready.txt", "ok\n");
    let cases = [
        (
            "n=abc",
            "flow.yaml:4:3: `--param n=abc`: `abc` is not an integer (param `n` is declared here)",
        ),
        ("n=2.5", "`--param n=2.5`: `2.5` is not an integer"),
        ("n=-1", "`--param n=-1`: -1 is below the minimum 0"),
        (
            "rate=abc",
            "flow.yaml:6:3: `--param rate=abc`: `abc` is not a number",
        ),
        (
            "lable=y",
            "`--param lable=y`: unknown param `lable` (did you mean `label`?)",
        ),
        (
            "zzz=3",
            "unknown param `zzz` (the workflow declares: label, n, rate)",
        ),
        ("n", "`--param n`: expected NAME=VALUE"),
    ];
    for (param, message) in cases {
        let out = ws.run().args(["--param", param]).expect_exit(2).run();
        out.assert_stderr_contains(message);
        assert!(
            !out.stderr.lines().any(|l| l.starts_with("run ")),
            "nothing may start for --param {param}\n{out}"
        );
    }
    assert!(!ws.exists("exec.log"), "no node ran");

    // A number param whose default is whole takes a decimal; a string takes digits as text.
    let out = ws
        .run()
        .args([
            "--param",
            "n=3",
            "--param",
            "rate=800.5",
            "--param",
            "label=007",
        ])
        .run();
    let show = ws.show(&out.run_id());
    assert_eq!(show["run"]["params"]["rate"], 800.5);
    assert_eq!(show["run"]["params"]["label"], "007");
    assert_eq!(show["run"]["params"]["n"], 3);
    assert_eq!(ws.read("out/n.txt").trim(), "n=3");
}

#[test]
fn a_run_failed_by_a_param_is_fixed_by_resuming_with_a_new_value() {
    let ws = Workspace::with_workflow(&workflow("1", "x"));
    ws.write("ready.txt", "ok\n");
    let first = ws.run().expect_exit(1).run();
    let id = first.run_id();
    assert_eq!(
        ws.counts(),
        counts_of(&[("check", 1), ("labelled", 1), ("plain", 1), ("gate", 1)])
    );

    // A bad value is refused with the same typing as `flow run`, and nothing runs.
    ws.resume(&id)
        .args(["--param", "n=two"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("`--param n=two`: `two` is not an integer");
    ws.resume(&id)
        .args(["--param", "lable=y"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("unknown param `lable` (did you mean `label`?)");
    assert_eq!(ws.counts()["check"], 1, "a refused resume runs nothing");

    let resumed = ws.resume(&id).args(["--param", "n=3"]).run();
    resumed.assert_stderr_contains("params.n: 1 -> 3");
    assert_eq!(
        plan(&resumed),
        plan_of(&[
            (
                "start",
                "the run's params changed (its firing records them)"
            ),
            ("check", "it uses params.n, which changed"),
            ("after", "downstream of `check`"),
            ("publish", "downstream of `after`"),
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("check", 2),
            ("after", 1),
            ("labelled", 1),
            ("plain", 1),
            ("gate", 1)
        ]),
        "only the node using n and its downstream run again"
    );
    assert_eq!(ws.read("out/n.txt").trim(), "n=3");
    let show = ws.show(&id);
    assert_eq!(show["run"]["status"], "succeeded");
    assert_eq!(show["run"]["params"]["n"], 3);

    // The override sticks: a later resume that changes another param keeps n = 3.
    let again = ws.resume(&id).args(["--param", "label=y"]).run();
    again.assert_stderr_contains("params.label: \"x\" -> \"y\"");
    assert!(!again.stderr.contains("params.n:"), "{again}");
    assert_eq!(
        plan(&again),
        plan_of(&[
            (
                "start",
                "the run's params changed (its firing records them)"
            ),
            ("labelled", "it uses params.label, which changed"),
        ])
    );
    assert_eq!(ws.counts()["labelled"], 2);
    assert_eq!(ws.counts()["check"], 2);
    assert_eq!(ws.show(&id)["run"]["params"]["n"], 3);
}

#[test]
fn a_default_edited_in_the_file_reruns_exactly_the_nodes_that_use_it() {
    let ws = Workspace::with_workflow(&workflow("1", "x"));
    let first = ws.run().expect_exit(1).run();
    let id = first.run_id();
    assert_eq!(ws.statuses(&id)["check"], "failed");
    assert_eq!(ws.statuses(&id)["gate"], "failed");

    // Fix the default in the file and the missing file; `label`'s default changes too.
    ws.workflow(&workflow("2", "z"));
    ws.write("ready.txt", "ok\n");
    let resumed = ws.resume(&id).run();
    resumed
        .assert_stderr_contains("params.n: 1 -> 2")
        .assert_stderr_contains("params.label: \"x\" -> \"z\"");
    assert_eq!(
        plan(&resumed),
        plan_of(&[
            (
                "start",
                "the run's params changed (its firing records them)"
            ),
            ("check", "it uses params.n, which changed"),
            ("after", "downstream of `check`"),
            ("publish", "downstream of `after`"),
            ("labelled", "it uses params.label, which changed"),
            ("gate", "it was failed"),
        ])
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[
            ("check", 2),
            ("after", 1),
            ("labelled", 2),
            ("plain", 1),
            ("gate", 2)
        ])
    );
    assert_eq!(ws.read("out/n.txt").trim(), "n=2");
    assert_eq!(ws.show(&id)["run"]["params"]["label"], "z");
}

#[test]
fn a_value_given_with_param_outlives_an_edited_default() {
    let ws = Workspace::with_workflow(&workflow("1", "x"));
    let first = ws.run().args(["--param", "n=3"]).expect_exit(1).run();
    let id = first.run_id();
    assert_eq!(ws.statuses(&id)["check"], "succeeded");
    assert_eq!(ws.statuses(&id)["gate"], "failed");

    ws.workflow(&workflow("5", "x"));
    ws.write("ready.txt", "ok\n");
    let resumed = ws.resume(&id).run();
    assert!(!resumed.stderr.contains("params.n:"), "{resumed}");
    assert_eq!(plan(&resumed), plan_of(&[("gate", "it was failed")]));
    assert_eq!(ws.counts()["check"], 1);
    assert_eq!(ws.show(&id)["run"]["params"]["n"], 3);
    assert_eq!(ws.read("out/n.txt").trim(), "n=3");
}

#[test]
fn rules_may_name_only_declared_params_of_a_matching_type() {
    let ws = Workspace::with_workflow(
        r#"name: rules
params:
  min: 500
  tier: gold
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: route
    kind: decision
    type: core.switch
    needs: start
    with:
      rules:
        - { case: big, when: "value >= params.mni" }
        - { case: gold, when: "params.tier == 3" }
        - { case: fine, when: "value >= params.min and params.tier != 'x'" }
      default: small
"#,
    );
    let out = ws
        .flow()
        .args(["validate", "flow.yaml"])
        .expect_exit(2)
        .run();
    out.assert_stderr_contains(
        "flow.yaml:13:30: node `route`: `value >= params.mni` refers to unknown param `mni` (did you mean `min`?)",
    )
    .assert_stderr_contains(
        "flow.yaml:14:31: node `route`: `params.tier == 3`: param `tier` is a string but is compared (`==`) with 3",
    )
    .assert_stderr_contains("2 errors");
}

#[test]
fn the_schema_describes_both_forms_of_a_param() {
    let ws = Workspace::new();
    let schema = ws.flow().arg("schema").run().json();
    let forms = &schema["$defs"]["ParamDef"]["anyOf"];
    assert_eq!(forms.as_array().map(Vec::len), Some(2), "{forms}");
    let long = &schema["$defs"]["ParamSpecDef"];
    assert_eq!(long["additionalProperties"], false);
    assert_eq!(long["required"], serde_json::json!(["default"]));
    let kinds = serde_json::to_string(&schema["$defs"]["ParamKind"]).unwrap();
    for kind in ["string", "integer", "number", "boolean", "list", "mapping"] {
        assert!(kinds.contains(&format!("\"{kind}\"")), "{kinds}");
    }
}

#[test]
fn the_shipped_workflow_refuses_a_threshold_that_is_not_a_number() {
    let ws = Workspace::new();
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/segmentation.yaml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    ws.write("segmentation.yaml", &text);
    let line = text
        .lines()
        .position(|l| l.starts_with("  vip_min_clv:"))
        .expect("vip_min_clv is declared")
        + 1;
    let out = ws
        .flow()
        .args(["run", "segmentation.yaml", "--param", "vip_min_clv=abc"])
        .expect_exit(2)
        .run();
    out.assert_stderr_contains(&format!(
        "segmentation.yaml:{line}:3: `--param vip_min_clv=abc`: `abc` is not a number (param `vip_min_clv` is declared here)"
    ));
    assert!(
        !ws.state_dir().join("db").exists(),
        "no run was recorded\n{out}"
    );
}

#[test]
fn a_value_that_fits_its_param_but_not_a_node_stops_the_command_first() {
    let ws = Workspace::with_workflow(
        r#"
name: waits
params:
  wait: 0s
nodes:
  - { id: start, kind: trigger, type: manual }
  - { id: pause, kind: action, type: core.noop, needs: start, with: { delay: "{{ params.wait }}" } }
  - id: fail
    kind: action
    type: core.shell
    needs: pause
    with: { command: 'sh record.sh && cat ready.txt' }
"#,
    );
    let message = "node `pause` cannot run with params.wait = \"soon\" (given with --param): with.delay: `delay` must be a duration such as 30s or 5m, got \"soon\"";
    ws.run()
        .args(["--param", "wait=soon"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains(message);
    assert!(!ws.exists("exec.log"), "nothing ran");

    // The same check guards a resume.
    let id = ws.run().expect_exit(1).run().run_id();
    ws.resume(&id)
        .args(["--param", "wait=soon"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains(message);
    assert_eq!(ws.counts(), counts_of(&[("fail", 1)]));
    ws.write("ready.txt", "ok\n");
    let resumed = ws.resume(&id).args(["--param", "wait=10ms"]).run();
    assert_eq!(
        plan(&resumed),
        plan_of(&[
            (
                "start",
                "the run's params changed (its firing records them)"
            ),
            ("pause", "it uses params.wait, which changed"),
            ("fail", "downstream of `pause`"),
        ])
    );
}
