//! Webhook triggers: `POST /hooks/WORKFLOW/TRIGGER` starts a run whose trigger output carries
//! the request's JSON body and the headers the trigger selects.
//!
//! A caller proves who it is with an HMAC-SHA256 signature of the raw body or a bearer token,
//! both read from environment variables the trigger names, unless the trigger says
//! `auth: none`. The delivery id header makes a repeated delivery start nothing: the delivery
//! and its run are recorded in one durable write, so a retry after a timeout, or after the
//! server crashed, gets the first run's id.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flow_engine::data;
use flow_engine::serve::{StartRequest, Started};
use flow_engine::store::{RunStatus, StateStore, StoreChange};
use flow_engine::webhook::{WebhookAuth, WebhookRespond, WebhookSpec};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::{ApiError, AppState};

/// Longest delivery id kept (ids are stored as keys).
const MAX_DELIVERY_ID: usize = 200;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/hooks/{workflow}/{trigger}", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path((workflow, trigger)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let catalog = state.handle.catalog();
    let served = catalog
        .get(&workflow)
        .ok_or_else(|| ApiError::not_found(format!("no served workflow `{workflow}`")))?;
    let spec = served
        .webhooks
        .iter()
        .find(|w| w.id == trigger)
        .map(|w| w.spec.clone())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "workflow `{workflow}` has no webhook trigger `{trigger}`"
            ))
        })?;
    let max = usize::try_from(spec.max_body).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than this trigger accepts ({max} bytes)"),
        )
    })?;
    authenticate(&spec, &headers, &bytes, &|name| std::env::var(name).ok())?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    let delivery = match headers.get(&spec.delivery_header) {
        None => None,
        Some(v) => {
            let id = v.to_str().ok().filter(|s| {
                !s.is_empty()
                    && s.len() <= MAX_DELIVERY_ID
                    && s.bytes().all(|b| b.is_ascii_graphic())
            });
            Some(id.map(str::to_string).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "header `{}` must be 1 to {MAX_DELIVERY_ID} printable ASCII characters",
                    spec.delivery_header
                ))
            })?)
        }
    };
    let selected: Map<String, Value> = spec
        .headers
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.clone(), Value::String(value.to_string())))
        })
        .collect();
    let request = StartRequest {
        workflow: served.key.clone(),
        params: Default::default(),
        fired_by: "webhook".into(),
        trigger: Some(trigger.clone()),
        payload: Some(json!({ "body": body, "headers": selected, "delivery": delivery })),
        delivery,
    };
    // Listening before the run starts, so its end cannot be missed.
    let changes = state.store.subscribe();
    let started = state.handle.start(request).await?;
    match spec.respond {
        WebhookRespond::Output { node, timeout } if !started.duplicate => {
            respond_with_output(&state, changes, &started, &node, timeout).await
        }
        _ => Ok(accepted(&started)),
    }
}

fn accepted(started: &Started) -> Response {
    let status = if started.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = json!({
        "run_id": started.run_id,
        "queued": started.queued,
        "duplicate": started.duplicate,
        "run": format!("/api/runs/{}", started.run_id),
    });
    (status, Json(body)).into_response()
}

