//! `http.request`: calls an HTTP API once, or once per batch of an input's rows.
//!
//! Every request goes through the effect ledger ([`NodeContext::once`]) with an
//! `Idempotency-Key: RUN/NODE/request-N` header: once the server answered 2xx, the request is
//! recorded with its response, and a retried or resumed run does not send it again (its stored
//! response is reported instead). A 429 (after `Retry-After`, capped at `max_wait`), a 5xx, a
//! timeout or a connection error is retried with exponential backoff; any other status fails at
//! once. Credentials come only from the environment or the secrets file (`*_env`,
//! `{ env: VAR }`); errors name the node, the URL without its credentials and the status, and
//! are scrubbed of every secret value.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use async_trait::async_trait;
use serde_json::{Value as Json, json};

use crate::data::Output;
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, noted,
};

const NAME: &str = "http.request";
/// What replaces a secret in an error text.
const HIDDEN: &str = "***";
/// How much of a response body is kept.
const BODY_LIMIT: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct HttpRequest;

/// A header value: written in the workflow, or read from an environment variable.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Env(String),
}

#[derive(Debug, Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
    Header(String, String),
}

#[derive(Debug, Clone)]
struct Config {
    node: String,
    method: String,
    url: String,
    headers: Vec<(String, Value)>,
    auth: Option<Auth>,
    body: Option<Json>,
    batch_size: usize,
    batch_key: Option<String>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
    max_wait: Duration,
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Header names whose value is a credential: a literal value for them is refused.
fn credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || ["token", "api-key", "apikey", "secret", "password", "auth"]
            .iter()
            .any(|w| n.contains(w))
}

impl NodeType for HttpRequest {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "Calls an HTTP API: one request, or one per batch of the input's rows as JSON; retries \
         429/5xx with backoff; each request sent at most once per run (Idempotency-Key)."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("url", ParamType::String, "http(s) URL (templates allowed)"),
            ParamSpec::optional(
                "method",
                ParamType::String,
                "GET, POST, PUT, PATCH or DELETE (default: POST with a body or input rows, else GET)",
            ),
            ParamSpec::optional(
                "headers",
                ParamType::Map,
                "header name to a value, or to { env: VAR } for a secret",
            ),
            ParamSpec::optional(
                "auth",
                ParamType::Map,
                "{ bearer_env: VAR } | { username_env: U, password_env: P } | { header: NAME, value_env: VAR }",
            ),
            ParamSpec::optional("body", ParamType::Any, "the JSON body (templates allowed)"),
            ParamSpec::with_default(
                "batch_size",
                ParamType::Integer,
                "100",
                "rows of the input per request",
            ),
            ParamSpec::optional(
                "batch_key",
                ParamType::String,
                "send each batch as { KEY: [rows] } (merged into `body`) instead of a bare array",
            ),
            ParamSpec::with_default(
                "retries",
                ParamType::Integer,
                "3",
                "retries of 429/5xx/transport errors",
            ),
            ParamSpec::with_default(
                "backoff",
                ParamType::Duration,
                "500ms",
                "first wait, doubled each retry",
            ),
            ParamSpec::with_default(
                "timeout",
                ParamType::Duration,
                "30s",
                "time limit of one request",
            ),
            ParamSpec::with_default(
                "max_wait",
                ParamType::Duration,
                "60s",
                "longest wait before a retry, Retry-After included",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let url = match params.str("url") {
            Ok(u) => u.trim().to_string(),
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            errors.push(ParamError::new(
                "url",
                format!(
                    "`{}` must start with http:// or https://",
                    crate::redact::url(&url)
                ),
            ));
        }
        let body = params.get("body").cloned().filter(|b| !b.is_null());
        let method = match params.opt_str("method") {
            Ok(Some(m)) => m.to_ascii_uppercase(),
            Ok(None) => "POST".into(),
            Err(e) => {
                errors.push(e);
                "POST".into()
            }
        };
        let explicit_method = params.get("method").is_some();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            errors.push(ParamError::new(
                "method",
                format!("must be GET, POST, PUT, PATCH or DELETE, got `{method}`"),
            ));
        }
        let mut headers = Vec::new();
        if let Some(h) = params.get("headers") {
            match h {
                Json::Object(map) => {
                    for (name, v) in map {
                        match v {
                            Json::String(_) if credential_header(name) => errors.push(ParamError::new(
                                "headers",
                                format!(
                                    "`{name}` carries a credential: write {{ env: VAR }} (or use `auth`), \
                                     never the value in the workflow"
                                ),
                            )),
                            Json::String(s) => headers.push((name.clone(), Value::Text(s.clone()))),
                            Json::Object(m)
                                if m.len() == 1
                                    && m.get("env")
                                        .and_then(Json::as_str)
                                        .is_some_and(valid_env_name) =>
                            {
                                headers.push((
                                    name.clone(),
                                    Value::Env(m["env"].as_str().unwrap_or_default().into()),
                                ));
                            }
                            _ => errors.push(ParamError::new(
                                "headers",
                                format!("`{name}`: a value is a string or {{ env: VAR }}"),
                            )),
                        }
                    }
                }
                _ => errors.push(ParamError::new("headers", "must be a map")),
            }
        }
        let auth = match params.get("auth") {
            None | Some(Json::Null) => None,
            Some(Json::Object(m)) => {
                let get = |k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
                let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                let auth = match keys.as_slice() {
                    ["bearer_env"] => get("bearer_env").map(Auth::Bearer),
                    ["password_env", "username_env"] | ["username_env", "password_env"] => {
                        get("username_env")
                            .zip(get("password_env"))
                            .map(|(u, p)| Auth::Basic(u, p))
                    }
                    ["header", "value_env"] | ["value_env", "header"] => get("header")
                        .zip(get("value_env"))
                        .map(|(h, v)| Auth::Header(h, v)),
                    _ => None,
                };
                let vars_ok = match &auth {
                    Some(Auth::Bearer(v)) | Some(Auth::Header(_, v)) => valid_env_name(v),
                    Some(Auth::Basic(u, p)) => valid_env_name(u) && valid_env_name(p),
                    None => false,
                };
                if !vars_ok {
                    errors.push(ParamError::new(
                        "auth",
                        "must be { bearer_env: VAR }, { username_env: VAR, password_env: VAR } or \
                         { header: NAME, value_env: VAR }, naming environment variables",
                    ));
                }
                auth
            }
            Some(_) => {
                errors.push(ParamError::new("auth", "must be a map"));
                None
            }
        };
        let batch_size = noted(
            &mut errors,
            params.u64_between("batch_size", 100, 1, 100_000),
            100,
        ) as usize;
        let retries = noted(&mut errors, params.u64_between("retries", 3, 0, 20), 3) as u32;
        let mut duration = |name: &str, default: Duration| {
            noted(&mut errors, params.duration_or(name, default), default)
        };
        let backoff = duration("backoff", Duration::from_millis(500));
        let timeout = duration("timeout", Duration::from_secs(30));
        let max_wait = duration("max_wait", Duration::from_secs(60));
        let batch_key = params
            .opt_str("batch_key")
            .ok()
            .flatten()
            .map(str::to_string);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(Configured {
            explicit_method,
            cfg: Config {
                node: cx.node_id.to_string(),
                method,
                url,
                headers,
                auth,
                body,
                batch_size,
                batch_key,
                retries,
                backoff,
                timeout,
                max_wait,
            },
        }))
    }
}

