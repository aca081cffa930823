//! `flow run` and `flow resume`: a run in the foreground, with live progress, stopped cleanly
//! by SIGINT or SIGTERM.

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use chrono::Utc;
use tokio::sync::watch;

use flow_engine::compile::Workflow;
use flow_engine::executor::{self, ExecOptions, Shutdown};
use flow_engine::node::Registry;
use flow_engine::notify;
use flow_engine::plural::plural;
use flow_engine::runs;
use flow_engine::store::{RunRecord, RunStatus, StateStore};

use super::args::{ResumeArgs, RunArgs};
use super::{Failure, Outcome, find_run, forced_exit, load, open_store, progress, report};

/// Builds a multi-threaded runtime for a run.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            error: anyhow!("cannot start the async runtime: {e}"),
        })
}

pub(super) fn run(state: &Path, args: RunArgs, registry: &Registry) -> Outcome {
    let wf = Arc::new(load(&args.file, registry)?);
    let params = runs::parse_params(&wf, &args.params)?;
    let (store, remote) = open_for_run(state, args.workers)?;
    let newest = store.newest_run_id()?;
    let mut record = runs::new_run(
        &wf,
        params.values,
        "manual",
        &args.triggers,
        Utc::now(),
        None,
        newest.as_deref(),
    )?;
    record.param_overrides = Some(params.overrides);
    eprintln!(
        "run {} of `{}` ({})",
        record.id,
        wf.name,
        plural(wf.nodes.len() as u64, "node")
    );
    for w in &wf.warnings {
        eprintln!("{w}");
    }
    execute(
        wf,
        store,
        record,
        (HashMap::new(), Default::default()),
        (args.concurrency, remote),
        state,
    )
}

pub(super) fn resume(state: &Path, args: ResumeArgs, registry: &Registry) -> Outcome {
    let (store, remote) = open_for_run(state, args.workers)?;
    let mut record = find_run(store.as_ref(), &args.run_id)?;
    if store.live_runs()?.contains(&record.id) {
        return Err(Failure::invalid(anyhow!(
            "run {} is running right now (in flow serve or another flow command); wait for it to end",
            record.id
        )));
    }
    let path = PathBuf::from(&record.workflow_path);
    if !path.exists() {
        return Err(Failure::invalid(anyhow!(
            "run {} used the workflow {}, which no longer exists",
            record.id,
            path.display()
        )));
    }
    let wf = Arc::new(load(&path, registry)?);
    let previous = store.nodes(&record.id)?;
    let plan = runs::plan_resume(&wf, &record, &previous, args.from.as_deref(), &args.params)?;
    eprintln!("resuming run {} of `{}`", record.id, wf.name);
    if plan.workflow_changed {
        eprintln!("  the workflow changed since this run");
    }
    for change in &plan.changed_params {
        eprintln!("  {change}");
    }
    plan.apply_params(&mut record);
    for id in &plan.removed {
        eprintln!(
            "  node `{id}` is no longer in the workflow (removed or renamed); its checkpoint is kept but not used"
        );
    }
    if !plan.reused.is_empty() {
        eprintln!(
            "  reusing {} finished node{} from checkpoints",
            plan.reused.len(),
            if plan.reused.len() == 1 { "" } else { "s" }
        );
    }
    for rerun in &plan.reruns {
        eprintln!("  will run `{}`: {}", rerun.node, rerun.reason);
    }
    record.executions += 1;
    let previous: HashMap<String, _> = previous
        .into_iter()
        .map(|r| (r.node_id.clone(), r))
        .collect();
    execute(
        wf,
        store,
        record,
        (previous, plan.reuse),
        (args.concurrency, remote),
        state,
    )
}

/// A run's store, and where its nodes run when not in this process.
pub(super) type RunStore = (Arc<dyn StateStore>, Option<Arc<dyn executor::Remote>>);

/// The store for a run, and with `--workers` the `flow worker` processes that run its nodes,
/// reached through the same PostgreSQL store.
pub(super) fn open_for_run(state: &Path, workers: bool) -> Result<RunStore, Failure> {
    if !workers {
        return Ok((open_store(state)?, None));
    }
    if super::postgres_url().is_none() {
        return Err(workers_need_postgres());
    }
    let store = super::store_access::open_postgres_store()?;
    let remote: Arc<dyn executor::Remote> =
        Arc::new(flow_engine::worker::PgRemote::new(store.clone()));
    Ok((store, Some(remote)))
}

pub(super) fn workers_need_postgres() -> Failure {
    Failure::invalid(anyhow!(
        "--workers runs nodes on `flow worker` processes, which share a PostgreSQL store: give it with --store postgres://... or FLOW_STORE"
    ))
}

