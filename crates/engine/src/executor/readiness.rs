//! Whether a pending node runs: its trigger rule judges the states of its inputs, and a node that
//! does not run (skipped, upstream-failed) is recorded and passes that on to its dependents.

use chrono::Utc;

use super::Event;
use super::scheduler::Scheduler;
use crate::node::{NodeKind, RoutedCase};
use crate::store::{NodeEvent, NodeStatus, Write};
use crate::trigger_rule::{self, InputState, Readiness};

impl Scheduler {
    /// How the node's trigger rule judges its inputs' states now. Inputs in a context role
    /// count only while they wait or when they failed (see [`crate::node::InputSpec::context`]).
    fn readiness(&self, i: usize) -> Readiness {
        let node = &self.wf.nodes[i];
        let context: Vec<&'static str> = node
            .node_type
            .inputs()
            .iter()
            .filter(|s| s.context)
            .map(|s| s.role)
            .collect();
        let states: Vec<(bool, InputState)> = node
            .needs
            .iter()
            .map(|need| {
                let dep = &self.wf.nodes[need.node];
                let is_context = need.role.as_deref().is_some_and(|r| context.contains(&r));
                let state = match self.status(need.node) {
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
                };
                (is_context, state)
            })
            .collect();
        let counted = |(is_context, state): &(bool, InputState)| {
            !is_context || matches!(state, InputState::Waiting | InputState::Failed(_))
        };
        // A node with nothing but context inputs is judged on them all.
        let all_context = states.iter().all(|(c, _)| *c);
        let inputs: Vec<InputState> = states
            .into_iter()
            .filter(|s| all_context || counted(s))
            .map(|(_, state)| state)
            .collect();
        trigger_rule::decide(node.trigger_rule, &inputs)
    }

    /// For each case of a succeeded decision from which a path leads to node `i`, the rows it
    /// routed there.
    pub(super) fn routed_toward(&self, i: usize) -> Vec<RoutedCase> {
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
    pub(super) fn case_rows(&self, decision: usize, case: &str) -> u64 {
        self.records[decision]
            .case_rows
            .as_ref()
            .and_then(|m| m.get(case).copied())
            .unwrap_or(0)
    }

    /// Decides a pending node whose inputs may all be final; cascades skips downstream.
    pub(super) fn evaluate(&mut self, start: usize) {
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
    pub(super) fn settle(&mut self, i: usize, event: NodeEvent) {
        self.apply(i, event);
        // Decided on inputs whose checkpoints may not be durable: so is this decision.
        let unconfirmed: Vec<_> = self.wf.nodes[i]
            .needs
            .iter()
            .flat_map(|need| self.unconfirmed[need.node].iter().cloned())
            .collect();
        self.unconfirmed[i] = unconfirmed;
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
        self.ended(i);
    }
}
