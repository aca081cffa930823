//! Live progress of a run: a line per node on a terminal, plain log lines otherwise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::compile::Workflow;
use crate::executor::Event;
use crate::store::NodeStatus;

/// Consumes events until the executor drops its sender.
pub async fn display(mut events: UnboundedReceiver<Event>, wf: Arc<Workflow>, tty: bool) {
    let width = wf
        .nodes
        .iter()
        .map(|n| n.id.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 40);
    if !tty {
        while let Some(event) = events.recv().await {
            eprintln!(
                "{} {}",
                chrono::Local::now().format("%H:%M:%S"),
                plain(&event)
            );
        }
        return;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let running = ProgressStyle::with_template(&format!(
        "{{spinner:.cyan}} {{prefix:{width}}} {{msg}} {{elapsed:>4}}"
    ))
    .expect("template")
    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
    let done =
        ProgressStyle::with_template(&format!("{{prefix:{width}}} {{msg}}")).expect("template");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let line = |bars: &mut HashMap<String, ProgressBar>, node: &str| -> ProgressBar {
        bars.entry(node.to_string())
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(running.clone());
                bar.set_prefix(node.to_string());
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            })
            .clone()
    };
    while let Some(event) = events.recv().await {
        match &event {
            Event::Started { node, attempt } => {
                let bar = line(&mut bars, node);
                bar.set_style(running.clone());
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
                let bar = line(&mut bars, node);
                bar.set_message(format!(
                    "attempt {attempt} failed, retrying in {}: {}",
                    humantime::format_duration(*delay),
                    first_line(error)
                ));
            }
            Event::Finished { node, .. }
            | Event::Skipped { node, .. }
            | Event::Reused { node, .. } => {
                let bar = line(&mut bars, node);
                bar.set_style(done.clone());
                bar.finish_with_message(plain_status(&event));
            }
            // Printed above the live lines, so the redraw does not erase them.
            Event::Draining { .. } | Event::Warning { .. } => {
                let _ = multi.println(plain(&event));
            }
        }
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
                "{} {} in {:.2?}, {rows_out} rows",
                symbol(*status),
                status.as_str(),
                duration
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
            format!("stopping: waiting for {running} running node(s) to finish")
        }
        Event::Warning { node, message } => format!("warning: node {node}: {message}"),
    }
}
