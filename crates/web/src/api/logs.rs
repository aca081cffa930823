//! `GET /api/runs/{id}/nodes/{node}/logs`: a node's history as log lines (attempts started,
//! finished or failed, retries, warnings, why it was skipped), merged with lines the engine
//! captured in the store under `logs/RUN_ID/NODE_ID` when there are any.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use flow_engine::store::{AttemptOutcome, NodeRecord, NodeStatus, StateStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Store namespace of captured log lines, keyed `RUN_ID/NODE_ID`, valued with a JSON array of
/// [`LogLine`].
pub(crate) const LOGS: &str = "logs";

/// One log line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct LogLine {
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// A node's log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeLogs {
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

#[utoipa::path(get, path = "/api/runs/{id}/nodes/{node}/logs", tag = "output",
    params(
        ("id" = String, Path, description = "The run id"),
        ("node" = String, Path, description = "The node id"),
    ),
    responses(
        (status = 200, description = "The node's log lines", body = NodeLogs),
        (status = 404, description = "No such run or node", body = ErrorBody)))]
pub(crate) async fn node_logs(
    State(state): State<AppState>,
    Path((id, node)): Path<(String, String)>,
) -> Result<Json<NodeLogs>, ApiError> {
    let store = state.store.clone();
    let (run_id, node_id) = (id.clone(), node.clone());
    let (run, records, captured) = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((
            store.run(&run_id)?,
            store.nodes(&run_id)?,
            store.get(LOGS, &format!("{run_id}/{node_id}"))?,
        ))
    })
    .await
    .map_err(|_| ApiError::internal("internal", "reading the log failed"))??;
    let run = run.ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    let record = records.iter().find(|r| r.node_id == node);
    let known = record.is_some()
        || state
            .handle
            .catalog()
            .by_path(&run.workflow_path)
            .and_then(|w| w.workflow.as_ref())
            .is_some_and(|wf| wf.node(&node).is_some());
    if !known {
        return Err(ApiError::not_found(format!(
            "run `{id}` has no node `{node}`"
        )));
    }
    let mut lines = record.map(history).unwrap_or_default();
    if let Some(bytes) = captured {
        match serde_json::from_slice::<Vec<LogLine>>(&bytes) {
            Ok(more) => lines.extend(more),
            Err(e) => tracing::warn!("the captured log of {id}/{node} is unreadable: {e}"),
        }
    }
    lines.sort_by_key(|l| l.at);
    Ok(Json(NodeLogs { lines }))
}

/// The lines a node's record tells.
fn history(record: &NodeRecord) -> Vec<LogLine> {
    let line = |at: DateTime<Utc>, level: &str, message: String| LogLine {
        at,
        level: level.into(),
        message,
    };
    let mut lines = Vec::new();
    for a in &record.attempts {
        let retry = if a.number > 1 { " (retry)" } else { "" };
        lines.push(line(
            a.started_at,
            "info",
            format!(
                "attempt {} started{retry} (execution {})",
                a.number, a.execution
            ),
        ));
        let end = a.finished_at.unwrap_or(a.started_at);
        match a.outcome {
            AttemptOutcome::Running => {}
            AttemptOutcome::Succeeded => {
                lines.push(line(end, "info", format!("attempt {} succeeded", a.number)))
            }
            outcome => {
                let error = a.error.as_deref().unwrap_or("no error recorded");
                lines.push(line(
                    end,
                    "error",
                    format!("attempt {} {}: {error}", a.number, outcome.as_str()),
                ));
            }
        }
    }
    let at = record
        .finished_at
        .or(record.started_at)
        .or(record.attempts.last().map(|a| a.started_at))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for w in &record.warnings {
        lines.push(line(at, "warn", w.clone()));
    }
    if matches!(
        record.status,
        NodeStatus::Skipped | NodeStatus::UpstreamFailed
    ) && let Some(reason) = &record.reason
    {
        lines.push(line(
            at,
            "info",
            format!("{}: {reason}", record.status.as_str()),
        ));
    }
    if record.status == NodeStatus::Succeeded {
        lines.push(line(
            at,
            "info",
            format!(
                "succeeded: {} rows in, {} rows out",
                record.rows_in, record.rows_out
            ),
        ));
    }
    lines
}
