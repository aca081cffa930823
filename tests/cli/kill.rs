//! Crashes and signals: SIGKILL at seeded random points of a run, then `flow resume` until it
//! succeeds, must end with the outputs of an uninterrupted run and never execute again a node
//! that the store already reported as succeeded. SIGTERM drains, a second SIGTERM cancels.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Rng, WORKFLOW, Workspace, count, counts_of, node_statuses, sigterm, wait_until,
};

const ORDERS: &str = "id,amount\n1,5\n2,150\n3,40\n4,900\n5,75\n6,120\n";

/// Twelve nodes: a source, a fan-out of three, a decision with an empty case, per-case totals,
/// a join of everything and two file outputs. Every shell node records its execution.
const CRASHY: &str = r#"
name: crashy
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: source
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "sh record.sh && sleep 0.1 && cat orders.csv", output: csv }
  - id: double
    kind: action
    type: core.shell
    needs: [source]
    with:
      command: 'sh record.sh && sleep 0.15 && awk -F, ''NR > 1 { print $1 * 2 }'' "$FLOW_INPUT_SOURCE"'
  - id: count
    kind: action
    type: core.shell
    needs: [source]
    with: { command: 'sh record.sh && sleep 0.1 && tail -n +2 "$FLOW_INPUT_SOURCE" | wc -l | tr -d " "' }
  - id: checksum
    kind: action
    type: core.shell
    needs: [source]
    with: { command: 'sh record.sh && sleep 0.05 && cksum < "$FLOW_INPUT_SOURCE" | cut -d" " -f1' }
  - id: split
    kind: decision
    type: core.switch
    needs: [source]
    with:
      rules:
        - { case: big, when: "amount >= 100" }
        - { case: small, when: "amount < 100 and amount >= 0" }
        - { case: negative, when: "amount < 0" }
  - id: big_total
    kind: action
    type: core.shell
    needs: [split.big]
    with:
      command: 'sh record.sh && sleep 0.1 && awk -F, ''NR > 1 { s += $2 } END { print "big", s }'' "$FLOW_INPUT_SPLIT_BIG"'
  - id: small_total
    kind: action
    type: core.shell
    needs: [split.small]
    with:
      command: 'sh record.sh && sleep 0.05 && awk -F, ''NR > 1 { s += $2 } END { print "small", s }'' "$FLOW_INPUT_SPLIT_SMALL"'
  - id: negative_total
    kind: action
    type: core.shell
    needs: [split.negative]
    with: { command: "sh record.sh && echo never" }
  - id: join
    kind: action
    type: core.shell
    needs: [double, count, checksum, big_total, small_total, negative_total]
    trigger_rule: none_failed_min_one_success
    with:
      command: 'sh record.sh && sleep 0.05 && for f in $(echo "$FLOW_INPUTS" | tr ":" " "); do echo "${f##*/}: $(cat "$f" | tr "\n" " ")"; done'
  - id: write_summary
    kind: output
    type: file.write
    needs: [join]
    with: { path: out/summary.txt }
  - id: write_big
    kind: output
    type: file.write
    needs: [split.big]
    with: { path: out/big.csv }
"#;

fn crashy_workspace() -> Workspace {
    let ws = Workspace::with_workflow(CRASHY);
    ws.write("orders.csv", ORDERS);
    ws
}

fn outputs(ws: &Workspace) -> BTreeMap<PathBuf, Vec<u8>> {
    ws.snapshot("out")
}

fn spawn_run(ws: &Workspace) -> Child {
    ws.command(["run", WORKFLOW])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow run")
}

/// What one trial observed, for the failure message (read through `Debug`).
#[derive(Debug)]
#[allow(dead_code)]
struct Trial {
    index: usize,
    delay: Duration,
    /// Did the run finish before the kill?
    finished_first: bool,
    /// Did a run record exist after the kill?
    had_run: bool,
    succeeded_at_kill: BTreeSet<String>,
    resumes: usize,
}

#[test]
fn sigkill_at_random_points_then_resume_matches_an_uninterrupted_run() {
    sigkill_trials(24, 0x5EED_F10E, &crashy_workspace);
}

