//! What a `webhook` trigger asks of the HTTP server that receives its requests: how callers
//! prove who they are, which delivery id makes a request a replay, which headers the run sees,
//! and what the caller gets back.

use std::time::Duration;

use crate::compile::Workflow;

/// The HMAC signature header unless the trigger names another (GitHub's form: `sha256=HEX`).
pub const SIGNATURE_HEADER: &str = "X-Flow-Signature-256";
/// The delivery id header unless the trigger names another.
pub const DELIVERY_HEADER: &str = "X-Flow-Delivery";
/// The largest request body a trigger accepts unless it says otherwise.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How a caller proves it may start runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAuth {
    /// `HEADER: sha256=HEX`, the HMAC-SHA256 of the raw body keyed with the secret read from
    /// the environment variable `secret_env` when the request arrives.
    Hmac { secret_env: String, header: String },
    /// `Authorization: Bearer TOKEN`, the token read from the environment variable `token_env`.
    Bearer { token_env: String },
    /// Anyone who can reach the server (the trigger must say `auth: none`).
    None,
}

impl WebhookAuth {
    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookAuth::Hmac { .. } => "hmac",
            WebhookAuth::Bearer { .. } => "bearer",
            WebhookAuth::None => "none",
        }
    }
}

/// What the caller gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRespond {
    /// 202 with the run id as soon as the run is recorded.
    Accepted,
    /// Waits for the run to end (at most `timeout`) and answers with `node`'s output.
    Output { node: String, timeout: Duration },
}

/// A configured `webhook` trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub auth: WebhookAuth,
    /// The header whose value identifies a delivery; a second request with the same value
    /// starts no run.
    pub delivery_header: String,
    /// Request headers (lower case) the run's trigger output carries.
    pub headers: Vec<String>,
    pub respond: WebhookRespond,
    pub max_body: u64,
}

/// A webhook trigger of a loaded workflow.
#[derive(Debug, Clone)]
pub struct WebhookTrigger {
    pub id: String,
    pub spec: WebhookSpec,
}

impl WebhookTrigger {
    /// The workflow's webhook triggers, configured with their parameters as written (read
    /// once, when the file loads); a templated value, or a `respond_node` the workflow does not
    /// have, is reported here.
    pub fn all(wf: &Workflow) -> Result<Vec<WebhookTrigger>, String> {
        let mut out = Vec::new();
        for (id, configured) in crate::serve::trigger::configured_triggers(wf)? {
            let Some(spec) = configured.webhook() else {
                continue;
            };
            if let WebhookRespond::Output { node: target, .. } = &spec.respond
                && wf.index_of(target).is_none()
            {
                return Err(format!(
                    "node `{id}`: `respond_node: {target}` names no node of the workflow"
                ));
            }
            out.push(WebhookTrigger {
                id,
                spec: spec.clone(),
            });
        }
        Ok(out)
    }
}