/// Checkpoints of earlier executions, and the nodes that keep theirs.
type Previous = (
    HashMap<String, flow_engine::store::NodeRecord>,
    std::collections::HashSet<usize>,
);

fn execute(
    wf: Arc<Workflow>,
    store: Arc<dyn StateStore>,
    record: RunRecord,
    (previous, reuse): Previous,
    (concurrency, remote): (usize, Option<Arc<dyn executor::Remote>>),
    state: &Path,
) -> Outcome {
    let rt = runtime()?;
    let run_id = record.id.clone();
    let tty = std::io::stderr().is_terminal();
    let signals = {
        let _runtime = rt.enter();
        Signals::install()?
    };
    let (stop_tx, stop_rx) = watch::channel(Shutdown::None);
    // Signals stay handled until the notifications are sent, so Ctrl-C still stops those.
    let signals = rt.spawn(signals.forward(stop_tx, true));
    let run = {
        let wf = wf.clone();
        let stop_rx = stop_rx.clone();
        async move {
            let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
            let display = tokio::spawn(progress::display(events_rx, wf.clone(), tty));
            let opts = ExecOptions {
                concurrency,
                shutdown: stop_rx,
                events: Some(events_tx),
                remote,
            };
            let result = executor::execute(wf, store, record, previous, reuse, opts).await;
            let _ = display.await;
            result
        }
    };
    let outcome = rt.block_on(run);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            signals.abort();
            return Err(Failure {
                code: 1,
                error: anyhow!(e),
            });
        }
    };
    report::summary(&outcome);
    let _ = std::io::stdout().flush();
    rt.block_on(notify(&wf, &outcome, state, stop_rx));
    signals.abort();
    match outcome.run.status {
        RunStatus::Succeeded => Ok(ExitCode::SUCCESS),
        RunStatus::Failed => {
            eprintln!(
                "run {run_id} failed. Fix the cause, then resume it with:\n  flow resume {run_id}"
            );
            Ok(ExitCode::from(1))
        }
        RunStatus::Interrupted | RunStatus::Running | RunStatus::Queued => {
            eprintln!("run {run_id} was interrupted. Resume it with:\n  flow resume {run_id}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Sends the run's `on_failure` or `on_success` notifications (failures are logged as
/// warnings; they never change the exit code). Nothing is sent once the user asked to stop.
async fn notify(
    wf: &Workflow,
    outcome: &executor::RunOutcome,
    state: &Path,
    mut stop: watch::Receiver<Shutdown>,
) {
    if notify::for_status(&wf.notifications, outcome.run.status).is_empty()
        || *stop.borrow_and_update() != Shutdown::None
    {
        return;
    }
    let cx = notify::MessageContext {
        state_dir: Some(state.to_path_buf()),
        ui_base: None,
    };
    let opts = notify::SendOptions::default();
    tokio::select! {
        _ = notify::notify_run(&wf.notifications, outcome, &cx, &opts) => {}
        _ = stop.changed() => eprintln!("stopping: notifications not sent"),
    }
}

/// SIGINT and SIGTERM handlers, installed before anything that a signal should stop cleanly.
pub(super) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside the runtime.
    pub(super) fn install() -> Result<Self, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let failed = |e: std::io::Error| Failure {
            code: 1,
            error: anyhow!("cannot install signal handlers: {e}"),
        };
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
            terminate: signal(SignalKind::terminate()).map_err(failed)?,
        })
    }

    /// First Ctrl-C or SIGTERM: start nothing new and let running nodes finish. Second: cancel
    /// them, and exit anyway if that has not ended the process in time; a third exits at once.
    /// `announce`: say so (the server logs it itself).
    pub(super) async fn forward(mut self, stop: watch::Sender<Shutdown>, announce: bool) {
        for level in [Shutdown::Drain, Shutdown::Cancel] {
            let signal = self.next().await;
            match level {
                _ if !announce => {}
                Shutdown::Drain => eprintln!(
                    "stopping: no new nodes will start; waiting for running nodes to finish (press Ctrl-C again to cancel them)"
                ),
                _ => eprintln!("cancelling running nodes"),
            }
            let _ = stop.send(level);
            if level == Shutdown::Cancel {
                forced_exit::after_grace(forced_exit::code(signal));
            }
        }
        let signal = self.next().await;
        forced_exit::now(forced_exit::code(signal), "stopped a third time");
    }

    /// Waits for SIGINT or SIGTERM; returns its number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => 2,
            _ = self.terminate.recv() => 15,
        }
    }
}