/// The same on the PostgreSQL store, each trial in a database of its own.
#[test]
fn sigkill_at_random_points_on_postgres_then_resume_matches_an_uninterrupted_run() {
    let databases = std::sync::Mutex::new(Vec::new());
    sigkill_trials(20, 0x5EED_F10F, &|| {
        let db = flow_engine::test_postgres::TestDatabase::new();
        let ws = crashy_workspace().on_postgres(db.url());
        databases.lock().unwrap().push(db);
        ws
    });
}

fn sigkill_trials(n_trials: usize, seed: u64, crashy_workspace: &dyn Fn() -> Workspace) {
    // The reference: one uninterrupted run.
    let reference = crashy_workspace();
    let started = Instant::now();
    let id = reference.run().run().run_id();
    let run_time = started.elapsed();
    let expected_outputs = outputs(&reference);
    let expected_statuses = reference.statuses(&id);
    let expected_counts = reference.counts();
    assert_eq!(expected_statuses["negative_total"], "skipped");
    assert_eq!(expected_statuses["join"], "succeeded");
    assert_eq!(
        expected_counts.len(),
        7,
        "every shell node but negative_total ran once: {expected_counts:?}"
    );
    assert!(expected_counts.values().all(|&n| n == 1));
    assert_eq!(expected_outputs.len(), 2, "{expected_outputs:?}");
    let summary =
        String::from_utf8_lossy(&expected_outputs[&PathBuf::from("summary.txt")]).into_owned();
    assert!(summary.contains("big_total.txt: big 1170"), "{summary}");
    assert!(summary.contains("small_total.txt: small 120"), "{summary}");

    // Kill points spread over the whole run (and a little after it), one per stratum.
    let span = run_time.mul_f64(1.1).min(Duration::from_millis(1500));
    let mut rng = Rng::new(seed);
    let suite_start = Instant::now();
    let mut trials = Vec::new();
    for index in 0..n_trials {
        let delay = span.mul_f64((index as f64 + rng.f64()) / n_trials as f64);
        let ws = crashy_workspace();
        let mut child = spawn_run(&ws);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed run");
        let mut trial = Trial {
            index,
            delay,
            finished_first: status.success(),
            had_run: false,
            succeeded_at_kill: BTreeSet::new(),
            resumes: 0,
        };

        // What the store says right after the kill.
        let show = ws
            .flow()
            .args(["runs", "show", "last", "--json"])
            .any_exit()
            .run();
        let executed_before = ws.log().len();
        if show.code == 0 {
            trial.had_run = true;
            let show = show.json();
            let statuses = node_statuses(&show);
            trial.succeeded_at_kill = statuses
                .iter()
                .filter(|(_, s)| *s == "succeeded")
                .map(|(n, _)| n.clone())
                .collect();
            // Killed after the run was recorded as succeeded but before the process exited:
            // there is nothing left to resume.
            let complete = show["run"]["status"] == "succeeded";
            if !trial.finished_first && !complete {
                let out = ws.resume("last").any_exit().run();
                trial.resumes += 1;
                assert_eq!(out.code, 0, "trial {trial:?}: the resume failed\n{out}");
            }
        } else {
            assert_eq!(show.code, 2, "trial {trial:?}\n{show}");
            assert!(
                show.stderr.contains("there are no runs yet"),
                "trial {trial:?}: after a kill the store must be usable\n{show}"
            );
            assert!(!trial.finished_first);
            ws.run().run();
        }

        // (a) The same outputs and final statuses as the uninterrupted run.
        assert_eq!(
            outputs(&ws),
            expected_outputs,
            "trial {trial:?}: outputs differ"
        );
        let last = ws.show("last");
        assert_eq!(last["run"]["status"], "succeeded", "trial {trial:?}");
        assert_eq!(node_statuses(&last), expected_statuses, "trial {trial:?}");

        // (b) No node reported succeeded after the kill executed again; every node ran at
        // least once (a node running at the kill may have run twice: at-least-once).
        let log = ws.log();
        let again: Vec<&str> = log[executed_before..]
            .iter()
            .map(|e| e.node.as_str())
            .filter(|n| trial.succeeded_at_kill.contains(*n))
            .collect();
        assert!(
            again.is_empty(),
            "trial {trial:?}: succeeded nodes executed again: {again:?}\nlog: {log:?}"
        );
        let counts = count(&log);
        for node in expected_counts.keys() {
            let n = counts.get(node).copied().unwrap_or(0);
            assert!(n >= 1, "trial {trial:?}: `{node}` never ran");
            if trial.succeeded_at_kill.contains(node) {
                assert_eq!(
                    n, 1,
                    "trial {trial:?}: `{node}` had succeeded but ran {n} times"
                );
            }
        }
        assert!(
            !counts.contains_key("negative_total"),
            "trial {trial:?}: a skipped node ran"
        );
        // (c) The attempt history is settled: an attempt the kill cut short is recorded as
        // interrupted, never left `running`.
        for node in last["nodes"].as_array().unwrap() {
            for outcome in outcomes(node) {
                assert_ne!(outcome, "running", "trial {trial:?}: {node:#}");
            }
        }
        trials.push(trial);
    }

    // The delays must actually have hit the run at different stages.
    let interrupted = trials
        .iter()
        .filter(|t| t.had_run && !t.finished_first)
        .count();
    let mid_run = trials
        .iter()
        .filter(|t| {
            !t.finished_first && !t.succeeded_at_kill.is_empty() && t.succeeded_at_kill.len() < 11
        })
        .count();
    assert!(
        interrupted >= n_trials / 3,
        "too few kills landed during a run: {trials:#?}"
    );
    assert!(
        mid_run >= 4,
        "too few kills landed between nodes: {trials:#?}"
    );
    eprintln!(
        "{n_trials} SIGKILL trials over {span:?} (reference run {run_time:?}) in {:?}: {interrupted} interrupted a run, {mid_run} mid-run",
        suite_start.elapsed()
    );
}

