//! The state machine of a run: queued (accepted by `flow serve` behind its workflow's current
//! run), running, then succeeded, failed or interrupted; a resume makes it run again.

use serde::{Deserialize, Serialize};

use super::transition::InvalidTransition;

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted and recorded, waiting for the workflow's current run to end.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Stopped by a signal, or found `running` with no process holding the store.
    Interrupted,
}

/// What happens to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// An execution starts: the first, or a resume of a run in any state.
    Started,
    /// Every node succeeded or was skipped.
    Succeeded,
    /// A node failed, or the run could not go on.
    Failed,
    /// Stopped before all nodes finished, or found `running` with nobody running it.
    Interrupted,
}

impl RunEvent {
    fn describe(self) -> &'static str {
        match self {
            RunEvent::Started => "start",
            RunEvent::Succeeded => "succeed",
            RunEvent::Failed => "fail",
            RunEvent::Interrupted => "be interrupted",
        }
    }
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The state after `event`. A run ends only while it is running.
    pub fn apply(self, event: RunEvent) -> Result<RunStatus, InvalidTransition> {
        match (self, event) {
            (_, RunEvent::Started) => Ok(RunStatus::Running),
            (RunStatus::Running, RunEvent::Succeeded) => Ok(RunStatus::Succeeded),
            (RunStatus::Running, RunEvent::Failed) => Ok(RunStatus::Failed),
            (RunStatus::Running, RunEvent::Interrupted) => Ok(RunStatus::Interrupted),
            // Cancelled before it started.
            (RunStatus::Queued, RunEvent::Interrupted) => Ok(RunStatus::Interrupted),
            (from, event) => Err(InvalidTransition {
                subject: "the run".into(),
                from: from.as_str(),
                event: event.describe().into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ends_once_and_starts_again_from_any_state() {
        let running = RunStatus::Interrupted.apply(RunEvent::Started).unwrap();
        assert_eq!(running, RunStatus::Running);
        assert_eq!(running.apply(RunEvent::Failed).unwrap(), RunStatus::Failed);
        let err = RunStatus::Succeeded.apply(RunEvent::Failed).unwrap_err();
        assert_eq!(err.to_string(), "the run is `succeeded`, so it cannot fail");
        assert!(RunStatus::Interrupted.apply(RunEvent::Interrupted).is_err());
        let queued = RunStatus::Queued;
        assert_eq!(queued.apply(RunEvent::Started).unwrap(), RunStatus::Running);
        assert_eq!(
            queued.apply(RunEvent::Interrupted).unwrap(),
            RunStatus::Interrupted
        );
        assert!(queued.apply(RunEvent::Succeeded).is_err());
    }
}