struct Configured {
    explicit_method: bool,
    cfg: Config,
}

/// The secrets of a request, resolved; their values are kept to scrub error texts.
struct Resolved {
    headers: Vec<(String, String)>,
    secrets: Vec<String>,
}

fn secret(param: &str, var: &str, secrets: &mut Vec<String>) -> Result<String, NodeError> {
    let value = crate::secret::require(param, var).map_err(|e| NodeError::msg(e.to_string()))?;
    secrets.push(value.clone());
    Ok(value)
}

fn resolve(cfg: &Config) -> Result<Resolved, NodeError> {
    let mut secrets = Vec::new();
    let mut headers = Vec::new();
    for (name, v) in &cfg.headers {
        let value = match v {
            Value::Text(t) => t.clone(),
            Value::Env(var) => secret(&format!("headers.{name}"), var, &mut secrets)?,
        };
        headers.push((name.clone(), value));
    }
    match &cfg.auth {
        Some(Auth::Bearer(var)) => {
            let t = secret("auth.bearer_env", var, &mut secrets)?;
            headers.push(("Authorization".into(), format!("Bearer {t}")));
        }
        Some(Auth::Basic(u, p)) => {
            use base64_lite::encode;
            let user = secret("auth.username_env", u, &mut secrets)?;
            let pass = secret("auth.password_env", p, &mut secrets)?;
            let token = encode(format!("{user}:{pass}").as_bytes());
            secrets.push(token.clone());
            headers.push(("Authorization".into(), format!("Basic {token}")));
        }
        Some(Auth::Header(name, var)) => {
            let v = secret("auth.value_env", var, &mut secrets)?;
            headers.push((name.clone(), v));
        }
        None => {}
    }
    Ok(Resolved { headers, secrets })
}

