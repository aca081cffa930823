//! Engine overhead with durable checkpoints, on sled (flushed before each node counts as done)
//! and on PostgreSQL (one committed transaction per checkpoint; the server `scripts/postgres`
//! starts, a fresh database per iteration).
//!
//! `cargo bench --bench engine` measures:
//! - `chain_1000`: 1,000 trivial nodes, each needing the previous one (`core.noop` is
//!   effect-free, so each starts while the checkpoint before it is flushed: flushes are shared);
//! - `fanout_1000`: one source, 1,000 independent trivial nodes, one join (shared flushes);
//! - the same two with `_postgres`;
//! - `fsync_1000`: 1,000 small writes to a file, each synced to disk: the floor a chain of durable
//!   nodes is measured against in the same sitting (disks differ, and shared machines vary).
//!
//! Targets: chain at most 1.5x `fsync_1000`, fan-out under 100 ms in total (sled).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use flow_engine::compile::{self, Workflow};
use flow_engine::executor::{self, ExecOptions, Shutdown};
use flow_engine::store::{PgStore, RunStatus, SledStore, StateStore};
use flow_engine::test_postgres::TestDatabase;

fn chain(n: usize) -> String {
    let mut y =
        String::from("name: chain\nnodes:\n  - { id: n0, kind: action, type: core.noop }\n");
    for i in 1..n {
        let _ = writeln!(
            y,
            "  - {{ id: n{i}, kind: action, type: core.noop, needs: n{} }}",
            i - 1
        );
    }
    y
}

fn fanout(n: usize) -> String {
    let mut y =
        String::from("name: fanout\nnodes:\n  - { id: source, kind: action, type: core.noop }\n");
    for i in 0..n {
        let _ = writeln!(
            y,
            "  - {{ id: f{i}, kind: action, type: core.noop, needs: source }}"
        );
    }
    let needs: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    let _ = writeln!(
        y,
        "  - {{ id: join, kind: output, type: core.noop, needs: [{}] }}",
        needs.join(", ")
    );
    y
}

fn workflow(text: &str) -> Arc<Workflow> {
    let registry = flow_engine::nodes::core_registry();
    Arc::new(compile::compile(text, std::path::Path::new("bench.yaml"), &registry).expect("valid"))
}

fn run_once(rt: &tokio::runtime::Runtime, wf: Arc<Workflow>, store: Arc<dyn StateStore>) {
    let record = flow_engine::runs::new_run(
        &wf,
        wf.params.clone(),
        "bench",
        &[],
        chrono::Utc::now(),
        None,
        None,
    )
    .expect("run");
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(Shutdown::None);
    let opts = ExecOptions {
        concurrency: 64,
        shutdown: stop_rx,
        events: None,
        remote: None,
    };
    let outcome = rt
        .block_on(executor::execute(
            wf,
            store,
            record,
            HashMap::new(),
            HashSet::new(),
            opts,
        ))
        .expect("run");
    assert_eq!(outcome.run.status, RunStatus::Succeeded);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for (name, text) in [("chain_1000", chain(1000)), ("fanout_1000", fanout(1000))] {
        let wf = workflow(&text);
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store: Arc<dyn StateStore> =
                        Arc::new(SledStore::open(dir.path()).expect("store"));
                    (dir, store)
                },
                |(dir, store)| {
                    run_once(&rt, wf.clone(), store);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.bench_function("fsync_1000", |b| {
        use std::os::unix::fs::FileExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("log")).expect("file");
        let record = [7u8; 400];
        b.iter(|| {
            for i in 0..1000u64 {
                file.write_all_at(&record, i * 400).expect("write");
                file.sync_data().expect("sync");
            }
        })
    });
    for (name, text) in [
        ("chain_1000_postgres", chain(1000)),
        ("fanout_1000_postgres", fanout(1000)),
    ] {
        let wf = workflow(&text);
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let db = TestDatabase::new();
                    let store: Arc<dyn StateStore> =
                        Arc::new(PgStore::open(db.url()).expect("store"));
                    (db, store)
                },
                |(db, store)| {
                    run_once(&rt, wf.clone(), store);
                    db
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
