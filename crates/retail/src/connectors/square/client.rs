//! The Square HTTP client: bearer token, pinned `Square-Version`, retries, and Square's error
//! shape turned into errors that name the endpoint and the field.
//!
//! Retries: HTTP 429 waits for `Retry-After` (seconds, capped by `max_wait`) or, without one,
//! the backoff; 5xx and transport errors wait the backoff, doubled each time. Other 4xx fail at
//! once: Square rejected the request and a repeat would be rejected too.
//!
//! The token is sent in the `Authorization` header only; it never appears in an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value as Json;

/// The Square API version the connector is written against (`Square-Version` header).
pub const DEFAULT_API_VERSION: &str = "2026-07-15";

/// Square production.
pub const DEFAULT_BASE_URL: &str = "https://connect.squareup.com";

/// Why a Square call failed. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SquareError {
    /// Square answered with an error status (other than 401/403, after the retries).
    #[error("Square {endpoint}: HTTP {status}: {message}")]
    Http {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// The token was refused or lacks a permission.
    #[error(
        "Square {endpoint}: HTTP {status}: {message} (check the access token and its permissions)"
    )]
    Auth {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// Still rate-limited after every retry.
    #[error("Square {endpoint}: still rate-limited (HTTP 429) after {attempts} attempts")]
    Throttled { endpoint: String, attempts: u32 },
    /// No answer (connection refused, timeout, ...) after every retry.
    #[error("Square {endpoint}: {message} (after {attempts} attempts)")]
    Transport {
        endpoint: String,
        message: String,
        attempts: u32,
    },
    /// An answer that does not have the documented shape.
    #[error("Square {endpoint}: malformed response: field `{field}` {reason}")]
    Malformed {
        endpoint: String,
        field: String,
        reason: String,
    },
    /// The token could not be read.
    #[error(transparent)]
    Credentials(#[from] flow_engine::secret::SecretError),
    /// A configuration error (an unknown location, ...).
    #[error("{0}")]
    Config(String),
}

/// Where and how to call Square.
#[derive(Debug, Clone)]
pub struct SquareConfig {
    pub base_url: String,
    pub api_version: String,
    pub retries: u32,
    pub backoff: Duration,
    /// The longest a `Retry-After` is honoured (a longer one is cut to this).
    pub max_wait: Duration,
    pub timeout: Duration,
}

impl Default for SquareConfig {
    fn default() -> Self {
        SquareConfig {
            base_url: DEFAULT_BASE_URL.into(),
            api_version: DEFAULT_API_VERSION.into(),
            retries: 5,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        }
    }
}

/// HTTP methods the connector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A blocking Square client; counts the HTTP requests it makes (retries included).
pub struct Client {
    agent: ureq::Agent,
    cfg: SquareConfig,
    token: String,
    requests: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.cfg.base_url)
            .field("api_version", &self.cfg.api_version)
            .finish_non_exhaustive()
    }
}

enum Attempt {
    Done(u16, Option<String>, String),
    Transport(String),
}

impl Client {
    pub fn new(cfg: SquareConfig, token: String) -> Self {
        Client {
            agent: flow_engine::http_agent::agent(&cfg.base_url, cfg.timeout),
            cfg,
            token,
            requests: AtomicU64::new(0),
        }
    }

    /// HTTP requests made so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Calls `path` (with `query` parameters, percent-encoded here) and returns the JSON
    /// answer. `endpoint` names the call in errors (`POST /v2/orders/search`): it is the
    /// documented path, without ids or query, so an error never quotes data.
    pub fn call(
        &self,
        method: Method,
        endpoint: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Json>,
    ) -> Result<Json, SquareError> {
        let mut url = format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        let body = body.map(|b| b.to_string());
        let mut delay = self.cfg.backoff;
        let mut last = String::new();
        let attempts = self.cfg.retries + 1;
        for attempt in 0..attempts {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let wait = match self.once(method, &url, body.as_deref()) {
                Attempt::Done(status, _, text) if (200..300).contains(&status) => {
                    if text.trim().is_empty() {
                        return Ok(Json::Object(Default::default()));
                    }
                    return serde_json::from_str(&text).map_err(|e| SquareError::Malformed {
                        endpoint: endpoint.into(),
                        field: "(body)".into(),
                        reason: format!("is not JSON ({e})"),
                    });
                }
                Attempt::Done(429, retry_after, _) => {
                    last = "429".into();
                    retry_after
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s).min(self.cfg.max_wait))
                        .unwrap_or(delay)
                }
                Attempt::Done(status, _, text) if status >= 500 => {
                    last = format!("HTTP {status}: {}", error_message(&text));
                    delay
                }
                Attempt::Done(status @ (401 | 403), _, text) => {
                    return Err(SquareError::Auth {
                        endpoint: endpoint.into(),
                        status,
                        message: error_message(&text),
                    });
                }
                Attempt::Done(status, _, text) => {
                    return Err(SquareError::Http {
                        endpoint: endpoint.into(),
                        status,
                        message: error_message(&text),
                    });
                }
                Attempt::Transport(e) => {
                    last = e;
                    delay
                }
            };
            if attempt + 1 < attempts {
                std::thread::sleep(wait);
                delay = (delay * 2).min(self.cfg.max_wait);
            }
        }
        if last == "429" {
            Err(SquareError::Throttled {
                endpoint: endpoint.into(),
                attempts,
            })
        } else {
            Err(SquareError::Transport {
                endpoint: endpoint.into(),
                message: last,
                attempts,
            })
        }
    }

    fn once(&self, method: Method, url: &str, body: Option<&str>) -> Attempt {
        let auth = format!("Bearer {}", self.token);
        let version = self.cfg.api_version.as_str();
        let result = match (method, body) {
            (Method::Get, _) => self
                .agent
                .get(url)
                .header("Authorization", &auth)
                .header("Square-Version", version)
                .header("Accept", "application/json")
                .call(),
            (Method::Delete, _) => self
                .agent
                .delete(url)
                .header("Authorization", &auth)
                .header("Square-Version", version)
                .call(),
            (m, body) => {
                let builder = if m == Method::Put {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                builder
                    .header("Authorization", &auth)
                    .header("Square-Version", version)
                    .header("Content-Type", "application/json")
                    .send(body.unwrap_or("{}"))
            }
        };
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_string()
                    .unwrap_or_default();
                Attempt::Done(status, retry_after, text)
            }
            Err(e) => Attempt::Transport(format!(
                "{} failed: {}",
                method.as_str(),
                flow_engine::redact::urls_in(&e.to_string())
            )),
        }
    }
}

/// Square's error body `{errors: [{category, code, detail, field}]}` as one line; any other
/// body shortened.
pub fn error_message(text: &str) -> String {
    if let Ok(json) = serde_json::from_str::<Json>(text)
        && let Some(errors) = json.get("errors").and_then(Json::as_array)
        && !errors.is_empty()
    {
        return errors
            .iter()
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("");
                let mut m = format!("{} {}", s("category"), s("code"))
                    .trim()
                    .to_string();
                if !s("detail").is_empty() {
                    m.push_str(": ");
                    m.push_str(s("detail"));
                }
                if !s("field").is_empty() {
                    m.push_str(&format!(" (field `{}`)", s("field")));
                }
                m
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "(empty body)".into()
    } else if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Whether `url` is an http(s) URL with a host.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let uri = url
        .parse::<ureq::http::Uri>()
        .map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("`{url}` must start with https:// (or http://)"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// Percent-encodes a query value or path segment (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%2E", ".")
        .replace("%7E", "~")
}
