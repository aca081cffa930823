//! What resuming a run would do, for the run page: [`ResumeInfo`].

use flow_engine::compile::Workflow;
use flow_engine::runs::plan_resume;
use flow_engine::store::{NodeRecord, RunRecord, RunStatus};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// A node that would run again, and why.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RerunInfo {
    pub node: String,
    pub reason: String,
}

/// The resume plan of a run, against the workflow as served now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResumeInfo {
    pub possible: bool,
    /// Why not, when it is not possible.
    pub reason: Option<String>,
    /// Nodes whose checkpoint would be reused.
    pub reused: Vec<String>,
    pub reruns: Vec<RerunInfo>,
    /// The same from a shell.
    pub command: String,
}

pub(crate) fn resume_info(
    state: &AppState,
    run: &RunRecord,
    records: &[NodeRecord],
    workflow: Option<&Workflow>,
    live: bool,
) -> ResumeInfo {
    let command = format!(
        "flow resume {} --state {}",
        run.id,
        state.opts.state_dir.display()
    );
    let not = |reason: String| ResumeInfo {
        possible: false,
        reason: Some(reason),
        reused: Vec::new(),
        reruns: Vec::new(),
        command: command.clone(),
    };
    if run.status == RunStatus::Queued {
        return not("the run is queued and has not started yet".into());
    }
    if run.status == RunStatus::Running && live {
        return not("the run is running".into());
    }
    let Some(wf) = workflow else {
        return not("its workflow file is not served (or not valid)".into());
    };
    match plan_resume(wf, run, records, None, &[]) {
        Ok(plan) => ResumeInfo {
            possible: true,
            reason: None,
            reused: plan.reused,
            reruns: plan
                .reruns
                .into_iter()
                .map(|r| RerunInfo {
                    node: r.node,
                    reason: r.reason,
                })
                .collect(),
            command,
        },
        Err(e) => not(e.to_string()),
    }
}
