//! Runs a workflow's nodes as tokio tasks and checkpoints every result.
//!
//! The scheduler is one loop that owns all node states. When the nodes a node needs settle, its
//! trigger rule ([`crate::trigger_rule`]) decides: it runs, is skipped (a branch was not taken,
//! or for a join every input was skipped), or is marked `upstream_failed` (an input failed).
//! Ready nodes run concurrently up to a limit, each in its own task; every attempt runs in a
//! further task so a panic fails the attempt, not the process.
//!
//! Durability: a node's output and its `succeeded` record are written in one atomic batch and
//! flushed before the node counts as done, so downstream work never starts from an output that a
//! crash could lose. Checkpoints of nodes finishing together share one flush (group commit).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::compile::Workflow;
use crate::data::{self, Body, Output};
use crate::node::{
    EffectLedger, Input, Inputs, Node, NodeContext, NodeKind, NodeState, RoutedCase,
};
use crate::run_cache::RunCache;
use crate::store::{
    Attempt, AttemptOutcome, BoundedStore, InvalidTransition, NodeEvent, NodeRecord, NodeStatus,
    RunEvent, RunRecord, StateStore, StoreError, Write,
};
use crate::template::RunVars;
use crate::trigger_rule::{self, InputState, Readiness};

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
    let mut sched = Scheduler {
        wf: workflow.clone(),
        records: Vec::with_capacity(n),
        outputs: vec![None; n],
        consumers_left: vec![0; n],
        ready: BTreeSet::new(),
        position: vec![0; n],
        events: opts.events.clone(),
        pending_writes: Vec::new(),
        execution: run.executions,
        run_id: run.id.clone(),
        in_flight: HashMap::new(),
        refused: None,
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
    }

    let fired: HashSet<&str> = run.trigger.triggers.iter().map(String::as_str).collect();
    // A scheduled run is about its scheduled time, also when it runs late (a catch-up).
    let logical_time = run.trigger.scheduled_for.unwrap_or(run.trigger.time);
    let run_vars = RunVars {
        id: run.id.clone(),
        trigger_time: logical_time.to_rfc3339(),
        date: logical_time.format("%Y-%m-%d").to_string(),
        fired_by: run.trigger.fired_by.clone(),
        workflow_dir: workflow.dir.display().to_string(),
    };
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
        run_cache: RunCache::new(),
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
        while stop == Shutdown::None && fatal.is_none() && running.len() < limit {
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
            joined = tasks.join_next_with_id() => {
                let Some(joined) = joined else { break };
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

struct Scheduler {
    wf: Arc<Workflow>,
    /// Each node's record; its status is the scheduler's view of the node.
    records: Vec<NodeRecord>,
    /// Outputs kept in memory while some dependent still has to start.
    outputs: Vec<Option<Arc<Output>>>,
    consumers_left: Vec<usize>,
    /// Ready nodes by topological position, so runs are deterministic under a limit.
    ready: BTreeSet<(usize, usize)>,
    position: Vec<usize>,
    events: Option<mpsc::UnboundedSender<Event>>,
    /// Records of skipped nodes, written with the next batch (a lost skip is re-derived).
    pending_writes: Vec<Write>,
    execution: u32,
    run_id: String,
    /// The attempts of each running node as its task last reported them, so a task that is
    /// cancelled (or dies) still leaves its attempts in the record.
    in_flight: HashMap<usize, AttemptLog>,
    /// A state change the records refused: a fault in the scheduler, which fails the run.
    refused: Option<InvalidTransition>,
}

/// A running node's attempts, shared between its task and the scheduler.
type AttemptLog = Arc<std::sync::Mutex<Vec<Attempt>>>;

impl Scheduler {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    fn status(&self, i: usize) -> NodeStatus {
        self.records[i].status
    }

    /// Moves node `i` on by `event`; a refused move is kept to fail the run.
    fn apply(&mut self, i: usize, event: NodeEvent) {
        if let Err(e) = self.records[i].apply(event) {
            self.refused.get_or_insert(e);
        }
    }

    /// How the node's trigger rule judges its inputs' states now.
    fn readiness(&self, i: usize) -> Readiness {
        let node = &self.wf.nodes[i];
        let inputs: Vec<InputState> = node
            .needs
            .iter()
            .map(|need| {
                let dep = &self.wf.nodes[need.node];
                match self.status(need.node) {
                    NodeStatus::Pending | NodeStatus::Running => InputState::Waiting,
                    // Stopped by a shutdown: its dependents wait for the resume.
                    NodeStatus::Interrupted => InputState::Waiting,
                    NodeStatus::Failed | NodeStatus::UpstreamFailed => {
                        InputState::Failed(format!("input `{}` did not succeed", dep.id))
                    }
                    NodeStatus::Skipped => InputState::Skipped(format!("`{}` was skipped", dep.id)),
                    NodeStatus::Succeeded => match &need.case {
                        Some(case) if self.case_rows(need.node, case) == 0 => {
                            InputState::Skipped(format!("branch `{}.{case}` was empty", dep.id))
                        }
                        _ => InputState::Succeeded,
                    },
                }
            })
            .collect();
        trigger_rule::decide(node.trigger_rule, &inputs)
    }

    /// For each case of a succeeded decision from which a path leads to node `i`, the rows it
    /// routed there.
    fn routed_toward(&self, i: usize) -> Vec<RoutedCase> {
        let mut routed = Vec::new();
        for d in &self.wf.nodes {
            if d.kind != NodeKind::Decision || self.status(d.index) != NodeStatus::Succeeded {
                continue;
            }
            for case in &d.cases {
                let subscribers: Vec<usize> = self
                    .wf
                    .dependents(d.index)
                    .filter(|(_, c)| *c == Some(case.as_str()))
                    .map(|(n, _)| n)
                    .collect();
                if !subscribers.is_empty() && self.wf.downstream(&subscribers).contains(&i) {
                    routed.push(RoutedCase {
                        decision: d.id.clone(),
                        decision_type: d.type_name.clone(),
                        case: case.clone(),
                        rows: self.case_rows(d.index, case),
                    });
                }
            }
        }
        routed
    }

    /// The rows a succeeded decision routed to `case`.
    fn case_rows(&self, decision: usize, case: &str) -> u64 {
        self.records[decision]
            .case_rows
            .as_ref()
            .and_then(|m| m.get(case).copied())
            .unwrap_or(0)
    }

    /// Decides a pending node whose inputs may all be final; cascades skips downstream.
    fn evaluate(&mut self, start: usize) {
        let mut work = vec![start];
        while let Some(i) = work.pop() {
            if self.status(i) != NodeStatus::Pending {
                continue;
            }
            match self.readiness(i) {
                Readiness::Waiting => {}
                Readiness::Run => {
                    self.ready.insert((self.position[i], i));
                }
                Readiness::Skip(reason) => {
                    self.settle(i, NodeEvent::Skipped { reason });
                    work.extend(self.wf.dependents(i).map(|(d, _)| d));
                }
                Readiness::UpstreamFailed(reason) => {
                    self.settle(i, NodeEvent::UpstreamFailed { reason });
                    work.extend(self.wf.dependents(i).map(|(d, _)| d));
                }
            }
        }
    }

    /// Records a node that does not run (skipped or upstream-failed).
    fn settle(&mut self, i: usize, event: NodeEvent) {
        self.apply(i, event);
        let record = &mut self.records[i];
        let (status, reason) = (record.status, record.reason.clone().unwrap_or_default());
        record.execution = self.execution;
        let now = Utc::now();
        record.started_at = None;
        record.finished_at = Some(now);
        record.duration_ms = None;
        self.pending_writes.push(Write::Node {
            run_id: self.run_id.clone(),
            record: record.clone(),
            output: None,
        });
        self.emit(Event::Skipped {
            node: self.wf.nodes[i].id.clone(),
            status,
            reason,
        });
        self.release_inputs(i);
    }

    fn flush_pending_writes(&mut self, checkpoints: &Checkpointer) {
        if !self.pending_writes.is_empty() {
            checkpoints.lazy(std::mem::take(&mut self.pending_writes));
        }
    }

    /// A node finished (its checkpoint is already durable).
    fn finish(&mut self, result: TaskResult) {
        let i = result.index;
        self.in_flight.remove(&i);
        self.records[i] = result.record;
        if self.consumers_left[i] > 0 {
            self.outputs[i] = result.output;
        }
        self.release_inputs(i);
        let dependents: Vec<usize> = self.wf.dependents(i).map(|(d, _)| d).collect();
        for d in dependents {
            self.evaluate(d);
        }
    }

    /// A node's task died without reporting (cancelled or panicked outside the attempt).
    fn abandon(&mut self, i: usize, interrupted: bool, message: String) {
        let attempts = self.in_flight.remove(&i);
        let record = &mut self.records[i];
        if let Some(attempts) = attempts {
            record.attempts = attempts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        }
        record.execution = self.execution;
        let now = Utc::now();
        record.finished_at = Some(now);
        self.apply(
            i,
            NodeEvent::Abandoned {
                interrupted,
                error: message.clone(),
                at: now,
            },
        );
        let record = &self.records[i];
        let status = record.status;
        self.pending_writes.push(Write::Node {
            run_id: self.run_id.clone(),
            record: record.clone(),
            output: None,
        });
        self.emit(Event::Finished {
            node: self.wf.nodes[i].id.clone(),
            status,
            duration: Duration::ZERO,
            rows_out: 0,
            error: Some(message),
        });
        if status != NodeStatus::Interrupted {
            let dependents: Vec<usize> = self.wf.dependents(i).map(|(d, _)| d).collect();
            for d in dependents {
                self.evaluate(d);
            }
        }
    }

    /// Drops in-memory outputs nobody else needs.
    fn release_inputs(&mut self, i: usize) {
        for need in &self.wf.nodes[i].needs {
            let dep = need.node;
            self.consumers_left[dep] = self.consumers_left[dep].saturating_sub(1);
            if self.consumers_left[dep] == 0 {
                self.outputs[dep] = None;
            }
        }
    }

    fn job(
        &mut self,
        i: usize,
        base: &BaseContext,
        run_vars: &RunVars,
        run_id: &str,
        opts: &ExecOptions,
        checkpoints: &Checkpointer,
    ) -> Job {
        self.apply(i, NodeEvent::Dispatched);
        let node = &self.wf.nodes[i];
        let mut sources = Vec::new();
        for need in &node.needs {
            let dep = &self.wf.nodes[need.node];
            if self.status(need.node) != NodeStatus::Succeeded {
                continue;
            }
            if let Some(case) = &need.case
                && self.case_rows(need.node, case) == 0
            {
                continue;
            }
            let source = match &self.outputs[need.node] {
                Some(out) => Source::Memory(out.clone()),
                None => Source::Stored,
            };
            sources.push((dep.id.clone(), need.case.clone(), source));
        }
        let configured = self.wf.configure(i, &base.params, run_vars);
        let attempt_log = AttemptLog::default();
        self.in_flight.insert(i, attempt_log.clone());
        Job {
            index: i,
            node_id: node.id.clone(),
            kind: node.kind,
            declared_cases: node.cases.clone(),
            undelivered_cases: node.undelivered_cases.clone(),
            routed: self.routed_toward(i),
            type_name: node.type_name.clone(),
            configured,
            sources,
            retry: node.retry.clone(),
            timeout: node.timeout,
            record: self.records[i].clone(),
            run_id: run_id.to_string(),
            execution: self.execution,
            base: base.clone(),
            checkpoints: checkpoints.clone(),
            events: opts.events.clone(),
            shutdown: opts.shutdown.clone(),
            attempt_log,
        }
    }
}

/// Where a node's input comes from.
enum Source {
    Memory(Arc<Output>),
    /// A node reused from an earlier execution: read its checkpoint.
    Stored,
}

#[derive(Clone)]
struct BaseContext {
    run_id: String,
    workflow_dir: std::path::PathBuf,
    workflow_path: std::path::PathBuf,
    params: std::collections::BTreeMap<String, Json>,
    trigger: Json,
    effects: Arc<dyn EffectLedger>,
    store: Arc<dyn StateStore>,
    run_cache: RunCache,
}

struct Job {
    index: usize,
    node_id: String,
    kind: NodeKind,
    declared_cases: Vec<String>,
    /// Cases whose rows reach no output (see [`crate::compile::CompiledNode`]).
    undelivered_cases: Vec<(String, String)>,
    routed: Vec<RoutedCase>,
    type_name: String,
    configured: Result<Arc<dyn Node>, String>,
    sources: Vec<(String, Option<String>, Source)>,
    retry: crate::compile::RetryPolicy,
    timeout: Option<Duration>,
    record: NodeRecord,
    run_id: String,
    execution: u32,
    base: BaseContext,
    checkpoints: Checkpointer,
    events: Option<mpsc::UnboundedSender<Event>>,
    shutdown: watch::Receiver<Shutdown>,
    /// Where this task reports its attempts as they start and end.
    attempt_log: AttemptLog,
}

struct TaskResult {
    index: usize,
    record: NodeRecord,
    output: Option<Arc<Output>>,
    /// Why the run cannot go on: the checkpoint was not saved, or a state change was refused.
    fatal: Option<String>,
}

/// Aborts the attempt task when the node task is dropped (cancelled).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum AttemptEnd {
    Ok(Output),
    Failed(String),
    TimedOut(Duration),
    Stopped,
}

impl Job {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    async fn run(mut self) -> TaskResult {
        let started = Instant::now();
        let now = Utc::now();
        self.record.started_at = Some(now);
        self.record.execution = self.execution;
        self.record.error = None;
        self.record.reason = None;
        self.record.warnings.clear();

        let outcome = self.attempts().await;
        let duration = started.elapsed();
        self.record.finished_at = Some(Utc::now());
        self.record.duration_ms = Some(duration.as_millis() as u64);
        let (output, bytes, error) = match outcome {
            Ok(output) => match data::encode(&output) {
                Ok(bytes) => (Some(Arc::new(output)), Some(bytes), None),
                Err(e) => (
                    None,
                    None,
                    Some(format!("cannot checkpoint the output: {e}")),
                ),
            },
            Err(e) => (None, None, Some(e)),
        };
        let mut refused = match (&output, &error) {
            (Some(out), None) => {
                let refused = self.record.apply(NodeEvent::Succeeded).err();
                self.record.rows_out = out.rows();
                self.record.case_rows = out.case_rows();
                self.record.meta = out.meta.clone();
                self.record.warnings = self.undelivered_rows();
                refused
            }
            _ => {
                let error = error.clone().unwrap_or_default();
                self.record.apply(NodeEvent::Failed { error }).err()
            }
        };
        let write = Write::Node {
            run_id: self.run_id.clone(),
            record: self.record.clone(),
            output: bytes,
        };
        let store_error = self
            .checkpoints
            .durable(vec![write])
            .await
            .err()
            .map(|e| e.to_string());
        let output = match &store_error {
            // Not durable, so not done: the node counts as failed and the run stops.
            Some(e) => {
                let error = format!("cannot save the checkpoint: {e}");
                if let Err(e) = self.record.apply(NodeEvent::CheckpointFailed { error }) {
                    refused.get_or_insert(e);
                }
                None
            }
            None => output,
        };
        let status = self.record.status;
        if status == NodeStatus::Succeeded {
            for message in &self.record.warnings {
                self.emit(Event::Warning {
                    node: self.node_id.clone(),
                    message: message.clone(),
                });
            }
        }
        self.emit(Event::Finished {
            node: self.node_id.clone(),
            status,
            duration,
            rows_out: self.record.rows_out,
            error: self.record.error.clone(),
        });
        TaskResult {
            index: self.index,
            record: self.record,
            output,
            fatal: store_error.or_else(|| refused.map(|e| e.to_string())),
        }
    }

    /// Warnings for rows this decision routed to cases that reach no output.
    fn undelivered_rows(&self) -> Vec<String> {
        let Some(rows) = &self.record.case_rows else {
            return Vec::new();
        };
        self.undelivered_cases
            .iter()
            .filter_map(|(case, why)| {
                let n = rows.get(case).copied().unwrap_or(0);
                (n > 0).then(|| {
                    format!(
                        "{n} row{} routed to case `{case}`, which {why}: they are not delivered",
                        if n == 1 { "" } else { "s" }
                    )
                })
            })
            .collect()
    }

    /// Runs attempts until one succeeds, the policy gives up, or a stop is requested.
    async fn attempts(&mut self) -> Result<Output, String> {
        let node = match &self.configured {
            Ok(node) => node.clone(),
            Err(e) => return Err(format!("invalid parameters: {e}")),
        };
        let inputs = self.load_inputs().await?;
        self.record.rows_in = inputs.rows();
        let mut attempt_in_execution = 0;
        loop {
            attempt_in_execution += 1;
            self.record
                .apply(NodeEvent::AttemptStarted {
                    execution: self.execution,
                    at: Utc::now(),
                })
                .map_err(|e| e.to_string())?;
            let number = self.record.attempts.len() as u32;
            self.report_attempts();
            self.checkpoints.lazy(vec![Write::Node {
                run_id: self.run_id.clone(),
                record: self.record.clone(),
                output: None,
            }]);
            self.emit(Event::Started {
                node: self.node_id.clone(),
                attempt: number,
            });

            let run_cache = self.base.run_cache.for_node();
            let ctx = NodeContext {
                run_id: self.base.run_id.clone(),
                node_id: self.node_id.clone(),
                attempt: number,
                workflow_dir: self.base.workflow_dir.clone(),
                workflow_path: self.base.workflow_path.clone(),
                params: self.base.params.clone(),
                trigger: self.base.trigger.clone(),
                effects: self.base.effects.clone(),
                state: Arc::new(StoreNodeState {
                    store: self.base.store.clone(),
                    namespace: format!("node-state/{}", self.type_name),
                }),
                routed: self.routed.clone(),
                run_cache: run_cache.clone(),
            };
            let end = match self.one_attempt(node.clone(), ctx, inputs.clone()).await {
                AttemptEnd::Ok(output) => match self.check_output(&output) {
                    Ok(()) => AttemptEnd::Ok(run_cache.annotate(output)),
                    Err(e) => AttemptEnd::Failed(e),
                },
                other => other,
            };
            let (outcome, error, output) = match end {
                AttemptEnd::Ok(output) => (AttemptOutcome::Succeeded, None, Some(output)),
                AttemptEnd::Failed(e) => (AttemptOutcome::Failed, Some(e), None),
                AttemptEnd::TimedOut(limit) => (
                    AttemptOutcome::TimedOut,
                    Some(format!(
                        "timed out after {}",
                        humantime::format_duration(limit)
                    )),
                    None,
                ),
                AttemptEnd::Stopped => (
                    AttemptOutcome::Interrupted,
                    Some("cancelled by shutdown".to_string()),
                    None,
                ),
            };
            self.record
                .apply(NodeEvent::AttemptEnded {
                    outcome,
                    at: Utc::now(),
                    error: error.clone(),
                })
                .map_err(|e| e.to_string())?;
            if let Some(output) = output {
                return Ok(output);
            }
            let error = error.unwrap_or_default();
            if outcome == AttemptOutcome::Interrupted {
                return Err(error);
            }
            self.report_attempts();
            if attempt_in_execution >= self.retry.max_attempts {
                return Err(if self.retry.max_attempts > 1 {
                    format!("{error} (after {attempt_in_execution} attempts)")
                } else {
                    error
                });
            }
            let delay = self.retry.delay_after(attempt_in_execution);
            self.emit(Event::Retrying {
                node: self.node_id.clone(),
                attempt: number,
                delay,
                error: error.clone(),
            });
            // Whoever receives the events shows the retry; without them the log is the place.
            if self.events.is_none() {
                tracing::warn!(node = %self.node_id, attempt = number, ?delay, %error, "attempt failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = reached(self.shutdown.clone(), Shutdown::Drain) => {
                    return Err(format!("{error} (retries stopped by shutdown)"));
                }
            }
        }
    }

    fn report_attempts(&self) {
        let mut log = self.attempt_log.lock().unwrap_or_else(|e| e.into_inner());
        log.clone_from(&self.record.attempts);
    }

    async fn one_attempt(
        &self,
        node: Arc<dyn Node>,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> AttemptEnd {
        // Whatever the node logs is attributed to it. A `warn` span: enabled whenever warnings are.
        let span = tracing::warn_span!("node", node = %self.node_id);
        let mut handle = AbortOnDrop(tokio::spawn(tracing::Instrument::instrument(
            async move { node.run(ctx, inputs).await },
            span,
        )));
        let guarded = async {
            tokio::select! {
                joined = &mut handle.0 => joined_to_end(joined),
                _ = reached(self.shutdown.clone(), Shutdown::Cancel) => AttemptEnd::Stopped,
            }
        };
        match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(end) => end,
                Err(_) => AttemptEnd::TimedOut(limit),
            },
            None => guarded.await,
        }
    }

    fn check_output(&self, output: &Output) -> Result<(), String> {
        match (&output.body, self.kind) {
            (Body::Cases(cases), NodeKind::Decision) => {
                for (case, _) in cases {
                    if !self.declared_cases.contains(case) {
                        return Err(format!(
                            "produced undeclared case `{case}` (declared: {})",
                            self.declared_cases.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            (Body::Data(_), NodeKind::Decision) => {
                Err("a decision must partition its output into cases".into())
            }
            (Body::Cases(_), _) => Err("only a decision node can produce cases".into()),
            _ => Ok(()),
        }
    }

    async fn load_inputs(&self) -> Result<Inputs, String> {
        let mut inputs = Vec::with_capacity(self.sources.len());
        for (from, case, source) in &self.sources {
            let output = match source {
                Source::Memory(out) => out.clone(),
                Source::Stored => {
                    let store = self.base.store.clone();
                    let (run_id, node_id) = (self.run_id.clone(), from.clone());
                    let loaded = tokio::task::spawn_blocking(move || {
                        let bytes = store
                            .output(&run_id, &node_id)
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| "no checkpointed output".to_string())?;
                        data::decode(&bytes).map_err(|e| e.to_string())
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                    Arc::new(
                        loaded.map_err(|e| format!("cannot load the output of `{from}`: {e}"))?,
                    )
                }
            };
            inputs.push(Input {
                from: from.clone(),
                case: case.clone(),
                data: output.select(case.as_deref()),
            });
        }
        Ok(Inputs(inputs))
    }
}

/// Resolves once the stop level reaches `level`; never, if the sender is gone.
async fn reached(mut shutdown: watch::Receiver<Shutdown>, level: Shutdown) {
    if shutdown.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn joined_to_end(
    joined: Result<Result<Output, crate::node::NodeError>, tokio::task::JoinError>,
) -> AttemptEnd {
    match joined {
        Ok(Ok(output)) => AttemptEnd::Ok(output),
        Ok(Err(e)) => AttemptEnd::Failed(e.to_string()),
        Err(e) if e.is_panic() => {
            AttemptEnd::Failed(format!("panicked: {}", panic_text(e.into_panic())))
        }
        Err(_) => AttemptEnd::Stopped,
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Batches checkpoint writes from all tasks into shared flushes on a dedicated thread.
#[derive(Clone)]
struct Checkpointer {
    tx: std::sync::mpsc::Sender<Request>,
}

struct Request {
    writes: Vec<Write>,
    ack: Option<oneshot::Sender<Result<(), Arc<StoreError>>>>,
}

impl Checkpointer {
    fn start(store: Arc<dyn StateStore>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("flow-checkpoint".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let durable = batch.iter().any(|r| r.ack.is_some());
                    let mut writes = Vec::new();
                    let mut acks = Vec::new();
                    for req in batch {
                        writes.extend(req.writes);
                        acks.extend(req.ack);
                    }
                    let mut result = store.apply(writes).map_err(Arc::new);
                    if result.is_ok() && durable {
                        result = store.flush().map_err(Arc::new);
                    }
                    for ack in acks {
                        let _ = ack.send(result.clone());
                    }
                }
            })
            .expect("spawn checkpoint thread");
        Checkpointer { tx }
    }

    /// Writes and waits until they are flushed to disk.
    async fn durable(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Request {
                writes,
                ack: Some(ack),
            })
            .map_err(|_| StoreError::Io("checkpoint writer stopped".into()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match e.as_ref() {
                StoreError::NotDurable { path, reason } => StoreError::NotDurable {
                    path: path.clone(),
                    reason: reason.clone(),
                },
                other => StoreError::Io(other.to_string()),
            }),
            Err(_) => Err(StoreError::Io("checkpoint writer stopped".into())),
        }
    }

    /// Writes with the next batch, without waiting for durability.
    fn lazy(&self, writes: Vec<Write>) {
        let _ = self.tx.send(Request { writes, ack: None });
    }

    fn close(self) {}
}

/// Side effects recorded in the state store.
struct StoreLedger {
    store: Arc<dyn StateStore>,
}

impl EffectLedger for StoreLedger {
    fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.store.get("effects", key)?.is_some())
    }

    fn mark_done(&self, key: &str, detail: &Json) -> Result<(), StoreError> {
        let value = serde_json::to_vec(detail).unwrap_or_default();
        self.store.apply(vec![Write::Put {
            namespace: "effects".into(),
            key: key.into(),
            value,
        }])?;
        self.store.flush()
    }
}

struct StoreNodeState {
    store: Arc<dyn StateStore>,
    namespace: String,
}

impl NodeState for StoreNodeState {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&self.namespace, key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.apply(vec![Write::Put {
            namespace: self.namespace.clone(),
            key: key.into(),
            value: value.to_vec(),
        }])?;
        self.store.flush()
    }
}

#[cfg(test)]
mod tests;
