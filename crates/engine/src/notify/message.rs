//! The message a notification carries: built once from a finished run, then rendered per
//! format (see `formats`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::executor::RunOutcome;
use crate::store::{NodeStatus, RunStatus};

/// Lines of a node's error a message quotes at most.
pub const ERROR_LINES: usize = 10;
/// Characters of a node's error a message quotes at most.
pub const ERROR_CHARS: usize = 1_500;

/// What the sender knows beyond the run itself.
#[derive(Debug, Clone, Default)]
pub struct MessageContext {
    /// The state store the run is in, for the resume command.
    pub state_dir: Option<PathBuf>,
    /// The web UI's base URL (`http://HOST:PORT`), when one serves the store.
    pub ui_base: Option<String>,
}

/// A finished run, as notifications report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub workflow: String,
    /// The workflow file (absolute).
    pub workflow_file: String,
    pub run_id: String,
    /// `failed` or `succeeded`.
    pub status: RunStatus,
    /// What started the run: `manual`, `schedule`, ...
    pub fired_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_secs: f64,
    /// 1 for the first execution, +1 per resume.
    pub execution: u32,
    /// The nodes that failed, each with the first lines of its error.
    pub failed_nodes: Vec<FailedNode>,
    /// The run's own error, when it failed without a failed node to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The command that continues a failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<String>,
    /// The run's page in the web UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
}

/// A failed node and the start of its error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedNode {
    pub node: String,
    /// At most [`ERROR_LINES`] lines and [`ERROR_CHARS`] characters of the error.
    pub error: String,
    /// Whether `error` was cut short.
    pub truncated: bool,
}

impl Message {
    /// The message for a finished run.
    pub fn build(outcome: &RunOutcome, cx: &MessageContext) -> Message {
        let run = &outcome.run;
        let failed = run.status == RunStatus::Failed;
        let failed_nodes: Vec<FailedNode> = outcome
            .nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Failed)
            .map(|n| {
                let (error, truncated) = excerpt(n.error.as_deref().unwrap_or("(no error text)"));
                FailedNode {
                    node: n.node_id.clone(),
                    error,
                    truncated,
                }
            })
            .collect();
        let error = match (&run.error, failed && failed_nodes.is_empty()) {
            (Some(e), true) => Some(excerpt(e).0),
            _ => None,
        };
        let finished_at = run.finished_at.unwrap_or(run.updated_at);
        Message {
            workflow: run.workflow_name.clone(),
            workflow_file: run.workflow_path.clone(),
            run_id: run.id.clone(),
            status: run.status,
            fired_by: run.trigger.fired_by.clone(),
            started_at: run.created_at,
            finished_at,
            duration_secs: (finished_at - run.created_at).num_milliseconds().max(0) as f64 / 1000.0,
            execution: run.executions,
            failed_nodes,
            error,
            resume_command: failed.then(|| resume_command(&run.id, cx.state_dir.as_deref())),
            ui_url: cx
                .ui_base
                .as_ref()
                .map(|base| format!("{}/runs/{}", base.trim_end_matches('/'), run.id)),
        }
    }

    /// `failed` or `succeeded`.
    pub fn status_str(&self) -> &'static str {
        self.status.as_str()
    }

    /// The failed nodes' ids, comma-separated.
    pub fn failed_node_ids(&self) -> String {
        self.failed_nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One line for a plain-text summary: `run ID of `NAME` failed (node X) in 3.2s`.
    pub fn headline(&self) -> String {
        let nodes = match self.failed_nodes.len() {
            0 => String::new(),
            1 => format!(" at node {}", self.failed_nodes[0].node),
            n => format!(" at {n} nodes ({})", self.failed_node_ids()),
        };
        format!(
            "flow: run {} of {} {}{nodes} after {}",
            self.run_id,
            self.workflow,
            self.status_str(),
            human_duration(self.duration_secs)
        )
    }
}

/// `flow resume RUN_ID --state DIR`, with the directory absolute and quoted for a shell.
pub fn resume_command(run_id: &str, state_dir: Option<&Path>) -> String {
    match state_dir {
        Some(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            format!(
                "flow resume {run_id} --state {}",
                shell_quote(&dir.display().to_string())
            )
        }
        None => format!("flow resume {run_id}"),
    }
}

/// `s` as one shell word: unchanged when it is plain, otherwise in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The first [`ERROR_LINES`] lines and [`ERROR_CHARS`] characters of `text`, trimmed, and
/// whether anything was left out.
pub fn excerpt(text: &str) -> (String, bool) {
    let text = text.trim();
    let mut out = String::new();
    let mut truncated = false;
    for (i, line) in text.lines().enumerate() {
        if i == ERROR_LINES {
            truncated = true;
            break;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line.trim_end());
    }
    if out.chars().count() > ERROR_CHARS {
        out = out.chars().take(ERROR_CHARS).collect();
        truncated = true;
    }
    if truncated {
        out.push('…');
    }
    (out, truncated)
}

/// `850ms`, `12.3s`, `4m 05s`, `2h 03m`.
pub fn human_duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round() as u64)
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}