/// A slow node and a node after it.
const SLOW_THEN_AFTER: &str = r#"
name: drain
nodes:
  - id: slow
    kind: action
    type: core.shell
    with: { command: 'sh record.sh && touch started && sleep "$(cat delay.txt)" && echo slow' }
  - id: after
    kind: action
    type: core.shell
    needs: [slow]
    with: { command: "sh record.sh && echo after" }
"#;

fn finish(child: Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    let out = child.wait_with_output().expect("wait for flow");
    assert!(
        start.elapsed() < limit,
        "flow took {:?} to stop",
        start.elapsed()
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spawn_piped(ws: &Workspace) -> Child {
    ws.command(["run", WORKFLOW])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow run")
}

#[test]
fn sigterm_lets_running_nodes_finish_starts_nothing_new_and_resume_continues() {
    let ws = Workspace::with_workflow(SLOW_THEN_AFTER);
    ws.write("delay.txt", "0.6");
    let child = spawn_piped(&ws);
    assert!(
        wait_until(Duration::from_secs(10), || ws.exists("started")),
        "the slow node never started"
    );
    sigterm(&child);
    let (code, stderr) = finish(child, Duration::from_secs(5));
    assert_eq!(code, 1, "{stderr}");
    let id = stderr
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("run id")
        .to_string();
    assert!(stderr.contains(&format!("flow resume {id}")), "{stderr}");
    let show = ws.show(&id);
    assert_eq!(show["run"]["status"], "interrupted");
    let statuses = node_statuses(&show);
    assert_eq!(
        statuses["slow"], "succeeded",
        "a running node finishes on the first signal"
    );
    assert!(
        statuses.get("after").is_none_or(|s| s == "pending"),
        "{statuses:?}"
    );
    assert_eq!(
        ws.counts(),
        counts_of(&[("slow", 1)]),
        "nothing new starts after SIGTERM"
    );

    ws.resume(&id).run();
    assert_eq!(ws.counts(), counts_of(&[("slow", 1), ("after", 1)]));
}

#[test]
fn a_second_sigterm_cancels_running_nodes() {
    let ws = Workspace::with_workflow(SLOW_THEN_AFTER);
    ws.write("delay.txt", "5");
    let child = spawn_piped(&ws);
    assert!(
        wait_until(Duration::from_secs(10), || ws.exists("started")),
        "the slow node never started"
    );
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&child);
    let (code, stderr) = finish(child, Duration::from_secs(3));
    assert_eq!(code, 1, "{stderr}");
    let id = stderr
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("run id")
        .to_string();
    let show = ws.show(&id);
    assert_eq!(show["run"]["status"], "interrupted", "{show:#}\n{stderr}");
    assert_eq!(node_statuses(&show)["slow"], "interrupted", "{show:#}");
    // The cancelled attempt is part of the node's history.
    let slow = &ws.node_records(&id)["slow"];
    assert_eq!(
        attempt_history(slow),
        [(1, 1, "interrupted".to_string())],
        "{slow:#}"
    );

    // The interrupted node runs again on resume, as its second attempt.
    ws.write("delay.txt", "0.01");
    let out = ws.resume(&id).run();
    assert!(
        out.plan()
            .iter()
            .any(|(node, reason)| node == "slow" && reason == "it was interrupted"),
        "{out}"
    );
    assert_eq!(ws.counts(), counts_of(&[("slow", 2), ("after", 1)]));
    let attempts: Vec<u32> = ws
        .log()
        .iter()
        .filter(|e| e.node == "slow")
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2], "FLOW_ATTEMPT continues across executions");
    let slow = &ws.node_records(&id)["slow"];
    assert_eq!(
        attempt_history(slow),
        [
            (1, 1, "interrupted".to_string()),
            (2, 2, "succeeded".to_string())
        ],
        "{slow:#}"
    );
}

