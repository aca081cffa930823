//! The compiled workflow: validated nodes, the graph their `needs` make, and what a run asks
//! of them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use serde_json::Value as Json;

use super::configure::configure_node;
use super::diagnostic::Diagnostic;
use super::fingerprint::{canonical_json, hash_hex};
use crate::node::{Node, NodeKind, NodeType, Registry};
use crate::params::ParamDecl;
use crate::source::{Pos, path_to_string};
use crate::template::{Renderer, RunVars};
use crate::trigger_rule::TriggerRule;

/// How a node is retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            factor: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1) as i32);
        let secs = (self.backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// An edge: this node needs `node` (one case of it, for a decision).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Need {
    pub node: usize,
    pub case: Option<String>,
    /// The input role the output fills in this node (see [`NodeType::inputs`]).
    pub role: Option<String>,
}

/// A validated node.
pub struct CompiledNode {
    pub index: usize,
    pub id: String,
    pub kind: NodeKind,
    pub type_name: String,
    pub node_type: Arc<dyn NodeType>,
    pub description: Option<String>,
    pub needs: Vec<Need>,
    /// When the node runs, given how its inputs ended (the kind's default if not set).
    pub trigger_rule: TriggerRule,
    /// Whether `trigger_rule` was written in the file.
    pub trigger_rule_set: bool,
    /// A decision's cases whose rows reach no output, with why (no subscriber, no path).
    pub undelivered_cases: Vec<(String, String)>,
    /// `with:` as written (templates not rendered).
    pub with: serde_json::Map<String, Json>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// Labels a worker must have to run this node (`flow run --workers`).
    pub labels: Vec<String>,
    /// A decision's cases, in declaration order.
    pub cases: Vec<String>,
    /// Per need: how the input is handed to the node (the columns it reads, the kind its
    /// table is checked against when it arrives).
    pub input_plans: Vec<crate::table_kind::InputPlan>,
    /// Hash of the node's definition: resume re-runs a node whose fingerprint changed.
    pub fingerprint: String,
    /// The params the node's `with:` uses (by name, in templates, expressions or
    /// `FLOW_PARAM_NAME`): changing one re-runs the node on resume.
    pub params_used: BTreeSet<String>,
    pub pos: Option<Pos>,
}

impl CompiledNode {
    /// The definition's fingerprint combined with the values of the params the node uses, as
    /// recorded for a run. A node that uses no params keeps its definition's fingerprint.
    pub fn fingerprint_with(&self, params: &BTreeMap<String, Json>) -> String {
        if self.params_used.is_empty() {
            return self.fingerprint.clone();
        }
        let used: serde_json::Map<String, Json> = self
            .params_used
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    params.get(name).cloned().unwrap_or(Json::Null),
                )
            })
            .collect();
        hash_hex(&format!(
            "{}|{}",
            self.fingerprint,
            canonical_json(&Json::Object(used))
        ))
    }
}

impl fmt::Debug for CompiledNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledNode")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("type", &self.type_name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

/// A validated workflow: nodes, their graph and a topological order.
#[derive(Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The workflow file (absolute).
    pub path: PathBuf,
    /// Relative paths in parameters resolve against this directory.
    pub dir: PathBuf,
    /// The file as named when it was loaded, for messages.
    pub file: PathBuf,
    /// Each param's default.
    pub params: BTreeMap<String, Json>,
    /// Each param's declaration: type, default, limits, where it is declared.
    pub param_decls: BTreeMap<String, ParamDecl>,
    pub concurrency: Option<usize>,
    /// What `on_failure` and `on_success` send when a run ends.
    pub notifications: crate::notify::Notifications,
    pub nodes: Vec<CompiledNode>,
    pub graph: DiGraph<usize, Option<String>>,
    /// Node indices, each after everything it needs (file order among independent nodes).
    pub order: Vec<usize>,
    pub fingerprint: String,
    /// Problems that do not stop the workflow from running (`flow validate` prints them).
    pub warnings: Vec<Diagnostic>,
    pub(super) by_id: HashMap<String, usize>,
    pub(super) renderer: Arc<Renderer>,
    pub(super) registry: Registry,
}

impl Workflow {
    pub fn node(&self, id: &str) -> Option<&CompiledNode> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The nodes that need `index` directly, with the case they subscribe to.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = (usize, Option<&str>)> + '_ {
        self.graph
            .edges_directed(NodeIndex::new(index), petgraph::Direction::Outgoing)
            .map(|e| {
                (
                    self.graph[petgraph::visit::EdgeRef::target(&e)],
                    e.weight().as_deref(),
                )
            })
    }

    /// `start` and every node reachable from it.
    pub fn downstream(&self, start: &[usize]) -> HashSet<usize> {
        let mut seen: HashSet<usize> = HashSet::new();
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.dependents(i).map(|(d, _)| d));
            }
        }
        seen
    }

    /// Renders and configures a node for a run.
    pub fn configure(
        &self,
        index: usize,
        params: &BTreeMap<String, Json>,
        run: &RunVars,
    ) -> Result<Arc<dyn Node>, String> {
        let node = &self.nodes[index];
        configure_node(
            &self.renderer,
            node.node_type.as_ref(),
            &node.id,
            node.kind,
            &node.with,
            params,
            run,
            &self.dir,
            &[],
        )
        .map_err(|errs| {
            errs.iter()
                .map(|e| {
                    let at = path_to_string(&e.path);
                    if at.is_empty() {
                        e.message.clone()
                    } else {
                        format!("with.{at}: {}", e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// A node's `with:` as a run rendered it, for showing: each parameter rendered on its own
    /// with the run's params and context, so one that cannot be rendered outside the run (it
    /// refers to the node's inputs) stays as written without hiding the others.
    pub fn rendered_with(
        &self,
        index: usize,
        run: &crate::store::RunRecord,
    ) -> serde_json::Map<String, Json> {
        let vars = RunVars::for_run(run, &self.dir);
        self.nodes[index]
            .with
            .iter()
            .map(|(key, value)| {
                let one: serde_json::Map<String, Json> =
                    [(key.clone(), value.clone())].into_iter().collect();
                let shown = self
                    .renderer
                    .render_except(&one, &run.params, &vars, &[])
                    .ok()
                    .and_then(|mut m| m.remove(key))
                    .unwrap_or_else(|| value.clone());
                (key.clone(), shown)
            })
            .collect()
    }

    /// Trigger nodes, in file order.
    pub fn triggers(&self) -> impl Iterator<Item = &CompiledNode> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Trigger)
    }
}
