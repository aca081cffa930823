//! The PostgreSQL store against a real server: the store contract shared with sled and memory,
//! and what only a shared database has (several processes, lost connections, schema versions).

use std::time::{Duration, Instant};

use super::*;
use crate::store::TaskState;
use crate::store::tests::{exercise, exercise_remove};
use crate::test_postgres::TestDatabase;

fn open(db: &TestDatabase) -> PgStore {
    PgStore::open(db.url()).expect("open the PostgreSQL store")
}

fn running(id: &str) -> RunRecord {
    RunRecord::new_for_test(id)
}

fn finished(id: &str) -> RunRecord {
    let mut run = RunRecord::new_for_test(id);
    run.status = RunStatus::Succeeded;
    run
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postgres_store_contract() {
    let db = TestDatabase::new();
    exercise(&open(&db));
    let db = TestDatabase::new();
    exercise_remove(&open(&db));
}

#[test]
fn outputs_of_any_size_read_back_whole() {
    let db = TestDatabase::new();
    let store = open(&db);
    let big: Vec<u8> = (0..(2 * CHUNK + 12_345) as u32)
        .map(|i| (i % 251) as u8)
        .collect();
    for (node, output) in [
        ("big", big.clone()),
        ("empty", Vec::new()),
        ("one", vec![7]),
    ] {
        store
            .apply(vec![Write::Node {
                run_id: "r1".into(),
                record: NodeRecord::new(node),
                output: Some(output),
            }])
            .unwrap();
    }
    // Rewriting an output replaces all its chunks.
    store
        .apply(vec![Write::Node {
            run_id: "r1".into(),
            record: NodeRecord::new("big"),
            output: Some(big[..CHUNK + 1].to_vec()),
        }])
        .unwrap();
    drop(store);
    let store = open(&db);
    assert_eq!(
        store.output("r1", "big").unwrap().unwrap(),
        &big[..CHUNK + 1]
    );
    assert_eq!(store.output("r1", "empty").unwrap().unwrap(), b"");
    assert_eq!(store.output("r1", "one").unwrap().unwrap(), [7]);
    assert_eq!(store.output("r1", "none").unwrap(), None);
}

#[test]
fn a_failed_batch_writes_nothing() {
    let db = TestDatabase::new();
    let store = open(&db);
    // A NUL byte cannot be stored in text: the second write fails, so the first is not kept.
    let err = store
        .apply(vec![
            Write::Put {
                namespace: "ns".into(),
                key: "kept?".into(),
                value: b"1".to_vec(),
            },
            Write::Put {
                namespace: "ns".into(),
                key: "bad\0key".into(),
                value: b"2".to_vec(),
            },
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert_eq!(store.get("ns", "kept?").unwrap(), None);
}

#[test]
fn scans_see_exactly_their_prefix_in_key_order() {
    let db = TestDatabase::new();
    let store = open(&db);
    let keys = ["a/1", "a/10", "a/2", "a0", "a/\u{10FFFF}", "b", "a/é"];
    store
        .apply(
            keys.iter()
                .map(|k| Write::Put {
                    namespace: "ns".into(),
                    key: k.to_string(),
                    value: k.as_bytes().to_vec(),
                })
                .collect(),
        )
        .unwrap();
    let found: Vec<String> = store
        .scan("ns", "a/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // Byte order, as sled keeps it.
    assert_eq!(found, ["a/1", "a/10", "a/2", "a/é", "a/\u{10FFFF}"]);
    assert_eq!(store.scan("ns", "").unwrap().len(), keys.len());
    assert!(store.scan("other", "").unwrap().is_empty());
}

#[test]
fn a_run_is_executed_by_one_process_and_live_while_it_runs() {
    let db = TestDatabase::new();
    let (a, b) = (open(&db), open(&db));
    let id = "20270101-000000-live";
    a.apply(vec![Write::Run(running(id))]).unwrap();
    assert!(
        b.live_runs().unwrap().contains(id),
        "live for every process"
    );
    // Another process cannot start it, nor write it as running.
    match b.apply(vec![Write::Run(running(id))]) {
        Err(StoreError::RunHeldElsewhere { run_id }) => assert_eq!(run_id, id),
        other => panic!("expected RunHeldElsewhere, got {other:?}"),
    }
    // The process executing it writes on; finishing lets go.
    a.apply(vec![Write::Run(running(id))]).unwrap();
    a.apply(vec![Write::Run(finished(id))]).unwrap();
    assert!(!b.live_runs().unwrap().contains(id));
    b.apply(vec![Write::Run(running(id))]).unwrap();
    assert!(a.live_runs().unwrap().contains(id));
    // A process that goes away lets go of its runs at once.
    drop(b);
    wait_for("the run to be free", || {
        !a.live_runs().unwrap().contains(id)
    });
    a.apply(vec![Write::Run(running(id))]).unwrap();
}

#[test]
fn removal_spares_runs_being_executed() {
    let db = TestDatabase::new();
    let (a, b) = (open(&db), open(&db));
    a.apply(vec![
        Write::Run(running("r-live")),
        Write::Run(finished("r-done")),
    ])
    .unwrap();
    let removed = b
        .remove(&Removal {
            run_ids: vec!["r-live".into(), "r-done".into()],
            keys: vec![],
        })
        .unwrap();
    assert_eq!(removed.runs, 1);
    assert!(b.run("r-live").unwrap().is_some());
    assert!(b.run("r-done").unwrap().is_none());
}

/// Terminates every connection flow has to the database, as an administrator or a failover
/// would.
fn cut_connections(db: &TestDatabase) {
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'flow' AND pid <> pg_backend_pid()",
    );
}

#[test]
fn calls_survive_lost_connections_and_locks_are_taken_again() {
    let db = TestDatabase::new();
    let (a, b) = (open(&db), open(&db));
    let id = "20270101-000000-kept";
    a.apply(vec![Write::Run(running(id))]).unwrap();
    cut_connections(&db);
    // Writes and reads reconnect; the lock is taken again within the keeper's period.
    a.apply(vec![Write::Put {
        namespace: "ns".into(),
        key: "after".into(),
        value: b"1".to_vec(),
    }])
    .unwrap();
    assert_eq!(b.get("ns", "after").unwrap().unwrap(), b"1");
    wait_for("the lock to be taken again", || {
        b.live_runs().unwrap().contains(id)
    });
    a.apply(vec![Write::Run(running(id))]).unwrap();
    assert!(matches!(
        b.apply(vec![Write::Run(running(id))]),
        Err(StoreError::RunHeldElsewhere { .. })
    ));
}

#[test]
fn a_run_taken_over_while_disconnected_is_not_written_to() {
    let db = TestDatabase::new();
    let a = open(&db);
    let id = "20270101-000000-lost";
    a.apply(vec![Write::Run(running(id))]).unwrap();
    // Another process takes the run in the moment between a's connection dropping and its
    // keeper reconnecting: it keeps trying until it has it.
    let b = open(&db);
    cut_connections(&db);
    wait_for("b to take the run", || {
        b.apply(vec![Write::Run(running(id))]).is_ok()
    });
    wait_for("a to find the run lost", || {
        matches!(
            a.apply(vec![Write::Node {
                run_id: id.into(),
                record: NodeRecord::new("n"),
                output: None,
            }]),
            Err(StoreError::RunTakenOver { .. })
        )
    });
    assert!(
        b.nodes(id).unwrap().is_empty(),
        "a wrote nothing after losing it"
    );
    // Nor can it end the run b executes, or take it again.
    assert!(matches!(
        a.apply(vec![Write::Run(finished(id))]),
        Err(StoreError::RunTakenOver { .. })
    ));
    b.apply(vec![Write::Run(finished(id))]).unwrap();
    assert!(a.apply(vec![Write::Run(running(id))]).is_err());
    assert_eq!(b.run(id).unwrap().unwrap().status, RunStatus::Succeeded);
    // A resume by another process is allowed once b has let go.
    open(&db).apply(vec![Write::Run(running(id))]).unwrap();
}

#[test]
fn schema_is_created_once_by_processes_starting_together() {
    let db = TestDatabase::new();
    let url = db.url().to_string();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|_| ()))
        })
        .collect();
    for t in opened {
        t.join().unwrap().unwrap();
    }
    let store = open(&db);
    exercise(&store);
}

