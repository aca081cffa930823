//! Starting and resuming runs: run records, run ids, and the resume plan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

use crate::compile::Workflow;
use crate::store::{NodeRecord, NodeStatus, RunRecord, RunStatus, TriggerInfo};

/// Errors preparing a run or a resume.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown param `{name}` (the workflow declares: {declared})")]
    UnknownParam { name: String, declared: String },
    #[error("`--param {0}`: expected NAME=VALUE")]
    BadParam(String),
    #[error("unknown trigger `{name}` (the workflow's triggers: {known})")]
    UnknownTrigger { name: String, known: String },
    #[error(
        "run {run_id} already succeeded; nothing to resume (use --from NODE to re-run part of it)"
    )]
    NothingToResume { run_id: String },
    #[error("`--from {node}`: the workflow has no node `{node}`")]
    UnknownFrom { node: String },
}

/// A new run id: its creation time (so ids sort by age) and a random suffix.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    hasher.write_u32(std::process::id());
    format!(
        "{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        hasher.finish() & 0xffff
    )
}

/// Parses `--param NAME=VALUE` overrides; values are YAML scalars (`7`, `true`, `x`).
pub fn parse_params(
    workflow: &Workflow,
    overrides: &[String],
) -> Result<BTreeMap<String, Json>, PlanError> {
    let mut params = workflow.params.clone();
    for item in overrides {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| PlanError::BadParam(item.clone()))?;
        let name = name.trim();
        if !params.contains_key(name) {
            let declared: Vec<&str> = workflow.params.keys().map(String::as_str).collect();
            return Err(PlanError::UnknownParam {
                name: name.to_string(),
                declared: if declared.is_empty() {
                    "none".into()
                } else {
                    declared.join(", ")
                },
            });
        }
        let value: Json = serde_yaml::from_str::<serde_yaml::Value>(raw)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok())
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| Json::String(raw.to_string()));
        params.insert(name.to_string(), value);
    }
    Ok(params)
}

/// A fresh run record for `workflow`, fired by `fired_by` through `triggers` (all triggers
/// when empty).
pub fn new_run(
    workflow: &Workflow,
    params: BTreeMap<String, Json>,
    fired_by: &str,
    triggers: &[String],
    now: DateTime<Utc>,
    scheduled_for: Option<DateTime<Utc>>,
) -> Result<RunRecord, PlanError> {
    let known: Vec<&str> = workflow.triggers().map(|n| n.id.as_str()).collect();
    for t in triggers {
        if !known.contains(&t.as_str()) {
            return Err(PlanError::UnknownTrigger {
                name: t.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let fired = if triggers.is_empty() {
        known.iter().map(|s| s.to_string()).collect()
    } else {
        triggers.to_vec()
    };
    Ok(RunRecord {
        id: new_run_id(now),
        workflow_name: workflow.name.clone(),
        workflow_path: workflow.path.display().to_string(),
        workflow_fingerprint: workflow.fingerprint.clone(),
        node_fingerprints: workflow
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.fingerprint.clone()))
            .collect(),
        params,
        trigger: TriggerInfo {
            fired_by: fired_by.into(),
            triggers: fired,
            time: now,
            scheduled_for,
        },
        status: RunStatus::Running,
        created_at: now,
        updated_at: now,
        finished_at: None,
        executions: 1,
        error: None,
    })
}

/// Why a node runs again on resume.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rerun {
    pub node: String,
    pub reason: String,
}

/// What a resume will do.
#[derive(Debug, Clone, Serialize)]
pub struct ResumePlan {
    /// Node indices whose checkpoint is reused.
    #[serde(skip)]
    pub reuse: HashSet<usize>,
    pub reused: Vec<String>,
    /// Nodes that will run (or be re-evaluated), in run order, with why.
    pub reruns: Vec<Rerun>,
    /// Nodes of the run that are no longer in the workflow (removed or renamed).
    pub removed: Vec<String>,
    /// Whether the workflow file changed since the run.
    pub workflow_changed: bool,
}

/// Plans resuming `run` with the current `workflow`.
pub fn plan_resume(
    workflow: &Workflow,
    run: &RunRecord,
    records: &[NodeRecord],
    from: Option<&str>,
) -> Result<ResumePlan, PlanError> {
    let by_id: HashMap<&str, &NodeRecord> =
        records.iter().map(|r| (r.node_id.as_str(), r)).collect();
    let mut roots: Vec<(usize, String)> = Vec::new();
    for node in &workflow.nodes {
        match run.node_fingerprints.get(&node.id) {
            None => roots.push((node.index, "new node".into())),
            Some(fp) if *fp != node.fingerprint => {
                roots.push((node.index, "its definition changed".into()))
            }
            Some(_) => {}
        }
    }
    if let Some(from) = from {
        let i = workflow
            .index_of(from)
            .ok_or_else(|| PlanError::UnknownFrom {
                node: from.to_string(),
            })?;
        roots.push((i, "--from".into()));
    }
    let mut reason: HashMap<usize, String> = HashMap::new();
    for (i, why) in &roots {
        reason.entry(*i).or_insert_with(|| why.clone());
    }
    // Everything downstream of a changed node runs again, in topological order so the
    // reason names the nearest changed ancestor.
    let dirty = workflow.downstream(&roots.iter().map(|(i, _)| *i).collect::<Vec<_>>());
    for &i in &workflow.order {
        if dirty.contains(&i) && !reason.contains_key(&i) {
            let cause = workflow.nodes[i]
                .needs
                .iter()
                .find(|need| dirty.contains(&need.node))
                .map(|need| workflow.nodes[need.node].id.clone())
                .unwrap_or_default();
            reason.insert(i, format!("downstream of `{cause}`"));
        }
    }

    let mut plan = ResumePlan {
        reuse: HashSet::new(),
        reused: Vec::new(),
        reruns: Vec::new(),
        removed: Vec::new(),
        workflow_changed: run.workflow_fingerprint != workflow.fingerprint,
    };
    for &i in &workflow.order {
        let node = &workflow.nodes[i];
        let status = by_id.get(node.id.as_str()).map(|r| r.status);
        if let Some(why) = reason.get(&i) {
            plan.reruns.push(Rerun {
                node: node.id.clone(),
                reason: why.clone(),
            });
        } else if status.is_some_and(NodeStatus::is_reusable) {
            plan.reuse.insert(i);
            plan.reused.push(node.id.clone());
        } else {
            let why = match status {
                // A node killed mid-attempt may not have had its `running` record saved yet.
                None | Some(NodeStatus::Pending) => "it had not finished".to_string(),
                Some(s) => format!("it was {}", s.as_str().replace('_', " ")),
            };
            plan.reruns.push(Rerun {
                node: node.id.clone(),
                reason: why,
            });
        }
    }
    let current: HashSet<&str> = workflow.nodes.iter().map(|n| n.id.as_str()).collect();
    let mut removed: Vec<String> = run
        .node_fingerprints
        .keys()
        .filter(|id| !current.contains(id.as_str()))
        .cloned()
        .collect();
    removed.sort();
    plan.removed = removed;
    if plan.reruns.is_empty() && run.status == RunStatus::Succeeded {
        return Err(PlanError::NothingToResume {
            run_id: run.id.clone(),
        });
    }
    Ok(plan)
}
