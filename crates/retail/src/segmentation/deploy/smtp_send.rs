//! Sending the campaign messages over SMTP, each at most once per customer and day.
//!
//! Every message goes through [`NodeContext::once`] under `RUN/NODE/email/CUSTOMER`: the ledger
//! records it right after the server accepted the message (its reply to the end of DATA), and a
//! retried or resumed run skips it. Before that record, the node state notes the day the
//! customer was last mailed (per workflow file and node), so another run of the same workflow
//! on the same day skips the customer too. The one gap is a crash between the server's acceptance
//! and the first of those writes: that message is sent again on resume, with the same
//! Message-ID (derived from the same key), so receivers and their filters can tell it is a
//! repeat.
//!
//! Failures: a 4xx reply, a refused or broken connection or a timeout is retried with backoff;
//! a 5xx reply to a message (unknown mailbox, rejected content) is a bounce, recorded per
//! customer in the output and `bounces.csv` and in the ledger (it is not sent again on
//! resume); the run fails when the login is refused, TLS fails, the server stays unreachable,
//! or every message bounced.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt16Array};
use arrow_schema::{DataType, Field, Schema};
use lettre::Transport as _;
use lettre::address::Envelope;
use lettre::transport::smtp::SmtpTransport;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::outgoing::Outgoing;
use super::smtp::EmailConfig;
use flow_engine::node::{NodeContext, NodeError};

/// A message the server refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bounce {
    pub(crate) customer_id: String,
    pub(crate) segment: String,
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// What happened to the messages.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct EmailReport {
    pub(crate) server: String,
    pub(crate) messages: usize,
    /// Accepted by the server in this attempt.
    pub(crate) sent: usize,
    /// Accepted in an earlier attempt of this run, or by another run of the same workflow on
    /// the same day: not sent again.
    pub(crate) already_sent: usize,
    pub(crate) bounced: usize,
    /// SMTP transactions tried, retries included.
    pub(crate) attempts: usize,
    pub(crate) bounces: Vec<Bounce>,
    pub(crate) bounces_file: Option<String>,
}

/// How one failed attempt is handled.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Worth another attempt: a 4xx reply, a connection error, a timeout.
    Transient(String),
    /// This message will never be accepted: a 5xx reply.
    Permanent(u16, String),
    /// No message can be sent: the login was refused, TLS failed, a client-side error.
    Fatal(String),
}

/// SMTP replies to AUTH that mean the credentials are wrong or not allowed (RFC 4954).
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

fn classify(e: &lettre::transport::smtp::Error, cfg: &EmailConfig) -> Failure {
    let text = e.to_string();
    let code = e.status().map(u16::from);
    match code {
        Some(c) if AUTH_CODES.contains(&c) => {
            let vars = match &cfg.auth {
                Some((u, p)) => format!(" (username from `{u}`, password from `{p}`)"),
                None => " (no username_env/password_env given)".into(),
            };
            Failure::Fatal(format!("the server refused the login{vars}: {text}"))
        }
        Some(c) if (500..600).contains(&c) => Failure::Permanent(c, text),
        Some(_) => Failure::Transient(text),
        None if e.is_tls() => Failure::Fatal(format!("TLS failed: {text}")),
        None if e.is_client() => Failure::Fatal(text),
        None => Failure::Transient(text),
    }
}

/// `text` with every occurrence of `secret` hidden.
fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() && text.contains(s) => text.replace(s, "***"),
        _ => text,
    }
}

fn bounce_key(key: &str) -> String {
    format!("email-bounce/{key}")
}

