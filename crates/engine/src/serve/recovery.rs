//! Runs a crash or a stop left unfinished, found when the server starts: reported, and resumed
//! when their trigger asks for it.

use std::path::PathBuf;

use super::{EventKind, Job, Server};
use crate::store::{RunEvent, RunStatus, StoreError, Write};

impl Server {
    /// Reports runs of the served workflows that a crash (or a stop) left unfinished, and
    /// resumes those whose trigger says `resume_interrupted: true`.
    pub(super) fn recover_interrupted(&mut self) -> Result<(), StoreError> {
        let live = self.store.live_runs()?;
        let mut runs = self.store.runs()?;
        // Oldest first, so a workflow's runs resume in the order they were fired.
        runs.reverse();
        for path in self.entries.keys().cloned().collect::<Vec<_>>() {
            for run_id in super::commands::queued_runs(&runs, &path) {
                if !live.contains(&run_id) {
                    self.live.start(&run_id);
                    self.submit(&path, Job::Start { run_id });
                }
            }
        }
        for mut run in runs {
            // A run cancelled on request stays stopped until someone resumes it.
            let cancelled = run
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(super::commands::CANCELLED));
            if run.trigger.fired_by != "schedule"
                || !matches!(run.status, RunStatus::Running | RunStatus::Interrupted)
                || live.contains(&run.id)
                || cancelled
            {
                continue;
            }
            let path = PathBuf::from(&run.workflow_path);
            let Some(entry) = self.entries.get(&path) else {
                continue;
            };
            let resuming = entry.triggers.iter().any(|s| {
                s.trigger.schedule.resume_interrupted
                    && run.trigger.triggers.contains(&s.trigger.id)
            });
            self.emit(EventKind::FoundInterrupted {
                workflow: entry.wf.name.clone(),
                run_id: run.id.clone(),
                resuming,
            });
            if resuming {
                self.submit(
                    &path,
                    Job::Resume {
                        run_id: run.id,
                        from: None,
                    },
                );
            } else if let Ok(interrupted) = run.status.apply(RunEvent::Interrupted) {
                // Found `running`, but nobody is running it: record what it is.
                run.status = interrupted;
                run.updated_at = self.clock.now();
                self.store.apply(vec![Write::Run(run)])?;
                self.store.flush()?;
            }
        }
        Ok(())
    }
}
