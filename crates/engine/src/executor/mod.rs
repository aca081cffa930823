//! Runs a workflow's nodes as tokio tasks and checkpoints every result.
//!
//! The scheduler is one loop that owns all node states. When the nodes a node needs settle, its
//! trigger rule ([`crate::trigger_rule`]) decides: it runs, is skipped (a branch was not taken,
//! or for a join every input was skipped), or is marked `upstream_failed` (an input failed).
//! Ready nodes run concurrently up to a limit, each in its own task; every attempt runs in a
//! further task so a panic fails the attempt, not the process.
//!
//! Durability: a node's output and its `succeeded` record are written in one atomic batch and
//! flushed before the node counts as done. Checkpoints of nodes finishing together share one
//! flush (group commit). A dependent that is effect-free ([`crate::node::Node::effect_free`])
//! may start from the output in memory while that flush is under way: checkpoints reach the
//! store in the order they were handed over and none after a failed one, so its own checkpoint
//! is never durable before its input's, and a crash loses it with the input. Any other node
//! starts only once the checkpoints its inputs rest on are durable.
//!
//! This module holds the entry point, [`execute`]: it sets a run up, drives the loop and records
//! how the run ended. `scheduler` keeps the node states and dispatches ready nodes, `readiness`
//! applies trigger rules and cascades skips, `job` is one node's task and its checkpoint,
//! `attempt` its retries and timeouts, `checkpoint` the group commit, `context` what nodes share.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::compile::Workflow;
use crate::node::NodeKind;
use crate::run_cache::RunCache;
use crate::store::{
    BoundedStore, InvalidTransition, NodeEvent, NodeRecord, NodeStatus, RunEvent, RunRecord,
    StateStore, StoreError, Write,
};
use crate::template::RunVars;

mod attempt;
mod checkpoint;
mod context;
mod job;
mod readiness;
mod remote;
mod scheduler;

pub use remote::{NodeTask, Remote, RemoteEnd, TaskInput, WorkflowCache, execute_task};

use attempt::panic_text;
use checkpoint::Checkpointer;
use context::{BaseContext, StoreLedger};
use job::TaskResult;
use scheduler::Scheduler;

/// How far a stop request has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shutdown {
    /// Keep going.
    None,
    /// Start nothing new; let running nodes finish and checkpoint.
    Drain,
    /// Cancel running nodes too; they are recorded as interrupted.
    Cancel,
}

/// Progress events for displays and logs.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        node: String,
        attempt: u32,
    },
    Retrying {
        node: String,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    Finished {
        node: String,
        status: NodeStatus,
        duration: Duration,
        rows_out: u64,
        error: Option<String>,
    },
    Skipped {
        node: String,
        status: NodeStatus,
        reason: String,
    },
    Reused {
        node: String,
        status: NodeStatus,
    },
    Draining {
        running: usize,
    },
    /// A problem that does not fail the node.
    Warning {
        node: String,
        message: String,
    },
}

/// What to run and how.
pub struct ExecOptions {
    pub concurrency: usize,
    pub shutdown: watch::Receiver<Shutdown>,
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Where node attempts run when not in this process (`flow worker` processes).
    pub remote: Option<Arc<dyn Remote>>,
}

/// The result of executing a run.
#[derive(Debug)]
pub struct RunOutcome {
    pub run: RunRecord,
    pub nodes: Vec<NodeRecord>,
}

/// Errors that stop a run as a whole (a node's failure is not one of them).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
}

