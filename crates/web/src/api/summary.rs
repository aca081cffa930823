//! A run as lists show it: [`RunSummary`].

use chrono::{DateTime, Utc};
use flow_engine::serve::Catalog;
use flow_engine::store::{RunRecord, RunStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// One run in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RunSummary {
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The served workflow's key; null when its file is not served.
    pub workflow_key: Option<String>,
    pub workflow_path: String,
    /// `queued`, `running`, `succeeded`, `failed` or `interrupted` (a `running` run that no
    /// process executes shows `interrupted`).
    pub status: String,
    /// `manual`, `schedule`, `api`, `webhook`, ...
    pub fired_by: String,
    pub triggers: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_secs: f64,
    pub executions: u32,
    pub error: Option<String>,
    /// Some process executes it right now.
    pub live: bool,
}

/// The status a run is shown with.
pub(crate) fn shown_status(run: &RunRecord, live: bool) -> &'static str {
    match run.status {
        RunStatus::Running if !live => "interrupted",
        s => s.as_str(),
    }
}

impl RunSummary {
    pub fn new(run: &RunRecord, live: bool, catalog: &Catalog) -> Self {
        RunSummary {
            id: run.id.clone(),
            workflow: run.workflow_name.clone(),
            workflow_key: catalog.by_path(&run.workflow_path).map(|w| w.key.clone()),
            workflow_path: run.workflow_path.clone(),
            status: shown_status(run, live).to_string(),
            fired_by: run.trigger.fired_by.clone(),
            triggers: run.trigger.triggers.clone(),
            created_at: run.created_at,
            finished_at: run.finished_at,
            duration_secs: run.duration_secs(),
            executions: run.executions,
            error: run.error.clone(),
            live,
        }
    }
}
