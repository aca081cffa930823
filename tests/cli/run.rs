//! `flow run`: concurrency of independent branches, the concurrency limit, the run context a
//! shell node sees, and what happens before anything runs.

use crate::support::{Workspace, counts_of};

/// Three independent branches; each records when it started and ended.
fn branches(concurrency: Option<usize>) -> String {
    let limit = concurrency
        .map(|n| format!("concurrency: {n}\n"))
        .unwrap_or_default();
    let mut yaml = format!(
        "name: branches\n{limit}nodes:\n  - {{ id: start, kind: trigger, type: manual }}\n"
    );
    for id in ["a", "b", "c"] {
        yaml.push_str(&format!(
            r#"  - id: {id}
    kind: action
    type: core.shell
    needs: [start]
    with:
      command: "sh record.sh && date +%s.%N > {id}.start && sleep 0.4 && date +%s.%N > {id}.end"
"#
        ));
    }
    yaml
}

/// The (start, end) seconds each branch recorded.
fn intervals(ws: &Workspace) -> Vec<(f64, f64)> {
    ["a", "b", "c"]
        .iter()
        .map(|id| {
            let t = |suffix: &str| -> f64 {
                let text = ws.read(&format!("{id}.{suffix}"));
                text.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{id}.{suffix} = {text:?}: {e}"))
            };
            (t("start"), t("end"))
        })
        .collect()
}

/// The most intervals that were open at the same instant (an end at the same instant as a
/// start does not overlap it).
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for &(start, end) in intervals {
        assert!(start < end, "interval {start}..{end}");
        events.push((start, 1));
        events.push((end, -1));
    }
    // Ends sort before starts at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, delta) in events {
        open += delta;
        most = most.max(open);
    }
    most as usize
}

fn run_branches(workflow_limit: Option<usize>, cli_limit: Option<usize>) -> usize {
    let ws = Workspace::with_workflow(&branches(workflow_limit));
    let mut run = ws.run();
    if let Some(n) = cli_limit {
        run = run.args(["--concurrency", &n.to_string()]);
    }
    run.run();
    assert_eq!(ws.counts(), counts_of(&[("a", 1), ("b", 1), ("c", 1)]));
    max_overlap(&intervals(&ws))
}

#[test]
fn independent_branches_overlap_in_time() {
    assert_eq!(
        run_branches(None, None),
        3,
        "all three branches should run at the same time"
    );
}

#[test]
fn concurrency_limit_of_one_serialises_branches() {
    assert_eq!(
        run_branches(None, Some(1)),
        1,
        "--concurrency 1 must run one branch at a time"
    );
}

#[test]
fn concurrency_limit_of_two_runs_two_at_a_time() {
    assert_eq!(
        run_branches(None, Some(2)),
        2,
        "--concurrency 2 allows exactly two at once"
    );
}

#[test]
fn workflow_concurrency_key_wins_over_the_flag() {
    assert_eq!(
        run_branches(Some(1), Some(8)),
        1,
        "`concurrency: 1` in the workflow wins over --concurrency 8"
    );
}

#[test]
fn shell_nodes_see_run_id_node_id_params_and_templates() {
    let ws = Workspace::with_workflow(
        r#"
name: context
params:
  greeting: hello
  times: 2
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: env
    kind: action
    type: core.shell
    needs: [start]
    with:
      command: 'echo "$FLOW_RUN_ID|$FLOW_NODE_ID|$FLOW_ATTEMPT|$FLOW_PARAM_GREETING|$FLOW_PARAM_TIMES" > env.txt'
  - id: templated
    kind: action
    type: core.shell
    needs: [start]
    with:
      command: "echo '{{ params.greeting }} x{{ params.times }} in {{ run.id }}' > templated.txt"
"#,
    );
    let out = ws.run().param("greeting", "bonjour").run();
    let id = out.run_id();
    assert_eq!(ws.read("env.txt").trim(), format!("{id}|env|1|bonjour|2"));
    assert_eq!(
        ws.read("templated.txt").trim(),
        format!("bonjour x2 in {id}")
    );

    let show = ws.show(&id);
    assert_eq!(show["run"]["id"], id.as_str());
    assert_eq!(show["run"]["status"], "succeeded");
    assert_eq!(show["run"]["params"]["greeting"], "bonjour");
    assert_eq!(show["run"]["params"]["times"], 2);
    out.assert_stdout_contains(&format!("run {id} succeeded"));
}