/// Executes `run` of `workflow`. Nodes in `reuse` keep their records and stored outputs; all
/// others run (or are skipped).
pub async fn execute(
    workflow: Arc<Workflow>,
    store: Arc<dyn StateStore>,
    mut run: RunRecord,
    previous: HashMap<String, NodeRecord>,
    reuse: HashSet<usize>,
    mut opts: ExecOptions,
) -> Result<RunOutcome, ExecError> {
    // A write that cannot become durable (a full disk) fails the run instead of hanging it.
    let store: Arc<dyn StateStore> = Arc::new(BoundedStore::new(store)?);
    let checkpoints = Checkpointer::start(store.clone());
    run.status = run.status.apply(RunEvent::Started)?;
    run.updated_at = Utc::now();
    run.error = None;
    run.finished_at = None;
    checkpoints.durable(vec![Write::Run(run.clone())]).await?;

    let n = workflow.nodes.len();
    let (handover_tx, mut handovers) = mpsc::unbounded_channel();
    let mut sched = Scheduler {
        wf: workflow.clone(),
        records: Vec::with_capacity(n),
        outputs: vec![None; n],
        consumers_left: vec![0; n],
        readers_left: vec![0; n],
        run_cache: RunCache::new(),
        ready: BTreeSet::new(),
        position: vec![0; n],
        events: opts.events.clone(),
        pending_writes: Vec::new(),
        execution: run.executions,
        run_id: run.id.clone(),
        in_flight: HashMap::new(),
        refused: None,
        unconfirmed: vec![Vec::new(); n],
        handed_over: vec![false; n],
        handed_over_count: 0,
        handover: handover_tx,
    };
    for (pos, &i) in workflow.order.iter().enumerate() {
        sched.position[i] = pos;
    }
    for node in &workflow.nodes {
        let mut record = previous
            .get(&node.id)
            .cloned()
            .unwrap_or_else(|| NodeRecord::new(&node.id));
        if reuse.contains(&node.index) && record.status.is_reusable() {
            sched.emit(Event::Reused {
                node: node.id.clone(),
                status: record.status,
            });
        } else {
            record.apply(NodeEvent::Rerun)?;
            record.fingerprint = node.fingerprint_with(&run.params);
        }
        sched.records.push(record);
    }
    for node in &workflow.nodes {
        sched.consumers_left[node.index] = workflow.dependents(node.index).count();
        sched.readers_left[node.index] = sched.consumers_left[node.index];
    }

    let fired: HashSet<&str> = run.trigger.triggers.iter().map(String::as_str).collect();
    let run_vars = RunVars::for_run(&run, &workflow.dir);
    let trigger_json = serde_json::to_value(&run.trigger).unwrap_or(Json::Null);
    let base_ctx = BaseContext {
        run_id: run.id.clone(),
        workflow_dir: workflow.dir.clone(),
        workflow_path: std::path::PathBuf::from(&run.workflow_path),
        params: run.params.clone(),
        trigger: trigger_json,
        effects: Arc::new(StoreLedger {
            store: store.clone(),
        }),
        store: store.clone(),
        run_cache: sched.run_cache.clone(),
    };

    // Settle what can be settled before anything runs: unfired triggers, skips.
    for &i in &workflow.order {
        if sched.status(i) != NodeStatus::Pending {
            continue;
        }
        let node = &workflow.nodes[i];
        if node.kind == NodeKind::Trigger && !fired.contains(node.id.as_str()) {
            sched.settle(
                i,
                NodeEvent::Skipped {
                    reason: "trigger was not fired in this run".into(),
                },
            );
            continue;
        }
        sched.evaluate(i);
    }

    let limit = workflow.concurrency.unwrap_or(opts.concurrency).max(1);
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut stop = *opts.shutdown.borrow();
    let mut fatal: Option<String> = None;
    let mut signals_open = true;

    loop {
        sched.flush_pending_writes(&checkpoints);
        if let Some(refused) = sched.refused.take() {
            fatal.get_or_insert_with(|| refused.to_string());
        }
        // A task that handed its output over only waits for the disk.
        while stop == Shutdown::None
            && fatal.is_none()
            && running.len() - sched.handed_over_count < limit
        {
            let Some((_, i)) = sched.ready.pop_first() else {
                break;
            };
            let job = sched.job(i, &base_ctx, &run_vars, &run.id, &opts, &checkpoints);
            let handle = tasks.spawn(job.run());
            running.insert(handle.id(), i);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some(handover) = handovers.recv() => sched.handed_over(handover),
            joined = tasks.join_next_with_id() => {
                let Some(joined) = joined else { break };
                // A task hands its output over before it ends: take that first.
                while let Ok(handover) = handovers.try_recv() {
                    sched.handed_over(handover);
                }
                match joined {
                    Ok((id, result)) => {
                        running.remove(&id);
                        if let Some(err) = &result.fatal {
                            fatal.get_or_insert_with(|| err.clone());
                        }
                        sched.finish(result);
                    }
                    Err(err) => {
                        let Some(i) = running.remove(&err.id()) else { continue };
                        let (interrupted, message) = if err.is_cancelled() {
                            (true, "cancelled by shutdown".to_string())
                        } else {
                            (false, format!("node task panicked: {}", panic_text(err.into_panic())))
                        };
                        sched.abandon(i, interrupted, message);
                    }
                }
            }
            changed = opts.shutdown.changed(), if stop != Shutdown::Cancel && signals_open => {
                if changed.is_err() {
                    // Nobody can ask for a stop any more.
                    signals_open = false;
                    continue;
                }
                let level = *opts.shutdown.borrow();
                if level > stop {
                    stop = level;
                    if stop == Shutdown::Drain {
                        sched.emit(Event::Draining { running: running.len() });
                    }
                    if stop == Shutdown::Cancel {
                        tasks.abort_all();
                    }
                }
            }
        }
    }
    sched.flush_pending_writes(&checkpoints);
    if let Some(refused) = sched.refused.take() {
        fatal.get_or_insert_with(|| refused.to_string());
    }

    let statuses: Vec<NodeStatus> = sched.records.iter().map(|r| r.status).collect();
    run.node_fingerprints = workflow
        .nodes
        .iter()
        .map(|node| {
            (
                node.id.clone(),
                sched.records[node.index].fingerprint.clone(),
            )
        })
        .filter(|(_, fp)| !fp.is_empty())
        .collect();
    let end = if let Some(err) = &fatal {
        run.error = Some(err.clone());
        RunEvent::Failed
    } else if statuses
        .iter()
        .any(|s| matches!(s, NodeStatus::Failed | NodeStatus::UpstreamFailed))
    {
        let failed: Vec<&str> = workflow
            .nodes
            .iter()
            .filter(|n| statuses[n.index] == NodeStatus::Failed)
            .map(|n| n.id.as_str())
            .collect();
        run.error = Some(format!("failed: {}", failed.join(", ")));
        RunEvent::Failed
    } else if statuses
        .iter()
        .any(|s| !s.is_final() || *s == NodeStatus::Interrupted)
    {
        // A stop that came after the last node started, and let it finish, stopped nothing.
        run.error = Some("stopped before all nodes finished".into());
        RunEvent::Interrupted
    } else {
        RunEvent::Succeeded
    };
    run.status = run.status.apply(end)?;
    let now = Utc::now();
    run.updated_at = now;
    run.finished_at = Some(now);
    checkpoints.durable(vec![Write::Run(run.clone())]).await?;
    checkpoints.close();
    Ok(RunOutcome {
        run,
        nodes: sched.records,
    })
}

#[cfg(test)]
mod early_tests;
#[cfg(test)]
mod tests;
