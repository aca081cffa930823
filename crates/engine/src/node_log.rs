//! Each node's log: what its code logs through `tracing` while it runs (a shell command's
//! stderr, a node's warnings), kept with the run so `flow serve`'s pages can show it.
//!
//! [`NodeLogLayer`] collects the events inside a node's span (the executor opens one per
//! attempt, naming the run and the node) in memory; when the node ends, the executor takes
//! them with [`take`] and writes them in the same batch as the node's final record, under
//! [`LOGS`] at `RUN_ID/NODE_ID`. A process without the layer records no lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::store::Write;

/// The store namespace of node logs.
pub const LOGS: &str = "logs";
/// Lines kept per node; later ones are counted, not kept.
const MAX_LINES: usize = 500;
/// Characters kept per line.
const MAX_LINE: usize = 4000;

/// One logged line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    pub message: String,
}

#[derive(Default)]
struct Buffer {
    lines: Vec<LogLine>,
    dropped: usize,
}

/// Lines of nodes still running, by `(run, node)`.
static LIVE: Mutex<Option<HashMap<(String, String), Buffer>>> = Mutex::new(None);

fn with_live<T>(f: impl FnOnce(&mut HashMap<(String, String), Buffer>) -> T) -> T {
    let mut guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// Adds a line to a running node's log (what [`NodeLogLayer`] does for each event).
pub fn record(run_id: &str, node_id: &str, level: &str, message: String) {
    let entry = LogLine {
        at: Utc::now(),
        level: level.to_string(),
        message,
    };
    with_live(|live| {
        let buffer = live
            .entry((run_id.to_string(), node_id.to_string()))
            .or_default();
        if buffer.lines.len() < MAX_LINES {
            buffer.lines.push(entry);
        } else {
            buffer.dropped += 1;
        }
    });
}

/// The write that stores a node's collected lines, taking them out of memory; `None` when it
/// logged nothing.
pub fn take(run_id: &str, node_id: &str) -> Option<Write> {
    let buffer = with_live(|live| live.remove(&(run_id.to_string(), node_id.to_string())))?;
    let mut lines = buffer.lines;
    if buffer.dropped > 0 {
        lines.push(LogLine {
            at: Utc::now(),
            level: "warn".into(),
            message: format!("{} more lines were not kept", buffer.dropped),
        });
    }
    Some(Write::Put {
        namespace: LOGS.into(),
        key: key(run_id, node_id),
        value: serde_json::to_vec(&lines).ok()?,
    })
}

/// A node's stored log.
pub fn key(run_id: &str, node_id: &str) -> String {
    format!("{run_id}/{node_id}")
}

/// Collects events inside node spans. Add it to the process's subscriber with the level of
/// detail to keep (its own filter).
#[derive(Debug, Default)]
pub struct NodeLogLayer;

/// The run and node a span stands for.
struct NodeSpan {
    run: String,
    node: String,
}

#[derive(Default)]
struct SpanFields {
    run: Option<String>,
    node: Option<String>,
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field.name(), format!("{value:?}"));
    }
}

impl SpanFields {
    fn record(&mut self, name: &str, value: String) {
        match name {
            "run" => self.run = Some(value),
            "node" => self.node = Some(value),
            _ => {}
        }
    }
}

/// The message and the other fields of an event, as one line.
#[derive(Default)]
struct Line(String, String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else if value.contains('\n') {
            // Multi-line values (a command's stderr) read best on their own lines.
            let _ = write!(self.1, "\n{value}");
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

impl<S> Layer<S> for NodeLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if let (Some(run), Some(node), Some(span)) = (fields.run, fields.node, ctx.span(id)) {
            span.extensions_mut().insert(NodeSpan { run, node });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some((run, node)) = scope.from_root().find_map(|span| {
            span.extensions()
                .get::<NodeSpan>()
                .map(|n| (n.run.clone(), n.node.clone()))
        }) else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let mut message = line.0;
        message.push_str(&line.1);
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …");
        }
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        record(&run, &node, &level, message);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn events_in_a_node_span_are_kept_for_that_run_and_node_only() {
        let subscriber = tracing_subscriber::registry().with(NodeLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::warn_span!("node", run = "r1", node = "extract");
            span.in_scope(|| {
                tracing::warn!(rows = 3, "skipped bad rows");
                tracing::info!(stderr = "line one\nline two", "command stderr");
            });
            tracing::warn!("outside any node");
            let other = tracing::warn_span!("node", run = "r2", node = "extract");
            other.in_scope(|| tracing::error!("boom"));
        });
        let Some(Write::Put { key, value, .. }) = take("r1", "extract") else {
            panic!("lines for r1");
        };
        assert_eq!(key, "r1/extract");
        let lines: Vec<LogLine> = serde_json::from_slice(&value).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].level, "warn");
        assert_eq!(lines[0].message, "skipped bad rows rows=3");
        assert_eq!(lines[1].message, "command stderr\nline one\nline two");
        assert!(take("r1", "extract").is_none(), "taken once");
        assert!(take("r2", "extract").is_some());
    }
}