#[test]
fn shell_command_runs_in_the_workflow_directory_and_relative_paths_resolve_there() {
    let ws = crate::support::Workspace::new();
    ws.write("sub/data.txt", "from the workflow dir\n");
    ws.write(
        "sub/flow.yaml",
        r#"
name: dirs
nodes:
  - id: show
    kind: action
    type: core.shell
    with: { command: "cat data.txt" }
  - id: save
    kind: output
    type: file.write
    needs: [show]
    with: { path: out/copy.txt }
"#,
    );
    // Run from the workspace root: the workflow's own directory is `sub/`.
    ws.flow().args(["run", "sub/flow.yaml"]).run();
    assert_eq!(ws.read("sub/out/copy.txt"), "from the workflow dir");
    assert!(
        !ws.exists("out"),
        "relative paths must resolve against the workflow's directory"
    );
}

#[test]
fn an_invalid_workflow_runs_nothing_and_exits_2() {
    let ws = Workspace::with_workflow(
        r#"
name: broken
nodes:
  - id: first
    kind: action
    type: core.shell
    with: { command: "sh record.sh" }
  - id: second
    kind: action
    type: core.shell
    needs: [frist]
    with: { command: "sh record.sh" }
"#,
    );
    let out = ws.run().expect_exit(2).run();
    out.assert_stderr_contains("needs unknown node `frist` (did you mean `first`?)");
    assert!(
        ws.log().is_empty(),
        "no node may run when the workflow is invalid"
    );
    assert!(
        !ws.state_dir().exists(),
        "an invalid workflow must not create a state store"
    );
}