/// Standard base64, for HTTP basic auth.
mod base64_lite {
    pub fn encode(input: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s.as_str(), HIDDEN);
    }
    crate::redact::urls_in(&text)
}

/// One request's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Answer {
    status: u16,
    body: String,
    attempts: u32,
}

enum Attempt {
    Status(u16, Option<Duration>, String),
    Transport(String),
}

fn agent(cfg: &Config) -> ureq::Agent {
    crate::http_agent::agent(&cfg.url, cfg.timeout)
}

fn send(
    agent: &ureq::Agent,
    cfg: &Config,
    headers: &[(String, String)],
    key: &str,
    body: Option<&[u8]>,
) -> Attempt {
    let mut req = ureq::http::Request::builder()
        .method(cfg.method.as_str())
        .uri(&cfg.url)
        .header("Idempotency-Key", key);
    if body.is_some() {
        req = req.header("Content-Type", "application/json");
    }
    for (n, v) in headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let req = match req.body(body.map(<[u8]>::to_vec).unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return Attempt::Transport(format!("invalid request: {e}")),
    };
    match agent.run(req) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response
                .body_mut()
                .with_config()
                .limit(BODY_LIMIT)
                .read_to_string()
                .unwrap_or_default();
            Attempt::Status(status, retry_after, text)
        }
        Err(e) => Attempt::Transport(e.to_string()),
    }
}

fn snippet(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.chars().count() {
        0 => String::new(),
        n if n > 200 => format!(": {}…", line.chars().take(200).collect::<String>()),
        _ => format!(": {line}"),
    }
}

/// Sends one request with retries; `Ok` on a 2xx.
async fn request(
    agent: ureq::Agent,
    cfg: Arc<Config>,
    headers: Arc<Vec<(String, String)>>,
    key: String,
    body: Option<Arc<Vec<u8>>>,
) -> Result<Answer, String> {
    let mut delay = cfg.backoff;
    let mut last = String::new();
    for attempt in 0..=cfg.retries {
        let (a, c, h, k, b) = (
            agent.clone(),
            cfg.clone(),
            headers.clone(),
            key.clone(),
            body.clone(),
        );
        let outcome = crate::node::spawn_blocking(move || {
            send(&a, &c, &h, &k, b.as_deref().map(Vec::as_slice))
        })
        .await
        .map_err(|e| format!("request stopped: {e}"))?;
        let wait = match outcome {
            Attempt::Status(s, _, text) if (200..300).contains(&s) => {
                return Ok(Answer {
                    status: s,
                    body: text,
                    attempts: attempt + 1,
                });
            }
            Attempt::Status(429, retry_after, text) => {
                last = format!("HTTP 429{}", snippet(&text));
                retry_after.unwrap_or(delay)
            }
            Attempt::Status(s, _, text) if (500..600).contains(&s) => {
                last = format!("HTTP {s}{}", snippet(&text));
                delay
            }
            Attempt::Status(s, _, text) => {
                return Err(format!(
                    "HTTP {s}{} (not retried: the server rejected the request)",
                    snippet(&text)
                ));
            }
            Attempt::Transport(e) => {
                last = e;
                delay
            }
        };
        if attempt < cfg.retries {
            tokio::time::sleep(wait.min(cfg.max_wait)).await;
            delay = (delay * 2).min(cfg.max_wait);
        }
    }
    Err(format!(
        "{last} (after {} attempt{})",
        cfg.retries + 1,
        if cfg.retries == 0 { "" } else { "s" }
    ))
}

/// The bodies of the batches of `table`.
fn batches(cfg: &Config, table: &RecordBatch) -> Result<Vec<Vec<u8>>, NodeError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < table.num_rows() {
        let len = cfg.batch_size.min(table.num_rows() - offset);
        let slice = table.slice(offset, len);
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(&slice)?;
        writer.finish()?;
        let rows = writer.into_inner();
        let bytes = match &cfg.batch_key {
            None => rows,
            Some(k) => {
                let rows: Json = serde_json::from_slice(&rows)
                    .map_err(|e| NodeError::msg(format!("rows as JSON: {e}")))?;
                let mut body = match &cfg.body {
                    Some(Json::Object(m)) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                body.insert(k.clone(), rows);
                serde_json::to_vec(&body).map_err(|e| NodeError::msg(e.to_string()))?
            }
        };
        out.push(bytes);
        offset += len;
    }
    Ok(out)
}

fn state_key(key: &str) -> String {
    format!("http-response/{key}")
}

