//! The one writer of the CLI's log lines on stderr.
//!
//! Every line (a node's progress, a warning logged anywhere through `tracing`) is
//! `STAMP TEXT`, printed above the live view while one is shown (so a redraw never overwrites
//! it), and plain otherwise. Colour only on a terminal, and never with `NO_COLOR` set.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::{Mutex, MutexGuard, OnceLock};

use indicatif::MultiProgress;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How lines are stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Local wall-clock time, `14:05:09`: a run watched as it happens.
    Clock,
    /// UTC date and time, `2026-12-01T14:05:09Z`: the long-running log of `flow serve`.
    Utc,
}

static STAMP: OnceLock<Stamp> = OnceLock::new();

/// The live view lines are printed above while it is shown.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<MultiProgress>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Chooses the stamp for the rest of the process (first call wins; default [`Stamp::Clock`]).
pub fn set_stamp(stamp: Stamp) {
    let _ = STAMP.set(stamp);
}

pub fn stamp() -> String {
    match STAMP.get().copied().unwrap_or(Stamp::Clock) {
        Stamp::Clock => chrono::Local::now().format("%H:%M:%S").to_string(),
        Stamp::Utc => chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// Whether stderr may carry colour: a terminal, and `NO_COLOR` unset or empty.
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Shows lines above `view` until [`end_live`].
pub fn begin_live(view: MultiProgress) {
    *live() = Some(view);
}

pub fn end_live() {
    *live() = None;
}

/// Prints `STAMP text`.
pub fn line(text: &str) {
    let line = format!("{} {text}", stamp());
    let guard = live();
    match guard.as_ref() {
        // Hidden only when stderr is gone; then nothing can be shown anyway.
        Some(view) => {
            let _ = view.println(&line);
        }
        None => eprintln!("{line}"),
    }
}

/// `warning: ` (yellow on a colour terminal), `error: `, ...; nothing for plain information.
fn level_prefix(level: Level, colour: bool) -> &'static str {
    match (level, colour) {
        (Level::ERROR, false) => "error: ",
        (Level::ERROR, true) => "\x1b[31merror\x1b[0m: ",
        (Level::WARN, false) => "warning: ",
        (Level::WARN, true) => "\x1b[33mwarning\x1b[0m: ",
        (Level::INFO, _) => "",
        (Level::DEBUG, _) => "debug: ",
        (Level::TRACE, _) => "trace: ",
    }
}

/// The node a span belongs to (its `node` field), kept in the span's extensions.
struct NodeOfSpan(String);

/// Collects an event's message and its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    node: Option<String>,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "node" => self.node = Some(value),
            name => self.rest.push((name.to_string(), value)),
        }
    }
}

/// Formats an event as the text of one line (without the stamp).
fn event_text(level: Level, fields: Fields, node: Option<String>, colour: bool) -> String {
    let mut text = String::new();
    if let Some(node) = fields.node.or(node) {
        let _ = write!(text, "node {node} ");
    }
    text.push_str(level_prefix(level, colour));
    // A multi-line message stays one log line.
    text.push_str(&fields.message.replace(['\r', '\n'], " "));
    if !fields.rest.is_empty() {
        let parts: Vec<String> = fields
            .rest
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(['\r', '\n'], " ")))
            .collect();
        let _ = write!(text, " ({})", parts.join(", "));
    }
    text
}

/// The `tracing` layer that prints events through [`line`].
pub struct ConsoleLayer {
    colour: bool,
}

impl ConsoleLayer {
    pub fn new() -> Self {
        ConsoleLayer { colour: colour() }
    }
}

impl<S> Layer<S> for ConsoleLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(node), Some(span)) = (fields.node, ctx.span(id)) {
            span.extensions_mut().insert(NodeOfSpan(node));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let node = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .filter_map(|span| span.extensions().get::<NodeOfSpan>().map(|n| n.0.clone()))
                .last()
        });
        line(&event_text(
            *event.metadata().level(),
            fields,
            node,
            self.colour,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, node: Option<&str>, rest: &[(&str, &str)]) -> Fields {
        Fields {
            message: message.into(),
            node: node.map(str::to_string),
            rest: rest
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_warning_is_one_plain_line_naming_its_node() {
        let text = event_text(
            Level::WARN,
            fields(
                "skipped 6 bad rows; first: line 9:\nbad date",
                None,
                &[("path", "data/t.csv")],
            ),
            Some("transactions".into()),
            false,
        );
        assert_eq!(
            text,
            "node transactions warning: skipped 6 bad rows; first: line 9: bad date (path=data/t.csv)"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn the_event_node_field_wins_and_colour_is_only_asked_for() {
        let f = fields("attempt failed", Some("fetch"), &[]);
        assert_eq!(
            event_text(Level::WARN, f, Some("outer".into()), true),
            "node fetch \x1b[33mwarning\x1b[0m: attempt failed"
        );
        assert_eq!(
            event_text(Level::INFO, fields("serving", None, &[]), None, false),
            "serving"
        );
        assert_eq!(
            event_text(Level::ERROR, fields("boom", None, &[]), None, false),
            "error: boom"
        );
    }
}
