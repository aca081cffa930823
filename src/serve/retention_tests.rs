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
use crate::store::{RunStatus, SledStore, StateStore, disk_usage, human_bytes};

/// The size of the large output each run makes (above the 256 KiB that goes to a file).
const LARGE: usize = 300 * 1024;

/// `test.large`: outputs [`LARGE`] bytes of text that differ per run.
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

/// Runs the workflow once a day for `days` days on a sled store in `dir`, pruning to
/// `keep` runs after each when given; the largest size the store reached.
fn daily_runs(dir: &std::path::Path, days: i64, keep: Option<usize>) -> u64 {
    let mut registry: Registry = crate::nodes::builtin_registry();
    registry.register(Large);
    let wf = Arc::new(
        crate::compile::compile(WORKFLOW, &dir.join("daily.yaml"), &registry).expect("valid"),
    );
    let store: Arc<dyn StateStore> = Arc::new(SledStore::open(&dir.join("state")).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let policy = Retention {
        keep,
        ..Default::default()
    };
    let first = Utc.with_ymd_and_hms(2026, 1, 1, 6, 0, 0).unwrap();
    let mut largest = 0;
    for day in 0..days {
        let now = first + TimeDelta::days(day);
        let record =
            crate::runs::new_run(&wf, wf.params.clone(), "schedule", &[], now, None).unwrap();
        let (_stop, shutdown) = watch::channel(Shutdown::None);
        let opts = ExecOptions {
            concurrency: 2,
            shutdown,
            events: None,
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
        if keep.is_some() {
            prune(store.as_ref(), &policy, &HashSet::new(), false).unwrap();
        }
        largest = largest.max(disk_usage(&dir.join("state")));
    }
    largest
}

/// What a store keeping 30 daily runs of this workflow may take: their output files (two a
/// run: `extract`'s, and `after`'s, which passes it on; each rounded up to whole blocks), and
/// an allowance for the database, whose size levels off at about 2.6 MB here (sled reuses the
/// space of removed records).
const BOUND: u64 = 30 * 2 * (LARGE as u64 + 8 * 1024) + 8 * 1024 * 1024;

#[test]
fn a_year_of_daily_runs_kept_to_thirty_stays_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let largest = daily_runs(dir.path(), 365, Some(30));
    let store = SledStore::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.runs().unwrap().len(), 30);
    let files = std::fs::read_dir(dir.path().join("state/outputs"))
        .unwrap()
        .count();
    assert_eq!(files, 30, "one output directory per kept run");
    let database = disk_usage(&dir.path().join("state/db"));
    assert!(
        database < 8 * 1024 * 1024,
        "the database took {}",
        human_bytes(database)
    );
    assert!(
        largest < BOUND,
        "the store reached {} (bound {})",
        human_bytes(largest),
        human_bytes(BOUND)
    );
    // Without retention the output files alone pass the bound: the bound says something.
    assert!(365 * LARGE as u64 > BOUND);
}

#[test]
fn without_retention_the_store_passes_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // The days it takes for the outputs alone to pass the bound, and a week more.
    let days = (BOUND / LARGE as u64) as i64 + 7;
    let largest = daily_runs(dir.path(), days, None);
    assert!(
        largest > BOUND,
        "{} after {days} runs",
        human_bytes(largest)
    );
}
