//! The Admin GraphQL client: one versioned endpoint, the access token in a header, the cost
//! bucket respected, transient failures retried.
//!
//! `POST {base}/admin/api/{version}/graphql.json` with `X-Shopify-Access-Token`. Retries: a
//! `THROTTLED` error waits by the throttle status in the response (see [`super::throttle`]); HTTP
//! 429 waits `Retry-After` (or the backoff); connection errors and 5xx back off exponentially.
//! 401/403 and other 4xx fail at once. The token is never part of an error.

use std::io::BufRead;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::ShopifyError;
use super::throttle::{self, Bucket, ThrottleStatus};

/// Where and how to reach the shop.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://my-shop.myshopify.com` (or a test server).
    pub base_url: String,
    pub api_version: String,
    pub timeout: Duration,
    /// Retries after a connection error, 429 or 5xx.
    pub retries: u32,
    /// Wait before the first such retry, doubled each time.
    pub backoff: Duration,
    /// Retries of a query refused with `THROTTLED`.
    pub throttle_retries: u32,
}

pub struct Client {
    agent: ureq::Agent,
    /// Plain agent for the bulk results: a signed storage URL, sent no token.
    download_agent: ureq::Agent,
    endpoint: String,
    token: String,
    cfg: ClientConfig,
    bucket: Mutex<Bucket>,
    requests: AtomicU64,
    /// `requestedQueryCost` last reported per operation: the estimate of its next run.
    costs: Mutex<std::collections::HashMap<String, f64>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

enum Reply {
    Status(u16, Option<u64>, String),
    Transport(String),
}

impl Client {
    pub fn new(cfg: ClientConfig, token: String) -> Client {
        let base = cfg.base_url.trim_end_matches('/');
        let endpoint = format!("{base}/admin/api/{}/graphql.json", cfg.api_version);
        Client {
            agent: flow_engine::http_agent::agent(base, cfg.timeout),
            // Large result files: no overall limit, only per read.
            download_agent: flow_engine::http_agent::download_agent(base, cfg.timeout),
            endpoint,
            token,
            cfg,
            bucket: Mutex::new(Bucket::default()),
            requests: AtomicU64::new(0),
            costs: Mutex::default(),
        }
    }

    /// The GraphQL endpoint (no secret in it), named in errors.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// HTTP requests made so far (GraphQL and downloads, retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn malformed(&self, field: &str, reason: impl Into<String>) -> ShopifyError {
        ShopifyError::Malformed {
            endpoint: self.endpoint.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn post(&self, body: &[u8]) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .header("X-Shopify-Access-Token", &self.token)
            .send(body);
        match sent {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(|s| s.ceil() as u64);
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(256 * 1024 * 1024)
                    .read_to_string();
                match text {
                    Ok(t) => Reply::Status(status, retry_after, t),
                    Err(e) => Reply::Transport(format!("reading the response: {e}")),
                }
            }
            Err(e) => Reply::Transport(flow_engine::redact::urls_in(&e.to_string())),
        }
    }