#[async_trait]
impl Node for Configured {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let mut cfg = self.cfg.clone();
        let table = inputs.tables().next().map(|(_, t)| t.clone());
        if !self.explicit_method && table.is_none() && cfg.body.is_none() {
            cfg.method = "GET".into();
        }
        let resolved = resolve(&cfg)?;
        let shown = crate::redact::url(&cfg.url);
        let bodies: Vec<Option<Vec<u8>>> = match &table {
            Some(t) => batches(&cfg, t)?.into_iter().map(Some).collect(),
            None => vec![
                cfg.body
                    .as_ref()
                    .map(|b| serde_json::to_vec(b).map_err(|e| NodeError::msg(e.to_string())))
                    .transpose()?,
            ],
        };
        let total = bodies.len();
        let agent = agent(&cfg);
        let cfg = Arc::new(cfg);
        let headers = Arc::new(resolved.headers);
        let mut answers: Vec<(Answer, bool)> = Vec::with_capacity(total);
        for (i, body) in bodies.into_iter().enumerate() {
            let n = i + 1;
            let item = format!("request-{n}");
            let key = ctx.idempotency_key(&item);
            if ctx.effects.is_done(&key)? {
                let stored = ctx.state.get(&state_key(&key))?;
                let answer = stored
                    .and_then(|b| serde_json::from_slice::<Answer>(&b).ok())
                    .unwrap_or(Answer {
                        status: 0,
                        body: String::new(),
                        attempts: 0,
                    });
                answers.push((answer, false));
                continue;
            }
            let body = body.map(Arc::new);
            let result = ctx
                .once(&item, |key| {
                    let (agent, cfg, headers, state) = (
                        agent.clone(),
                        cfg.clone(),
                        headers.clone(),
                        ctx.state.clone(),
                    );
                    async move {
                        let answer = request(agent, cfg, headers, key.clone(), body)
                            .await
                            .map_err(NodeError::msg)?;
                        let bytes = serde_json::to_vec(&answer)
                            .map_err(|e| NodeError::msg(e.to_string()))?;
                        state.put(&state_key(&key), &bytes)?;
                        Ok(json!({ "status": answer.status }))
                    }
                })
                .await;
            match result {
                Ok(_) => {
                    let stored = ctx.state.get(&state_key(&key))?;
                    let answer = stored
                        .and_then(|b| serde_json::from_slice::<Answer>(&b).ok())
                        .ok_or_else(|| NodeError::msg("the response was not recorded"))?;
                    answers.push((answer, true));
                }
                Err(e) => {
                    let what = if total > 1 {
                        format!("request {n} of {total}")
                    } else {
                        "the request".into()
                    };
                    let done = answers.len();
                    let earlier = if total > 1 {
                        format!(
                            "; {done} earlier request{} acknowledged and will not be sent again when the run is resumed",
                            if done == 1 { " was" } else { "s were" }
                        )
                    } else {
                        String::new()
                    };
                    return Err(NodeError::msg(scrub(
                        &format!(
                            "{NAME} `{}`: {} {shown}: {what} failed: {e}{earlier}",
                            cfg.node, cfg.method
                        ),
                        &resolved.secrets,
                    )));
                }
            }
        }
        let sent = answers.iter().filter(|(_, new)| *new).count() as u64;
        let out = if table.is_none() {
            let (answer, _) = &answers[0];
            let value = serde_json::from_str::<Json>(&answer.body)
                .unwrap_or_else(|_| json!({ "status": answer.status, "body": answer.body }));
            Output::json(value)
        } else {
            let column = |f: &dyn Fn(usize, &(Answer, bool)) -> i64| -> ArrayRef {
                Arc::new(Int64Array::from_iter_values(
                    answers.iter().enumerate().map(|(i, a)| f(i, a)),
                ))
            };
            let table = RecordBatch::try_from_iter(vec![
                ("request", column(&|i, _| i as i64 + 1)),
                ("status", column(&|_, (a, _)| i64::from(a.status))),
                (
                    "body",
                    Arc::new(StringArray::from_iter_values(
                        answers.iter().map(|(a, _)| a.body.as_str()),
                    )) as ArrayRef,
                ),
                ("attempts", column(&|_, (a, _)| i64::from(a.attempts))),
                (
                    "sent_now",
                    Arc::new(BooleanArray::from(
                        answers.iter().map(|(_, new)| *new).collect::<Vec<_>>(),
                    )),
                ),
            ])
            .map_err(|e| NodeError::msg(e.to_string()))?;
            Output::table(table)
        };
        Ok(out
            .with_meta("url", shown)
            .with_meta("requests", total as u64)
            .with_meta("sent", sent)
            .with_meta("already_sent", total as u64 - sent))
    }
}

#[cfg(test)]
#[path = "http_request_tests.rs"]
mod tests;
