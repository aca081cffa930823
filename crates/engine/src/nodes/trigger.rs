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
use crate::schedule::{Catchup, CronSchedule, Overlap};

/// Fired by hand with `flow run`.
#[derive(Debug)]
pub struct ManualTrigger;

/// Fired by `flow serve` on a cron schedule (and by hand with `flow run`).
#[derive(Debug)]
pub struct ScheduleTrigger;

struct Firing;

#[async_trait]
impl Node for Firing {
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
        Ok(Arc::new(Firing))
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
        if let Ok(cron) = params.str("cron")
            && let Err(e) = CronSchedule::parse(cron, tz)
        {
            errors.push(ParamError::new("cron", e));
        }
        if let Ok(Some(v)) = params.opt_str("catchup")
            && let Err(e) = Catchup::parse(v)
        {
            errors.push(ParamError::new("catchup", e));
        }
        if let Ok(Some(v)) = params.opt_str("overlap")
            && let Err(e) = Overlap::parse(v)
        {
            errors.push(ParamError::new("overlap", e));
        }
        if let Err(e) = params.bool_or("resume_interrupted", false) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Arc::new(Firing))
        } else {
            Err(errors)
        }
    }
}
