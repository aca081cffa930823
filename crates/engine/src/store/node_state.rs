//! The state machine of one node in a run, and of its attempts.
//!
//! A node's status and the outcome of its last attempt describe the same thing, so both change
//! only here, in [`NodeRecord::apply`]: pending, then running (one or more attempts), then
//! succeeded, failed or interrupted; or, without running, skipped or upstream-failed. A rerun
//! makes it pending again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{Attempt, NodeRecord};
use super::transition::InvalidTransition;

/// The state of one node in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// On an untaken branch, or all of its inputs were skipped.
    Skipped,
    /// Not run because an input failed.
    UpstreamFailed,
    /// Was running when the run was stopped; runs again on resume.
    Interrupted,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::UpstreamFailed => "upstream_failed",
            NodeStatus::Interrupted => "interrupted",
        }
    }

    /// Finished for good in this run: a resume can reuse it.
    pub fn is_reusable(self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::Skipped)
    }

    /// Settled in this execution (nothing more will happen to it).
    pub fn is_final(self) -> bool {
        !matches!(self, NodeStatus::Pending | NodeStatus::Running)
    }
}

/// How one attempt at running a node ended, or that it is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// Cancelled by a stop, or its execution died while it ran.
    Interrupted,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }
}

/// What happens to a node in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// It runs again in a new execution. An attempt still `running` belongs to an execution
    /// that died (killed, crashed): it ended there.
    Rerun,
    /// The scheduler handed it to a task.
    Dispatched,
    /// An attempt began, in run execution `execution`.
    AttemptStarted { execution: u32, at: DateTime<Utc> },
    /// The running attempt ended with `outcome` (anything but `running`).
    AttemptEnded {
        outcome: AttemptOutcome,
        at: DateTime<Utc>,
        error: Option<String>,
    },
    /// Its last attempt succeeded: the node is done.
    Succeeded,
    /// It stopped without an output: interrupted when its last attempt of this execution was
    /// interrupted, failed otherwise.
    Failed { error: String },
    /// Its inputs say it does not run: skipped.
    Skipped { reason: String },
    /// An input failed, so it does not run.
    UpstreamFailed { reason: String },
    /// Its task ended without reporting: cancelled (interrupted) or crashed (failed). A
    /// running attempt ends the same way.
    Abandoned {
        interrupted: bool,
        error: String,
        at: DateTime<Utc>,
    },
    /// Its result could not be made durable, so it is not done: failed.
    CheckpointFailed { error: String },
}

impl NodeEvent {
    fn describe(&self) -> String {
        match self {
            NodeEvent::Rerun => "run again".into(),
            NodeEvent::Dispatched => "be dispatched".into(),
            NodeEvent::AttemptStarted { .. } => "start an attempt".into(),
            NodeEvent::AttemptEnded { outcome, .. } => {
                format!("end an attempt as `{}`", outcome.as_str())
            }
            NodeEvent::Succeeded => "succeed".into(),
            NodeEvent::Failed { .. } => "fail".into(),
            NodeEvent::Skipped { .. } => "be skipped".into(),
            NodeEvent::UpstreamFailed { .. } => "be marked upstream_failed".into(),
            NodeEvent::Abandoned { .. } => "be abandoned".into(),
            NodeEvent::CheckpointFailed { .. } => "fail its checkpoint".into(),
        }
    }
}

impl NodeRecord {
    /// The last attempt, when it is still running.
    fn running_attempt(&mut self) -> Option<&mut Attempt> {
        self.attempts
            .last_mut()
            .filter(|a| a.outcome == AttemptOutcome::Running)
    }

    /// Moves the node (and its attempts) on by `event`. A move its state does not allow is
    /// refused, and the record is left as it was.
    pub fn apply(&mut self, event: NodeEvent) -> Result<(), InvalidTransition> {
        use NodeStatus as S;
        let refused = |record: &NodeRecord, event: &NodeEvent| InvalidTransition {
            subject: format!("node `{}`", record.node_id),
            from: record.status.as_str(),
            event: event.describe(),
        };
        let last_running = self
            .attempts
            .last()
            .is_some_and(|a| a.outcome == AttemptOutcome::Running);
        match (self.status, event) {
            (_, NodeEvent::Rerun) => {
                self.status = S::Pending;
                self.error = None;
                self.reason = None;
                self.warnings.clear();
                for attempt in &mut self.attempts {
                    if attempt.outcome == AttemptOutcome::Running {
                        attempt.outcome = AttemptOutcome::Interrupted;
                        attempt
                            .error
                            .get_or_insert_with(|| "the run stopped during this attempt".into());
                    }
                }
            }
            (S::Pending, NodeEvent::Dispatched) => self.status = S::Running,
            (S::Running, NodeEvent::AttemptStarted { execution, at }) if !last_running => {
                self.attempts.push(Attempt {
                    number: self.attempts.len() as u32 + 1,
                    execution,
                    started_at: at,
                    finished_at: None,
                    outcome: AttemptOutcome::Running,
                    error: None,
                });
            }
            (S::Running, NodeEvent::AttemptEnded { outcome, at, error })
                if last_running && outcome != AttemptOutcome::Running =>
            {
                let attempt = self.running_attempt().expect("checked above");
                attempt.outcome = outcome;
                attempt.finished_at = Some(at);
                attempt.error = error;
            }
            (S::Running, NodeEvent::Succeeded)
                if self
                    .attempts
                    .last()
                    .is_some_and(|a| a.outcome == AttemptOutcome::Succeeded) =>
            {
                self.status = S::Succeeded;
            }
            (S::Running, NodeEvent::Failed { error }) if !last_running => {
                let execution = self.execution;
                let interrupted = self.attempts.last().is_some_and(|a| {
                    a.execution == execution && a.outcome == AttemptOutcome::Interrupted
                });
                self.status = if interrupted {
                    S::Interrupted
                } else {
                    S::Failed
                };
                self.error = Some(error);
            }
            (S::Pending, NodeEvent::Skipped { reason }) => {
                self.status = S::Skipped;
                self.reason = Some(reason);
            }
            (S::Pending, NodeEvent::UpstreamFailed { reason }) => {
                self.status = S::UpstreamFailed;
                self.reason = Some(reason);
            }
            (
                S::Pending | S::Running,
                NodeEvent::Abandoned {
                    interrupted,
                    error,
                    at,
                },
            ) => {
                let (status, outcome) = if interrupted {
                    (S::Interrupted, AttemptOutcome::Interrupted)
                } else {
                    (S::Failed, AttemptOutcome::Failed)
                };
                if let Some(attempt) = self.running_attempt() {
                    attempt.outcome = outcome;
                    attempt.finished_at = Some(at);
                    attempt.error = Some(error.clone());
                }
                self.status = status;
                self.error = Some(error);
            }
            (S::Succeeded | S::Failed | S::Interrupted, NodeEvent::CheckpointFailed { error }) => {
                self.status = S::Failed;
                self.error = Some(error);
            }
            (_, event) => return Err(refused(self, &event)),
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "node_state_tests.rs"]
mod tests;