/// Checks the caller's signature or token. Messages name the header or the environment
/// variable, never a secret.
fn authenticate(
    spec: &WebhookSpec,
    headers: &HeaderMap,
    body: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ApiError> {
    let secret = |name: &str| {
        env(name).filter(|s| !s.is_empty()).ok_or_else(|| {
            let env = name;
            tracing::warn!(
                "a webhook request was refused: the environment variable {env} is not set"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                format!("the server has no secret for this trigger (environment variable {env} is not set)"),
            )
        })
    };
    match &spec.auth {
        WebhookAuth::None => Ok(()),
        WebhookAuth::Hmac { secret_env, header } => {
            let key = secret(secret_env)?;
            let given = headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ApiError::unauthorized(format!("missing signature header `{header}`"))
                })?;
            let hex = given.trim().strip_prefix("sha256=").unwrap_or(given.trim());
            let signature = decode_hex(hex).ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "header `{header}` must be `sha256=` and 64 hex digits"
                ))
            })?;
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .map_err(|_| ApiError::unauthorized("bad signing key"))?;
            mac.update(body);
            // Constant-time comparison.
            mac.verify_slice(&signature)
                .map_err(|_| ApiError::unauthorized("the signature does not match the body"))
        }
        WebhookAuth::Bearer { token_env } => {
            let token = secret(token_env)?;
            let given = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer` token"))?;
            if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::unauthorized(
                    "the token is not valid for this trigger",
                ))
            }
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing MACs of both keeps the time independent of the lengths too.
    let mac = |x: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"flow constant-time comparison")
            .expect("any key length");
        m.update(x);
        m.finalize().into_bytes()
    };
    let (x, y) = (mac(a), mac(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Waits for the run to end, then answers with `node`'s output; a run still going at the
/// timeout gets 202 with its id.
async fn respond_with_output(
    state: &AppState,
    mut changes: tokio::sync::broadcast::Receiver<StoreChange>,
    started: &Started,
    node: &str,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let run_id = started.run_id.clone();
    let ended = |status: RunStatus| {
        matches!(
            status,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Interrupted
        )
    };
    let wait = async {
        loop {
            // A missed change (a slow listener) is made up for by reading the record.
            if let Some(run) = state.store.run(&run_id)?
                && ended(run.status)
            {
                return Ok::<_, ApiError>(run);
            }
            loop {
                match changes.recv().await {
                    Ok(StoreChange::Run(run)) if run.id == run_id && ended(run.status) => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    };
    let run = match tokio::time::timeout(timeout, wait).await {
        Ok(run) => run?,
        Err(_) => return Ok(accepted(started)),
    };
    if run.status != RunStatus::Succeeded {
        let body = json!({
            "error": {
                "code": "run_failed",
                "message": format!("run {run_id} {}", run.status.as_str()),
            },
            "run_id": run_id,
            "status": run.status.as_str(),
        });
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
    }
    let unreadable = |e: String| {
        ApiError::internal(
            "output_unreadable",
            format!("the output of `{node}` cannot be read: {e}"),
        )
    };
    let output = match state.store.output(&run_id, node)? {
        None => Value::Null,
        Some(bytes) => {
            let output = data::decode(&bytes).map_err(|e| unreadable(e.to_string()))?;
            crate::rows::data_json(output.select(None)).map_err(|e| unreadable(e.to_string()))?
        }
    };
    Ok((
        StatusCode::OK,
        Json(json!({ "run_id": run_id, "status": "succeeded", "output": output })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(auth: WebhookAuth) -> WebhookSpec {
        WebhookSpec {
            auth,
            delivery_header: "x-flow-delivery".into(),
            headers: vec![],
            respond: WebhookRespond::Accepted,
            max_body: 1024,
        }
    }

    fn sign(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    #[test]
    fn a_signature_must_match_the_body_and_the_secret() {
        let s = spec(WebhookAuth::Hmac {
            secret_env: "HOOK_SECRET".into(),
            header: "x-sig".into(),
        });
        let body = br#"{"order":1}"#;
        let mut h = HeaderMap::new();
        assert_eq!(authenticate(&s, &h, body, &env).unwrap_err().status, 401);
        h.insert("x-sig", sign("s3cret", body).parse().unwrap());
        authenticate(&s, &h, body, &env).unwrap();
        assert!(authenticate(&s, &h, br#"{"order":2}"#, &env).is_err());
        h.insert("x-sig", sign("other", body).parse().unwrap());
        let err = authenticate(&s, &h, body, &env).unwrap_err();
        assert!(!err.message.contains("s3cret"));
        h.insert("x-sig", "sha256=zz".parse().unwrap());
        assert_eq!(authenticate(&s, &h, body, &env).unwrap_err().status, 401);
    }

    #[test]
    fn a_missing_secret_is_a_server_problem_that_names_the_variable_only() {
        let s = spec(WebhookAuth::Bearer {
            token_env: "UNSET_TOKEN".into(),
        });
        let err = authenticate(&s, &HeaderMap::new(), b"", &env).unwrap_err();
        assert_eq!(err.status, 503);
        assert!(err.message.contains("UNSET_TOKEN"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    fn env(name: &str) -> Option<String> {
        (name == "HOOK_SECRET").then(|| "s3cret".to_string())
    }
}
