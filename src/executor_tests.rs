//! Executor unit tests on an in-memory store with purpose-built node types.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;
use crate::compile::compile;
use crate::data::{Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, Registry,
};
use crate::store::MemoryStore;

/// Counts runs per node id; `panic: true` panics, `fail: true` fails.
#[derive(Clone, Default)]
struct Probe {
    runs: Arc<Mutex<HashMap<String, usize>>>,
}

struct ProbeNode {
    probe: Probe,
    panic: bool,
    fail: bool,
}

impl NodeType for Probe {
    fn name(&self) -> &'static str {
        "test.probe"
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("panic", ParamType::Bool, "panic"),
            ParamSpec::optional("fail", ParamType::Bool, "fail"),
        ]
    }
    fn configure(&self, p: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(ProbeNode {
            probe: self.clone(),
            panic: p.bool_or("panic", false).map_err(|e| vec![e])?,
            fail: p.bool_or("fail", false).map_err(|e| vec![e])?,
        }))
    }
}

#[async_trait]
impl Node for ProbeNode {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        *self
            .probe
            .runs
            .lock()
            .unwrap()
            .entry(ctx.node_id.clone())
            .or_default() += 1;
        if self.panic {
            panic!("probe panicked on purpose");
        }
        if self.fail {
            return Err(NodeError::msg("probe failed on purpose"));
        }
        let names: Vec<String> = inputs.iter().map(|i| i.name()).collect();
        Ok(Output::data(Data::Json(serde_json::json!(names))))
    }
}

struct Setup {
    probe: Probe,
    store: Arc<MemoryStore>,
}

impl Setup {
    fn new() -> Self {
        Setup {
            probe: Probe::default(),
            store: Arc::new(MemoryStore::default()),
        }
    }

    fn workflow(&self, yaml: &str) -> Arc<Workflow> {
        let mut registry: Registry = crate::nodes::builtin_registry();
        registry.register(self.probe.clone());
        Arc::new(compile(yaml, std::path::Path::new("t.yaml"), &registry).expect("valid"))
    }

