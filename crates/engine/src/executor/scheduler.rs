//! The scheduler's state: every node's record, the outputs kept in memory for dependents that
//! have yet to start, and the ready set. It dispatches a ready node as a [`Job`] and moves the
//! node's dependents on when the job ends or its task dies.
//!
//! A job hands its output over as soon as its checkpoint is on its way to disk: dependents are
//! evaluated then, and the effect-free ones can start (see [`super::job`]). Whatever depends on
//! a checkpoint that may not be durable yet carries its ticket, so that a node with effects
//! waits for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::checkpoint::{Checkpointer, Ticket};
use super::context::BaseContext;
use super::job::{Handover, Job, Source, TaskResult};
use super::{Event, ExecOptions};
use crate::compile::Workflow;
use crate::data::Output;
use crate::run_cache::RunCache;
use crate::store::{Attempt, InvalidTransition, NodeEvent, NodeRecord, NodeStatus, Write};
use crate::template::RunVars;

/// Outputs of this size or more are not kept in memory for one dependent that cannot start yet
/// (see [`Scheduler::keep_for_later`]); reading a smaller one back costs more than it holds.
const KEEP_FOR_LATER_BYTES: usize = 16 << 20;

pub(super) struct Scheduler {
    pub(super) wf: Arc<Workflow>,
    /// Each node's record; its status is the scheduler's view of the node.
    pub(super) records: Vec<NodeRecord>,
    /// Outputs kept in memory while some dependent still has to start.
    pub(super) outputs: Vec<Option<Arc<Output>>>,
    pub(super) consumers_left: Vec<usize>,
    /// Per node, its dependents that have yet to end (finish, fail or be skipped); at none,
    /// the run cache lets go of values computed from its output.
    pub(super) readers_left: Vec<usize>,
    pub(super) run_cache: RunCache,
    /// Ready nodes by topological position, so runs are deterministic under a limit.
    pub(super) ready: BTreeSet<(usize, usize)>,
    pub(super) position: Vec<usize>,
    pub(super) events: Option<mpsc::UnboundedSender<Event>>,
    /// Records of skipped nodes, written with the next batch (a lost skip is re-derived).
    pub(super) pending_writes: Vec<Write>,
    pub(super) execution: u32,
    pub(super) run_id: String,
    /// The attempts of each running node as its task last reported them, so a task that is
    /// cancelled (or dies) still leaves its attempts in the record.
    pub(super) in_flight: HashMap<usize, AttemptLog>,
    /// A state change the records refused: a fault in the scheduler, which fails the run.
    pub(super) refused: Option<InvalidTransition>,
    /// Per node, the checkpoints its state rests on that may not be durable yet: its own while
    /// it is handed over, those of its inputs when it was skipped on their account.
    pub(super) unconfirmed: Vec<Vec<Ticket>>,
    /// Running nodes whose output is handed over (their task waits for the checkpoint).
    pub(super) handed_over: Vec<bool>,
    pub(super) handed_over_count: usize,
    pub(super) handover: mpsc::UnboundedSender<Handover>,
}

/// A running node's attempts, shared between its task and the scheduler.
pub(super) type AttemptLog = Arc<std::sync::Mutex<Vec<Attempt>>>;

impl Scheduler {
    pub(super) fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    pub(super) fn status(&self, i: usize) -> NodeStatus {
        self.records[i].status
    }

    /// Moves node `i` on by `event`; a refused move is kept to fail the run.
    pub(super) fn apply(&mut self, i: usize, event: NodeEvent) {
        if let Err(e) = self.records[i].apply(event) {
            self.refused.get_or_insert(e);
        }
    }

    pub(super) fn flush_pending_writes(&mut self, checkpoints: &Checkpointer) {
        if !self.pending_writes.is_empty() {
            checkpoints.lazy(std::mem::take(&mut self.pending_writes));
        }
    }

    /// A node's output whose checkpoint is on its way: its dependents may be decided now.
    pub(super) fn handed_over(&mut self, handover: Handover) {
        let i = handover.index;
        if !self.in_flight.contains_key(&i) {
            // Its task has ended already.
            return;
        }
        self.handed_over[i] = true;
        self.handed_over_count += 1;
        self.records[i] = handover.record;
        self.unconfirmed[i] = vec![handover.ticket];
        if self.consumers_left[i] > 0 {
            self.outputs[i] = Some(handover.output);
        }
        // Its attempts are over: it reads neither its inputs nor the run's shared values any
        // more, so what only it still held goes before a dependent asks for it.
        self.ended(i);
        let dependents: Vec<usize> = self.wf.dependents(i).map(|(d, _)| d).collect();
        for d in dependents {
            self.evaluate(d);
        }
        if !self.keep_for_later(i) {
            self.outputs[i] = None;
        }
    }

