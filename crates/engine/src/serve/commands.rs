//! The server's side of [`super::ServeHandle`]: requests to start, resume and cancel runs,
//! handled inside the scheduler's loop, and the catalog it publishes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;

use super::control::{
    Catalog, Command, ControlError, DELIVERIES, ServedWorkflow, StartRequest, Started, slug,
};
use super::{Job, Server};
use crate::executor::Shutdown;
use crate::runs;
use crate::store::{RunEvent, RunRecord, RunStatus, Write};

/// What a cancelled run's record says.
pub(super) const CANCELLED: &str = "cancelled by a request to `flow serve`";

impl Server {
    pub(super) fn command(&mut self, command: Command) {
        match command {
            Command::Start(request, reply) => {
                let _ = reply.send(self.start_request(request));
            }
            Command::Resume {
                run_id,
                from,
                reply,
            } => {
                let _ = reply.send(self.resume_request(&run_id, from));
            }
            Command::Cancel { run_id, reply } => {
                let _ = reply.send(self.cancel_request(&run_id));
            }
        }
        self.publish();
    }

    fn served_path(&self, key: &str) -> Result<PathBuf, ControlError> {
        let catalog = self.catalog.borrow().clone();
        let served = catalog
            .get(key)
            .ok_or_else(|| ControlError::UnknownWorkflow(key.to_string()))?;
        if !self.entries.contains_key(&served.path) {
            return Err(ControlError::Conflict(format!(
                "workflow `{key}` ({}) has no valid definition to run: {}",
                served.path.display(),
                served.errors.join("; ")
            )));
        }
        Ok(served.path.clone())
    }

    fn start_request(&mut self, request: StartRequest) -> Result<Started, ControlError> {
        let path = self.served_path(&request.workflow)?;
        let wf = self.entries[&path].wf.clone();
        let delivery_key = match (&request.delivery, &request.trigger) {
            (Some(id), Some(trigger)) => Some(format!("{}#{trigger}#{id}", path.display())),
            (Some(id), None) => Some(format!("{}##{id}", path.display())),
            (None, _) => None,
        };
        if let Some(key) = &delivery_key
            && let Some(bytes) = self.store.get(DELIVERIES, key)?
        {
            let run_id: String = serde_json::from_slice(&bytes).unwrap_or_default();
            return Ok(Started {
                run_id,
                queued: false,
                duplicate: true,
            });
        }
        let items: Vec<String> = request
            .params
            .iter()
            .map(|(name, value)| match value {
                Json::String(s) => format!("{name}={s}"),
                other => format!("{name}={other}"),
            })
            .collect();
        let params =
            runs::parse_params(&wf, &items).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let triggers: Vec<String> = request.trigger.iter().cloned().collect();
        let now = self.clock.now();
        let newest = self.store.newest_run_id()?;
        let mut record = runs::new_run(
            &wf,
            params.values,
            &request.fired_by,
            &triggers,
            now,
            None,
            newest.as_deref(),
        )
        .map_err(|e| ControlError::Invalid(e.to_string()))?;
        record.param_overrides = Some(params.overrides);
        record.trigger.payload = request.payload;
        record.status = RunStatus::Queued;
        let mut writes = vec![Write::Run(record.clone())];
        if let Some(key) = delivery_key {
            // The delivery and its run land together: a replay finds the run, a crash leaves
            // neither.
            writes.push(Write::Put {
                namespace: DELIVERIES.into(),
                key,
                value: serde_json::to_vec(&record.id).unwrap_or_default(),
            });
        }
        self.store.apply(writes)?;
        self.store.flush()?;
        // Accepted runs count as live, so `flow resume` elsewhere does not run one as well.
        self.live.start(&record.id);
        let queued = self.busy.contains_key(&path);
        self.submit(
            &path,
            Job::Start {
                run_id: record.id.clone(),
            },
        );
        Ok(Started {
            run_id: record.id,
            queued,
            duplicate: false,
        })
    }

    fn resume_request(
        &mut self,
        run_id: &str,
        from: Option<String>,
    ) -> Result<Started, ControlError> {
        let record = self
            .store
            .run(run_id)?
            .ok_or_else(|| ControlError::UnknownRun(run_id.to_string()))?;
        if record.status == RunStatus::Queued {
            return Err(ControlError::Conflict(format!(
                "run {run_id} is queued and has not started yet"
            )));
        }
        if self.is_live(run_id)? {
            return Err(ControlError::Conflict(format!(
                "run {run_id} is running; it can be resumed once it has stopped"
            )));
        }
        let path = PathBuf::from(&record.workflow_path);
        let Some(entry) = self.entries.get(&path) else {
            return Err(ControlError::Conflict(format!(
                "run {run_id} belongs to {}, which this server does not serve (or whose file is invalid); resume it with `flow resume {run_id}`",
                record.workflow_path
            )));
        };
        let nodes = self.store.nodes(run_id)?;
        // Checked now, so the caller hears about a bad `from` or a finished run at once.
        runs::plan_resume(&entry.wf, &record, &nodes, from.as_deref(), &[])
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let queued = self.busy.contains_key(&path);
        self.submit(
            &path,
            Job::Resume {
                run_id: run_id.to_string(),
                from,
            },
        );
        Ok(Started {
            run_id: run_id.to_string(),
            queued,
            duplicate: false,
        })
    }