    fn run(
        &self,
        wf: &Arc<Workflow>,
        previous: Option<&RunOutcome>,
        reuse: HashSet<usize>,
    ) -> RunOutcome {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut record = match previous {
            Some(p) => {
                let mut r = p.run.clone();
                r.executions += 1;
                r
            }
            None => crate::runs::new_run(
                wf,
                wf.params.clone(),
                "test",
                &[],
                chrono::Utc::now(),
                None,
                None,
            )
            .unwrap(),
        };
        record.workflow_fingerprint = wf.fingerprint.clone();
        let prev: HashMap<String, NodeRecord> = previous
            .map(|p| {
                p.nodes
                    .iter()
                    .map(|n| (n.node_id.clone(), n.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let (_tx, rx) = watch::channel(Shutdown::None);
        let opts = ExecOptions {
            concurrency: 4,
            shutdown: rx,
            events: None,
        };
        rt.block_on(execute(
            wf.clone(),
            self.store.clone(),
            record,
            prev,
            reuse,
            opts,
        ))
        .unwrap()
    }

    fn runs(&self, id: &str) -> usize {
        self.probe
            .runs
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

fn status(outcome: &RunOutcome, id: &str) -> NodeStatus {
    outcome
        .nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap()
        .status
}

/// A decision on a shell value: `value` picks the case.
fn branchy(choice: &str, extra: &str) -> String {
    format!(
        "name: t
nodes:
  - {{ id: src, kind: action, type: core.shell, with: {{ command: 'echo {choice}' }} }}
  - id: d
    kind: decision
    type: core.switch
    needs: src
    with: {{ rules: [{{ case: a, when: \"value == 'a'\" }}, {{ case: b, when: \"value == 'b'\" }}] }}
  - {{ id: on_a, kind: action, type: test.probe, needs: d.a }}
  - {{ id: on_b, kind: action, type: test.probe, needs: d.b }}
  - {{ id: below_b, kind: action, type: test.probe, needs: on_b }}
  - {{ id: join, kind: output, type: test.probe, needs: [on_a, below_b] }}
{extra}"
    )
}

#[test]
fn untaken_branch_is_skipped_and_the_join_runs_with_the_live_input() {
    let s = Setup::new();
    let out = s.run(&s.workflow(&branchy("a", "")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "on_a"), NodeStatus::Succeeded);
    assert_eq!(status(&out, "on_b"), NodeStatus::Skipped);
    assert_eq!(status(&out, "below_b"), NodeStatus::Skipped);
    assert_eq!(status(&out, "join"), NodeStatus::Succeeded);
    assert_eq!(
        (s.runs("on_b"), s.runs("below_b"), s.runs("join")),
        (0, 0, 1)
    );
}

#[test]
fn a_join_of_skipped_inputs_is_skipped() {
    let s = Setup::new();
    let out = s.run(&s.workflow(&branchy("neither", "")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    for id in ["on_a", "on_b", "below_b", "join"] {
        assert_eq!(status(&out, id), NodeStatus::Skipped, "{id}");
    }
    assert_eq!(s.runs("join"), 0);
}

#[test]
fn a_failed_input_stops_the_join_and_fails_the_run() {
    let s = Setup::new();
    let extra = "  - { id: bad, kind: action, type: test.probe, with: { fail: true } }
  - { id: join2, kind: output, type: test.probe, needs: [on_a, bad] }
  - { id: after, kind: output, type: test.probe, needs: join2 }
";
    let out = s.run(&s.workflow(&branchy("a", extra)), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Failed);
    assert_eq!(status(&out, "bad"), NodeStatus::Failed);
    assert_eq!(status(&out, "join2"), NodeStatus::UpstreamFailed);
    assert_eq!(status(&out, "after"), NodeStatus::UpstreamFailed);
    assert_eq!(
        status(&out, "join"),
        NodeStatus::Succeeded,
        "independent join still runs"
    );
    assert_eq!((s.runs("join2"), s.runs("after")), (0, 0));
}

#[test]
fn a_panicking_node_fails_alone() {
    let s = Setup::new();
    let wf = s.workflow(
        "name: t
nodes:
  - { id: boom, kind: action, type: test.probe, with: { panic: true } }
  - { id: calm, kind: action, type: test.probe }
  - { id: after, kind: action, type: test.probe, needs: boom }
",
    );
    let out = s.run(&wf, None, HashSet::new());
    assert_eq!(status(&out, "boom"), NodeStatus::Failed);
    let boom = out.nodes.iter().find(|n| n.node_id == "boom").unwrap();
    assert!(
        boom.error
            .as_deref()
            .unwrap()
            .contains("probe panicked on purpose"),
        "{boom:?}"
    );
    assert_eq!(status(&out, "calm"), NodeStatus::Succeeded);
    assert_eq!(status(&out, "after"), NodeStatus::UpstreamFailed);
}

#[test]
fn resume_reuses_checkpoints_and_runs_only_what_is_left() {
    let s = Setup::new();
    let failing = "name: t
nodes:
  - { id: one, kind: action, type: test.probe }
  - { id: two, kind: action, type: test.probe, needs: one, with: { fail: FAIL } }
  - { id: three, kind: action, type: test.probe, needs: two }
  - { id: side, kind: action, type: test.probe, needs: one }
";
    let wf = s.workflow(&failing.replace("FAIL", "true"));
    let first = s.run(&wf, None, HashSet::new());
    assert_eq!(first.run.status, RunStatus::Failed);
    // The fix: the node no longer fails. Its definition changed, so it and its downstream run.
    let fixed = s.workflow(&failing.replace("FAIL", "false"));
    let plan = crate::runs::plan_resume(&fixed, &first.run, &first.nodes, None, &[]).unwrap();
    let mut reused = plan.reused.clone();
    reused.sort();
    assert_eq!(reused, ["one", "side"]);
    let second = s.run(&fixed, Some(&first), plan.reuse);
    assert_eq!(second.run.status, RunStatus::Succeeded);
    assert_eq!(
        (
            s.runs("one"),
            s.runs("side"),
            s.runs("two"),
            s.runs("three")
        ),
        (1, 1, 2, 1)
    );
    // `three` received the output of `two`, which came from this execution.
    assert_eq!(second.run.executions, 2);
}

#[test]
fn group_commit_checkpoints_a_wide_fan_out() {
    let s = Setup::new();
    let mut yaml =
        String::from("name: fan\nnodes:\n  - { id: src, kind: action, type: core.noop }\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  - {{ id: f{i}, kind: action, type: core.noop, needs: src }}\n"
        ));
    }
    let needs: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    yaml.push_str(&format!(
        "  - {{ id: join, kind: output, type: core.noop, needs: [{}] }}\n",
        needs.join(", ")
    ));
    let out = s.run(&s.workflow(&yaml), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    let stored = s.store.nodes(&out.run.id).unwrap();
    assert_eq!(stored.len(), 202);
    assert!(stored.iter().all(|n| n.status == NodeStatus::Succeeded));
    assert!(s.store.output(&out.run.id, "f199").unwrap().is_some());
}
