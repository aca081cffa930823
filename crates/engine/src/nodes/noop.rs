//! `core.noop`: passes its input through; for tests, benchmarks and wiring joins.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::data::{Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

#[derive(Debug)]
pub struct Noop;

struct Configured {
    delay: Option<Duration>,
}

impl NodeType for Noop {
    fn name(&self) -> &'static str {
        "core.noop"
    }
    fn summary(&self) -> &'static str {
        "Passes its input through unchanged (several inputs: a table of row counts per input)."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::optional(
            "delay",
            ParamType::Duration,
            "wait this long before finishing",
        )]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(Configured {
            delay: params.duration("delay").map_err(|e| vec![e])?,
        }))
    }
}

#[async_trait]
impl Node for Configured {
    fn effect_free(&self) -> bool {
        true
    }

    async fn run(&self, _ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        Ok(match inputs.0.as_slice() {
            [] => Output::data(Data::Empty),
            [one] => Output::data(one.data.clone()),
            many => Output::json(serde_json::Value::Object(
                many.iter()
                    .map(|i| (i.name(), serde_json::Value::from(i.data.rows())))
                    .collect(),
            )),
        })
    }
}
