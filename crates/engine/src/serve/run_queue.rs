//! Runs of the served workflows: started at once or queued behind the workflow's current run,
//! recorded with their firing, and old ones removed after each run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::firing_log::{FiringRecord, watermark_key, watermark_write};
use super::{EventKind, FIRINGS, Job, RunResult, Server, retention};
use crate::executor::{self, ExecOptions};
use crate::runs;
use crate::store::{Retention, RunRecord, RunStatus, StoreError, Write};

impl Server {
    /// Starts `job` now if the workflow is idle, otherwise queues it.
    pub(super) fn submit(&mut self, path: &Path, job: Job) {
        let queue = self.queues.entry(path.to_path_buf()).or_default();
        if let Some(running) = self.busy.get(path) {
            if let Job::Fire {
                trigger,
                scheduled_for,
                ..
            } = &job
            {
                let entry = &self.entries[path];
                let tz = entry.timezone_of(trigger);
                let event = EventKind::Queued {
                    workflow: entry.wf.name.clone(),
                    trigger: trigger.clone(),
                    scheduled_for: scheduled_for.with_timezone(&tz),
                    behind: running.clone(),
                };
                queue.push_back(job);
                self.emit(event);
            } else {
                queue.push_back(job);
            }
            return;
        }
        if let Err(e) = self.start(path, job) {
            self.problem(e);
        }
    }

    /// Starts the next queued job of an idle workflow.
    pub(super) fn start_queued(&mut self, path: &Path) {
        while !self.busy.contains_key(path) {
            let Some(job) = self.queues.get_mut(path).and_then(VecDeque::pop_front) else {
                return;
            };
            if let Err(e) = self.start(path, job) {
                self.problem(e);
            }
        }
    }

