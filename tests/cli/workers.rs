//! `flow worker` with the real binary: a run's nodes spread over worker processes sharing a
//! PostgreSQL store, each node run once, and workers SIGKILLed mid-node.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use flow_engine::test_postgres::TestDatabase;

use crate::support::{Rng, Workspace, count, node_statuses, sigterm};

/// Worker processes, killed when this goes (a failed test leaves none behind).
struct Workers(Vec<Child>);

impl Workers {
    fn start(ws: &Workspace, n: usize, lease: &str) -> Workers {
        let mut workers = Workers(Vec::new());
        for _ in 0..n {
            workers.add(ws, lease);
        }
        workers
    }

    fn add(&mut self, ws: &Workspace, lease: &str) {
        let name = format!("w{}", self.0.len());
        self.0.push(
            ws.command([
                "worker",
                "--concurrency",
                "4",
                "--lease",
                lease,
                "--name",
                &name,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flow worker"),
        );
    }

    /// Stops every worker with SIGTERM; their logs.
    fn stop(mut self) -> Vec<String> {
        let children = std::mem::take(&mut self.0);
        children
            .into_iter()
            .map(|child| {
                sigterm(&child);
                let out = child.wait_with_output().expect("wait for flow worker");
                String::from_utf8_lossy(&out.stderr).into_owned()
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A trigger, a source, 196 nodes that each need the source, a join of all of them and a file
/// output: 200 nodes.
fn wide() -> String {
    let mut y = String::from(
        "name: wide\nnodes:\n  - { id: go, kind: trigger, type: manual }\n  - { id: src, kind: action, type: core.shell, needs: [go], with: { command: \"sh record.sh && echo 7\" } }\n",
    );
    for i in 0..196 {
        let _ = writeln!(
            y,
            "  - {{ id: f{i:03}, kind: action, type: core.shell, needs: [src], with: {{ command: 'sh record.sh && echo $(( $(cat \"$FLOW_INPUT_SRC\") * {i} ))' }} }}"
        );
    }
    let needs: Vec<String> = (0..196).map(|i| format!("f{i:03}")).collect();
    let _ = writeln!(
        y,
        "  - {{ id: join, kind: action, type: core.shell, needs: [{}], with: {{ command: 'sh record.sh && for f in $(echo \"$FLOW_INPUTS\" | tr \":\" \" \"); do echo \"${{f##*/}} $(cat \"$f\")\"; done | sort' }} }}",
        needs.join(", ")
    );
    y.push_str("  - { id: out, kind: output, type: file.write, needs: [join], with: { path: out/join.txt } }\n");
    y
}

#[test]
fn three_workers_run_a_200_node_workflow_each_node_once_with_the_outputs_of_a_local_run() {
    let yaml = wide();
    let local = Workspace::with_workflow(&yaml);
    local.run().timeout(Duration::from_secs(120)).run();
    let expected = local.read("out/join.txt");
    assert_eq!(expected.lines().count(), 196);

    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(&yaml).on_postgres(db.url());
    let workers = Workers::start(&ws, 3, "30s");
    let out = ws
        .flow()
        .args(["run", "--workers", "--concurrency", "16", "flow.yaml"])
        .timeout(Duration::from_secs(120))
        .run();
    let id = out.run_id();
    assert_eq!(ws.read("out/join.txt"), expected);
    let counts = ws.counts();
    assert_eq!(counts.len(), 198, "every shell node ran");
    assert!(
        counts.values().all(|&n| n == 1),
        "each exactly once: {:?}",
        counts.iter().filter(|(_, n)| **n != 1).collect::<Vec<_>>()
    );
    let statuses = ws.statuses(&id);
    assert_eq!(statuses.len(), 200);
    assert!(statuses.values().all(|s| s == "succeeded"), "{statuses:?}");
    // The nodes went to more than one worker.
    let logs = workers.stop();
    let busy = logs
        .iter()
        .filter(|log| log.lines().any(|l| l.ends_with(" done")))
        .count();
    assert!(busy >= 2, "nodes spread over the workers: {logs:#?}");
    let done: usize = logs
        .iter()
        .map(|log| log.lines().filter(|l| l.ends_with(" done")).count())
        .sum();
    assert_eq!(done, 200, "every node ran on a worker, once");
}

#[test]
fn without_a_postgres_store_workers_are_refused_clearly() {
    let ws = Workspace::with_workflow(&wide());
    ws.flow()
        .args(["run", "--workers", "flow.yaml"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("--store postgres://");
    ws.flow()
        .args(["worker"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("PostgreSQL store");
}

/// Six nodes in a row, 0.15 s each, the last one summing what came before.
const CHAIN: &str = r#"
name: chain
nodes:
  - { id: go, kind: trigger, type: manual }
  - { id: c1, kind: action, type: core.shell, needs: [go], with: { command: "sh record.sh && sleep 0.15 && echo 1" } }
  - { id: c2, kind: action, type: core.shell, needs: [c1], with: { command: 'sh record.sh && sleep 0.15 && echo $(( $(cat "$FLOW_INPUT_C1") + 2 ))' } }
  - { id: c3, kind: action, type: core.shell, needs: [c2], with: { command: 'sh record.sh && sleep 0.15 && echo $(( $(cat "$FLOW_INPUT_C2") + 3 ))' } }
  - { id: c4, kind: action, type: core.shell, needs: [c3], with: { command: 'sh record.sh && sleep 0.15 && echo $(( $(cat "$FLOW_INPUT_C3") + 4 ))' } }
  - { id: c5, kind: action, type: core.shell, needs: [c4], with: { command: 'sh record.sh && sleep 0.15 && echo $(( $(cat "$FLOW_INPUT_C4") + 5 ))' } }
"#;

/// `flow run --workers flow.yaml` in the background, its stderr kept.
fn spawn_run(ws: &Workspace) -> Child {
    ws.command(["run", "--workers", "flow.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow run --workers")
}

/// The chain's last output, from the last run.
fn chain_result(ws: &Workspace) -> String {
    ws.flow()
        .args(["runs", "output", "last", "c5"])
        .run()
        .stdout
        .trim()
        .to_string()
}

/// The run ended well, with the chain's result, every node having run exactly once.
fn finished_once_each(ws: &Workspace, run: Child) {
    let out = run.wait_with_output().expect("wait for the run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(chain_result(ws), "15");
    let counts = ws.counts();
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "each node once: {counts:?}"
    );
}

/// An HTTP server that answers every request with 200 after `delay`, recording each
/// `Idempotency-Key` it receives (duplicates too): an API that applies a key's effect once.
struct Api {
    port: u16,
    keys: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Api {
    fn start(delay: Duration) -> Api {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = keys.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let (mut key, mut length) = (None, 0usize);
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            let lower = header.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("idempotency-key:") {
                                key = Some(header[header.len() - v.len()..].trim().to_string());
                            }
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        std::thread::sleep(delay);
                        if let Some(key) = key {
                            seen.lock().unwrap().push(key);
                        }
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Api { port, keys }
    }
}

/// The chain, then eight rows pushed to an API one request each.
fn chain_and_push(port: u16) -> String {
    format!(
        "{CHAIN}  - {{ id: rows, kind: action, type: core.shell, needs: [c5], with: {{ command: 'sh record.sh && echo id && seq 1 8', output: csv }} }}\n  - {{ id: push, kind: output, type: http.request, needs: [rows], with: {{ url: 'http://127.0.0.1:{port}/push', batch_size: 1 }} }}\n"
    )
}

#[test]
fn a_worker_sigkilled_mid_node_loses_no_finished_node_applies_no_effect_twice_and_the_run_completes()
 {
    const TRIALS: usize = 20;
    let mut rng = Rng::new(0x0DD_F10E);
    let started = Instant::now();
    let mut rerun_after_kill = 0;
    let mut resent = 0;
    for trial in 0..TRIALS {
        let db = TestDatabase::new();
        let api = Api::start(Duration::from_millis(40));
        let ws = Workspace::with_workflow(&chain_and_push(api.port)).on_postgres(db.url());
        // One worker, killed at a random moment of the run, and a second started then.
        let mut workers = Workers::start(&ws, 1, "1s");
        let run: Child = spawn_run(&ws);
        let delay = Duration::from_millis(200 + (rng.f64() * 1200.0) as u64);
        std::thread::sleep(delay);
        let mut killed = workers.0.remove(0);
        killed.kill().expect("SIGKILL the worker");
        let _ = killed.wait();
        let at_kill = ws
            .flow()
            .args(["runs", "show", "last", "--json"])
            .any_exit()
            .run();
        let succeeded: BTreeSet<String> = if at_kill.code == 0 {
            node_statuses(&at_kill.json())
                .into_iter()
                .filter(|(_, s)| s == "succeeded")
                .map(|(n, _)| n)
                .collect()
        } else {
            BTreeSet::new()
        };
        let executed_before = ws.log().len();
        workers.add(&ws, "1s");
        let out = run.wait_with_output().expect("wait for the run");
        assert!(
            out.status.success(),
            "trial {trial} (kill after {delay:?}): the run failed\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = ws
            .flow()
            .args(["runs", "output", "last", "c5"])
            .run()
            .stdout;
        assert_eq!(result.trim(), "15", "trial {trial}");
        let log = ws.log();
        let again: Vec<&str> = log[executed_before..]
            .iter()
            .map(|e| e.node.as_str())
            .filter(|n| succeeded.contains(*n))
            .collect();
        assert!(
            again.is_empty(),
            "trial {trial}: nodes recorded as succeeded ran again: {again:?}"
        );
        let counts: BTreeMap<String, usize> = count(&log);
        assert_eq!(counts.len(), 6, "trial {trial}: {counts:?}");
        rerun_after_kill += counts.values().filter(|&&n| n > 1).count();
        // Every request reached the API; one sent again carries its key, so the API applies
        // it once. Only the request in flight at the kill can come twice.
        let keys = api.keys.lock().unwrap().clone();
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 8, "trial {trial}: {keys:?}");
        assert!(
            keys.len() - distinct.len() <= 1,
            "trial {trial}: acknowledged requests were sent again: {keys:?}"
        );
        resent += keys.len() - distinct.len();
        drop(workers);
    }
    eprintln!(
        "{TRIALS} worker SIGKILL trials in {:?}: {rerun_after_kill} node(s) cut off mid-way ran again, {resent} request(s) in flight sent again with their key",
        started.elapsed()
    );
    assert!(
        rerun_after_kill > 0,
        "some kill must land mid-node, or the trials test nothing"
    );
}

#[test]
fn a_run_on_workers_rides_out_its_connections_being_cut() {
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(CHAIN).on_postgres(db.url());
    // No worker dies here, so no lease needs to run out: a lease longer than a CPU-starved
    // machine can stall a worker means a node run twice is a lost connection's doing, not a
    // lease that expired (after which running again is what a lease is for).
    let workers = Workers::start(&ws, 2, "30s");
    let run: Child = spawn_run(&ws);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(250));
        // Every connection flow has: the run's, the workers', their locks.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'flow' AND pid <> pg_backend_pid()",
        );
    }
    finished_once_each(&ws, run);
    drop(workers);
}

fn open_tasks(db: &TestDatabase) -> i64 {
    let mut client = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    client
        .query_one("SELECT count(*) FROM flow_tasks", &[])
        .unwrap()
        .get(0)
}

#[test]
fn a_run_whose_process_died_is_resumed_on_workers_and_its_old_attempts_withdrawn() {
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(CHAIN).on_postgres(db.url());
    let workers = Workers::start(&ws, 1, "30s");
    let mut run = ws
        .command(["run", "--workers", "flow.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed while a node runs on the worker: its attempt stays queued and claimed.
    assert!(crate::support::wait_until(Duration::from_secs(20), || ws
        .log()
        .len()
        >= 2));
    run.kill().unwrap();
    let _ = run.wait();
    assert!(
        open_tasks(&db) >= 1,
        "the attempt in flight is still queued"
    );
    let shown = ws.show("last");
    assert_eq!(shown["run"]["status"], "interrupted", "no process holds it");
    let succeeded: BTreeSet<String> = node_statuses(&shown)
        .into_iter()
        .filter(|(_, s)| s == "succeeded")
        .map(|(n, _)| n)
        .collect();
    let before = ws.log().len();
    ws.flow().args(["resume", "last", "--workers"]).run();
    assert_eq!(chain_result(&ws), "15");
    assert_eq!(open_tasks(&db), 0, "nothing is left in the queue");
    let again: Vec<String> = ws.log()[before..]
        .iter()
        .map(|e| e.node.clone())
        .filter(|n| succeeded.contains(n))
        .collect();
    assert!(again.is_empty(), "{again:?}");
    drop(workers);
}

#[test]
fn a_worker_refuses_a_node_whose_definition_differs_from_the_runs() {
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(CHAIN).on_postgres(db.url());
    let workers = Workers::start(&ws, 1, "30s");
    let run = spawn_run(&ws);
    assert!(crate::support::wait_until(Duration::from_secs(20), || !ws
        .log()
        .is_empty()));
    // The file changes under the run: the worker compiles the new one.
    ws.workflow(&CHAIN.replace("+ 4 ))", "+ 40 ))"));
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = ws.show("last");
    let c4 = shown["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "c4")
        .unwrap()
        .clone();
    assert_eq!(c4["status"], "failed", "{c4:#}");
    assert!(
        c4["error"]
            .as_str()
            .unwrap()
            .contains("differs from the one the run uses"),
        "{c4:#}"
    );
    assert!(
        !ws.counts().contains_key("c4"),
        "the changed node never ran"
    );
    drop(workers);
}

#[test]
fn a_labelled_node_runs_only_on_a_worker_with_its_labels() {
    let db = TestDatabase::new();
    let yaml = CHAIN.replace(
        "- { id: c3, kind: action, type: core.shell, needs: [c2],",
        "- { id: c3, kind: action, type: core.shell, needs: [c2], labels: [pos],",
    );
    assert_ne!(yaml, CHAIN);
    let ws = Workspace::with_workflow(&yaml).on_postgres(db.url());
    let plain = Workers::start(&ws, 2, "30s");
    let labelled = Workers(vec![
        ws.command(["worker", "--labels", "pos,bigmem", "--name", "pos-host"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ]);
    ws.flow().args(["run", "--workers", "flow.yaml"]).run();
    assert_eq!(chain_result(&ws), "15");
    let pos_log = labelled.stop().concat();
    let plain_logs = plain.stop().concat();
    assert!(pos_log.contains("node c3 done"), "{pos_log}");
    assert!(!plain_logs.contains("node c3"), "{plain_logs}");

    // Labels are checked where they are written.
    ws.workflow(&yaml.replace("labels: [pos]", "labels: [\"p o s\"]"));
    ws.flow()
        .args(["validate", "flow.yaml"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("flow.yaml:7:68: node `c3`: a label is");
    ws.flow()
        .args(["worker", "--labels", "a b"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("is not a label");
}

#[test]
fn serve_runs_its_scheduled_runs_on_workers() {
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(crate::serve::EVERY_SECOND).on_postgres(db.url());
    let workers = Workers::start(&ws, 1, "30s");
    let server = crate::serve::spawn_serve(&ws, &["--workers", "flow.yaml"]);
    let fired = crate::support::wait_until(Duration::from_secs(30), || {
        let out = ws.flow().args(["runs", "--json"]).any_exit().run();
        out.code == 0
            && out
                .json()
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["status"] == "succeeded")
                .count()
                >= 2
    });
    sigterm(&server);
    let served = server.wait_with_output().unwrap();
    let log = workers.stop().concat();
    assert!(fired, "{}", String::from_utf8_lossy(&served.stderr));
    assert!(log.contains("node work done"), "{log}");
    assert!(log.contains("node tick done"), "{log}");
}

#[test]
fn a_run_on_workers_rides_out_a_database_restart() {
    let (cluster, url) = crate::postgres::PrivateCluster::start();
    let ws = Workspace::with_workflow(CHAIN).on_postgres(&url);
    let workers = Workers::start(&ws, 2, "10s");
    let run = spawn_run(&ws);
    assert!(crate::support::wait_until(Duration::from_secs(20), || ws
        .log()
        .len()
        >= 2));
    assert_eq!(cluster.restart(Duration::from_secs(2)), url);
    finished_once_each(&ws, run);
    drop(workers);
}
