//! A `flow` binary with one node type of its own, `demo.greet`, beside the built-in ones: what
//! docs/adding-a-node.md describes. Run it as `cargo run --example greet -- run greet.yaml`.

use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use flow::engine::data::Output;
use flow::engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

#[derive(Debug)]
struct Greet;

struct Configured {
    name: String,
}

impl NodeType for Greet {
    fn name(&self) -> &'static str {
        "demo.greet"
    }
    fn summary(&self) -> &'static str {
        "Says hello."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::with_default(
            "name",
            ParamType::String,
            "world",
            "who to greet",
        )]
    }
    fn configure(
        &self,
        params: &Params,
        _cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let name = params.str_or("name", "world").map_err(|e| vec![e])?;
        if name.trim().is_empty() {
            return Err(vec![ParamError::new("name", "must not be empty")]);
        }
        Ok(Arc::new(Configured {
            name: name.to_string(),
        }))
    }
}

#[async_trait]
impl Node for Configured {
    async fn run(&self, ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        Ok(Output::json(serde_json::json!(format!(
            "hello {} from {}",
            self.name, ctx.node_id
        ))))
    }
}

fn main() -> ExitCode {
    let mut registry = flow::builtin_registry();
    registry.register(Greet);
    flow::main_with(registry)
}
