//! State-changing endpoints: start a run, resume one, cancel one. They go through the
//! server's handle, so they obey the same one-run-per-workflow queue as scheduled firings.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use flow_engine::serve::StartRequest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// What to start a run with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    /// Param values by name, read as their declared types.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, Value>,
    /// The trigger that fires (all the workflow's triggers when null).
    #[serde(default)]
    pub trigger: Option<String>,
}

/// Where to resume from.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeBody {
    /// Re-run this node and everything downstream of it too.
    #[serde(default)]
    pub from: Option<String>,
}

/// A run started, resumed or queued.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StartedBody {
    pub run_id: String,
    /// Waiting behind the workflow's current run.
    pub queued: bool,
}

/// A run asked to stop.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelledBody {
    pub run_id: String,
}

/// A JSON body; an empty one is the type's default.
fn body<T: DeserializeOwned + Default>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::invalid(format!("the body does not fit: {e}"))
        } else {
            ApiError::bad_request(format!("the body is not JSON: {e}"))
        }
    })
}

#[utoipa::path(post, path = "/api/workflows/{key}/runs", tag = "actions",
    params(("key" = String, Path, description = "The workflow's key")),
    request_body(content = Option<StartBody>, content_type = "application/json"),
    responses(
        (status = 202, description = "The run is recorded and starts (or waits its turn)", body = StartedBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "Bad params or trigger", body = ErrorBody)))]
pub(crate) async fn start_run(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<StartedBody>), ApiError> {
    let request: StartBody = body(&headers, &bytes)?;
    let started = state
        .handle
        .start(StartRequest {
            workflow: key,
            params: request.params,
            fired_by: "api".into(),
            trigger: request.trigger,
            payload: None,
            delivery: None,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedBody {
            run_id: started.run_id,
            queued: started.queued,
        }),
    ))
}

#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "actions",
    params(("id" = String, Path, description = "The run id")),
    request_body(content = Option<ResumeBody>, content_type = "application/json"),
    responses(
        (status = 202, description = "The run resumes (or waits its turn)", body = StartedBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is running or queued", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "Unknown `from` node, or nothing to resume", body = ErrorBody)))]
pub(crate) async fn resume_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<StartedBody>), ApiError> {
    let request: ResumeBody = body(&headers, &bytes)?;
    let started = state.handle.resume(&id, request.from).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedBody {
            run_id: started.run_id,
            queued: started.queued,
        }),
    ))
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "actions",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 202, description = "The run is asked to stop; its nodes end interrupted", body = CancelledBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Not running here (finished, or executed by another process)", body = ErrorBody)))]
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CancelledBody>), ApiError> {
    state.handle.cancel(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(CancelledBody { run_id: id })))
}