/// Sends every message not yet recorded as sent or bounced, in order, at the configured rate.
pub(crate) async fn deliver(
    ctx: &NodeContext,
    cfg: &EmailConfig,
    credentials: Option<(String, String)>,
    messages: Vec<Outgoing>,
    out_dir: &Path,
    day: &str,
) -> Result<EmailReport, NodeError> {
    let workflow = flow_engine::sync::workflow_key(&ctx.workflow_path);
    let server = cfg.server();
    let mut report = EmailReport {
        server: server.clone(),
        messages: messages.len(),
        ..Default::default()
    };
    let password = credentials.as_ref().map(|(_, p)| p.clone());
    let domain = messages
        .first()
        .map(|m| m.from.domain().to_string())
        .unwrap_or_else(|| "localhost".into());
    let transport = Arc::new(cfg.transport(credentials, &domain)?);
    let mut next_slot = Instant::now();
    let addresses: HashMap<String, String> = messages
        .iter()
        .map(|m| (m.customer.clone(), m.to.to_string()))
        .collect();
    for m in messages {
        let item = format!("email/{}", m.customer);
        let key = ctx.idempotency_key(&item);
        if ctx.effects.is_done(&key)? {
            match ctx.state.get(&bounce_key(&key))? {
                Some(bytes) => {
                    if let Ok(b) = serde_json::from_slice::<Bounce>(&bytes) {
                        report.bounces.push(b);
                    }
                }
                None => report.already_sent += 1,
            }
            continue;
        }
        // One entry per customer (the last day mailed), so the state does not grow by day.
        let day_key = format!("email-last/{workflow}/{}/{}", ctx.node_id, m.customer);
        if ctx.state.get(&day_key)?.as_deref() == Some(day.as_bytes()) {
            report.already_sent += 1;
            continue;
        }
        tokio::time::sleep_until(next_slot).await;
        next_slot = Instant::now() + cfg.interval;
        let mut attempts = 0usize;
        let mut bounced: Option<Bounce> = None;
        let result = ctx
            .once(&item, |key| async {
                let detail = send_one(
                    ctx,
                    cfg,
                    transport.clone(),
                    &m,
                    key,
                    &mut attempts,
                    &mut bounced,
                )
                .await?;
                if bounced.is_none() {
                    ctx.state.put(&day_key, day.as_bytes())?;
                }
                Ok(detail)
            })
            .await;
        report.attempts += attempts;
        match result {
            Ok(_) => match bounced {
                Some(b) => {
                    tracing::warn!(
                        "customer {}: the SMTP server rejected the message ({})",
                        b.customer_id,
                        b.code
                    );
                    report.bounces.push(b);
                }
                None => report.sent += 1,
            },
            Err(e) => {
                let done = report.sent + report.already_sent + report.bounces.len();
                if !report.bounces.is_empty() {
                    let _ = write_bounces(out_dir, &report.bounces, &addresses);
                }
                return Err(NodeError::msg(scrub(
                    format!(
                        "SMTP server {server}: the message to customer {} failed: {e}. {done} \
                         earlier message{} recorded as sent or bounced and will not be sent \
                         again when the run is resumed",
                        m.customer,
                        if done == 1 { " is" } else { "s are" }
                    ),
                    password.as_deref(),
                )));
            }
        }
    }
    report.bounced = report.bounces.len();
    if report.bounces.is_empty() {
        // A file an earlier run of the same day left would tell of bounces this run did not have.
        let _ = std::fs::remove_file(out_dir.join("bounces.csv"));
    } else {
        report.bounces_file = Some(write_bounces(out_dir, &report.bounces, &addresses)?);
    }
    if report.messages > 0 && report.bounced == report.messages {
        let first = &report.bounces[0];
        return Err(NodeError::msg(scrub(
            format!(
                "SMTP server {server} rejected every message ({}); the first, to customer {}: {}",
                report.messages, first.customer_id, first.reason
            ),
            password.as_deref(),
        )));
    }
    Ok(report)
}

/// One message, retried on transient failures. `Ok` once the server accepted it or refused it
/// for good (then `bounced` is set): either way the ledger records it.
async fn send_one(
    ctx: &NodeContext,
    cfg: &EmailConfig,
    transport: Arc<SmtpTransport>,
    m: &Outgoing,
    key: String,
    attempts: &mut usize,
    bounced: &mut Option<Bounce>,
) -> Result<Json, NodeError> {
    let envelope = Envelope::new(Some(m.from.clone()), vec![m.to.clone()])
        .map_err(|e| NodeError::msg(format!("envelope: {e}")))?;
    let bytes = Arc::new(m.bytes.clone());
    let mut delay = cfg.backoff;
    let mut last = String::new();
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
        *attempts += 1;
        let (t, env, b) = (transport.clone(), envelope.clone(), bytes.clone());
        let outcome = flow_engine::node::spawn_blocking(move || t.send_raw(&env, &b))
            .await
            .map_err(|e| NodeError::msg(format!("SMTP send stopped: {e}")))?;
        let e = match outcome {
            Ok(response) => {
                return Ok(json!({
                    "accepted": u16::from(response.code()),
                    "message_id": m.message_id,
                    "attempts": attempt + 1,
                }));
            }
            Err(e) => e,
        };
        match classify(&e, cfg) {
            Failure::Transient(text) => last = text,
            Failure::Fatal(text) => return Err(NodeError::msg(text)),
            Failure::Permanent(code, reason) => {
                let b = Bounce {
                    customer_id: m.customer.clone(),
                    segment: m.segment.clone(),
                    code,
                    reason,
                };
                let bytes = serde_json::to_vec(&b)
                    .map_err(|e| NodeError::msg(format!("bounce record: {e}")))?;
                ctx.state.put(&bounce_key(&key), &bytes)?;
                *bounced = Some(b);
                return Ok(json!({ "bounced": code, "message_id": m.message_id }));
            }
        }
    }
    Err(NodeError::msg(format!(
        "{last} (after {} attempt{})",
        cfg.retries + 1,
        if cfg.retries == 0 { "" } else { "s" }
    )))
}

/// Writes `bounces.csv` (customer, segment, address, code, reason): every bounce of the run so
/// far, earlier attempts included. Returns its path.
fn write_bounces(
    out_dir: &Path,
    bounces: &[Bounce],
    addresses: &HashMap<String, String>,
) -> Result<String, NodeError> {
    let path = out_dir.join("bounces.csv");
    let col = |f: &dyn Fn(&Bounce) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(bounces.iter().map(f)))
    };
    let columns = vec![
        col(&|b| b.customer_id.clone()),
        col(&|b| b.segment.clone()),
        col(&|b| addresses.get(&b.customer_id).cloned().unwrap_or_default()),
        Arc::new(UInt16Array::from_iter_values(
            bounces.iter().map(|b| b.code),
        )) as ArrayRef,
        col(&|b| b.reason.clone()),
    ];
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("code", DataType::UInt16, false),
        Field::new("reason", DataType::Utf8, false),
    ]);
    let table = RecordBatch::try_new(Arc::new(schema), columns)?;
    super::write_atomic(&path, &super::csv_bytes(&table)?)?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_leaves_in_an_error() {
        assert_eq!(
            scrub("auth failed for hunter2!".into(), Some("hunter2")),
            "auth failed for ***!"
        );
        assert_eq!(scrub("fine".into(), None), "fine");
    }
}
