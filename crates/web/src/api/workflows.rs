//! `GET /api/workflows` and `GET /api/workflows/{key}`: what is served, its triggers and next
//! fire times, its params, graph, firing log and recent runs.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use flow_engine::serve::{ServedWorkflow, firings};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::graph::Graph;
use super::summary::RunSummary;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Next fire times shown per scheduled trigger.
const NEXT_FIRES: usize = 5;
/// Firing log entries shown.
const FIRINGS_SHOWN: usize = 50;
/// Recent runs shown on a workflow.
const RECENT_RUNS: usize = 20;

/// A trigger of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TriggerSummary {
    pub id: String,
    /// `schedule`, `webhook`, `manual`, ... (the node type).
    #[serde(rename = "type")]
    pub trigger_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The next fire times (schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Vec<DateTime<Utc>>>,
    /// Where to post (webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `hmac`, `bearer` or `none` (webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

/// A served workflow file.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowSummary {
    pub key: String,
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    /// A definition is in force (the file, or a previous version of it, compiled).
    pub valid: bool,
    /// The current file's problems (`FILE:LINE:COL: ...`); empty when it is valid.
    pub errors: Vec<String>,
    pub triggers: Vec<TriggerSummary>,
    /// The run in progress.
    pub running: Option<String>,
    /// Runs waiting for it.
    pub queued: usize,
    pub last_run: Option<RunSummary>,
}

/// A declared param.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParamInfo {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `list` or `mapping`.
    #[serde(rename = "type")]
    pub param_type: String,
    #[schema(value_type = Object)]
    pub default: Value,
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub allowed: Option<Vec<Value>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A firing of a scheduled trigger.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FiringInfo {
    pub trigger: String,
    pub scheduled_for: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// `fired`, `skipped` or `missed`.
    pub outcome: String,
    pub run_id: Option<String>,
    pub reason: Option<String>,
}

/// One workflow in full.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowDetail {
    #[serde(flatten)]
    pub summary: WorkflowSummary,
    pub params: Vec<ParamInfo>,
    pub graph: Graph,
    /// Newest first, at most 50, all triggers.
    pub firings: Vec<FiringInfo>,
    /// The newest 20 runs.
    pub recent_runs: Vec<RunSummary>,
}

/// The workflows.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
}

#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, description = "The served workflows in key order", body = WorkflowList)))]
pub(crate) async fn list_workflows(State(state): State<AppState>) -> Json<WorkflowList> {
    state.runs.ready().await;
    let catalog = state.handle.catalog();
    let workflows = catalog
        .workflows
        .iter()
        .map(|w| summary(&state, w))
        .collect();
    Json(WorkflowList { workflows })
}

#[utoipa::path(get, path = "/api/workflows/{key}", tag = "workflows",
    params(("key" = String, Path, description = "The workflow's key")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowDetail),
        (status = 404, description = "No such workflow", body = ErrorBody)))]
pub(crate) async fn get_workflow(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<WorkflowDetail>, ApiError> {
    state.runs.ready().await;
    let catalog = state.handle.catalog();
    let served = catalog
        .get(&key)
        .ok_or_else(|| ApiError::not_found(format!("no served workflow `{key}`")))?;
    let wf = served.workflow.clone();
    let params = wf
        .as_ref()
        .map(|wf| {
            wf.param_decls
                .values()
                .map(|d| ParamInfo {
                    name: d.name.clone(),
                    param_type: serde_json::to_value(d.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    default: d.default.clone(),
                    description: d.description.clone(),
                    allowed: d.allowed.clone(),
                    min: d.min,
                    max: d.max,
                })
                .collect()
        })
        .unwrap_or_default();
    let store = state.store.clone();
    let path = served.path.clone();
    let triggers: Vec<String> = served.schedules.iter().map(|s| s.id.clone()).collect();
    let mut log = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for trigger in &triggers {
            all.extend(firings(store.as_ref(), &path, trigger)?);
        }
        Ok::<_, ApiError>(all)
    })
    .await
    .map_err(|_| ApiError::internal("internal", "reading the firing log failed"))??;
    log.sort_by_key(|f| std::cmp::Reverse((f.at, f.scheduled_for)));
    log.truncate(FIRINGS_SHOWN);
    let path = served.path.display().to_string();
    let recent_runs = state
        .runs
        .newest_of(&path, RECENT_RUNS)
        .iter()
        .map(|r| RunSummary::new(r, state.live.contains(&r.id), &catalog))
        .collect();
    Ok(Json(WorkflowDetail {
        summary: summary(&state, served),
        params,
        graph: wf.as_deref().map_or_else(Graph::empty, Graph::of),
        firings: log
            .into_iter()
            .map(|f| FiringInfo {
                trigger: f.trigger,
                scheduled_for: f.scheduled_for,
                at: f.at,
                outcome: f.outcome,
                run_id: f.run_id,
                reason: f.reason,
            })
            .collect(),
        recent_runs,
    }))
}

pub(crate) fn summary(state: &AppState, served: &ServedWorkflow) -> WorkflowSummary {
    let now = Utc::now();
    let mut triggers = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(wf) = &served.workflow {
        for node in wf.triggers() {
            seen.insert(node.id.clone());
            triggers.push(trigger(served, &node.id, &node.type_name, now));
        }
    }
    let path = served.path.display().to_string();
    let last_run = state
        .runs
        .newest_of(&path, 1)
        .first()
        .map(|r| RunSummary::new(r, state.live.contains(&r.id), &state.handle.catalog()));
    WorkflowSummary {
        key: served.key.clone(),
        name: served.name(),
        path,
        description: served.workflow.as_ref().and_then(|w| w.description.clone()),
        valid: served.workflow.is_some(),
        errors: served.errors.clone(),
        triggers,
        running: served.running.clone(),
        queued: served.queued,
        last_run,
    }
}

fn trigger(
    served: &ServedWorkflow,
    id: &str,
    type_name: &str,
    now: DateTime<Utc>,
) -> TriggerSummary {
    let mut t = TriggerSummary {
        id: id.to_string(),
        trigger_type: type_name.to_string(),
        cron: None,
        timezone: None,
        next: None,
        url: None,
        auth: None,
    };
    if let Some(s) = served.schedules.iter().find(|s| s.id == id) {
        let cron = &s.schedule.cron;
        t.cron = Some(cron.expression.clone());
        t.timezone = Some(cron.timezone.name().to_string());
        t.next = Some(
            cron.after(now)
                .take(NEXT_FIRES)
                .map(|t| t.with_timezone(&Utc))
                .collect(),
        );
    }
    if let Some(w) = served.webhooks.iter().find(|w| w.id == id) {
        t.url = Some(format!("/hooks/{}/{}", served.key, w.id));
        t.auth = Some(w.spec.auth.as_str().to_string());
    }
    t
}
