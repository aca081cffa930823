//! Nodes run by another process: what the executor hands over ([`NodeTask`]), the seam it hands
//! it through ([`Remote`]), and what the process running it does ([`execute_task`]).
//!
//! The executor keeps deciding what is ready, retrying and checkpointing; only the attempt runs
//! elsewhere. The task names the node and where its inputs are (checkpoints in the shared
//! store, durable before any dependent starts); the worker compiles the same workflow file,
//! checks that the node's definition is the one the run uses, and runs it with the run's params,
//! effect ledger and node state, all in the shared store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Shutdown;
use super::context::{StoreLedger, StoreNodeState};
use crate::compile;
use crate::data::{self, Output};
use crate::node::{Input, Inputs, NodeContext, Registry, RoutedCase};
use crate::run_cache::RunCache;
use crate::store::StateStore;
use crate::template::RunVars;

/// One attempt of a node, for another process to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeTask {
    pub run_id: String,
    pub node_index: usize,
    pub node_id: String,
    /// The node's definition with the run's params (see `CompiledNode::fingerprint_with`): a
    /// worker whose copy of the workflow differs refuses the task.
    pub node_fingerprint: String,
    pub attempt: u32,
    pub workflow_path: PathBuf,
    pub inputs: Vec<TaskInput>,
    pub routed: Vec<RoutedCase>,
    /// Labels a worker needs to run it.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// An input: the checkpoint of `from`, one case of it for a decision's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInput {
    pub from: String,
    pub case: Option<String>,
    pub role: Option<String>,
}

/// How a node run elsewhere ended.
#[derive(Debug)]
pub enum RemoteEnd {
    Ok(Output),
    Failed(String),
    /// Stopped by the shutdown signal before it ended.
    Stopped,
}

/// Runs node attempts in other processes.
#[async_trait::async_trait]
pub trait Remote: Send + Sync {
    /// Runs the attempt and waits for it; a `Cancel` on `shutdown` withdraws it.
    async fn run(&self, task: NodeTask, shutdown: watch::Receiver<Shutdown>) -> RemoteEnd;
}

/// Compiled workflows by file, kept while the file's text stays the same: a worker runs many
/// nodes of one workflow, and compiling it for each would cost as much as the node.
#[derive(Default)]
pub struct WorkflowCache(Mutex<HashMap<PathBuf, Compiled>>);

/// A workflow file's text and what it compiled to.
type Compiled = (Vec<u8>, Arc<compile::Workflow>);

impl WorkflowCache {
    fn load(&self, path: &Path, registry: &Registry) -> Result<Arc<compile::Workflow>, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "cannot load the workflow {} on this worker: {e}",
                path.display()
            )
        };
        let text = std::fs::read(path).map_err(|e| failed(&e))?;
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, wf)) = cache.get(path)
            && *known == text
        {
            return Ok(wf.clone());
        }
        // A file changed since it was read is caught by the node's fingerprint check.
        let wf = Arc::new(compile::load(path, registry).map_err(|e| failed(&e))?);
        cache.insert(path.to_path_buf(), (text, wf.clone()));
        Ok(wf)
    }
}

/// Runs a task in this process (a worker's side): the node's output, or why there is none.
pub async fn execute_task(
    store: Arc<dyn StateStore>,
    registry: &Registry,
    workflows: &WorkflowCache,
    task: &NodeTask,
) -> Result<Output, String> {
    let run = store
        .run(&task.run_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("run {} is not in the store", task.run_id))?;
    let wf = workflows.load(&task.workflow_path, registry)?;
    let node = wf
        .nodes
        .get(task.node_index)
        .filter(|n| n.id == task.node_id)
        .ok_or_else(|| {
            format!(
                "the workflow {} on this worker has no node `{}` where the run has it; deploy the same workflow file to every worker",
                task.workflow_path.display(),
                task.node_id
            )
        })?;
    if node.fingerprint_with(&run.params) != task.node_fingerprint {
        return Err(format!(
            "node `{}` in the workflow {} on this worker differs from the one the run uses; deploy the same workflow file to every worker",
            task.node_id,
            task.workflow_path.display()
        ));
    }
    let run_vars = RunVars::for_run(&run, &wf.dir);
    let configured = wf
        .configure(task.node_index, &run.params, &run_vars)
        .map_err(|e| format!("invalid parameters: {e}"))?;
    let mut inputs = Vec::with_capacity(task.inputs.len());
    for input in &task.inputs {
        let bytes = store
            .output(&task.run_id, &input.from)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("cannot load the output of `{}`: no checkpoint", input.from))?;
        let plan = node
            .needs
            .iter()
            .zip(&node.input_plans)
            .find(|(need, _)| {
                wf.nodes[need.node].id == input.from
                    && need.case == input.case
                    && need.role == input.role
            })
            .map(|(_, plan)| plan.clone())
            .unwrap_or_default();
        let output = data::decode_for(&bytes, input.case.as_deref(), plan.columns.as_deref())
            .map_err(|e| format!("cannot load the output of `{}`: {e}", input.from))?;
        let input = Input {
            from: input.from.clone(),
            case: input.case.clone(),
            role: input.role.clone(),
            data: output.select(input.case.as_deref()),
            meta: output.meta.clone(),
        };
        inputs.push(plan.receive(input)?);
    }
    let ctx = NodeContext {
        run_id: run.id.clone(),
        node_id: node.id.clone(),
        attempt: task.attempt,
        workflow_dir: wf.dir.clone(),
        workflow_path: task.workflow_path.clone(),
        params: run.params.clone(),
        trigger: serde_json::to_value(&run.trigger).unwrap_or(serde_json::Value::Null),
        effects: Arc::new(StoreLedger {
            store: store.clone(),
        }),
        state: Arc::new(StoreNodeState {
            store: store.clone(),
            namespace: format!("node-state/{}", node.type_name),
        }),
        routed: task.routed.clone(),
        run_cache: RunCache::new(),
        histories: store.histories(),
    };
    let span = tracing::warn_span!("node", run = %task.run_id, node = %task.node_id);
    let joined = tokio::spawn(tracing::Instrument::instrument(
        async move { configured.run(ctx, Inputs(inputs)).await },
        span,
    ))
    .await;
    match joined {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) if e.is_panic() => Err(format!(
            "panicked: {}",
            super::attempt::panic_text(e.into_panic())
        )),
        Err(_) => Err("cancelled".into()),
    }
}
