//! The triggers `flow serve` fires: every trigger node whose configured node reports a
//! [`Schedule`], whatever its type.

use serde_json::Value as Json;

use crate::compile::Workflow;
use std::sync::Arc;

use crate::node::{ConfigureCx, Node, ParamError, Params};
use crate::schedule::Schedule;
use crate::source::Seg;

/// A trigger of a workflow that fires on a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleTrigger {
    pub id: String,
    pub schedule: Schedule,
}

impl ScheduleTrigger {
    /// The workflow's scheduled triggers, in file order. A schedule is read once, when the file
    /// loads, so each trigger is configured with its parameters as written; a templated value
    /// its node type cannot read is reported here.
    pub fn all(wf: &Workflow) -> Result<Vec<ScheduleTrigger>, String> {
        Ok(configured_triggers(wf)?
            .into_iter()
            .filter_map(|(id, node)| {
                node.schedule().map(|schedule| ScheduleTrigger {
                    id,
                    schedule: schedule.clone(),
                })
            })
            .collect())
    }
}

/// A trigger's id and its configured node.
pub(crate) type ConfiguredTrigger = (String, Arc<dyn Node>);

/// The workflow's triggers configured with their parameters as written, in file order; a
/// templated value their node type cannot read is reported here.
pub(crate) fn configured_triggers(wf: &Workflow) -> Result<Vec<ConfiguredTrigger>, String> {
    let mut out = Vec::new();
    for node in wf.triggers() {
        let cx = ConfigureCx {
            node_id: &node.id,
            kind: node.kind,
            workflow_dir: &wf.dir,
            input_columns: &[],
        };
        let params = Params::new(node.with.clone(), &wf.dir);
        let configured = node.node_type.configure(&params, &cx).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("node `{}`: {}", node.id, as_written(e, &node.with)))
                .collect();
            lines.join("; ")
        })?;
        out.push((node.id.clone(), configured));
    }
    Ok(out)
}

/// The message of a parameter error; for a templated parameter, that it must be literal.
fn as_written(error: &ParamError, with: &serde_json::Map<String, Json>) -> String {
    let templated = match error.path.first() {
        Some(Seg::Key(name)) => with
            .get(name)
            .filter(|v| v.as_str().is_some_and(|s| s.contains("{{")))
            .map(|v| (name, v)),
        _ => None,
    };
    match templated {
        Some((name, value)) => {
            format!("`{name}` must be written literally for flow serve, got {value}")
        }
        None => error.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(with: &str) -> Workflow {
        let text = format!(
            "name: job\nparams:\n  cron: {{ default: \"0 6 * * *\" }}\nnodes:\n  - id: daily\n    kind: trigger\n    type: schedule\n    with: {with}\n  - id: by_hand\n    kind: trigger\n    type: manual\n"
        );
        crate::compile::compile(
            &text,
            std::path::Path::new("wf.yaml"),
            &crate::nodes::core_registry(),
        )
        .expect("valid")
    }

    #[test]
    fn the_schedule_comes_from_the_configured_trigger_with_its_defaults() {
        let triggers = ScheduleTrigger::all(&compiled("{ cron: \"30 6 * * *\" }")).unwrap();
        let ids: Vec<&str> = triggers.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["daily"]);
        let s = &triggers[0].schedule;
        assert_eq!(s.cron.expression, "30 6 * * *");
        assert_eq!(s.cron.timezone, chrono_tz::Tz::UTC);
        assert_eq!(s.catchup, crate::schedule::Catchup::Latest);
        assert_eq!(s.overlap, crate::schedule::Overlap::Skip);
        assert!(!s.resume_interrupted);
    }

    #[test]
    fn a_templated_schedule_parameter_must_be_written_literally() {
        let err = ScheduleTrigger::all(&compiled("{ cron: \"{{ params.cron }}\" }")).unwrap_err();
        assert_eq!(
            err,
            "node `daily`: `cron` must be written literally for flow serve, got \"{{ params.cron }}\""
        );
    }
}