    fn cancel_request(&mut self, run_id: &str) -> Result<(), ControlError> {
        if let Some(stop) = self.cancels.get(run_id) {
            // Asked before: the run is stopping (its record may already say interrupted), so a
            // second request gets the same answer whether or not its task has ended yet.
            if !self.cancelled.insert(run_id.to_string()) {
                return Err(ControlError::Conflict(format!(
                    "run {run_id} is not running (a cancel was already asked)"
                )));
            }
            let _ = stop.send(Shutdown::Cancel);
            return Ok(());
        }
        let mut record = self
            .store
            .run(run_id)?
            .ok_or_else(|| ControlError::UnknownRun(run_id.to_string()))?;
        let path = PathBuf::from(&record.workflow_path);
        let waiting = self.queues.get_mut(&path).and_then(|q| {
            let at = q.iter().position(|job| job.run_id() == Some(run_id))?;
            q.remove(at)
        });
        match waiting {
            Some(Job::Start { .. }) => {
                record.status = record.status.apply(RunEvent::Interrupted).map_err(|e| {
                    ControlError::Conflict(format!("cannot cancel run {run_id}: {e}"))
                })?;
                record.error = Some(format!("{CANCELLED} before it started"));
                record.updated_at = self.clock.now();
                self.store.apply(vec![Write::Run(record)])?;
                self.store.flush()?;
                self.live.finish(run_id);
                Ok(())
            }
            // A resume that had not started: the run stays as it was.
            Some(_) => Ok(()),
            None if self.store.live_runs()?.contains(run_id) => {
                Err(ControlError::Conflict(format!(
                    "run {run_id} is executed by another flow process (`flow run` or `flow resume`); stop it there (Ctrl-C)"
                )))
            }
            None => Err(ControlError::Conflict(format!(
                "run {run_id} is not running (it is {})",
                record.status.as_str()
            ))),
        }
    }

    fn is_live(&self, run_id: &str) -> Result<bool, ControlError> {
        Ok(self.cancels.contains_key(run_id)
            || self.busy.values().any(|r| r == run_id)
            || self.store.live_runs()?.contains(run_id))
    }

    /// After a run ends: a cancelled one says so in its record.
    pub(super) fn note_cancelled(&mut self, run_id: &str) {
        if !self.cancelled.remove(run_id) {
            return;
        }
        let noted = self.store.run(run_id).and_then(|record| match record {
            Some(mut record) if record.status == RunStatus::Interrupted => {
                record.error = Some(CANCELLED.into());
                self.store.apply(vec![Write::Run(record)])?;
                self.store.flush()
            }
            _ => Ok(()),
        });
        if let Err(e) = noted {
            self.problem(format!(
                "cannot record that run {run_id} was cancelled: {e}"
            ));
        }
    }

    /// Publishes what is served to the handles.
    pub(super) fn publish(&self) {
        let mut paths: Vec<&PathBuf> = self.entries.keys().chain(self.invalid.keys()).collect();
        paths.sort();
        paths.dedup();
        let mut workflows: Vec<ServedWorkflow> = paths
            .into_iter()
            .map(|path| {
                let entry = self.entries.get(path);
                ServedWorkflow {
                    key: String::new(),
                    path: path.clone(),
                    workflow: entry.map(|e| e.wf.clone()),
                    errors: self.invalid.get(path).cloned().unwrap_or_default(),
                    schedules: entry
                        .map(|e| e.triggers.iter().map(|s| s.trigger.clone()).collect())
                        .unwrap_or_default(),
                    webhooks: entry.map(|e| e.webhooks.clone()).unwrap_or_default(),
                    running: self.busy.get(path).cloned(),
                    queued: self.queues.get(path).map_or(0, |q| q.len()),
                }
            })
            .collect();
        assign_keys(&mut workflows);
        workflows.sort_by(|a, b| a.key.cmp(&b.key));
        self.catalog.send_replace(Arc::new(Catalog { workflows }));
    }
}

/// Keys from names; files sharing a name get `-2`, `-3`, ... in path order.
fn assign_keys(workflows: &mut [ServedWorkflow]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for w in workflows.iter_mut() {
        let base = slug(&w.name());
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        w.key = if *n == 1 { base } else { format!("{base}-{n}") };
    }
}

impl Job {
    pub(super) fn run_id(&self) -> Option<&str> {
        match self {
            Job::Start { run_id } | Job::Resume { run_id, .. } => Some(run_id),
            Job::Fire { .. } => None,
        }
    }
}

/// Runs accepted (recorded `queued`) but not started when the server last stopped: started
/// now, in the order given (oldest first), so an accepted request is not lost to a restart.
pub(super) fn queued_runs(runs: &[RunRecord], path: &Path) -> Vec<String> {
    runs.iter()
        .filter(|r| r.status == RunStatus::Queued && Path::new(&r.workflow_path) == path)
        .map(|r| r.id.clone())
        .collect()
}
