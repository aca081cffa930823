//! Starting and resuming runs: run records, run ids, and the resume plan.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

use crate::compile::Workflow;
use crate::node::NodeKind;
use crate::store::{NodeRecord, NodeStatus, RunRecord, RunStatus, TriggerInfo};

mod run_params;

use run_params::resume_params;
pub use run_params::{ParamChange, RunParams, parse_params};

/// Errors preparing a run or a resume.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("`--param {item}`: unknown param `{name}` ({hint})")]
    UnknownParam {
        item: String,
        name: String,
        hint: String,
    },
    #[error("`--param {0}`: expected NAME=VALUE")]
    BadParam(String),
    #[error("{location}: `--param {item}`: {message} (param `{name}` is declared here)")]
    InvalidParam {
        location: String,
        item: String,
        name: String,
        message: String,
    },
    #[error(
        "{location}: run {run_id} ran with param `{name}` = {value}, which the declaration no longer allows ({message}); give a value with `--param {name}=VALUE`"
    )]
    StaleParam {
        location: String,
        run_id: String,
        name: String,
        value: String,
        message: String,
    },
    #[error("node `{node}` cannot run with {values} (given with --param): {message}")]
    ParamBreaksNode {
        node: String,
        values: String,
        message: String,
    },
    #[error("unknown trigger `{name}` (the workflow's triggers: {known})")]
    UnknownTrigger { name: String, known: String },
    #[error(
        "run {run_id} already succeeded; nothing to resume (use --from NODE to re-run part of it)"
    )]
    NothingToResume { run_id: String },
    #[error("`--from {node}`: the workflow has no node `{node}`")]
    UnknownFrom { node: String },
}

