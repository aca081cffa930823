//! The PostgreSQL store with the real binary: runs and resumes on it, several processes sharing
//! it, moving a sled history into it, and `flow serve` processes handing the schedules over.
//! (The store contract and lost connections are tested in the engine, against the same
//! server; SIGKILL trials on it are in `kill.rs`.)

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flow_engine::test_postgres::TestDatabase;

use crate::serve::{EVERY_SECOND, spawn_serve};
use crate::support::{Workspace, flow_bin, sigterm, wait_until};

/// `a`, then `b`, which fails while the file `fail` exists and otherwise sleeps `delay.txt`
/// seconds.
const TWO_STEPS: &str = r#"
name: two-steps
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: a
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "sh record.sh && echo from-a" }
  - id: b
    kind: action
    type: core.shell
    needs: [a]
    with: { command: 'sh record.sh && test ! -e fail && sleep "$(cat delay.txt)" && cat "$FLOW_INPUT_A"' }
"#;

fn two_steps() -> Workspace {
    let ws = Workspace::with_workflow(TWO_STEPS);
    ws.write("delay.txt", "0");
    ws
}

#[test]
fn a_run_fails_on_postgres_and_resumes_without_redoing_finished_nodes() {
    let db = TestDatabase::new();
    let ws = two_steps().on_postgres(db.url());
    ws.write("fail", "");
    let out = ws.run().expect_exit(1).run();
    let id = out.run_id();
    assert_eq!(ws.statuses(&id)["a"], "succeeded");
    assert_eq!(ws.statuses(&id)["b"], "failed");
    assert!(
        !ws.state_dir().join("db").exists(),
        "nothing went to a sled store"
    );
    std::fs::remove_file(ws.path("fail")).unwrap();
    ws.resume(&id).run();
    let counts = ws.counts();
    assert_eq!(counts["a"], 1, "a had succeeded: {counts:?}");
    assert_eq!(counts["b"], 2);
    let output = ws.flow().args(["runs", "output", &id, "b"]).run();
    assert!(output.stdout.contains("from-a"), "{output}");
    // `flow runs` names the database the history is in.
    let runs = ws.flow().args(["runs"]).run();
    assert!(runs.stdout.contains(&id), "{runs}");
    let database = db.url().rsplit('/').next().unwrap();
    assert!(runs.stdout.contains(database), "{runs}");
}

