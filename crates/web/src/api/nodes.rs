//! A run's nodes as the run page shows them: [`NodeDetail`], with the parameters rendered
//! with the run's params as the executor rendered them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flow_engine::compile::Workflow;
use flow_engine::node::NodeKind;
use flow_engine::store::{NodeRecord, NodeStatus, RunRecord};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One attempt at running a node.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptDetail {
    pub number: u32,
    pub execution: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `timed_out`, `interrupted`, ...
    pub outcome: String,
    pub error: Option<String>,
}

/// One node of a run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeDetail {
    pub id: String,
    /// `trigger`, `action`, `decision` or `output`; null for a node no longer in the workflow.
    pub kind: Option<String>,
    #[serde(rename = "type")]
    pub node_type: Option<String>,
    /// `pending`, `running`, `succeeded`, `failed`, `skipped`, `upstream_failed`, `interrupted`.
    pub status: String,
    pub attempts: Vec<AttemptDetail>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows per case, for a decision.
    pub case_rows: Option<BTreeMap<String, u64>>,
    /// A decision's cases with no rows whose branch did not run.
    pub skipped_cases: Option<Vec<String>>,
    /// The output's metadata (fitted parameters, counts).
    #[schema(value_type = Object)]
    pub meta: Map<String, Value>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub warnings: Vec<String>,
    /// `with:` rendered with the run's params; values the node renders itself, or that
    /// refer to its inputs, as written.
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Whether an output can be fetched from `/api/runs/{id}/nodes/{node}/output`.
    pub has_output: bool,
}

/// The status a node is shown with: `running` in a run nobody executes is `interrupted`.
pub(crate) fn shown_node_status(record: &NodeRecord, live: bool) -> &'static str {
    match record.status {
        NodeStatus::Running if !live => "interrupted",
        s => s.as_str(),
    }
}

/// The run's nodes: the workflow's, in run order (pending if the run has no record of them),
/// then recorded nodes the workflow no longer has.
pub(crate) fn node_details(
    run: &RunRecord,
    records: &[NodeRecord],
    workflow: Option<&Workflow>,
    live: bool,
) -> Vec<NodeDetail> {
    let by_id: BTreeMap<&str, &NodeRecord> =
        records.iter().map(|r| (r.node_id.as_str(), r)).collect();
    let mut out = Vec::new();
    let mut placed = std::collections::HashSet::new();
    if let Some(wf) = workflow {
        for &index in &wf.order {
            let node = &wf.nodes[index];
            placed.insert(node.id.as_str());
            let fallback;
            let record = match by_id.get(node.id.as_str()) {
                Some(r) => *r,
                None => {
                    fallback = NodeRecord::new(&node.id);
                    &fallback
                }
            };
            let mut detail = detail(record, live);
            detail.kind = Some(node.kind.as_str().to_string());
            detail.node_type = Some(node.type_name.clone());
            detail.params = wf.rendered_with(index, run);
            if node.kind == NodeKind::Decision {
                detail.skipped_cases = Some(skipped_cases(wf, index, record, &by_id));
            }
            out.push(detail);
        }
    }
    let mut rest: Vec<&NodeRecord> = records
        .iter()
        .filter(|r| !placed.contains(r.node_id.as_str()))
        .collect();
    rest.sort_by(|a, b| (a.started_at, &a.node_id).cmp(&(b.started_at, &b.node_id)));
    out.extend(rest.into_iter().map(|r| detail(r, live)));
    out
}

fn detail(record: &NodeRecord, live: bool) -> NodeDetail {
    NodeDetail {
        id: record.node_id.clone(),
        kind: None,
        node_type: None,
        status: shown_node_status(record, live).to_string(),
        attempts: record
            .attempts
            .iter()
            .map(|a| AttemptDetail {
                number: a.number,
                execution: a.execution,
                started_at: a.started_at,
                finished_at: a.finished_at,
                outcome: serde_json::to_value(a.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                error: a.error.clone(),
            })
            .collect(),
        started_at: record.started_at,
        finished_at: record.finished_at,
        duration_ms: record.duration_ms,
        rows_in: record.rows_in,
        rows_out: record.rows_out,
        case_rows: record.case_rows.clone(),
        skipped_cases: None,
        meta: record.meta.clone(),
        error: record.error.clone(),
        reason: record.reason.clone(),
        warnings: record.warnings.clone(),
        params: Map::new(),
        has_output: record.status == NodeStatus::Succeeded,
    }
}

/// The cases of a decision that got no rows and whose subscribers did not run.
fn skipped_cases(
    wf: &Workflow,
    index: usize,
    record: &NodeRecord,
    records: &BTreeMap<&str, &NodeRecord>,
) -> Vec<String> {
    let Some(rows) = &record.case_rows else {
        return Vec::new();
    };
    wf.nodes[index]
        .cases
        .iter()
        .filter(|case| rows.get(*case).copied().unwrap_or(0) == 0)
        .filter(|case| {
            wf.dependents(index)
                .filter(|(_, c)| *c == Some(case.as_str()))
                .all(|(d, _)| {
                    records
                        .get(wf.nodes[d].id.as_str())
                        .is_none_or(|r| r.status == NodeStatus::Skipped)
                })
        })
        .cloned()
        .collect()
}
