//! Compiling whole workflows with the core node types and one test type; the topics are in the
//! files below.

use super::*;
use crate::node::{ConfigureCx, NodeType, ParamError, ParamType, Params};

mod errors;
mod fuzz;
mod graph;
mod nodes;
mod notifications;
mod params;
mod roles;

/// A node type with a template rendered per item, as a messaging node has.
struct Message;

impl NodeType for Message {
    fn name(&self) -> &'static str {
        "test.message"
    }
    fn summary(&self) -> &'static str {
        "renders `action` per item"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<crate::node::ParamSpec> {
        vec![crate::node::ParamSpec::required(
            "action",
            ParamType::Template,
            "",
        )]
    }
    fn configure(
        &self,
        _params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn crate::node::Node>, Vec<ParamError>> {
        crate::nodes::Noop.configure(&Params::default(), cx)
    }
}

pub(super) fn compile_str(text: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let mut registry = crate::nodes::core_registry();
    registry.register(Message);
    compile(text, Path::new("wf.yaml"), &registry)
}

pub(super) fn errors(text: &str) -> Vec<(usize, String)> {
    compile_str(text)
        .expect_err("should be invalid")
        .into_iter()
        .map(|d| (d.line.unwrap_or(0), d.to_string()))
        .collect()
}

const VALID: &str = "\
name: ok
params: { limit: 3 }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules: [{ case: big, when: 'value > params.limit' }]
      default: small
  - { id: b, kind: action, type: core.noop, needs: split.big }
  - { id: s, kind: action, type: core.noop, needs: split.small }
  - { id: join, kind: output, type: core.noop, needs: [b, s] }
";