#[test]
fn an_attempt_cut_short_by_sigkill_is_recorded_as_interrupted_after_resume() {
    let ws = Workspace::with_workflow(SLOW_THEN_AFTER);
    ws.write("delay.txt", "3");
    let mut child = spawn_run(&ws);
    assert!(
        wait_until(Duration::from_secs(10), || ws.exists("started")),
        "the slow node never started"
    );
    // Long enough for the store's background flush to have saved the running attempt.
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().expect("kill");
    child.wait().expect("wait");
    let at_kill = ws.node_records("last");
    let recorded = at_kill.contains_key("slow");
    if recorded {
        assert_eq!(
            at_kill["slow"]["status"], "interrupted",
            "{:#}",
            at_kill["slow"]
        );
    }

    ws.write("delay.txt", "0.01");
    ws.resume("last").run();
    let slow = &ws.node_records("last")["slow"];
    let history = attempt_history(slow);
    if recorded {
        assert_eq!(
            history,
            [
                (1, 1, "interrupted".to_string()),
                (2, 2, "succeeded".to_string())
            ],
            "{slow:#}"
        );
    } else {
        assert_eq!(history, [(1, 2, "succeeded".to_string())], "{slow:#}");
    }
    assert_eq!(ws.counts(), counts_of(&[("slow", 2), ("after", 1)]));
}

fn outcomes(node: &serde_json::Value) -> Vec<String> {
    node["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().expect("outcome").to_string())
        .collect()
}

/// (number, execution, outcome) of every attempt of a node record.
fn attempt_history(node: &serde_json::Value) -> Vec<(u64, u64, String)> {
    node["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["number"].as_u64().expect("number"),
                a["execution"].as_u64().expect("execution"),
                a["outcome"].as_str().expect("outcome").to_string(),
            )
        })
        .collect()
}

/// A chain of effect-free `core.noop` nodes (each may start before the checkpoint of the one
/// before it is on disk, some waiting a little to spread the run out), a shell node with effects
/// branching off its middle and one at its end.
fn pipelined_chain() -> (String, BTreeMap<String, Vec<String>>) {
    const N: usize = 300;
    let mut yaml = String::from(
        "name: pipelined\nnodes:\n  - { id: source, kind: action, type: core.shell, with: { command: 'sh record.sh && cat orders.csv', output: csv } }\n",
    );
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    needs.insert("source".into(), vec![]);
    for i in 0..N {
        let before = if i == 0 {
            "source".to_string()
        } else {
            format!("n{}", i - 1)
        };
        let delay = if i % 50 == 25 {
            ", with: { delay: 30ms }"
        } else {
            ""
        };
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: action, type: core.noop, needs: {before}{delay} }}\n"
        ));
        needs.insert(format!("n{i}"), vec![before]);
    }
    let mid = format!("n{}", N / 2);
    yaml.push_str(&format!(
        "  - {{ id: mid, kind: action, type: core.shell, needs: {mid}, with: {{ command: 'sh record.sh && wc -l < \"$FLOW_INPUT_{}\"' }} }}\n",
        mid.to_uppercase()
    ));
    needs.insert("mid".into(), vec![mid]);
    let end = format!("n{}", N - 1);
    yaml.push_str(&format!(
        "  - {{ id: last, kind: output, type: core.shell, needs: [{end}, mid], with: {{ command: 'sh record.sh && echo done' }} }}\n"
    ));
    needs.insert("last".into(), vec![end, "mid".into()]);
    (yaml, needs)
}

