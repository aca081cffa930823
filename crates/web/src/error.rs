//! Errors as the API answers them: a status and `{"error": {"code", "message"}}`, never an HTML
//! page or a stack trace.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flow_engine::serve::ControlError;
use flow_engine::store::StoreError;
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `bad_request`, ...).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!("state store error while answering a request: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_error",
            e.to_string(),
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::UnknownWorkflow(_) | ControlError::UnknownRun(_) => {
                ApiError::not_found(e.to_string())
            }
            ControlError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            ControlError::Conflict(m) => ApiError::conflict(m),
            ControlError::Stopping => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
            ControlError::Store(e) => e.into(),
        }
    }
}
