//! Live progress of a run: a line per node on a terminal, plain log lines otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use super::console;
use flow_engine::compile::Workflow;
use flow_engine::executor::Event;
use flow_engine::plural::plural;
use flow_engine::store::NodeStatus;

/// Consumes events until the executor drops its sender.
pub async fn display(mut events: UnboundedReceiver<Event>, wf: Arc<Workflow>, tty: bool) {
    let total = wf.nodes.len();
    if !tty {
        let mut done = Done::new(total);
        while let Some(event) = events.recv().await {
            let counted = done.count(&event);
            let mut text = plain(&event);
            if counted {
                text.push_str(&format!(" ({})", done.text()));
            }
            console::line(&text);
        }
        return;
    }
    let width = wf
        .nodes
        .iter()
        .map(|n| n.id.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 40);
    let live = Live::new(ProgressDrawTarget::stderr_with_hz(10), width, total);
    console::begin_live(live.multi.clone());
    let mut live = live;
    while let Some(event) = events.recv().await {
        live.show(&event);
    }
    live.finish();
    console::end_live();
}

/// How many nodes are done: finished, skipped or reused (each node once).
struct Done {
    nodes: HashSet<String>,
    total: usize,
}

impl Done {
    fn new(total: usize) -> Self {
        Done {
            nodes: HashSet::new(),
            total,
        }
    }

    /// Counts the node of `event` if the event ends it; whether it did.
    fn count(&mut self, event: &Event) -> bool {
        match event {
            Event::Finished { status, .. } if *status == NodeStatus::Interrupted => false,
            Event::Finished { node, .. }
            | Event::Skipped { node, .. }
            | Event::Reused { node, .. } => {
                self.nodes.insert(node.clone());
                true
            }
            _ => false,
        }
    }

    fn text(&self) -> String {
        format!("{} of {} nodes done", self.nodes.len(), self.total)
    }
}

/// The live view on a terminal: the overall progress, then a line per started node. Log lines
/// are printed above it by the console.
struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<String, ProgressBar>,
    running: ProgressStyle,
    done_style: ProgressStyle,
    done: Done,
}

impl Live {
    fn new(target: ProgressDrawTarget, width: usize, total: usize) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {elapsed:>4}")
                .expect("template")
                .progress_chars("█▌ "),
        );
        let done = Done::new(total);
        overall.set_message(done.text());
        let running = ProgressStyle::with_template(&format!(
            "{{spinner:.cyan}} {{prefix:{width}}} {{msg}} {{elapsed:>4}}"
        ))
        .expect("template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let done_style =
            ProgressStyle::with_template(&format!("{{prefix:{width}}} {{msg}}")).expect("template");
        Live {
            multi,
            overall,
            bars: HashMap::new(),
            running,
            done_style,
            done,
        }
    }

    fn line(&mut self, node: &str) -> ProgressBar {
        self.bars
            .entry(node.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.running.clone());
                bar.set_prefix(node.to_string());
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            })
            .clone()
    }

    fn show(&mut self, event: &Event) {
        if self.done.count(event) {
            self.overall.set_position(self.done.nodes.len() as u64);
            self.overall.set_message(self.done.text());
        }
        match event {
            Event::Started { node, attempt } => {
                let bar = self.line(node);
                bar.set_style(self.running.clone());
                bar.set_message(if *attempt > 1 {
                    format!("running (attempt {attempt})")
                } else {
                    "running".into()
                });
            }
            Event::Retrying {
                node,
                attempt,
                delay,
                error,
            } => {
                let bar = self.line(node);
                bar.set_message(format!(
                    "attempt {attempt} failed, retrying in {}: {}",
                    humantime::format_duration(*delay),
                    first_line(error)
                ));
            }
            Event::Finished { node, .. }
            | Event::Skipped { node, .. }
            | Event::Reused { node, .. } => {
                let bar = self.line(node);
                bar.set_style(self.done_style.clone());
                bar.finish_with_message(plain_status(event));
            }
            // Printed above the live lines by the console, so the redraw does not erase them.
            Event::Draining { .. } | Event::Warning { .. } => console::line(&plain(event)),
        }
    }

    fn finish(&mut self) {
        self.overall.finish_with_message(self.done.text());
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn symbol(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Succeeded => "✔",
        NodeStatus::Failed => "✘",
        NodeStatus::Skipped => "↷",
        NodeStatus::UpstreamFailed => "∅",
        NodeStatus::Interrupted => "■",
        NodeStatus::Pending | NodeStatus::Running => "…",
    }
}

fn plain_status(event: &Event) -> String {
    match event {
        Event::Finished {
            status,
            duration,
            rows_out,
            error,
            ..
        } => {
            let mut s = format!(
                "{} {} in {:.2?}, {}",
                symbol(*status),
                status.as_str(),
                duration,
                plural(*rows_out, "row")
            );
            if let Some(e) = error {
                s.push_str(&format!(": {}", first_line(e)));
            }
            s
        }
        Event::Skipped { status, reason, .. } => {
            format!("{} {} ({reason})", symbol(*status), status.as_str())
        }
        Event::Reused { status, .. } => {
            format!("↺ {} earlier (checkpoint reused)", status.as_str())
        }
        _ => String::new(),
    }
}

fn plain(event: &Event) -> String {
    match event {
        Event::Started { node, attempt } => format!("node {node} started (attempt {attempt})"),
        Event::Retrying {
            node,
            attempt,
            delay,
            error,
        } => format!(
            "node {node} attempt {attempt} failed, retrying in {}: {}",
            humantime::format_duration(*delay),
            first_line(error)
        ),
        Event::Finished { node, .. } | Event::Skipped { node, .. } | Event::Reused { node, .. } => {
            format!("node {node} {}", plain_status(event))
        }
        Event::Draining { running } => {
            format!(
                "stopping: waiting for {} to finish",
                plural(*running as u64, "running node")
            )
        }
        Event::Warning { node, message } => format!("node {node} warning: {message}"),
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
