//! Steering a running server from outside its loop (the HTTP API, webhooks): start a run,
//! resume one, cancel one, and a snapshot of what is served.
//!
//! Requests travel over a channel into the scheduler's loop, which alone decides what runs, so
//! a run started by a request obeys the same one-run-per-workflow queue as scheduled firings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot, watch};

use super::ScheduleTrigger;
use crate::compile::Workflow;
use crate::store::StoreError;
use crate::webhook::WebhookTrigger;

/// Store namespace of webhook deliveries already turned into runs, keyed
/// `WORKFLOW_PATH#TRIGGER#DELIVERY_ID`, valued with the run id.
pub const DELIVERIES: &str = "webhook-deliveries";

/// What the server serves right now.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// In key order.
    pub workflows: Vec<ServedWorkflow>,
}

impl Catalog {
    pub fn get(&self, key: &str) -> Option<&ServedWorkflow> {
        self.workflows.iter().find(|w| w.key == key)
    }

    /// The served workflow of a file (as a run records it).
    pub fn by_path(&self, path: &str) -> Option<&ServedWorkflow> {
        self.workflows
            .iter()
            .find(|w| w.path.as_os_str() == std::ffi::OsStr::new(path))
    }
}

/// One served workflow file.
#[derive(Debug, Clone)]
pub struct ServedWorkflow {
    /// The workflow's name made URL-safe; unique among the served files.
    pub key: String,
    pub path: PathBuf,
    /// The definition in force (the last valid one), if the file was ever valid.
    pub workflow: Option<Arc<Workflow>>,
    /// The file's current problems when its contents are invalid (the definition in force,
    /// if any, is the previous one).
    pub errors: Vec<String>,
    pub schedules: Vec<ScheduleTrigger>,
    pub webhooks: Vec<WebhookTrigger>,
    /// The run in progress.
    pub running: Option<String>,
    /// Jobs waiting for it.
    pub queued: usize,
}

impl ServedWorkflow {
    pub fn name(&self) -> String {
        match &self.workflow {
            Some(wf) => wf.name.clone(),
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// A request to start a run.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// The workflow's key.
    pub workflow: String,
    /// Param values by name, as JSON; read as their declared types like `--param`.
    pub params: BTreeMap<String, Json>,
    /// `api`, `webhook`, ...
    pub fired_by: String,
    /// The trigger that fires (all triggers when `None`).
    pub trigger: Option<String>,
    /// Recorded with the run; a trigger's output carries it (a webhook's body and headers).
    pub payload: Option<Json>,
    /// A delivery id: a second request with the same id (for the same trigger) starts nothing
    /// and gets the first run's id.
    pub delivery: Option<String>,
}

/// A run a request started, queued, or found already started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub run_id: String,
    /// Waiting behind the workflow's current run.
    pub queued: bool,
    /// The delivery was seen before; no run was started.
    pub duplicate: bool,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no served workflow `{0}`")]
    UnknownWorkflow(String),
    #[error("no run `{0}` in the state store")]
    UnknownRun(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the server is stopping")]
    Stopping,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) enum Command {
    Start(StartRequest, oneshot::Sender<Result<Started, ControlError>>),
    Resume {
        run_id: String,
        from: Option<String>,
        reply: oneshot::Sender<Result<Started, ControlError>>,
    },
    Cancel {
        run_id: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// Steers a [`super::Server`] from other tasks; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServeHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) catalog: watch::Receiver<Arc<Catalog>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Start(..) => "Start",
            Command::Resume { .. } => "Resume",
            Command::Cancel { .. } => "Cancel",
        })
    }
}

impl ServeHandle {
    /// What is served now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// A receiver that sees every new catalog.
    pub fn watch_catalog(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.clone()
    }

    /// Records a new run (durably) and starts it, or queues it behind the workflow's run.
    pub async fn start(&self, request: StartRequest) -> Result<Started, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Start(request, reply)).await?;
        answer.await.map_err(|_| ControlError::Stopping)?
    }

    /// Resumes a failed or interrupted run (re-running from `from` and downstream when given).
    pub async fn resume(
        &self,
        run_id: &str,
        from: Option<String>,
    ) -> Result<Started, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Resume {
            run_id: run_id.to_string(),
            from,
            reply,
        })
        .await?;
        answer.await.map_err(|_| ControlError::Stopping)?
    }

    /// Cancels a run this server executes or has queued: running nodes are stopped and
    /// recorded as interrupted, so the run can be resumed later.
    pub async fn cancel(&self, run_id: &str) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Cancel {
            run_id: run_id.to_string(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| ControlError::Stopping)?
    }

    async fn send(&self, command: Command) -> Result<(), ControlError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ControlError::Stopping)
    }
}

/// A workflow name as it appears in URLs: lower case letters, digits, `-` and `_`.
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "workflow".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn keys_are_url_safe() {
        assert_eq!(slug("retail-segmentation"), "retail-segmentation");
        assert_eq!(slug("Daily Sales / EU"), "daily-sales-eu");
        assert_eq!(slug("ÉTÉ"), "t");
        assert_eq!(slug("///"), "workflow");
    }
}
