//! The records kept per run and per node.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::node_state::{AttemptOutcome, NodeStatus};
use super::run_state::RunStatus;

/// How a run was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInfo {
    /// `manual`, `schedule`, ...
    pub fired_by: String,
    /// The trigger nodes that fired.
    pub triggers: Vec<String>,
    pub time: DateTime<Utc>,
    /// For scheduled runs: the time the schedule said (may differ from `time` on catch-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// What started the run brought with it: a webhook's request body and selected headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Json>,
}

/// One run of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub workflow_name: String,
    pub workflow_path: String,
    pub workflow_fingerprint: String,
    /// Node id -> definition fingerprint at the time the node last ran.
    pub node_fingerprints: BTreeMap<String, String>,
    /// The params the run last executed with (defaults and overrides).
    pub params: BTreeMap<String, Json>,
    /// The values given with `--param` (at the start or on a resume). `None` for runs recorded
    /// before overrides were kept apart: resume then keeps every value in `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_overrides: Option<BTreeMap<String, Json>>,
    pub trigger: TriggerInfo,
    pub status: RunStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// 1 for the first execution, +1 per resume.
    pub executions: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// Seconds from creation to finish (or to the last update).
    pub fn duration_secs(&self) -> f64 {
        let end = self.finished_at.unwrap_or(self.updated_at);
        (end - self.created_at).num_milliseconds() as f64 / 1000.0
    }

    #[cfg(test)]
    pub(crate) fn new_for_test(id: &str) -> Self {
        let now = Utc::now();
        RunRecord {
            id: id.into(),
            workflow_name: "t".into(),
            workflow_path: "t.yaml".into(),
            workflow_fingerprint: "f".into(),
            node_fingerprints: BTreeMap::new(),
            params: BTreeMap::new(),
            param_overrides: Some(BTreeMap::new()),
            trigger: TriggerInfo {
                fired_by: "manual".into(),
                triggers: vec![],
                time: now,
                scheduled_for: None,
                payload: None,
            },
            status: RunStatus::Running,
            created_at: now,
            updated_at: now,
            finished_at: None,
            executions: 1,
            error: None,
        }
    }
}

/// One attempt at running a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    /// The run execution (1 = first, 2 = first resume, ...) this attempt belongs to.
    pub execution: u32,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One node in one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub status: NodeStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was skipped or did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub rows_in: u64,
    #[serde(default)]
    pub rows_out: u64,
    /// Rows per case, for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_rows: Option<BTreeMap<String, u64>>,
    /// The output's metadata (fitted parameters, counts).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, Json>,
    /// The node definition fingerprint this record belongs to.
    #[serde(default)]
    pub fingerprint: String,
    /// The execution in which the node reached its status.
    #[serde(default)]
    pub execution: u32,
    /// Problems that did not fail the node, such as rows routed to a case that reaches no output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl NodeRecord {
    pub fn new(node_id: &str) -> Self {
        NodeRecord {
            node_id: node_id.into(),
            status: NodeStatus::Pending,
            attempts: Vec::new(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            error: None,
            reason: None,
            rows_in: 0,
            rows_out: 0,
            case_rows: None,
            meta: Default::default(),
            fingerprint: String::new(),
            execution: 0,
            warnings: Vec::new(),
        }
    }
}