    /// A node finished (its checkpoint is durable, or could not be saved).
    pub(super) fn finish(&mut self, result: TaskResult) {
        let i = result.index;
        self.in_flight.remove(&i);
        let handed_over = std::mem::take(&mut self.handed_over[i]);
        if handed_over {
            self.handed_over_count -= 1;
        }
        let durable = result.record.status == NodeStatus::Succeeded;
        self.records[i] = result.record;
        if durable {
            self.unconfirmed[i].clear();
        }
        if !handed_over && self.consumers_left[i] > 0 {
            self.outputs[i] = result.output;
        } else if !durable {
            self.outputs[i] = None;
        }
        if !handed_over {
            self.ended(i);
        }
        let dependents: Vec<usize> = self.wf.dependents(i).map(|(d, _)| d).collect();
        for d in dependents {
            self.evaluate(d);
        }
        if !self.keep_for_later(i) {
            self.outputs[i] = None;
        }
    }

    /// A node's task died without reporting (cancelled or panicked outside the attempt).
    pub(super) fn abandon(&mut self, i: usize, interrupted: bool, message: String) {
        let attempts = self.in_flight.remove(&i);
        if std::mem::take(&mut self.handed_over[i]) {
            // Its checkpoint is queued and lands unless the store fails (which fails the run):
            // an `interrupted` record written after it would undo a success its dependents
            // may already rest on.
            self.handed_over_count -= 1;
            return;
        }
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
        self.ended(i);
        let record = &self.records[i];
        let status = record.status;
        self.pending_writes.push(Write::Node {
            run_id: self.run_id.clone(),
            record: record.clone(),
            output: None,
        });
        self.pending_writes
            .extend(crate::node_log::take(&self.run_id, &self.wf.nodes[i].id));
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

    /// Node `i` ended (it will not ask the run cache for anything more).
    pub(super) fn ended(&mut self, i: usize) {
        for need in &self.wf.nodes[i].needs {
            let dep = need.node;
            self.readers_left[dep] = self.readers_left[dep].saturating_sub(1);
            if self.readers_left[dep] == 0 {
                self.run_cache.release_from(&self.wf.nodes[dep].id);
            }
        }
    }

    /// Drops in-memory outputs no dependent still has to start: the job of a dependent holds
    /// what it was given, and its node may let go of an input it is done with.
    pub(super) fn release_inputs(&mut self, i: usize) {
        for need in &self.wf.nodes[i].needs {
            let dep = need.node;
            self.consumers_left[dep] = self.consumers_left[dep].saturating_sub(1);
            if !self.keep_for_later(dep) {
                self.outputs[dep] = None;
            }
        }
    }

    /// Whether node `i`'s output stays in memory for the dependents still to start. A large
    /// output left for one dependent that cannot start yet is not kept: that dependent reads
    /// the checkpoint when it starts, so a table needed again only at the end of the run (by
    /// a report, say) does not hold its memory all along. Several dependents still to start
    /// share the copy in memory.
    fn keep_for_later(&self, i: usize) -> bool {
        match self.consumers_left[i] {
            0 => false,
            1 => {
                let Some(output) = &self.outputs[i] else {
                    return false;
                };
                crate::data::size_hint(output) < KEEP_FOR_LATER_BYTES
                    || self
                        .wf
                        .dependents(i)
                        .any(|(d, _)| self.ready.contains(&(self.position[d], d)))
            }
            _ => true,
        }
    }

    pub(super) fn job(
        &mut self,
        i: usize,
        base: &BaseContext,
        run_vars: &RunVars,
        run_id: &str,
        opts: &ExecOptions,
        checkpoints: &Checkpointer,
    ) -> Job {
        self.apply(i, NodeEvent::Dispatched);
        let wf = self.wf.clone();
        let node = &wf.nodes[i];
        let mut sources = Vec::new();
        let mut after = Vec::new();
        let mut in_memory = true;
        for (need, plan) in node.needs.iter().zip(&node.input_plans) {
            let dep = &self.wf.nodes[need.node];
            let unconfirmed = &self.unconfirmed[need.node];
            after.extend(unconfirmed.iter().map(|t| (dep.id.clone(), t.clone())));
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
                None => {
                    // Not in the store until its batch is applied.
                    in_memory &= unconfirmed.is_empty();
                    Source::Stored
                }
            };
            sources.push((dep.id.clone(), need.clone(), plan.clone(), source));
        }
        self.release_inputs(i);
        let configured = self.wf.configure(i, &base.params, run_vars);
        let early = in_memory
            && opts.remote.is_none()
            && configured.as_ref().is_ok_and(|node| node.effect_free());
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
            after,
            early,
            handover: self.handover.clone(),
            retry: node.retry.clone(),
            timeout: node.timeout,
            labels: node.labels.clone(),
            record: self.records[i].clone(),
            run_id: run_id.to_string(),
            execution: self.execution,
            base: base.clone(),
            checkpoints: checkpoints.clone(),
            events: opts.events.clone(),
            shutdown: opts.shutdown.clone(),
            attempt_log,
            remote: opts.remote.clone(),
        }
    }
}