    /// Runs one query or mutation estimated at `cost` points and returns its `data`.
    /// `what` names the operation in errors (`orders page`).
    pub fn graphql(
        &self,
        what: &str,
        query: &str,
        variables: Json,
        cost: f64,
    ) -> Result<Json, ShopifyError> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))
            .expect("JSON values serialize");
        let (mut transient, mut throttled) = (0u32, 0u32);
        let mut delay = self.cfg.backoff;
        let cost = self
            .costs
            .lock()
            .expect("costs")
            .get(what)
            .copied()
            .unwrap_or(cost);
        loop {
            let wait = self.bucket.lock().expect("bucket").wait_for(cost);
            if !wait.is_zero() {
                tracing::debug!(?wait, cost, "waiting for the Shopify cost bucket");
                std::thread::sleep(wait);
            }
            self.bucket.lock().expect("bucket").spend(cost);
            let retry = match self.post(&body) {
                Reply::Status(200, _, text) => {
                    let value: Json = serde_json::from_str(&text).map_err(|e| {
                        self.malformed("body", format!("is not JSON ({e}) in the {what} reply"))
                    })?;
                    let status = ThrottleStatus::from_response(&value);
                    if let Some(s) = status {
                        self.bucket.lock().expect("bucket").update(s);
                    }
                    if let Some(c) = throttle::requested_cost(&value) {
                        self.costs
                            .lock()
                            .expect("costs")
                            .insert(what.to_string(), c);
                    }
                    match graphql_errors(&value) {
                        Errors::None => {}
                        Errors::Throttled => {
                            throttled += 1;
                            if throttled > self.cfg.throttle_retries {
                                return Err(ShopifyError::Throttled {
                                    endpoint: self.endpoint.clone(),
                                    attempts: throttled,
                                });
                            }
                            let requested = throttle::requested_cost(&value).unwrap_or(cost);
                            std::thread::sleep(throttle::throttled_wait(requested, status));
                            continue;
                        }
                        Errors::Other(message) => {
                            return Err(ShopifyError::GraphQl {
                                endpoint: self.endpoint.clone(),
                                what: what.to_string(),
                                message,
                            });
                        }
                    }
                    return match value.get("data") {
                        Some(d) if d.is_object() => Ok(value["data"].clone()),
                        _ => Err(self.malformed("data", format!("missing in the {what} reply"))),
                    };
                }
                Reply::Status(status @ (401 | 403), _, _) => {
                    return Err(ShopifyError::Auth {
                        endpoint: self.endpoint.clone(),
                        status,
                    });
                }
                Reply::Status(429, after, _) => {
                    (after.map(Duration::from_secs), 429, String::new())
                }
                Reply::Status(status, _, text) if status >= 500 => (None, status, snippet(&text)),
                Reply::Status(status, _, text) => {
                    return Err(ShopifyError::Http {
                        endpoint: self.endpoint.clone(),
                        status,
                        message: snippet(&text),
                    });
                }
                Reply::Transport(message) => (None, 0, message),
            };
            let (retry, status, message) = retry;
            transient += 1;
            if transient > self.cfg.retries {
                return Err(if status == 0 {
                    ShopifyError::Transport {
                        endpoint: self.endpoint.clone(),
                        message,
                    }
                } else {
                    ShopifyError::Http {
                        endpoint: self.endpoint.clone(),
                        status,
                        message: format!("{message} (after {transient} attempts)"),
                    }
                });
            }
            std::thread::sleep(retry.unwrap_or(delay).min(Duration::from_secs(60)));
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    /// Streams the lines of a bulk operation's result file. The URL is signed: it is sent no
    /// token and named in errors without its query string.
    pub fn download(&self, url: &str) -> Result<Box<dyn BufRead + Send>, ShopifyError> {
        let shown = url.split('?').next().unwrap_or("").to_string();
        let mut delay = self.cfg.backoff;
        for attempt in 0..=self.cfg.retries {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(60));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.download_agent.get(url).call() {
                Ok(r) if r.status().as_u16() == 200 => {
                    let reader = r.into_body().into_with_config().limit(u64::MAX).reader();
                    return Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, reader)));
                }
                Ok(r) if r.status().as_u16() >= 500 || r.status().as_u16() == 429 => continue,
                Ok(r) => {
                    return Err(ShopifyError::Http {
                        endpoint: shown,
                        status: r.status().as_u16(),
                        message: "the bulk operation result could not be downloaded (results \
                                  expire 7 days after the operation completed)"
                            .into(),
                    });
                }
                Err(_) if attempt < self.cfg.retries => continue,
                Err(e) => {
                    return Err(ShopifyError::Transport {
                        endpoint: shown,
                        message: e.to_string().split('?').next().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Err(ShopifyError::Http {
            endpoint: shown,
            status: 0,
            message: format!("still failing after {} attempts", self.cfg.retries + 1),
        })
    }
}

enum Errors {
    None,
    Throttled,
    Other(String),
}

/// The top-level `errors` of a GraphQL response.
fn graphql_errors(body: &Json) -> Errors {
    let Some(list) = body.get("errors") else {
        return Errors::None;
    };
    let Some(list) = list.as_array() else {
        // Some errors come as a single string (`{"errors": "Not Found"}`).
        return Errors::Other(snippet(&list.to_string()));
    };
    if list.is_empty() {
        return Errors::None;
    }
    if list
        .iter()
        .any(|e| e.pointer("/extensions/code").and_then(Json::as_str) == Some("THROTTLED"))
    {
        return Errors::Throttled;
    }
    Errors::Other(
        list.iter()
            .map(|e| {
                e.get("message")
                    .and_then(Json::as_str)
                    .map_or_else(|| e.to_string(), str::to_string)
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn snippet(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_string()
    }
}
