//! `GET /api/runs` (filtered, paged, newest first, from the run index) and
//! `GET /api/runs/{id}` (one run with its nodes, graph, resume plan and files).

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, Utc};
use flow_engine::store::StateStore;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::files::{FileEntry, node_files};
use super::graph::Graph;
use super::nodes::{NodeDetail, node_details};
use super::query;
use super::resume::{ResumeInfo, resume_info};
use super::run_index::Key;
use super::summary::{RunSummary, shown_status};
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

const STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "interrupted"];

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// How a run was started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TriggerDetail {
    pub fired_by: String,
    pub triggers: Vec<String>,
    pub time: DateTime<Utc>,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// What started the run brought (a webhook's body and selected headers).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// One run in full.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    #[schema(value_type = Object)]
    pub params: Value,
    pub trigger: TriggerDetail,
    /// In the workflow's run order; nodes no longer in the workflow at the end.
    pub nodes: Vec<NodeDetail>,
    /// The workflow as served now; null if it is not served.
    pub graph: Option<Graph>,
    pub resume: ResumeInfo,
    pub files: Vec<FileEntry>,
}

#[utoipa::path(get, path = "/api/runs", tag = "runs",
    params(
        ("workflow" = Option<String>, Query, description = "A served workflow's key"),
        ("status" = Option<Vec<String>>, Query, description = "queued, running, succeeded, failed or interrupted; repeat or comma-separate for several"),
        ("since" = Option<String>, Query, description = "Runs created at or after this RFC 3339 time"),
        ("until" = Option<String>, Query, description = "Runs created before this RFC 3339 time"),
        ("limit" = Option<usize>, Query, description = "1 to 500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Runs, newest first", body = RunPage),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody)))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RunPage>, ApiError> {
    let pairs = query::pairs(raw.as_deref())?;
    query::only(
        &pairs,
        &["workflow", "status", "since", "until", "limit", "cursor"],
    )?;
    let catalog = state.handle.catalog();
    let workflow = match query::last(&pairs, "workflow") {
        None => None,
        Some(key) => Some(
            catalog
                .get(key)
                .map(|w| w.path.display().to_string())
                .ok_or_else(|| ApiError::bad_request(format!("no served workflow `{key}`")))?,
        ),
    };
    let mut statuses: HashSet<&str> = HashSet::new();
    for (_, value) in pairs.iter().filter(|(k, _)| k == "status") {
        for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let known = STATUSES.iter().find(|k| **k == s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status `{s}` (known: {})",
                    STATUSES.join(", ")
                ))
            })?;
            statuses.insert(known);
        }
    }
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        query::last(&pairs, key)
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "`{key}` must be an RFC 3339 time such as 2026-01-31T06:00:00Z, got `{t}`: {e}"
                        ))
                    })
            })
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    let limit = query::number(&pairs, "limit", 50, 1, 500)?;
    let cursor = match query::last(&pairs, "cursor") {
        None | Some("") => None,
        Some(c) => Some(Key::from_cursor(c).ok_or_else(|| {
            ApiError::bad_request("`cursor` is not a cursor this server gave out")
        })?),
    };
    state.runs.ready().await;
    let live = state.live.ids();
    let (runs, next) = state
        .runs
        .page(workflow.as_deref(), cursor.as_ref(), limit, |run| {
            since.is_none_or(|s| run.created_at >= s)
                && until.is_none_or(|u| run.created_at < u)
                && (statuses.is_empty()
                    || statuses.contains(shown_status(run, live.contains(&run.id))))
        });
    Ok(Json(RunPage {
        runs: runs
            .iter()
            .map(|r| RunSummary::new(r, live.contains(&r.id), &catalog))
            .collect(),
        next_cursor: next.map(|k| k.cursor()),
    }))
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let store = state.store.clone();
    let run_id = id.clone();
    let (run, records) = tokio::task::spawn_blocking(move || {
        let run = store.run(&run_id)?;
        let records = match &run {
            Some(_) => store.nodes(&run_id)?,
            None => Vec::new(),
        };
        Ok::<_, ApiError>((run, records))
    })
    .await
    .map_err(|_| ApiError::internal("internal", "reading the run failed"))??;
    let run = run.ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    let live = state.live.contains(&run.id);
    let catalog = state.handle.catalog();
    let workflow = catalog
        .by_path(&run.workflow_path)
        .and_then(|w| w.workflow.clone());
    let nodes = node_details(&run, &records, workflow.as_deref(), live);
    let resume = resume_info(&state, &run, &records, workflow.as_deref(), live);
    let files = node_files(&run.id, &records);
    Ok(Json(RunDetail {
        summary: RunSummary::new(&run, live, &catalog),
        params: serde_json::to_value(&run.params).unwrap_or(Value::Null),
        trigger: TriggerDetail {
            fired_by: run.trigger.fired_by.clone(),
            triggers: run.trigger.triggers.clone(),
            time: run.trigger.time,
            scheduled_for: run.trigger.scheduled_for,
            payload: run.trigger.payload.clone(),
        },
        nodes,
        graph: workflow.as_deref().map(Graph::of),
        resume,
        files,
    }))
}