#[test]
fn one_run_is_resumed_by_one_process_at_a_time() {
    let db = TestDatabase::new();
    let ws = two_steps().on_postgres(db.url());
    ws.write("fail", "");
    let id = ws.run().expect_exit(1).run().run_id();
    std::fs::remove_file(ws.path("fail")).unwrap();
    ws.write("delay.txt", "3");
    let first: Child = ws
        .command(["resume", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow resume");
    // The first resume is live once b runs again.
    assert!(wait_until(Duration::from_secs(20), || ws
        .counts()
        .get("b")
        .is_some_and(|&n| n == 2)));
    let second = ws.resume(&id).expect_exit(2).run();
    second.assert_stderr_contains("running");
    let shown = ws.show(&id);
    assert_eq!(shown["run"]["status"], "running", "{shown:#}");
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ws.counts()["b"], 2, "the refused resume ran nothing");
    assert_eq!(ws.show(&id)["run"]["status"], "succeeded");
}

#[test]
fn migrate_moves_a_sled_history_and_resume_continues_on_postgres() {
    let ws = two_steps();
    ws.write("fail", "");
    let failed = ws.run().expect_exit(1).run().run_id();
    std::fs::remove_file(ws.path("fail")).unwrap();
    let ok = ws.run().run().run_id();
    let sled_output = ws.flow().args(["runs", "output", &ok, "b"]).run().stdout;

    let db = TestDatabase::new();
    // A target that is not a PostgreSQL URL, and a source that is no store, are refused.
    ws.flow()
        .args(["store", "migrate", "--to", "mysql://x"])
        .expect_exit(2)
        .run();
    ws.flow()
        .args(["store", "migrate", "--from", "nowhere", "--to", db.url()])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("no state store");
    let out = ws.flow().args(["store", "migrate", "--to", db.url()]).run();
    assert!(
        out.stdout.contains("migrated 2 runs, 6 node records"),
        "{out}"
    );
    // Running it again (as after an interruption) changes nothing.
    ws.flow().args(["store", "migrate", "--to", db.url()]).run();

    let pg = Workspace::new().on_postgres(db.url());
    let listed = pg.flow().args(["runs", "--json"]).run().json();
    let ids: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([failed.as_str(), ok.as_str()]));
    let pg_output = pg.flow().args(["runs", "output", &ok, "b"]).run().stdout;
    assert_eq!(pg_output, sled_output);
    // The failed run resumes on PostgreSQL from its migrated checkpoints (the workflow file is
    // where it was).
    let before = ws.counts()["a"];
    ws.flow()
        .env("FLOW_STORE", db.url())
        .args(["resume", &failed])
        .run();
    assert_eq!(ws.counts()["a"], before, "a is not redone after the move");
    assert_eq!(
        pg.show(&failed)["run"]["status"],
        "succeeded",
        "resumed on PostgreSQL"
    );

    // And back to a single machine.
    let back = ws.path("back");
    let back = back.to_str().unwrap();
    let out = ws
        .flow()
        .args(["store", "migrate", "--from", db.url(), "--to", back])
        .run();
    assert!(out.stdout.contains("migrated 2 runs"), "{out}");
    let on_back = |args: &[&str]| {
        let out = std::process::Command::new(flow_bin())
            .arg("--state")
            .arg(back)
            .args(args)
            .env_remove("FLOW_STORE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let single: serde_json::Value =
        serde_json::from_str(&on_back(&["runs", "show", &failed, "--json"])).unwrap();
    assert_eq!(single["run"]["status"], "succeeded");
    assert_eq!(on_back(&["runs", "output", &ok, "b"]), sled_output);

    // A database that holds other runs is not mixed into.
    let other = two_steps();
    other.run().run();
    other
        .flow()
        .args(["store", "migrate", "--to", db.url()])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("migrate into an empty store");
}

#[test]
fn store_urls_that_do_not_work_are_clear_errors() {
    let ws = two_steps();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://flow:hunter2@127.0.0.1:{port}/flow");
    let out = ws
        .flow()
        .env("FLOW_STORE", &url)
        .args(["runs"])
        .expect_exit(2)
        .run();
    out.assert_stderr_contains("cannot reach the PostgreSQL store postgres://flow:***@");
    assert!(!out.stderr.contains("hunter2"), "{out}");
    ws.flow()
        .args(["--store", "sqlite://x", "runs"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("takes a PostgreSQL URL");
}

/// `(scheduled_for, fired at)` of every scheduled run.
fn scheduled(ws: &Workspace) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let out = ws.flow().args(["runs", "--json"]).any_exit().run();
    if out.code != 0 {
        return Vec::new();
    }
    let time = |v: &serde_json::Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["fired_by"] == "schedule")
        .map(|r| {
            (
                time(&r["trigger"]["scheduled_for"]),
                time(&r["trigger"]["time"]),
            )
        })
        .collect()
}

#[test]
fn a_standby_serve_takes_over_the_schedules_when_the_leader_is_killed() {
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(EVERY_SECOND).on_postgres(db.url());
    let mut leader = spawn_serve(&ws, &["flow.yaml"]);
    assert!(
        wait_until(Duration::from_secs(30), || scheduled(&ws).len() >= 2),
        "the first server fires"
    );
    let standby = spawn_serve(&ws, &["flow.yaml"]);
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = Utc::now();
    let started = Instant::now();
    leader.kill().expect("SIGKILL the leading flow serve");
    let _ = leader.wait();
    let taken_over = wait_until(Duration::from_secs(30), || {
        scheduled(&ws).iter().any(|(_, at)| *at > killed_at)
    });
    let failover = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    sigterm(&standby);
    let out = standby.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(taken_over, "the standby never fired:\n{log}");
    assert!(log.contains("standing by"), "{log}");
    assert!(log.contains("this server fires the schedules now"), "{log}");
    let runs = scheduled(&ws);
    let first_after = runs
        .iter()
        .filter(|(_, at)| *at > killed_at)
        .map(|(_, at)| *at)
        .min()
        .unwrap();
    let gap = (first_after - killed_at).to_std().unwrap();
    assert!(
        gap < Duration::from_secs(5),
        "took over {gap:?} after the kill (seen after {failover:?})"
    );
    // No schedule time fired twice, by either server.
    let times: Vec<DateTime<Utc>> = runs.iter().map(|(s, _)| *s).collect();
    let unique: BTreeSet<_> = times.iter().collect();
    assert_eq!(unique.len(), times.len(), "a time fired twice: {times:?}");
    assert!(times.len() >= 5, "{times:?}");
    eprintln!("scheduler failover: first firing {gap:?} after the kill");
}

/// Five shell nodes in a row, half a second each.
const SLOW_CHAIN: &str = r#"
name: slow-chain
nodes:
  - { id: go, kind: trigger, type: manual }
  - { id: s1, kind: action, type: core.shell, needs: [go], with: { command: "sh record.sh && sleep 0.5 && echo 1" } }
  - { id: s2, kind: action, type: core.shell, needs: [s1], with: { command: "sh record.sh && sleep 0.5 && echo 2" } }
  - { id: s3, kind: action, type: core.shell, needs: [s2], with: { command: "sh record.sh && sleep 0.5 && echo 3" } }
  - { id: s4, kind: action, type: core.shell, needs: [s3], with: { command: "sh record.sh && sleep 0.5 && echo 4" } }
  - { id: s5, kind: action, type: core.shell, needs: [s4], with: { command: "sh record.sh && sleep 0.5 && echo 5" } }
"#;

/// A PostgreSQL cluster of this test's own (so restarting it disturbs no other test), stopped
/// when this goes.
pub(crate) struct PrivateCluster {
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts a cluster in a directory of its own; its URL.
    pub(crate) fn start() -> (PrivateCluster, String) {
        use std::os::unix::fs::PermissionsExt;
        let cluster = PrivateCluster {
            dir: tempfile::tempdir().unwrap(),
        };
        // The server may run as another user (as root, as `postgres`), who must reach it.
        std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let url = cluster.script(None);
        (cluster, url)
    }

    /// Stops the server, waits `down`, starts it again on the same port.
    pub(crate) fn restart(&self, down: Duration) -> String {
        self.script(Some("stop"));
        std::thread::sleep(down);
        self.script(None)
    }

    fn script(&self, arg: Option<&str>) -> String {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres");
        let out = std::process::Command::new("bash")
            .arg(script)
            .args(arg)
            .env("FLOW_POSTGRES_DIR", self.dir.path().join("pg"))
            .env_remove("FLOW_TEST_POSTGRES")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.script(Some("stop"));
    }
}

#[test]
fn a_run_rides_out_a_database_restart() {
    let (cluster, url) = PrivateCluster::start();
    let ws = Workspace::with_workflow(SLOW_CHAIN).on_postgres(&url);
    let run = ws
        .command(["run", "flow.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || ws.log().len() >= 2));
    cluster.script(Some("stop"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.script(None),
        url,
        "the server comes back where it was"
    );
    let out = run.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let counts = ws.counts();
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "each node ran once: {counts:?}"
    );
    assert_eq!(ws.show("last")["run"]["status"], "succeeded");
}

/// A Square order `id` of `customer`, updated at minute `minute` of a day.
fn square_order(id: &str, customer: &str, minute: u32) -> serde_json::Value {
    let at = format!("2026-11-30T10:{minute:02}:00.000Z");
    serde_json::json!({
        "id": id, "location_id": "L1", "customer_id": customer, "state": "COMPLETED",
        "created_at": at, "updated_at": at,
        "line_items": [{
            "name": "Tea", "quantity": "2", "catalog_object_id": "P1",
            "base_price_money": {"amount": 450, "currency": "USD"},
            "total_money": {"amount": 900, "currency": "USD"},
        }],
    })
}

#[test]
fn a_source_nodes_synced_history_lives_in_the_database_for_every_host() {
    use flow_retail::connectors::square::mock::{Mock, State};
    let db = TestDatabase::new();
    let mock = Mock::start(State {
        locations: vec![serde_json::json!({"id": "L1", "timezone": "UTC"})],
        orders: vec![
            square_order("o1", "c1", 1),
            square_order("o2", "c2", 2),
            square_order("o3", "c1", 3),
        ],
        page_size: 100,
        ..State::default()
    });
    let ws = Workspace::with_workflow(&format!(
        "name: shop\nnodes:\n  - {{ id: go, kind: trigger, type: manual }}\n  - id: sales\n    kind: action\n    type: square.orders\n    needs: go\n    with: {{ base_url: \"{}\", token_env: SQ_TOKEN, backoff: 1ms, lookback: 0s }}\n",
        mock.url
    ))
    .on_postgres(db.url());
    let run = || ws.run().env("SQ_TOKEN", "sq-test").run();
    run();
    let sync = &ws.node_records("last")["sales"]["meta"]["sync"];
    assert_eq!(sync["full"], true, "{sync}");
    assert_eq!(sync["orders_held"], 3, "{sync}");
    assert!(
        !ws.state_dir().join("nodes").exists(),
        "the history went to a local directory"
    );

    // Another host (nothing local survives) continues from the cursor in the database.
    let _ = std::fs::remove_dir_all(ws.state_dir());
    mock.state
        .lock()
        .unwrap()
        .orders
        .push(square_order("o4", "c3", 9));
    run();
    let sync = &ws.node_records("last")["sales"]["meta"]["sync"];
    assert_eq!(sync["full"], false, "{sync}");
    // The new order, and the one at the cursor's instant (the filter is inclusive).
    assert_eq!(sync["fetched"]["orders"], 2, "not all four: {sync}");
    assert_eq!(sync["orders_held"], 4, "{sync}");

    // `flow sync status` and `reset` work on it.
    let status = ws
        .flow()
        .args(["sync", "status", "flow.yaml", "--json"])
        .run()
        .json();
    assert_eq!(status[0]["node"], "sales");
    assert_eq!(status[0]["status"]["tables"]["lines"]["keys"], 4);
    let location = status[0]["status"]["location"].as_str().unwrap();
    assert!(location.contains("history"), "{location}");
    ws.flow()
        .args(["sync", "reset", "flow.yaml", "sales"])
        .run();
    run();
    let sync = &ws.node_records("last")["sales"]["meta"]["sync"];
    assert_eq!(sync["full"], true, "a reset loads everything: {sync}");
    assert_eq!(sync["orders_held"], 4, "{sync}");

    // Migrated back to a local store, the history comes along and continues there.
    let local = ws.path("local-store");
    let out = ws
        .flow()
        .args(["store", "migrate", "--from", db.url(), "--to"])
        .arg(&local)
        .run();
    assert!(out.stdout.contains("1 synced history"), "{out}");
    mock.state
        .lock()
        .unwrap()
        .orders
        .push(square_order("o5", "c2", 20));
    let on_sled = |args: &[&str]| {
        let out = std::process::Command::new(flow_bin())
            .current_dir(ws.dir())
            .env_remove("FLOW_STORE")
            .env_remove("FLOW_STATE")
            .env("SQ_TOKEN", "sq-test")
            .arg("--state")
            .arg(&local)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    on_sled(&["run", "flow.yaml"]);
    let records: serde_json::Value =
        serde_json::from_str(&on_sled(&["runs", "show", "last", "--json"])).unwrap();
    let sales = records["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "sales")
        .unwrap()
        .clone();
    assert_eq!(sales["meta"]["sync"]["full"], false, "{sales}");
    assert_eq!(sales["meta"]["sync"]["fetched"]["orders"], 2, "{sales}");
    assert_eq!(sales["meta"]["sync"]["orders_held"], 5, "{sales}");
}

#[test]
fn the_http_api_of_a_serve_on_postgres_lists_and_starts_runs_every_host_sees() {
    use crate::http_support::{Served, get, post};
    let db = TestDatabase::new();
    let ws = Workspace::with_workflow(
        "name: hello\nnodes:\n  - { id: go, kind: trigger, type: manual }\n  - id: say\n    kind: action\n    type: core.shell\n    needs: go\n    with: { command: \"echo hello\" }\n",
    )
    .on_postgres(db.url());
    let from_cli = ws.run().run().run_id();
    let served = Served::start(&ws, &["flow.yaml"], &[]);
    let runs = get(&served.url("/api/runs"), &[]).json();
    assert!(runs.to_string().contains(&from_cli), "{runs}");

    let workflows = get(&served.url("/api/workflows"), &[]).json();
    let key = workflows["workflows"][0]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{workflows}"))
        .to_string();
    let started = post(
        &served.url(&format!("/api/workflows/{key}/runs")),
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let from_api = started.json()["run_id"].as_str().unwrap().to_string();
    let done = wait_until(Duration::from_secs(30), || {
        get(&served.url(&format!("/api/runs/{from_api}")), &[]).json()["status"] == "succeeded"
    });
    assert!(
        done,
        "the run started over the API did not succeed:\n{}",
        served.log()
    );
    // A process on another host reads it from the database.
    let listed = ws.flow().args(["runs", "--json"]).run().json();
    assert!(listed.to_string().contains(&from_api), "{listed}");
    let output = ws.flow().args(["runs", "output", &from_api, "say"]).run();
    assert!(output.stdout.contains("hello"), "{output}");
}
