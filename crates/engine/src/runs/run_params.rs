//! A run's params: the values given with `--param`, read as their declared types, and the
//! values a resume runs with.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::PlanError;
use crate::compile::Workflow;
use crate::store::RunRecord;
use crate::template::RunVars;

/// A run's param values: the declared defaults with the overrides on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunParams {
    pub values: BTreeMap<String, Json>,
    /// The values given with `--param`, kept apart so a resume can tell them from defaults.
    pub overrides: BTreeMap<String, Json>,
}

impl RunParams {
    fn new(workflow: &Workflow, overrides: BTreeMap<String, Json>) -> Self {
        let mut values = workflow.params.clone();
        values.extend(overrides.clone());
        RunParams { values, overrides }
    }
}

/// Reads `--param NAME=VALUE` overrides as their declared types and checks them.
pub fn parse_params(workflow: &Workflow, items: &[String]) -> Result<RunParams, PlanError> {
    let overrides = parse_overrides(workflow, items)?;
    let params = RunParams::new(workflow, overrides);
    check_nodes(workflow, &params)?;
    Ok(params)
}

/// Configures each node that uses an overridden param with the run's values, as validation
/// configured it with the defaults, so a value that fits its param but not a node's parameter
/// (`delay: "{{ params.wait }}"` with `wait=soon`) stops the command before anything runs.
fn check_nodes(workflow: &Workflow, params: &RunParams) -> Result<(), PlanError> {
    if params.overrides.is_empty() {
        return Ok(());
    }
    let run = RunVars {
        id: "check".into(),
        trigger_time: "2000-01-01T00:00:00Z".into(),
        date: "2000-01-01".into(),
        fired_by: "check".into(),
        workflow_dir: workflow.dir.display().to_string(),
    };
    for node in &workflow.nodes {
        let used: Vec<String> = params
            .overrides
            .iter()
            .filter(|(name, _)| node.params_used.contains(*name))
            .map(|(name, value)| format!("params.{name} = {}", crate::params::show(value)))
            .collect();
        if used.is_empty() {
            continue;
        }
        if let Err(message) = workflow.configure(node.index, &params.values, &run) {
            return Err(PlanError::ParamBreaksNode {
                node: node.id.clone(),
                values: used.join(", "),
                message,
            });
        }
    }
    Ok(())
}

pub(super) fn parse_overrides(
    workflow: &Workflow,
    items: &[String],
) -> Result<BTreeMap<String, Json>, PlanError> {
    let mut overrides = BTreeMap::new();
    for item in items {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| PlanError::BadParam(item.clone()))?;
        let name = name.trim();
        let Some(decl) = workflow.param_decls.get(name) else {
            let declared: Vec<&str> = workflow.params.keys().map(String::as_str).collect();
            let hint = match crate::compile::suggest(name, declared.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if declared.is_empty() => "the workflow declares no params".to_string(),
                None => format!("the workflow declares: {}", declared.join(", ")),
            };
            return Err(PlanError::UnknownParam {
                item: item.clone(),
                name: name.to_string(),
                hint,
            });
        };
        let value = decl
            .parse_value(raw)
            .map_err(|message| PlanError::InvalidParam {
                location: declared_at(workflow, decl),
                item: item.clone(),
                name: name.to_string(),
                message,
            })?;
        overrides.insert(name.to_string(), value);
    }
    Ok(overrides)
}

/// `FILE:LINE:COL` of a param's declaration.
pub(super) fn declared_at(workflow: &Workflow, decl: &crate::params::ParamDecl) -> String {
    match decl.pos {
        Some(pos) => format!("{}:{pos}", workflow.file.display()),
        None => workflow.file.display().to_string(),
    }
}

/// A param whose value changed since the run last executed (`None`: not declared then/now).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParamChange {
    pub name: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
}

impl std::fmt::Display for ParamChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Json>| match v {
            Some(v) => crate::params::show(v),
            None => "(not declared)".to_string(),
        };
        write!(
            f,
            "params.{}: {} -> {}",
            self.name,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// The params a resume executes with: the workflow's current defaults, the values the run was
/// given with `--param` (all its values, for a run recorded before overrides were kept apart),
/// then `items`. An earlier override of a param no longer declared is dropped; one the
/// declaration no longer allows is an error unless `items` replaces it.
pub(super) fn resume_params(
    workflow: &Workflow,
    run: &RunRecord,
    items: &[String],
) -> Result<RunParams, PlanError> {
    let given = parse_overrides(workflow, items)?;
    let earlier = run.param_overrides.as_ref().unwrap_or(&run.params);
    let mut overrides = BTreeMap::new();
    for (name, value) in earlier {
        let Some(decl) = workflow.param_decls.get(name) else {
            continue;
        };
        if given.contains_key(name) {
            continue;
        }
        if let Err(message) = decl.check(value) {
            return Err(PlanError::StaleParam {
                location: declared_at(workflow, decl),
                run_id: run.id.clone(),
                name: name.clone(),
                value: crate::params::show(value),
                message,
            });
        }
        overrides.insert(name.clone(), value.clone());
    }
    overrides.extend(given);
    let params = RunParams::new(workflow, overrides);
    check_nodes(workflow, &params)?;
    Ok(params)
}
