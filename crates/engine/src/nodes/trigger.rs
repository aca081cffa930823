//! `manual` and `schedule` triggers. Their output is the firing: trigger id, how and when it
//! was fired, and the run's parameters.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::data::Output;
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use crate::schedule::{Catchup, CronSchedule, Overlap, Schedule};

/// Fired by hand with `flow run`.
#[derive(Debug)]
pub struct ManualTrigger;

/// Fired by `flow serve` on a cron schedule (and by hand with `flow run`).
#[derive(Debug)]
pub struct ScheduleTrigger;

/// A configured trigger: it outputs the firing, and reports its schedule when it has one.
struct Firing {
    schedule: Option<Schedule>,
}

#[async_trait]
impl Node for Firing {
    fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    async fn run(&self, ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        Ok(Output::json(json!({
            "trigger": ctx.node_id,
            "fired_by": ctx.trigger.get("fired_by"),
            "time": ctx.trigger.get("time"),
            "scheduled_for": ctx.trigger.get("scheduled_for"),
            "run_id": ctx.run_id,
            "params": ctx.params,
        })))
    }
}

impl NodeType for ManualTrigger {
    fn name(&self) -> &'static str {
        "manual"
    }
    fn summary(&self) -> &'static str {
        "Starts a run when fired by hand (`flow run`)."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Trigger]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn configure(&self, _: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(Firing { schedule: None }))
    }
}

impl NodeType for ScheduleTrigger {
    fn name(&self) -> &'static str {
        "schedule"
    }
    fn summary(&self) -> &'static str {
        "Starts a run on a cron schedule in a time zone (`flow serve`); `flow run` fires it by hand."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Trigger]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "cron",
                ParamType::String,
                "5-field crontab (`0 6 * * *`, Sunday = 0 or 7, MON-FRI) or 6 fields with seconds first",
            ),
            ParamSpec::with_default(
                "timezone",
                ParamType::String,
                "UTC",
                "IANA time zone, e.g. Europe/London",
            ),
            ParamSpec::with_default(
                "catchup",
                ParamType::String,
                "latest",
                "missed firings after downtime: none, latest or all",
            ),
            ParamSpec::with_default(
                "overlap",
                ParamType::String,
                "skip",
                "when the previous run is still going: skip or queue",
            ),
            ParamSpec::with_default(
                "resume_interrupted",
                ParamType::Bool,
                "false",
                "on start, `flow serve` resumes runs of this trigger left interrupted by a crash",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let tz = params.str_or("timezone", "UTC").map_err(|e| vec![e])?;
        let tz = match crate::schedule::parse_timezone(tz) {
            Ok(_) => tz,
            Err(e) => {
                errors.push(ParamError::new("timezone", e));
                "UTC"
            }
        };
        let cron = params
            .str("cron")
            .and_then(|cron| CronSchedule::parse(cron, tz).map_err(|e| ParamError::new("cron", e)));
        let catchup = params
            .str_or("catchup", "latest")
            .and_then(|v| Catchup::parse(v).map_err(|e| ParamError::new("catchup", e)));
        let overlap = params
            .str_or("overlap", "skip")
            .and_then(|v| Overlap::parse(v).map_err(|e| ParamError::new("overlap", e)));
        let resume_interrupted = params.bool_or("resume_interrupted", false);
        match (cron, catchup, overlap, resume_interrupted) {
            (Ok(cron), Ok(catchup), Ok(overlap), Ok(resume_interrupted)) if errors.is_empty() => {
                Ok(Arc::new(Firing {
                    schedule: Some(Schedule {
                        cron,
                        catchup,
                        overlap,
                        resume_interrupted,
                    }),
                }))
            }
            (cron, catchup, overlap, resume_interrupted) => {
                errors.extend(cron.err());
                errors.extend(catchup.err());
                errors.extend(overlap.err());
                errors.extend(resume_interrupted.err());
                Err(errors)
            }
        }
    }
}
