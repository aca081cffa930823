//! Effect-free nodes start before their inputs' checkpoints are durable; nodes with effects do
//! not, and no checkpoint becomes durable before those of its inputs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;
use crate::compile::compile;
use crate::data::{Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, Registry,
};
use crate::store::{MemoryStore, RunStatus};

/// A memory store that keeps apart what its last flush made durable. The flush of the batch
/// holding `a`'s success waits until a node releases it (or, so a fault fails instead of
/// hanging, 10 s), or that batch fails.
#[derive(Default)]
struct Gated {
    inner: MemoryStore,
    /// Node statuses as of the last flush, and those applied since.
    durable: Mutex<HashMap<String, NodeStatus>>,
    applied: Mutex<HashMap<String, NodeStatus>>,
    /// (a flush is held, the hold is released)
    hold: Mutex<(bool, bool)>,
    released: Condvar,
    fail_a: bool,
}

impl Gated {
    fn release(&self) {
        self.hold.lock().unwrap().1 = true;
        self.released.notify_all();
    }

    fn durable_status(&self, node: &str) -> Option<NodeStatus> {
        self.durable.lock().unwrap().get(node).copied()
    }
}

impl StateStore for Gated {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let records = writes.iter().filter_map(|w| match w {
            Write::Node { record, .. } => Some(record),
            _ => None,
        });
        let holds_a = records
            .clone()
            .any(|r| r.node_id == "a" && r.status == NodeStatus::Succeeded);
        if holds_a && self.fail_a {
            return Err(StoreError::Io("failed on purpose".into()));
        }
        let mut applied = self.applied.lock().unwrap();
        for record in records {
            applied.insert(record.node_id.clone(), record.status);
        }
        drop(applied);
        if holds_a {
            self.hold.lock().unwrap().0 = true;
        }
        self.inner.apply(writes)
    }
    fn flush(&self) -> Result<(), StoreError> {
        let mut hold = self.hold.lock().unwrap();
        if hold.0 {
            hold = self
                .released
                .wait_timeout_while(hold, Duration::from_secs(10), |h| !h.1)
                .unwrap()
                .0;
            hold.0 = false;
        }
        drop(hold);
        let applied = std::mem::take(&mut *self.applied.lock().unwrap());
        self.durable.lock().unwrap().extend(applied);
        self.inner.flush()
    }
    crate::store::delegate_reads!(inner);
    fn location(&self) -> String {
        self.inner.location()
    }
    fn remove(&self, removal: &crate::store::Removal) -> Result<crate::store::Removed, StoreError> {
        self.inner.remove(removal)
    }
}

/// What a node saw of checkpoints when it ran: (node, input or `a`, durable status).
type Seen = Arc<Mutex<Vec<(String, String, Option<NodeStatus>)>>>;

/// `test.look` records the durable status of its inputs and of `a`; `effect_free: true` declares it
/// effect-free, `release: true` then releases the store's held flush.
#[derive(Clone)]
struct Look {
    store: Arc<Gated>,
    seen: Seen,
}

struct LookNode {
    look: Look,
    effect_free: bool,
    release: bool,
}

impl NodeType for Look {
    fn name(&self) -> &'static str {
        "test.look"
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("effect_free", ParamType::Bool, "declare it effect-free"),
            ParamSpec::optional("release", ParamType::Bool, "release the held flush"),
        ]
    }
    fn configure(&self, p: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(LookNode {
            look: self.clone(),
            effect_free: p.bool_or("effect_free", false).map_err(|e| vec![e])?,
            release: p.bool_or("release", false).map_err(|e| vec![e])?,
        }))
    }
}

#[async_trait]
impl Node for LookNode {
    fn effect_free(&self) -> bool {
        self.effect_free
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let mut of: Vec<String> = inputs.iter().map(|i| i.from.clone()).collect();
        if !of.iter().any(|n| n == "a") && ctx.node_id != "a" {
            of.push("a".into());
        }
        for node in of {
            let status = self.look.store.durable_status(&node);
            self.look
                .seen
                .lock()
                .unwrap()
                .push((ctx.node_id.clone(), node, status));
        }
        if self.release {
            self.look.store.release();
        }
        Ok(Output::data(Data::Json(serde_json::json!(ctx.node_id))))
    }
}

/// Whether a node's success was durable. A node's `Running` record may or may not have been
/// flushed (with an earlier batch) by the time another node looks, so only success counts.
fn done(status: Option<NodeStatus>) -> bool {
    status == Some(NodeStatus::Succeeded)
}

fn run(store: Arc<Gated>, seen: Seen, yaml: &str) -> RunOutcome {
    try_run(store, seen, yaml).unwrap_or_else(|e| panic!("execute: {e}"))
}