/// SIGKILL at random points of a chain whose effect-free nodes run ahead of the disk: the store
/// never holds a node as succeeded whose input is not, a node with effects has run only on
/// inputs the store holds, and resume finishes the run running no succeeded node again.
#[test]
fn sigkill_while_effect_free_nodes_run_ahead_of_their_checkpoints_then_resume() {
    let (yaml, needs) = pipelined_chain();
    let workspace = || {
        let ws = Workspace::with_workflow(&yaml);
        ws.write("orders.csv", ORDERS);
        ws
    };
    let reference = workspace();
    let started = Instant::now();
    let id = reference.run().run().run_id();
    let run_time = started.elapsed();
    let expected_statuses = reference.statuses(&id);
    assert!(expected_statuses.values().all(|s| s == "succeeded"));
    assert_eq!(
        reference.counts(),
        counts_of(&[("source", 1), ("mid", 1), ("last", 1)])
    );

    let n_trials = 16;
    let span = run_time.mul_f64(1.1);
    let mut rng = Rng::new(0x5EED_C4A1);
    let mut mid_run = 0;
    for index in 0..n_trials {
        let delay = span.mul_f64((index as f64 + rng.f64()) / n_trials as f64);
        let ws = workspace();
        let mut child = spawn_run(&ws);
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed run");
        let trial = format!("trial {index} (kill after {delay:?})");

        let show = ws
            .flow()
            .args(["runs", "show", "last", "--json"])
            .any_exit()
            .run();
        let executed_before = ws.log();
        let succeeded_at_kill: BTreeSet<String> = if show.code == 0 {
            node_statuses(&show.json())
                .into_iter()
                .filter(|(_, s)| s == "succeeded")
                .map(|(n, _)| n)
                .collect()
        } else {
            BTreeSet::new()
        };
        // No node is on disk as succeeded without its inputs.
        for node in &succeeded_at_kill {
            for input in &needs[node] {
                assert!(
                    succeeded_at_kill.contains(input),
                    "{trial}: `{node}` is stored as succeeded but its input `{input}` is not"
                );
            }
        }
        // A node with effects started only once its inputs were on disk.
        for exec in &executed_before {
            for input in &needs[&exec.node] {
                assert!(
                    succeeded_at_kill.contains(input),
                    "{trial}: `{}` ran before its input `{input}` was saved",
                    exec.node
                );
            }
        }
        if !succeeded_at_kill.is_empty() && succeeded_at_kill.len() < needs.len() {
            mid_run += 1;
        }

        if show.code != 0 {
            ws.run().run();
        } else if !status.success() && show.json()["run"]["status"] != "succeeded" {
            let out = ws.resume("last").any_exit().run();
            assert_eq!(out.code, 0, "{trial}: the resume failed\n{out}");
        }
        assert_eq!(ws.statuses("last"), expected_statuses, "{trial}");
        let counts = count(&ws.log());
        for node in ["source", "mid", "last"] {
            let n = counts.get(node).copied().unwrap_or(0);
            assert!(n >= 1, "{trial}: `{node}` never ran");
            if succeeded_at_kill.contains(node) {
                assert_eq!(n, 1, "{trial}: `{node}` had succeeded but ran {n} times");
            }
        }
    }
    assert!(
        mid_run >= 3,
        "too few kills landed while the chain ran: {mid_run} of {n_trials}"
    );
}