#[test]
fn a_database_from_a_newer_flow_is_refused() {
    let db = TestDatabase::new();
    drop(open(&db));
    db.execute("UPDATE flow_meta SET value = '99' WHERE name = 'schema_version'");
    match PgStore::open(db.url()) {
        Err(e @ StoreError::NewerSchema { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade flow"), "{e}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://flow:hunter2@127.0.0.1:{port}/flow");
    let start = Instant::now();
    let err = PgStore::open(&url).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(msg.contains("flow:***@127.0.0.1"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn writers_racing_on_one_store_lose_nothing() {
    let db = TestDatabase::new();
    let url = db.url().to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PgStore::open(&url).unwrap();
                for i in 0..50 {
                    store
                        .apply(vec![Write::Node {
                            run_id: format!("r{w}"),
                            record: NodeRecord::new(&format!("n{i:02}")),
                            output: Some(vec![w as u8; i]),
                        }])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.join().unwrap();
    }
    let store = open(&db);
    for w in 0..4u8 {
        let nodes = store.nodes(&format!("r{w}")).unwrap();
        assert_eq!(nodes.len(), 50);
        assert_eq!(
            store.output(&format!("r{w}"), "n07").unwrap().unwrap(),
            vec![w; 7]
        );
    }
}

#[test]
fn workers_racing_for_tasks_each_get_a_task_once() {
    let db = TestDatabase::new();
    let store = open(&db);
    for i in 0..200 {
        store
            .submit_task("r1", &format!("n{i}"), vec![i as u8], &[])
            .unwrap();
    }
    let url = db.url().to_string();
    let claimers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PgStore::open(&url).unwrap();
                let mut got = Vec::new();
                while let Some(task) = store
                    .claim_task(&format!("w{w}"), &[], Duration::from_secs(60))
                    .unwrap()
                {
                    got.push(task.id);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<i64> = claimers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 200, "every task claimed once");
    assert_eq!(all.len(), 200);
}

#[test]
fn a_lapsed_lease_hands_the_task_on_and_the_late_result_is_refused() {
    let db = TestDatabase::new();
    let store = open(&db);
    let id = store.submit_task("r1", "n", b"spec".to_vec(), &[]).unwrap();
    let first = store
        .claim_task("w1", &[], Duration::from_millis(300))
        .unwrap()
        .unwrap();
    assert_eq!((first.id, first.spec.as_slice()), (id, &b"spec"[..]));
    // Held: nobody else gets it, and renewing keeps it.
    assert!(
        store
            .claim_task("w2", &[], Duration::from_secs(5))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .renew_task(&first, Duration::from_millis(300))
            .unwrap()
    );
    assert!(matches!(
        store.task_state(id).unwrap(),
        TaskState::Pending { worker: Some(w) } if w == "w1"
    ));
    std::thread::sleep(Duration::from_millis(500));
    let second = store
        .claim_task("w2", &[], Duration::from_secs(5))
        .unwrap()
        .expect("a lapsed lease is claimed again");
    assert!(second.claim > first.claim);
    // The first worker can neither renew nor report.
    assert!(!store.renew_task(&first, Duration::from_secs(5)).unwrap());
    assert!(!store.finish_task(&first, Ok(b"late".to_vec())).unwrap());
    assert!(store.finish_task(&second, Ok(b"out".to_vec())).unwrap());
    assert_eq!(
        store.task_state(id).unwrap(),
        TaskState::Done(b"out".to_vec())
    );
    store.remove_task(id).unwrap();
    assert_eq!(store.task_state(id).unwrap(), TaskState::Gone);
}

#[test]
fn released_tasks_go_back_and_cancelled_ones_stop_their_worker() {
    let db = TestDatabase::new();
    let store = open(&db);
    let id = store.submit_task("r1", "n", Vec::new(), &[]).unwrap();
    let claimed = store
        .claim_task("w1", &[], Duration::from_secs(60))
        .unwrap()
        .unwrap();
    store.release_task(&claimed).unwrap();
    let again = store
        .claim_task("w2", &[], Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(again.id, id);
    store.cancel_task(id).unwrap();
    assert!(!store.renew_task(&again, Duration::from_secs(60)).unwrap());
    assert!(!store.finish_task(&again, Err("x".into())).unwrap());
    assert_eq!(store.task_state(id).unwrap(), TaskState::Gone);
    assert!(
        store
            .claim_task("w3", &[], Duration::from_secs(60))
            .unwrap()
            .is_none()
    );
    // A failed attempt reports its error.
    let id = store.submit_task("r1", "m", Vec::new(), &[]).unwrap();
    let t = store
        .claim_task("w1", &[], Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(store.finish_task(&t, Err("boom".into())).unwrap());
    assert_eq!(
        store.task_state(id).unwrap(),
        TaskState::Failed("boom".into())
    );
}

#[test]
fn a_labelled_task_goes_only_to_a_worker_with_its_labels() {
    let db = TestDatabase::new();
    let store = open(&db);
    let pos = vec!["pos".to_string()];
    let id = store.submit_task("r1", "push", Vec::new(), &pos).unwrap();
    let lease = Duration::from_secs(60);
    assert!(store.claim_task("plain", &[], lease).unwrap().is_none());
    assert!(
        store
            .claim_task("other", &["big".to_string()], lease)
            .unwrap()
            .is_none()
    );
    let both = vec!["big".to_string(), "pos".to_string()];
    assert_eq!(
        store
            .claim_task("pos-host", &both, lease)
            .unwrap()
            .unwrap()
            .id,
        id
    );
    // An unlabelled task goes to any worker.
    let any = store.submit_task("r1", "n", Vec::new(), &[]).unwrap();
    assert_eq!(
        store.claim_task("plain", &[], lease).unwrap().unwrap().id,
        any
    );
}

#[test]
fn queued_and_ended_tasks_wake_their_listeners() {
    let db = TestDatabase::new();
    let store = open(&db);
    let ready = store.listen(crate::store::TASKS_READY);
    let ended = store.listen(crate::store::TASKS_ENDED);
    let (ready, ended) = (ready.subscribe(), ended.subscribe());
    // Each listener counts once when it starts listening.
    wait_for("the listeners to listen", || {
        *ready.borrow() >= 1 && *ended.borrow() >= 1
    });
    let (r0, e0) = (*ready.borrow(), *ended.borrow());
    store.submit_task("r1", "n", Vec::new(), &[]).unwrap();
    wait_for("a queued task to be announced", || *ready.borrow() > r0);
    let task = store
        .claim_task("w", &[], Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(*ended.borrow(), e0, "nothing ended yet");
    assert!(store.finish_task(&task, Ok(Vec::new())).unwrap());
    wait_for("an ended task to be announced", || *ended.borrow() > e0);
}

#[test]
fn synced_histories_keep_the_history_contract_in_the_database() {
    let db = TestDatabase::new();
    let store = open(&db);
    crate::sync::history_contract(&*store.histories().unwrap(), "wf-1a2b3c4d");
    // Compactions and removed garbage left no segment the manifests do not name.
    let places = store.histories().unwrap();
    let names = places.names("wf-1a2b3c4d/").unwrap();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let place = places.place(&name);
        let status = crate::sync::status(&*place).unwrap().unwrap();
        let named: usize = status.tables.values().map(|t| t.segments).sum();
        let stored = place.segments().unwrap().len();
        assert!(stored <= named, "{name}: {stored} stored, {named} named");
    }
}

/// A commit of `orders` into the history `name` of `store`, with `cursor`.
fn sync_orders(store: &PgStore, name: &str, orders: &[&str], cursor: i64) -> Result<(), String> {
    use arrow_array::{RecordBatch, StringArray};
    let place = store.histories().unwrap().place(name);
    let mut history = crate::sync::History::open_at(place).map_err(|e| e.to_string())?;
    let batch = RecordBatch::try_from_iter(vec![(
        "order_id",
        std::sync::Arc::new(StringArray::from(orders.to_vec())) as _,
    )])
    .unwrap();
    let mut commit = history.begin(false);
    commit.upsert("lines", "order_id", batch).unwrap();
    commit
        .commit(serde_json::json!(cursor), serde_json::json!({}))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_history_is_shared_by_processes_and_written_by_one_at_a_time() {
    let db = TestDatabase::new();
    let (a, b) = (open(&db), open(&db));
    let name = "shop-00000000/orders/sync";
    sync_orders(&a, name, &["o1"], 1).unwrap();
    // Another process sees what the first committed.
    let seen = crate::sync::status(&*b.histories().unwrap().place(name))
        .unwrap()
        .unwrap();
    assert_eq!(seen.cursor, Some(serde_json::json!(1)));
    assert_eq!(seen.tables["lines"].keys, 1);
    assert_eq!(
        b.histories().unwrap().names("shop-00000000/").unwrap(),
        vec![name.to_string()]
    );

    // While one process syncs, another (or a second writer in the same process) is refused.
    let held = crate::sync::History::open_at(a.histories().unwrap().place(name)).unwrap();
    let err = sync_orders(&b, name, &["o2"], 2).unwrap_err();
    assert!(err.contains("right now"), "{err}");
    let err = sync_orders(&a, name, &["o2"], 2).unwrap_err();
    assert!(err.contains("right now"), "{err}");
    drop(held);
    sync_orders(&b, name, &["o2"], 2).unwrap();
    let h = crate::sync::History::open_at(a.histories().unwrap().place(name)).unwrap();
    assert_eq!(h.cursor(), Some(&serde_json::json!(2)));
    assert_eq!(h.status().tables["lines"].keys, 2);
}

#[test]
fn a_writer_that_lost_its_lock_keeps_nothing_of_its_sync() {
    use arrow_array::{RecordBatch, StringArray};
    let db = TestDatabase::new();
    let (a, b) = (open(&db), open(&db));
    let name = "shop-00000000/orders/sync";
    sync_orders(&a, name, &["o1"], 1).unwrap();

    let mut stale = crate::sync::History::open_at(a.histories().unwrap().place(name)).unwrap();
    // Its lock goes with its connection; another process syncs meanwhile.
    cut_connections(&db);
    wait_for("the other process to take the history", || {
        sync_orders(&b, name, &["o2"], 2).is_ok()
    });
    let batch = RecordBatch::try_from_iter(vec![(
        "order_id",
        std::sync::Arc::new(StringArray::from(vec!["o3"])) as _,
    )])
    .unwrap();
    let mut commit = stale.begin(false);
    commit.upsert("lines", "order_id", batch).unwrap();
    let err = commit
        .commit(serde_json::json!(3), serde_json::json!({}))
        .unwrap_err();
    assert!(
        matches!(err, crate::sync::SyncError::Overtaken { .. }),
        "{err}"
    );
    drop(stale);
    let h = crate::sync::History::open_at(b.histories().unwrap().place(name)).unwrap();
    assert_eq!(h.cursor(), Some(&serde_json::json!(2)));
    let keys = h.table("lines").unwrap().unwrap();
    assert_eq!(keys.num_rows(), 2, "o1 and o2, not the overtaken o3");
    // The overtaken writer's segment was not left behind either.
    assert_eq!(h.status().tables["lines"].segments, 2);
    assert_eq!(
        b.histories().unwrap().place(name).segments().unwrap().len(),
        2
    );
}