fn try_run(store: Arc<Gated>, seen: Seen, yaml: &str) -> Result<RunOutcome, ExecError> {
    let mut registry: Registry = crate::nodes::core_registry();
    registry.register(Look {
        store: store.clone(),
        seen,
    });
    let wf = Arc::new(compile(yaml, std::path::Path::new("t.yaml"), &registry).expect("valid"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = crate::runs::new_run(
        &wf,
        wf.params.clone(),
        "test",
        &[],
        chrono::Utc::now(),
        None,
        None,
    )
    .unwrap();
    let (_tx, rx) = watch::channel(Shutdown::None);
    let opts = ExecOptions {
        concurrency: 4,
        shutdown: rx,
        events: None,
        remote: None,
    };
    rt.block_on(execute(
        wf,
        store,
        record,
        HashMap::new(),
        HashSet::new(),
        opts,
    ))
}

const CHAIN: &str = "
name: chain
nodes:
  - { id: a, kind: action, type: core.noop }
  - { id: b, kind: action, type: test.look, needs: a, with: { effect_free: true, release: true } }
  - { id: c, kind: action, type: test.look, needs: b }
";

#[test]
fn an_effect_free_node_starts_before_its_input_is_durable_and_a_node_with_effects_does_not() {
    let store = Arc::new(Gated::default());
    let seen = Seen::default();
    let out = run(store.clone(), seen.clone(), CHAIN);
    assert_eq!(out.run.status, RunStatus::Succeeded);
    let seen = seen.lock().unwrap().clone();
    let looked: Vec<(&str, &str, bool)> = seen
        .iter()
        .map(|(n, of, s)| (n.as_str(), of.as_str(), done(*s)))
        .collect();
    assert_eq!(
        looked,
        vec![
            // `b` ran while the flush of `a`'s checkpoint was held (and then let it go).
            ("b", "a", false),
            // `c` has effects: it ran only once `b`'s checkpoint was on disk, and `a`'s before.
            ("c", "b", true),
            ("c", "a", true),
        ],
        "{seen:?}"
    );
    for node in ["a", "b", "c"] {
        assert_eq!(store.durable_status(node), Some(NodeStatus::Succeeded));
    }
}

#[test]
fn when_an_input_checkpoint_fails_no_dependent_is_recorded_as_done() {
    let store = Arc::new(Gated {
        fail_a: true,
        ..Gated::default()
    });
    let seen = Seen::default();
    // The run's last record cannot be saved either, so the run ends in an error.
    assert!(try_run(store.clone(), seen.clone(), CHAIN).is_err());
    // Whether or not `b` ran from `a`'s output, nothing after `a`'s failed batch was saved.
    for node in ["a", "b", "c"] {
        assert_ne!(store.durable_status(node), Some(NodeStatus::Succeeded));
    }
    assert!(
        seen.lock().unwrap().iter().all(|(node, _, _)| node != "c"),
        "a node with effects ran on an input that was never saved"
    );
}

/// A decision's empty case skips a branch; a node with effects joined to that branch (and to
/// a durable node) waits for the decision's checkpoint, on which the skip rests.
#[test]
fn a_node_with_effects_waits_for_the_checkpoint_a_skip_rests_on() {
    let store = Arc::new(Gated::default());
    let seen = Seen::default();
    let yaml = "
name: skip
nodes:
  - { id: src, kind: action, type: test.look, with: { effect_free: true } }
  - id: a
    kind: decision
    type: core.switch
    needs: src
    with: { rules: [ { case: hit, when: \"value == 'src'\" } ], default: miss }
  - { id: missed, kind: action, type: core.noop, needs: a.miss }
  - { id: peek, kind: action, type: test.look, needs: a.hit, with: { effect_free: true, release: true } }
  - id: c
    kind: action
    type: test.look
    needs: [missed, src]
    trigger_rule: none_failed_min_one_success
";
    let out = run(store.clone(), seen.clone(), yaml);
    assert_eq!(out.run.status, RunStatus::Succeeded, "{:?}", out.run.error);
    let status = |id: &str| out.nodes.iter().find(|n| n.node_id == id).unwrap().status;
    assert_eq!(status("missed"), NodeStatus::Skipped);
    assert_eq!(status("peek"), NodeStatus::Succeeded);
    let seen = seen.lock().unwrap().clone();
    let saw = |node: &str, of: &str| {
        seen.iter()
            .find(|(n, o, _)| n == node && o == of)
            .map(|(_, _, s)| *s)
    };
    assert_eq!(saw("peek", "a").map(done), Some(false), "{seen:?}");
    assert_eq!(saw("c", "a"), Some(Some(NodeStatus::Succeeded)), "{seen:?}");
    assert_eq!(store.durable_status("a"), Some(NodeStatus::Succeeded));
}