/// A fresh run record for `workflow`, fired by `fired_by` through `triggers` (all triggers
/// when empty), with param values `params`. Its overrides are the values that differ from the
/// defaults; a caller that knows which values were given (`--param`) records those instead.
/// `newest` is the newest run id in the store, which the new id sorts after.
pub fn new_run(
    workflow: &Workflow,
    params: BTreeMap<String, Json>,
    fired_by: &str,
    triggers: &[String],
    now: DateTime<Utc>,
    scheduled_for: Option<DateTime<Utc>>,
    newest: Option<&str>,
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
    let node_fingerprints = workflow
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.fingerprint_with(&params)))
        .collect();
    let overrides: BTreeMap<String, Json> = params
        .iter()
        .filter(|(k, v)| workflow.params.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(RunRecord {
        id: crate::run_id::new_run_id(now, newest),
        workflow_name: workflow.name.clone(),
        workflow_path: workflow.path.display().to_string(),
        workflow_fingerprint: workflow.fingerprint.clone(),
        node_fingerprints,
        params,
        param_overrides: Some(overrides),
        trigger: TriggerInfo {
            fired_by: fired_by.into(),
            triggers: fired,
            time: now,
            scheduled_for,
            payload: None,
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
    /// Params whose value differs from the one the run last executed with.
    pub changed_params: Vec<ParamChange>,
    /// The params the resumed run executes with.
    #[serde(skip)]
    pub params: RunParams,
}

impl ResumePlan {
    /// Makes `run` execute with the plan's params.
    pub fn apply_params(&self, run: &mut RunRecord) {
        run.params = self.params.values.clone();
        run.param_overrides = Some(self.params.overrides.clone());
    }
}

/// Plans resuming `run` with the current `workflow`.
pub fn plan_resume(
    workflow: &Workflow,
    run: &RunRecord,
    records: &[NodeRecord],
    from: Option<&str>,
    param_items: &[String],
) -> Result<ResumePlan, PlanError> {
    let params = resume_params(workflow, run, param_items)?;
    let mut names: Vec<&String> = run.params.keys().chain(params.values.keys()).collect();
    names.sort();
    names.dedup();
    let changed_params: Vec<ParamChange> = names
        .into_iter()
        .filter(|n| run.params.get(*n) != params.values.get(*n))
        .map(|n| ParamChange {
            name: n.clone(),
            before: run.params.get(n).cloned(),
            after: params.values.get(n).cloned(),
        })
        .collect();
    let by_id: HashMap<&str, &NodeRecord> =
        records.iter().map(|r| (r.node_id.as_str(), r)).collect();
    let mut roots: Vec<(usize, String)> = Vec::new();
    // Triggers run again when params changed so their firing records the new values; that
    // alone does not re-run what follows them.
    let mut refire: Vec<usize> = Vec::new();
    for node in &workflow.nodes {
        let changed_used: Vec<String> = changed_params
            .iter()
            .filter(|c| node.params_used.contains(&c.name))
            .map(|c| format!("params.{}", c.name))
            .collect();
        let Some(fp) = run.node_fingerprints.get(&node.id) else {
            roots.push((node.index, "new node".into()));
            continue;
        };
        // A run recorded before params were part of fingerprints holds the definition's
        // fingerprint alone: its node ran with the run's params.
        let same = *fp == node.fingerprint_with(&params.values)
            || (*fp == node.fingerprint && changed_used.is_empty());
        if !same {
            let definition_same =
                *fp == node.fingerprint_with(&run.params) || *fp == node.fingerprint;
            let why = if definition_same && !changed_used.is_empty() {
                format!("it uses {}, which changed", changed_used.join(", "))
            } else {
                "its definition changed".to_string()
            };
            roots.push((node.index, why));
        } else if node.kind == NodeKind::Trigger && !changed_params.is_empty() {
            refire.push(node.index);
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
    for i in refire {
        reason
            .entry(i)
            .or_insert_with(|| "the run's params changed (its firing records them)".into());
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
        changed_params,
        params,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WF: &str = "\
name: p
params: { n: 1, m: 2 }
nodes:
  - { id: go, kind: trigger, type: manual }
  - { id: a, kind: action, type: core.shell, needs: go, with: { command: 'echo {{ params.n }}' } }
  - { id: b, kind: action, type: core.shell, needs: go, with: { command: 'echo b' } }
  - { id: c, kind: action, type: core.shell, needs: b, with: { command: 'exit 1' } }
";

    fn workflow(text: &str) -> Workflow {
        crate::compile::compile(
            text,
            std::path::Path::new("wf.yaml"),
            &crate::nodes::core_registry(),
        )
        .unwrap()
    }

    /// A run of `wf` with `params` where every node succeeded but `c`.
    fn failed_run(wf: &Workflow, params: BTreeMap<String, Json>) -> (RunRecord, Vec<NodeRecord>) {
        let mut run = new_run(wf, params, "manual", &[], Utc::now(), None, None).unwrap();
        run.status = RunStatus::Failed;
        let records = wf
            .nodes
            .iter()
            .map(|n| {
                let mut r = NodeRecord::new(&n.id);
                r.status = if n.id == "c" {
                    NodeStatus::Failed
                } else {
                    NodeStatus::Succeeded
                };
                r
            })
            .collect();
        (run, records)
    }

    fn reruns(plan: &ResumePlan) -> Vec<(&str, &str)> {
        plan.reruns
            .iter()
            .map(|r| (r.node.as_str(), r.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_run_recorded_before_overrides_were_kept_apart_keeps_its_values() {
        let wf = workflow(WF);
        let (mut run, records) = failed_run(&wf, BTreeMap::from([("n".into(), json!(5))]));
        // As older versions recorded it: no overrides, definition-only fingerprints.
        run.param_overrides = None;
        run.params = BTreeMap::from([("n".into(), json!(5)), ("m".into(), json!(2))]);
        for n in &wf.nodes {
            run.node_fingerprints
                .insert(n.id.clone(), n.fingerprint.clone());
        }
        let plan = plan_resume(&wf, &run, &records, None, &[]).unwrap();
        assert!(plan.changed_params.is_empty(), "{:?}", plan.changed_params);
        assert_eq!(plan.params.values["n"], json!(5));
        assert_eq!(reruns(&plan), [("c", "it was failed")]);

        let plan = plan_resume(&wf, &run, &records, None, &["n=6".into()]).unwrap();
        assert_eq!(plan.changed_params[0].to_string(), "params.n: 5 -> 6");
        assert_eq!(
            reruns(&plan),
            [
                ("go", "the run's params changed (its firing records them)"),
                ("a", "it uses params.n, which changed"),
                ("c", "it was failed"),
            ]
        );
    }

    #[test]
    fn earlier_overrides_are_checked_against_the_current_declarations() {
        let wf = workflow(WF);
        let (mut run, records) = failed_run(&wf, wf.params.clone());
        run.param_overrides = Some(BTreeMap::from([
            ("n".into(), json!("five")),
            ("gone".into(), json!(1)),
        ]));
        let err = plan_resume(&wf, &run, &records, None, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "wf.yaml:2:11: run {} ran with param `n` = \"five\", which the declaration no longer allows (expected a number, got \"five\"); give a value with `--param n=VALUE`",
                run.id
            )
        );
        // A new value replaces it; the override of a param no longer declared is dropped.
        run.params.insert("gone".into(), json!(1));
        let plan = plan_resume(&wf, &run, &records, None, &["n=1".into()]).unwrap();
        let changes: Vec<String> = plan.changed_params.iter().map(|c| c.to_string()).collect();
        assert_eq!(changes, ["params.gone: 1 -> (not declared)"]);
        assert_eq!(
            plan.params.overrides,
            BTreeMap::from([("n".into(), json!(1))])
        );
        assert_eq!(
            reruns(&plan),
            [
                ("go", "the run's params changed (its firing records them)"),
                ("c", "it was failed")
            ]
        );
    }
}
