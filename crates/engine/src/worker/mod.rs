//! Node attempts on `flow worker` processes, through the PostgreSQL store's task queue.
//!
//! [`PgRemote`] is the executor's side: it queues an attempt and waits for its outcome. [`run`]
//! is a worker: it claims queued attempts of any run, runs them, and reports their outputs,
//! renewing its lease on each while it runs. A worker that dies stops renewing: once the lease
//! runs out another worker claims the attempt and runs it again (at least once, as on one
//! machine); the first one's late result is refused.

mod dispatch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use dispatch::PgRemote;

use crate::data;
use crate::executor::{NodeTask, Shutdown, WorkflowCache, execute_task};
use crate::node::Registry;
use crate::store::{ClaimedTask, PgStore, StateStore, StoreError};

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Attempts run at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// The name the worker claims under (shown while it runs an attempt).
    pub name: String,
    /// What this worker offers: it takes nodes whose labels are all among these (and nodes
    /// without labels).
    pub labels: Vec<String>,
}

/// What a worker did, for its last log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub succeeded: u64,
    pub failed: u64,
    /// Attempts whose claim was lost (lease ran out, or withdrawn) or handed back on a stop.
    pub abandoned: u64,
}

/// Things a worker reports as it goes.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Claimed {
        run_id: String,
        node_id: String,
    },
    Finished {
        run_id: String,
        node_id: String,
        ok: bool,
        error: Option<String>,
    },
    Abandoned {
        run_id: String,
        node_id: String,
        why: String,
    },
}

enum Ended {
    Reported(bool),
    Abandoned,
}

/// Claims and runs attempts until `shutdown`: `Drain` stops claiming and lets the running ones
/// finish; `Cancel` stops them and hands them back to the queue at once.
pub async fn run(
    store: Arc<PgStore>,
    registry: Registry,
    opts: WorkerOptions,
    mut shutdown: watch::Receiver<Shutdown>,
    events: Option<tokio::sync::mpsc::UnboundedSender<WorkerEvent>>,
) -> Result<WorkerStats, StoreError> {
    let mut stats = WorkerStats::default();
    let mut running: JoinSet<Ended> = JoinSet::new();
    // Queued work wakes the worker at once; `poll` is the fallback.
    let listener = store.listen(crate::store::TASKS_READY);
    let mut ready = listener.subscribe();
    let mut listening = true;
    let shared = Arc::new(Shared {
        store: store.clone(),
        registry,
        workflows: WorkflowCache::default(),
        lease: opts.lease,
        events: events.clone(),
    });
    let emit = |e: WorkerEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    loop {
        let level = *shutdown.borrow();
        if level == Shutdown::None {
            while running.len() < opts.concurrency.max(1) {
                let Some(claimed) = store.claim_task(&opts.name, &opts.labels, opts.lease)? else {
                    break;
                };
                let task: NodeTask = match serde_json::from_slice(&claimed.spec) {
                    Ok(task) => task,
                    Err(e) => {
                        store.finish_task(&claimed, Err(format!("unreadable task: {e}")))?;
                        continue;
                    }
                };
                emit(WorkerEvent::Claimed {
                    run_id: task.run_id.clone(),
                    node_id: task.node_id.clone(),
                });
                running.spawn(attempt(shared.clone(), claimed, task, shutdown.clone()));
            }
        } else if running.is_empty() {
            return Ok(stats);
        }
        tokio::select! {
            Some(done) = running.join_next() => match done {
                Ok(Ended::Reported(true)) => stats.succeeded += 1,
                Ok(Ended::Reported(false)) => stats.failed += 1,
                Ok(Ended::Abandoned) | Err(_) => stats.abandoned += 1,
            },
            _ = tokio::time::sleep(opts.poll), if level == Shutdown::None => {}
            woke = ready.changed(), if level == Shutdown::None && listening => {
                listening = woke.is_ok();
            }
            changed = shutdown.changed() => {
                if changed.is_err() && running.is_empty() {
                    return Ok(stats);
                }
            }
        }
    }
}

/// What a worker's attempts share.
struct Shared {
    store: Arc<PgStore>,
    registry: Registry,
    workflows: WorkflowCache,
    lease: Duration,
    events: Option<tokio::sync::mpsc::UnboundedSender<WorkerEvent>>,
}

/// One claimed attempt: run it while renewing the lease, then report it.
async fn attempt(
    shared: Arc<Shared>,
    claimed: ClaimedTask,
    task: NodeTask,
    mut shutdown: watch::Receiver<Shutdown>,
) -> Ended {
    let (store, lease) = (&shared.store, shared.lease);
    let emit = |e: WorkerEvent| {
        if let Some(tx) = &shared.events {
            let _ = tx.send(e);
        }
    };
    let as_state: Arc<dyn StateStore> = store.clone();
    let work = execute_task(as_state, &shared.registry, &shared.workflows, &task);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(lease / 3);
    renew.tick().await;
    let why = loop {
        tokio::select! {
            result = &mut work => {
                let ok = result.is_ok();
                let error = result.as_ref().err().cloned();
                let result = result.and_then(|output| {
                    data::encode(&output).map_err(|e| format!("cannot encode the output: {e}"))
                });
                return match store.finish_task(&claimed, result) {
                    Ok(true) => {
                        emit(WorkerEvent::Finished {
                            run_id: task.run_id.clone(),
                            node_id: task.node_id.clone(),
                            ok,
                            error,
                        });
                        Ended::Reported(ok)
                    }
                    Ok(false) => abandoned(&emit, &task, "its claim was lost before it finished; the result was dropped".into()),
                    Err(e) => abandoned(&emit, &task, format!("cannot report the result: {e}")),
                };
            }
            _ = renew.tick() => match store.renew_task(&claimed, lease) {
                Ok(true) => {}
                Ok(false) => break "its claim was lost (the lease ran out, or the run withdrew it)".to_string(),
                Err(e) => tracing::warn!("cannot renew the claim on `{}`: {e}", task.node_id),
            },
            _ = shutdown.wait_for(|s| *s == Shutdown::Cancel) => {
                let _ = store.release_task(&claimed);
                break "stopped; handed back to the queue".to_string();
            }
        }
    };
    abandoned(&emit, &task, why)
}

fn abandoned(emit: &impl Fn(WorkerEvent), task: &NodeTask, why: String) -> Ended {
    emit(WorkerEvent::Abandoned {
        run_id: task.run_id.clone(),
        node_id: task.node_id.clone(),
        why,
    });
    Ended::Abandoned
}