#[test]
fn unknown_param_and_bad_usage_exit_2() {
    let ws = Workspace::with_workflow(
        r#"
name: params
params: { region: eu }
nodes:
  - id: only
    kind: action
    type: core.shell
    with: { command: "sh record.sh" }
"#,
    );
    ws.run()
        .param("regoin", "us")
        .expect_exit(2)
        .run()
        .assert_stderr_contains("unknown param `regoin`");
    ws.run()
        .arg("--param")
        .arg("no-equals-sign")
        .expect_exit(2)
        .run();
    ws.flow().args(["run"]).expect_exit(2).run();
    ws.flow().args(["frobnicate"]).expect_exit(2).run();
    ws.run()
        .args(["--trigger", "nope"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("unknown trigger `nope`");
    assert!(ws.log().is_empty());
    // And with a correct param it runs.
    ws.run().param("region", "us").run();
    assert_eq!(ws.counts(), counts_of(&[("only", 1)]));
}

#[test]
fn runs_are_listed_newest_first() {
    let ws = Workspace::with_workflow(
        r#"
name: listed
nodes:
  - id: only
    kind: action
    type: core.shell
    with: { command: "test -f ok" }
"#,
    );
    let failed = ws.run().expect_exit(1).run().run_id();
    // Run ids have one-second resolution in their prefix; make sure the second run is newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ws.write("ok", "");
    let ok = ws.run().run().run_id();
    let runs = ws.flow().args(["runs", "--json"]).run().json();
    let runs = runs.as_array().expect("array");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["id"], ok.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[1]["id"], failed.as_str());
    assert_eq!(runs[1]["status"], "failed");
    let table = ws.flow().args(["runs"]).run();
    table
        .assert_stdout_contains(&ok)
        .assert_stdout_contains(&failed);
}

#[test]
fn the_store_defaults_to_dot_flow_in_the_current_directory_and_flow_state_overrides_it() {
    let ws = Workspace::with_workflow(
        r#"
name: where
nodes:
  - id: only
    kind: action
    type: core.shell
    with: { command: "sh record.sh" }
"#,
    );
    let flow = |env: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new(crate::support::flow_bin());
        cmd.current_dir(ws.dir())
            .args(args)
            .env_remove("FLOW_STATE");
        if let Some(dir) = env {
            cmd.env("FLOW_STATE", dir);
        }
        let out = cmd.output().expect("run flow");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    flow(None, &["run", crate::support::WORKFLOW]);
    assert!(ws.path(".flow/db").is_dir(), "the default store is ./.flow");
    flow(Some("elsewhere"), &["run", crate::support::WORKFLOW]);
    assert!(
        ws.path("elsewhere/db").is_dir(),
        "FLOW_STATE chooses the store"
    );
    // Each store has its own run; --state wins over FLOW_STATE.
    let listed = |store_env: Option<&str>, args: &[&str]| -> usize {
        let json: serde_json::Value =
            serde_json::from_str(&flow(store_env, args)).expect("runs --json");
        json.as_array().unwrap().len()
    };
    assert_eq!(listed(None, &["runs", "--json"]), 1);
    assert_eq!(listed(Some("elsewhere"), &["runs", "--json"]), 1);
    assert_eq!(
        listed(Some("elsewhere"), &["--state", "third", "runs", "--json"]),
        0
    );
    assert_eq!(ws.counts(), counts_of(&[("only", 2)]));
}

#[test]
fn the_idempotency_key_is_stable_across_attempts_and_resumes() {
    let ws = Workspace::with_workflow(
        r#"
name: effects
nodes:
  - id: deploy
    kind: action
    type: core.shell
    retry: { max_attempts: 2, backoff: 10ms }
    with: { command: 'echo "$FLOW_IDEMPOTENCY_KEY" >> keys.txt && cat ready.txt' }
"#,
    );
    let id = ws.run().expect_exit(1).run().run_id();
    ws.write("ready.txt", "ok");
    ws.resume(&id).run();
    let keys: Vec<String> = ws.read("keys.txt").lines().map(str::to_string).collect();
    assert_eq!(
        keys.len(),
        3,
        "two failed attempts and one after the resume: {keys:?}"
    );
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "the key changed: {keys:?}"
    );
    assert!(
        keys[0].contains(&id) && keys[0].contains("deploy"),
        "the key names the run and the node: {}",
        keys[0]
    );
    // Another run of the same workflow gets another key.
    ws.run().run();
    let last = ws.read("keys.txt").lines().last().unwrap().to_string();
    assert_ne!(last, keys[0]);
}

#[test]
fn file_read_and_file_write_round_trip_tables() {
    let ws = Workspace::with_workflow(
        r#"
name: files
nodes:
  - id: read
    kind: action
    type: file.read
    with: { path: in/orders.csv }
  - id: split
    kind: decision
    type: core.switch
    needs: [read]
    with:
      rules:
        - { case: eu, when: "region == 'eu'" }
      default: other
  - id: write_eu
    kind: output
    type: file.write
    needs: [split.eu]
    with: { path: out/eu.jsonl }
  - id: write_other
    kind: output
    type: file.write
    needs: [split.other]
    with: { path: out/other.csv }
"#,
    );
    ws.write("in/orders.csv", "id,region\n1,eu\n2,us\n3,eu\n");
    ws.run().run();
    assert_eq!(
        ws.read("out/eu.jsonl"),
        "{\"id\":1,\"region\":\"eu\"}\n{\"id\":3,\"region\":\"eu\"}\n"
    );
    assert_eq!(ws.read("out/other.csv"), "id,region\n2,us\n");

    // A missing input file fails the reader with the path in the error.
    std::fs::remove_file(ws.path("in/orders.csv")).unwrap();
    let id = ws.run().expect_exit(1).run().run_id();
    let error = ws.node_records(&id)["read"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("in/orders.csv"), "{error}");
}