    /// Writes a firing to the log and moves the trigger's watermark to it, unless an earlier
    /// firing of the trigger is still queued (a restart must still find that one).
    pub(super) fn record(
        &self,
        path: &Path,
        trigger: &str,
        scheduled_for: DateTime<Utc>,
        run: Option<RunRecord>,
        outcome: &str,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let record = FiringRecord {
            workflow_path: path.display().to_string(),
            trigger: trigger.to_string(),
            scheduled_for,
            at: now,
            outcome: outcome.to_string(),
            run_id: run.as_ref().map(|r| r.id.clone()),
            reason,
        };
        let mut writes = Vec::new();
        if let Some(run) = run {
            writes.push(Write::Run(run));
        }
        writes.push(Write::Put {
            namespace: FIRINGS.into(),
            key: format!(
                "{}@{}",
                watermark_key(path, trigger),
                scheduled_for.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            value: serde_json::to_vec(&record).unwrap_or_default(),
        });
        let earlier_queued = self.queues.get(path).is_some_and(|q| {
            q.iter().any(|job| {
                matches!(job, Job::Fire { trigger: t, scheduled_for: s, .. }
                    if t == trigger && *s < scheduled_for)
            })
        });
        if !earlier_queued {
            writes.push(watermark_write(path, trigger, scheduled_for));
        }
        self.store.apply(writes)?;
        self.store.flush()
    }

    pub(super) fn start(&mut self, path: &Path, job: Job) -> Result<(), String> {
        let Some(entry) = self.entries.get(path) else {
            return Ok(());
        };
        let wf = entry.wf.clone();
        let now = self.clock.now();
        let (record, previous, reuse, resumed) = match job {
            Job::Fire {
                trigger,
                scheduled_for,
                catchup,
            } => {
                let newest = self
                    .store
                    .newest_run_id()
                    .map_err(|e| format!("{}: cannot fire `{trigger}`: {e}", wf.name))?;
                let record = runs::new_run(
                    &wf,
                    wf.params.clone(),
                    "schedule",
                    std::slice::from_ref(&trigger),
                    now,
                    Some(scheduled_for),
                    newest.as_deref(),
                )
                .map_err(|e| format!("{}: cannot fire `{trigger}`: {e}", wf.name))?;
                // The run record and the watermark that covers it land together.
                self.record(
                    path,
                    &trigger,
                    scheduled_for,
                    Some(record.clone()),
                    "fired",
                    None,
                )
                .map_err(|e| format!("{}: cannot record firing `{trigger}`: {e}", wf.name))?;
                let tz = entry.timezone_of(&trigger);
                self.emit(EventKind::Fired {
                    workflow: wf.name.clone(),
                    trigger,
                    scheduled_for: scheduled_for.with_timezone(&tz),
                    run_id: record.id.clone(),
                    catchup,
                });
                (record, HashMap::new(), HashSet::new(), false)
            }
            Job::Start { run_id } => {
                let cannot = |e: String| format!("cannot start run {run_id}: {e}");
                let record = self
                    .store
                    .run(&run_id)
                    .map_err(|e| cannot(e.to_string()))?
                    .ok_or_else(|| cannot("it is no longer in the store".into()))?;
                if record.status != RunStatus::Queued {
                    // Cancelled while it waited.
                    self.live.finish(&run_id);
                    return Ok(());
                }
                (record, HashMap::new(), HashSet::new(), false)
            }
            Job::Resume { run_id, from } => {
                let store = self.store.as_ref();
                let cannot = |e: String| format!("cannot resume run {run_id}: {e}");
                let mut record = store
                    .run(&run_id)
                    .map_err(|e| cannot(e.to_string()))?
                    .ok_or_else(|| cannot("it is no longer in the store".into()))?;
                let nodes = store.nodes(&run_id).map_err(|e| cannot(e.to_string()))?;
                let plan = runs::plan_resume(&wf, &record, &nodes, from.as_deref(), &[])
                    .map_err(|e| cannot(e.to_string()))?;
                plan.apply_params(&mut record);
                record.executions += 1;
                let previous = nodes.into_iter().map(|r| (r.node_id.clone(), r)).collect();
                (record, previous, plan.reuse, true)
            }
        };
        let run_id = record.id.clone();
        self.busy.insert(path.to_path_buf(), run_id.clone());
        self.live.start(&run_id);
        self.publish();
        self.emit(EventKind::RunStarted {
            workflow: wf.name.clone(),
            run_id: run_id.clone(),
            resumed,
        });
        let (stop, shutdown) = tokio::sync::watch::channel(self.stopping);
        self.cancels.insert(run_id.clone(), stop);
        let opts = ExecOptions {
            concurrency: wf.concurrency.unwrap_or(self.opts.concurrency),
            shutdown,
            events: None,
            remote: self.remote.clone(),
        };
        let store = self.store.clone();
        let path = path.to_path_buf();
        self.tasks.spawn(async move {
            let started = std::time::Instant::now();
            let result = executor::execute(wf, store, record, previous, reuse, opts).await;
            (path, run_id, started.elapsed(), result)
        });
        Ok(())
    }

    pub(super) fn run_ended(&mut self, done: Result<RunResult, tokio::task::JoinError>) {
        let (path, run_id, duration, result) = match done {
            Ok(done) => done,
            Err(e) => {
                // The executor catches node panics; this is a bug in flow itself.
                self.problem(format!("a run task failed: {e}"));
                return;
            }
        };
        self.busy.remove(&path);
        self.live.finish(&run_id);
        self.cancels.remove(&run_id);
        self.note_cancelled(&run_id);
        self.notify_ended(&path, &result);
        let workflow = self
            .entries
            .get(&path)
            .map_or_else(|| path.display().to_string(), |e| e.wf.name.clone());
        let (status, error) = match result {
            Ok(outcome) => (outcome.run.status, outcome.run.error),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        self.emit(EventKind::RunFinished {
            workflow,
            run_id,
            status,
            duration,
            error,
        });
        self.apply_retention();
        self.start_queued(&path);
        self.publish();
    }

    /// Removes the runs the retention options let go. Runs in progress, and runs queued to
    /// resume, stay; so do failed and interrupted runs (`flow runs prune --include-resumable`
    /// removes those).
    pub(super) fn apply_retention(&self) {
        let policy = Retention {
            keep: self.opts.keep_runs,
            since: self
                .opts
                .keep_for
                .map(|d| retention::cutoff(self.clock.now(), d)),
            include_resumable: false,
        };
        if policy.is_empty() {
            return;
        }
        let mut live = self.live.ids();
        live.extend(self.busy.values().cloned());
        live.extend(self.queues.values().flatten().filter_map(|job| match job {
            Job::Start { run_id } | Job::Resume { run_id, .. } => Some(run_id.clone()),
            Job::Fire { .. } => None,
        }));
        match retention::prune(self.store.as_ref(), &policy, &live, false) {
            Ok(pruned) if pruned.runs.is_empty() && pruned.firings == 0 => {}
            Ok(pruned) => self.emit(EventKind::Pruned {
                runs: pruned.runs.len(),
                firings: pruned.firings,
                bytes: pruned.removed.bytes,
            }),
            Err(e) => self.problem(format!("cannot remove old runs: {e}")),
        }
    }
}
