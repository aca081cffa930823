//! Sending one notification: an HTTP POST (blocking `ureq` on tokio's blocking pool) or a
//! command, each tried a few times with a pause between attempts.
//!
//! Secrets (a URL from `post_env`, header values from `{ env: VAR }`) are read when sending and
//! never appear in an error or log line: targets are named by host or variable, and every error
//! text is scrubbed of the secret values before it leaves this module.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::formats::{json, render};
use super::message::Message;
use super::model::{Notification, NotifyFormat, Secret, Target};

/// What replaces a secret in an error text.
const HIDDEN: &str = "***";

/// Reads an environment variable (the process environment, or a test's).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a notification is retried, and where `post_env` and `{ env: VAR }` values come from.
#[derive(Clone)]
pub struct SendOptions {
    /// The pauses before the second, third, ... attempt; attempts in all = pauses + 1.
    pub retry_delays: Vec<Duration>,
    pub env: EnvLookup,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            env: Arc::new(|name: &str| std::env::var(name).ok()),
        }
    }
}

impl std::fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOptions")
            .field("retry_delays", &self.retry_delays)
            .finish_non_exhaustive()
    }
}

/// How sending one notification went.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The target as logs name it (no secrets).
    pub target: String,
    pub attempts: u32,
    /// Why the last attempt failed; `None` when it was delivered.
    pub error: Option<String>,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the environment variable `{var}` ({what}) is not set or is empty")]
    MissingEnv { var: String, what: &'static str },
    #[error("HTTP {status}{snippet}")]
    Status { status: u16, snippet: String },
    #[error("{0}")]
    Transport(String),
    #[error("cannot start `{program}`: {reason}")]
    Spawn { program: String, reason: String },
    #[error("exited with {status}{snippet}")]
    Exit { status: String, snippet: String },
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

impl SendError {
    /// Whether another attempt could go differently.
    fn retryable(&self) -> bool {
        !matches!(self, SendError::MissingEnv { .. } | SendError::Spawn { .. })
    }
}

/// Sends `notification` until an attempt succeeds or the attempts run out; logs a warning when
/// it could not be delivered.
pub async fn deliver(
    notification: &Notification,
    message: &Message,
    opts: &SendOptions,
) -> Delivery {
    let target = notification.target.describe();
    let attempts = opts.retry_delays.len() as u32 + 1;
    let mut secrets = Vec::new();
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(opts.retry_delays[attempt as usize - 2]).await;
        }
        let result = attempt_once(notification, message, &opts.env, &mut secrets).await;
        match result {
            Ok(()) => {
                tracing::info!(run = %message.run_id, "notification {target} delivered (attempt {attempt})");
                return Delivery {
                    target,
                    attempts: attempt,
                    error: None,
                };
            }
            Err(e) => {
                last = scrub(&e.to_string(), &secrets);
                let again = e.retryable() && attempt < attempts;
                if again {
                    tracing::info!(run = %message.run_id, "notification {target}: attempt {attempt} failed: {last}; retrying");
                    continue;
                }
                tracing::warn!(
                    "notification {target} for run {} failed after {} (the run's status is unchanged): {last}",
                    message.run_id,
                    crate::plural::plural(attempt as u64, "attempt")
                );
                return Delivery {
                    target,
                    attempts: attempt,
                    error: Some(last),
                };
            }
        }
    }
    Delivery {
        target,
        attempts,
        error: Some(last),
    }
}

async fn attempt_once(
    notification: &Notification,
    message: &Message,
    env: &EnvLookup,
    secrets: &mut Vec<String>,
) -> Result<(), SendError> {
    match &notification.target {
        Target::Post {
            url,
            format,
            headers,
        } => {
            let url = reveal(url, "the notification URL", env, secrets)?;
            let mut resolved = Vec::with_capacity(headers.len());
            for (name, value) in headers {
                resolved.push((
                    name.clone(),
                    reveal(value, "a notification header", env, secrets)?,
                ));
            }
            post(url, *format, resolved, message, notification.timeout).await
        }
        Target::Command { argv } => run_command(argv, message, notification.timeout).await,
    }
}

/// The value of `secret`; a value from the environment is remembered to scrub errors.
fn reveal(
    secret: &Secret,
    what: &'static str,
    env: &EnvLookup,
    secrets: &mut Vec<String>,
) -> Result<String, SendError> {
    match secret {
        Secret::Text(text) => Ok(text.clone()),
        Secret::Env(var) => match env(var) {
            Some(value) if !value.trim().is_empty() => {
                let value = value.trim().to_string();
                if !secrets.contains(&value) {
                    secrets.push(value.clone());
                }
                Ok(value)
            }
            _ => Err(SendError::MissingEnv {
                var: var.clone(),
                what,
            }),
        },
    }
}

/// `text` with every secret value (and any URL's credentials and query) hidden.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        text = text.replace(secret.as_str(), HIDDEN);
    }
    crate::redact::urls_in(&text)
}

async fn post(
    url: String,
    format: NotifyFormat,
    headers: Vec<(String, String)>,
    message: &Message,
    timeout: Duration,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(&render(format, message)).expect("a JSON body");
    let body = Arc::new(body);
    tokio::task::spawn_blocking(move || post_blocking(&url, &headers, &body, timeout))
        .await
        .map_err(|e| SendError::Transport(format!("the request stopped: {e}")))?
}

fn post_blocking(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    let agent = crate::http_agent::agent(url, timeout);
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send(body) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            let text = response
                .body_mut()
                .with_config()
                .limit(16 * 1024)
                .read_to_string()
                .unwrap_or_default();
            Err(SendError::Status {
                status,
                snippet: snippet(&text),
            })
        }
        Err(ureq::Error::Timeout(_)) => Err(SendError::Timeout(timeout)),
        Err(e) => Err(SendError::Transport(e.to_string())),
    }
}

async fn run_command(
    argv: &[String],
    message: &Message,
    timeout: Duration,
) -> Result<(), SendError> {
    let program = argv.first().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("FLOW_RUN_ID", &message.run_id)
        .env("FLOW_WORKFLOW", &message.workflow)
        .env("FLOW_STATUS", message.status_str())
        .env("FLOW_FAILED_NODE", message.failed_node_ids())
        .env(
            "FLOW_RESUME_COMMAND",
            message.resume_command.as_deref().unwrap_or_default(),
        );
    // Relative paths in the command mean what they mean for the workflow's shell nodes.
    if let Some(dir) = std::path::Path::new(&message.workflow_file).parent()
        && dir.is_dir()
    {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| SendError::Spawn {
        program: program.clone(),
        reason: e.to_string(),
    })?;
    let mut body = serde_json::to_vec_pretty(&json(message)).expect("a JSON message");
    body.push(b'\n');
    let stdin = child.stdin.take();
    let finished = async move {
        if let Some(mut stdin) = stdin {
            // A program that does not read its input may close it early; that is its choice.
            let _ = stdin.write_all(&body).await;
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(timeout, finished).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(SendError::Transport(format!("`{program}`: {e}"))),
        // Dropping the future kills the child (`kill_on_drop`).
        Err(_) => return Err(SendError::Timeout(timeout)),
    };
    if output.status.success() {
        return Ok(());
    }
    let status = match output.status.code() {
        Some(code) => format!("code {code}"),
        None => "a signal".to_string(),
    };
    Err(SendError::Exit {
        status,
        snippet: snippet(&String::from_utf8_lossy(&output.stderr)),
    })
}

/// The first line of a response or of stderr, shortened, for an error message.
fn snippet(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() > 200 {
        format!(": {}…", line.chars().take(200).collect::<String>())
    } else if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}
