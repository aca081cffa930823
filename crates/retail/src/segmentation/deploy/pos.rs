//! POS activation: profile and recommendation updates POSTed to an HTTP endpoint in batches.
//!
//! Every batch is a JSON document `{ run_id, batch, batches, customers: [...] }` sent with the
//! headers `Content-Type: application/json`, `Idempotency-Key: RUN/NODE/pos-batch-N` and, with
//! `pos_token_env`, `Authorization: Bearer TOKEN`. A batch is sent through
//! [`NodeContext::once`]: once the endpoint acknowledged it (any 2xx), the ledger records it and a
//! retried or resumed run skips it; the key lets the endpoint drop a repeat it already applied.
//!
//! Failures: a connection error, a timeout or a 5xx is retried up to `pos_retries` times with
//! exponential backoff (`pos_backoff`, doubled each time, capped at 60 s); a 4xx (a request the
//! endpoint rejects) and any other status fail at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};

use flow_engine::node::{NodeContext, NodeError};

/// Where and how to send updates.
#[derive(Debug, Clone)]
pub(crate) struct PosConfig {
    pub(crate) url: String,
    pub(crate) token_env: Option<String>,
    pub(crate) batch_size: usize,
    pub(crate) retries: u32,
    pub(crate) timeout: Duration,
    pub(crate) backoff: Duration,
}

impl PosConfig {
    /// The URL as it may be printed: without credentials (see [`flow_engine::redact::url`]).
    pub(crate) fn shown_url(&self) -> String {
        flow_engine::redact::url(&self.url)
    }

    /// The bearer token from the environment or the secrets file; an error when neither has
    /// the variable.
    pub(crate) fn token(&self) -> Result<Option<String>, NodeError> {
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        flow_engine::secret::require("pos_token_env", var)
            .map(Some)
            .map_err(|e| NodeError::msg(format!("the POS token: {e}")))
    }
}

/// Whether `url` is an http(s) URL with a host. The error quotes the URL without credentials.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let uri = url.parse::<ureq::http::Uri>();
    let url = flow_engine::redact::url(url);
    let uri = uri.map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// What happened to the batches.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct PosReport {
    pub(crate) url: String,
    pub(crate) batches: usize,
    pub(crate) sent: usize,
    /// Acknowledged by an earlier attempt of this run: not sent again.
    pub(crate) already_sent: usize,
    pub(crate) attempts: usize,
}

/// One attempt's outcome.
enum Attempt {
    Status(u16, String),
    Transport(String),
}

struct Client {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
}

impl Client {
    fn new(cfg: &PosConfig, token: Option<String>) -> Self {
        Client {
            agent: flow_engine::http_agent::agent(&cfg.url, cfg.timeout),
            url: cfg.url.clone(),
            token,
        }
    }

    fn post(&self, key: &str, body: &[u8]) -> Attempt {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        match request.send(body) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_string()
                    .unwrap_or_default();
                Attempt::Status(status, text)
            }
            // A transport error may quote the URL it was sending to.
            Err(e) => Attempt::Transport(flow_engine::redact::urls_in(&e.to_string())),
        }
    }
}

/// The first line of a response body, shortened, for error messages.
fn snippet(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 200 {
        format!(": {}…", line.chars().take(200).collect::<String>())
    } else if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// Sends every batch not yet acknowledged, in order; stops at the first batch that fails.
pub(crate) async fn deliver(
    ctx: &NodeContext,
    cfg: &PosConfig,
    token: Option<String>,
    batches: Vec<Vec<u8>>,
) -> Result<PosReport, NodeError> {
    let client = Arc::new(Client::new(cfg, token));
    let total = batches.len();
    let mut report = PosReport {
        url: cfg.shown_url(),
        batches: total,
        ..Default::default()
    };
    for (i, body) in batches.into_iter().enumerate() {
        let n = i + 1;
        let body = Arc::new(body);
        let mut attempts = 0usize;
        let result = ctx
            .once(&format!("pos-batch-{n}"), |key| {
                send_with_retries(client.clone(), cfg, key, body, &mut attempts)
            })
            .await;
        report.attempts += attempts;
        match result {
            Ok(true) => report.sent += 1,
            Ok(false) => report.already_sent += 1,
            Err(e) => {
                let acked = report.sent + report.already_sent;
                return Err(NodeError::msg(format!(
                    "POS endpoint {}: batch {n} of {total} failed: {e}. {acked} earlier \
                     batch{} acknowledged and will not be sent again when the run is resumed",
                    cfg.shown_url(),
                    if acked == 1 { " was" } else { "es were" }
                )));
            }
        }
    }
    Ok(report)
}

async fn send_with_retries(
    client: Arc<Client>,
    cfg: &PosConfig,
    key: String,
    body: Arc<Vec<u8>>,
    attempts: &mut usize,
) -> Result<Json, NodeError> {
    let mut delay = cfg.backoff;
    let mut last = String::new();
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
        *attempts += 1;
        let (c, k, b) = (client.clone(), key.clone(), body.clone());
        let outcome = flow_engine::node::spawn_blocking(move || c.post(&k, &b))
            .await
            .map_err(|e| NodeError::msg(format!("POS request stopped: {e}")))?;
        match outcome {
            Attempt::Status(status, _) if (200..300).contains(&status) => {
                return Ok(json!({ "status": status, "attempts": attempt + 1 }));
            }
            Attempt::Status(status, text) if (500..600).contains(&status) => {
                last = format!("HTTP {status}{}", snippet(&text));
            }
            Attempt::Status(status, text) => {
                return Err(NodeError::msg(format!(
                    "HTTP {status}{} (not retried: the endpoint rejected the request)",
                    snippet(&text)
                )));
            }
            Attempt::Transport(e) => last = e,
        }
    }
    Err(NodeError::msg(format!(
        "{last} (after {} attempt{})",
        cfg.retries + 1,
        if cfg.retries == 0 { "" } else { "s" }
    )))
}
