//! Retention on a real sled store: a year of daily runs stays within a bound.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeDelta, TimeZone, Utc};
use tokio::sync::watch;

use super::*;
use crate::data::{Data, Output};
use crate::executor::{ExecOptions, Shutdown};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    Params, Registry,
};
use crate::store::{RunStatus, SledStore, StateStore, StoreError, disk_usage, human_bytes};

/// The size of the large output each run makes (above the 256 KiB that goes to a file).
const LARGE: usize = 300 * 1024;
/// The node state each run rewrites, as deploy rewrites its profile snapshot (sled keeps it).
const SNAPSHOT: usize = 200 * 1024;

/// `test.large`: outputs [`LARGE`] bytes of text that differ per run, and rewrites a
/// [`SNAPSHOT`]-byte node state.
struct Large;

impl NodeType for Large {
    fn name(&self) -> &'static str {
        "test.large"
    }
    fn summary(&self) -> &'static str {
        "a large output"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn configure(&self, _: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(Large))
    }
}

#[async_trait]
impl Node for Large {
    async fn run(&self, ctx: NodeContext, _: Inputs) -> Result<Output, NodeError> {
        let text: String = ctx.run_id.chars().cycle().take(LARGE).collect();
        ctx.state.put("snapshot", &text.as_bytes()[..SNAPSHOT])?;
        Ok(Output::data(Data::Json(serde_json::Value::String(text))))
    }
}

const WORKFLOW: &str = "\
name: daily
nodes:
  - id: start
    kind: trigger
    type: manual
  - id: extract
    kind: action
    type: test.large
    needs: [start]
  - id: after
    kind: action
    type: core.noop
    needs: [extract]
";

/// How the daily runs are made.
#[derive(Clone, Copy, PartialEq)]
enum Daily {
    /// One process, as `flow serve`: retention after each run.
    Serve { keep: usize },
    /// A process per run, as `flow run` from cron followed by `flow runs prune` (which
    /// compacts the database).
    RunThenPrune { keep: usize },
    /// One process, nothing removed.
    KeepAll,
}

/// Runs the workflow once a day for `days` days on a sled store in `dir`; the largest size
/// the store reached.
fn daily_runs(dir: &std::path::Path, days: i64, how: Daily) -> u64 {
    let mut registry: Registry = crate::nodes::core_registry();
    registry.register(Large);
    let wf = Arc::new(
        crate::compile::compile(WORKFLOW, &dir.join("daily.yaml"), &registry).expect("valid"),
    );
    let state = dir.join("state");
    // A run's checkpoint writer lets go of the store just after the run ends: wait for it.
    let open = || -> Arc<dyn StateStore> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledStore::open(&state) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return Arc::new(other.unwrap()),
            }
        }
    };
    let mut store = open();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let first = Utc.with_ymd_and_hms(2026, 1, 1, 6, 0, 0).unwrap();
    let mut largest = 0;
    for day in 0..days {
        let now = first + TimeDelta::days(day);
        let newest = store.runs().unwrap().first().map(|r| r.id.clone());
        let record = crate::runs::new_run(
            &wf,
            wf.params.clone(),
            "schedule",
            &[],
            now,
            None,
            newest.as_deref(),
        )
        .unwrap();
        let (_stop, shutdown) = watch::channel(Shutdown::None);
        let opts = ExecOptions {
            concurrency: 2,
            shutdown,
            events: None,
            remote: None,
        };
        let outcome = rt
            .block_on(crate::executor::execute(
                wf.clone(),
                store.clone(),
                record,
                Default::default(),
                Default::default(),
                opts,
            ))
            .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Succeeded);
        let keep = |keep| Retention {
            keep: Some(keep),
            ..Default::default()
        };
        match how {
            Daily::Serve { keep: n } => {
                prune(store.as_ref(), &keep(n), &HashSet::new(), false).unwrap();
            }
            Daily::RunThenPrune { keep: n } => {
                // The run's process ends; the prune's opens the store, then compacts it.
                drop(store);
                let pruning = open();
                prune(pruning.as_ref(), &keep(n), &HashSet::new(), false).unwrap();
                drop(pruning);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while let Err(e) = SledStore::compact(&state) {
                    assert!(
                        matches!(e, StoreError::Locked { .. })
                            && std::time::Instant::now() < deadline,
                        "{e}"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                store = open();
            }
            Daily::KeepAll => {}
        }
        largest = largest.max(disk_usage(&state));
    }
    largest
}

/// Output files a store keeping 30 runs holds: two a run (`extract`'s, and `after`'s, which
/// passes it on), each rounded up to whole blocks.
const KEPT_FILES: u64 = 30 * 2 * (LARGE as u64 + 8 * 1024);

/// The bound for 30 runs served by one process: the output files and 48 MiB for the
/// database. sled keeps several superseded copies of a large page (here the snapshot) until
/// it reuses their segments; measured, the database swings between 23 and 38 MB over the
/// year without a trend, and the store peaks at about 43 MB.
const SERVE_BOUND: u64 = KEPT_FILES + 48 * 1024 * 1024;

/// The bound with a prune (and compaction) after each run: the output files and 8 MiB for
/// the database, which then holds little more than the live records (the store peaks at
/// about 21 MB).
const PRUNED_BOUND: u64 = KEPT_FILES + 8 * 1024 * 1024;

fn assert_kept_thirty(dir: &std::path::Path) {
    let store = SledStore::open(&dir.join("state")).unwrap();
    assert_eq!(store.runs().unwrap().len(), 30);
    let files = std::fs::read_dir(dir.join("state/outputs"))
        .unwrap()
        .count();
    assert_eq!(files, 30, "one output directory per kept run");
}

#[test]
fn a_year_of_daily_runs_served_with_keep_thirty_stays_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let largest = daily_runs(dir.path(), 365, Daily::Serve { keep: 30 });
    assert_kept_thirty(dir.path());
    assert!(
        largest < SERVE_BOUND,
        "the store reached {} (bound {})",
        human_bytes(largest),
        human_bytes(SERVE_BOUND)
    );
}

#[test]
fn four_months_of_daily_runs_each_followed_by_a_prune_stay_within_a_bound() {
    // A process per run costs opens and compactions: four times the kept window shows the
    // level the store settles at, in a third of the time a year would take.
    let dir = tempfile::tempdir().unwrap();
    let largest = daily_runs(dir.path(), 120, Daily::RunThenPrune { keep: 30 });
    assert_kept_thirty(dir.path());
    assert!(
        largest < PRUNED_BOUND,
        "the store reached {} (bound {})",
        human_bytes(largest),
        human_bytes(PRUNED_BOUND)
    );
}

#[test]
fn without_retention_the_store_passes_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // The days it takes for the outputs alone to pass the larger bound, and a week more.
    let days = (SERVE_BOUND / LARGE as u64) as i64 + 7;
    let largest = daily_runs(dir.path(), days, Daily::KeepAll);
    assert!(
        largest > SERVE_BOUND,
        "{} after {days} runs",
        human_bytes(largest)
    );
}
