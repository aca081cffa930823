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
use crate::store::{MemoryStore, RunStatus};

/// Counts runs per node id; `panic: true` panics, `fail: true` fails.
#[derive(Clone, Default)]
struct Probe {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    /// The column of the last table a probe made (`rows`), to see when its memory goes.
    table: Arc<Mutex<Option<std::sync::Weak<dyn arrow_array::Array>>>>,
    /// Whether that column was gone when a probe with `check_released` ran.
    released: Arc<Mutex<Option<bool>>>,
}

struct ProbeNode {
    probe: Probe,
    panic: bool,
    fail: bool,
    fail_first: bool,
    rows: Option<u64>,
    check_released: bool,
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
            ParamSpec::optional("fail_first", ParamType::Bool, "fail the first attempt"),
            ParamSpec::optional(
                "rows",
                ParamType::Integer,
                "output a table of this many rows",
            ),
            ParamSpec::optional(
                "check_released",
                ParamType::Bool,
                "see if the table is gone",
            ),
        ]
    }
    fn configure(&self, p: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(ProbeNode {
            probe: self.clone(),
            panic: p.bool_or("panic", false).map_err(|e| vec![e])?,
            fail: p.bool_or("fail", false).map_err(|e| vec![e])?,
            fail_first: p.bool_or("fail_first", false).map_err(|e| vec![e])?,
            rows: Some(p.u64_or("rows", 0).map_err(|e| vec![e])?).filter(|&r| r > 0),
            check_released: p.bool_or("check_released", false).map_err(|e| vec![e])?,
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
        if self.fail || (self.fail_first && ctx.attempt == 1) {
            return Err(NodeError::msg("probe failed on purpose"));
        }
        if self.check_released {
            let table = self.probe.table.lock().unwrap();
            let gone = table.as_ref().is_some_and(|t| t.upgrade().is_none());
            *self.probe.released.lock().unwrap() = Some(gone);
        }
        if let Some(rows) = self.rows {
            let column: arrow_array::ArrayRef =
                Arc::new(arrow_array::Float64Array::from(vec![1.0; rows as usize]));
            *self.probe.table.lock().unwrap() = Some(Arc::downgrade(&column));
            let batch = arrow_array::RecordBatch::try_from_iter([("x", column)]).unwrap();
            return Ok(Output::table(batch));
        }
        let names: Vec<String> = inputs.iter().map(|i| i.name()).collect();
        Ok(Output::data(Data::Json(serde_json::json!(names))))
    }
}

/// The probe with input roles: any number of `branch` inputs and a `ctx` context input.
struct ContextProbe(Probe);

impl NodeType for ContextProbe {
    fn name(&self) -> &'static str {
        "test.reader"
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        self.0.params()
    }
    fn inputs(&self) -> Vec<crate::node::InputSpec> {
        use crate::node::InputSpec;
        vec![
            InputSpec {
                many: true,
                ..InputSpec::any("branch", "the branches").optional()
            },
            InputSpec::any("ctx", "context").context(),
        ]
    }
    fn configure(
        &self,
        p: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        self.0.configure(p, cx)
    }
}

/// Makes a two-column table (`wide: true`), or reads one in a `pairs` role that reads only
/// column `x` and records the columns each attempt was given.
#[derive(Clone, Default)]
struct Narrow(Arc<Mutex<Vec<Vec<String>>>>);

struct NarrowNode {
    seen: Narrow,
    wide: bool,
    fail_first: bool,
}

impl NodeType for Narrow {
    fn name(&self) -> &'static str {
        "test.narrow"
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("wide", ParamType::Bool, "make the table"),
            ParamSpec::optional("fail_first", ParamType::Bool, "fail the first attempt"),
        ]
    }
    fn inputs(&self) -> Vec<crate::node::InputSpec> {
        let schema = arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "x",
            arrow_schema::DataType::Int64,
            false,
        )]);
        let kind = crate::node::TableKind::new("pairs", "x and y", schema);
        let pairs = crate::node::InputSpec::one("pairs", kind, "the pairs").optional();
        vec![pairs.declared_columns_only()]
    }
    fn configure(&self, p: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(NarrowNode {
            seen: self.clone(),
            wide: p.bool_or("wide", false).map_err(|e| vec![e])?,
            fail_first: p.bool_or("fail_first", false).map_err(|e| vec![e])?,
        }))
    }
}

#[async_trait]
impl Node for NarrowNode {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        if self.wide {
            let x: arrow_array::ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3]));
            let y: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a"; 3]));
            let batch = arrow_array::RecordBatch::try_from_iter([("y", y), ("x", x)]).unwrap();
            return Ok(Output::table(batch));
        }
        let table = inputs.single()?.data.as_table().unwrap();
        let schema = table.schema();
        let names = schema.fields().iter().map(|f| f.name().clone());
        self.seen.0.lock().unwrap().push(names.collect());
        assert_eq!(table.num_rows(), 3);
        if self.fail_first && ctx.attempt == 1 {
            return Err(NodeError::msg("failed on purpose"));
        }
        Ok(Output::data(Data::Empty))
    }
}

struct Setup {
    probe: Probe,
    narrow: Narrow,
    store: Arc<MemoryStore>,
}

impl Setup {
    fn new() -> Self {
        Setup {
            probe: Probe::default(),
            narrow: Narrow::default(),
            store: Arc::new(MemoryStore::default()),
        }
    }

    fn workflow(&self, yaml: &str) -> Arc<Workflow> {
        let mut registry: Registry = crate::nodes::core_registry();
        registry.register(self.probe.clone());
        registry.register(ContextProbe(self.probe.clone()));
        registry.register(self.narrow.clone());
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
            remote: None,
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

fn record<'a>(outcome: &'a RunOutcome, id: &str) -> &'a NodeRecord {
    outcome.nodes.iter().find(|n| n.node_id == id).unwrap()
}

/// The names of the inputs a probe received (its output).
fn probe_inputs(s: &Setup, outcome: &RunOutcome, id: &str) -> Vec<String> {
    let bytes = s
        .store
        .output(&outcome.run.id, id)
        .unwrap()
        .expect("output");
    match crate::data::decode(&bytes).unwrap().select(None) {
        Data::Json(v) => serde_json::from_value(v).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_node_inside_an_untaken_branch_is_skipped_whatever_its_other_inputs() {
    // `on_b_too` subscribes to the empty case `d.b` and also needs `src`, which succeeded: it
    // belongs to branch b, so it is skipped. The same node as a join runs with `src`.
    let extra = "  - { id: on_b_too, kind: action, type: test.probe, needs: [d.b, src] }
  - id: join_b_too
    kind: action
    type: test.probe
    needs: [d.b, src]
    trigger_rule: none_failed_min_one_success
  - { id: under, kind: action, type: test.probe, needs: [on_b_too, on_a] }
";
    let s = Setup::new();
    let out = s.run(&s.workflow(&branchy("a", extra)), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "on_b_too"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "on_b_too").reason.as_deref(),
        Some("branch `d.b` was empty")
    );
    assert_eq!(status(&out, "under"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "under").reason.as_deref(),
        Some("`on_b_too` was skipped")
    );
    assert_eq!(status(&out, "join_b_too"), NodeStatus::Succeeded);
    assert_eq!(probe_inputs(&s, &out, "join_b_too"), ["src"]);
    assert_eq!(
        (s.runs("on_b_too"), s.runs("under"), s.runs("join_b_too")),
        (0, 0, 1)
    );
}

#[test]
fn when_every_branch_is_skipped_the_output_join_is_skipped_and_the_run_succeeds() {
    let s = Setup::new();
    let out = s.run(&s.workflow(&branchy("neither", "")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "join"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "join").reason.as_deref(),
        Some("every input was skipped (`on_a` was skipped; `below_b` was skipped)")
    );
}

#[test]
fn a_context_input_is_read_but_does_not_make_a_join_of_skipped_branches_run() {
    let reader = |fail_ctx: bool| {
        format!(
            "  - {{ id: ctx_src, kind: action, type: test.probe, with: {{ fail: {fail_ctx} }} }}
  - id: reader
    kind: output
    type: test.reader
    needs: [{{ node: on_a, as: branch }}, {{ node: below_b, as: branch }}, {{ node: ctx_src, as: ctx }}]
"
        )
    };
    // Every branch skipped: the reader is skipped although its context input succeeded.
    let s = Setup::new();
    let out = s.run(
        &s.workflow(&branchy("neither", &reader(false))),
        None,
        HashSet::new(),
    );
    assert_eq!(status(&out, "ctx_src"), NodeStatus::Succeeded);
    assert_eq!(status(&out, "reader"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "reader").reason.as_deref(),
        Some("every input was skipped (`on_a` was skipped; `below_b` was skipped)")
    );
    // A branch ran: the reader runs and gets the context input too.
    let s = Setup::new();
    let out = s.run(
        &s.workflow(&branchy("a", &reader(false))),
        None,
        HashSet::new(),
    );
    assert_eq!(status(&out, "reader"), NodeStatus::Succeeded);
    assert_eq!(probe_inputs(&s, &out, "reader"), ["on_a", "ctx_src"]);
    // A failed context input stops the node like any other.
    let s = Setup::new();
    let out = s.run(
        &s.workflow(&branchy("a", &reader(true))),
        None,
        HashSet::new(),
    );
    assert_eq!(status(&out, "reader"), NodeStatus::UpstreamFailed);
    assert_eq!(s.runs("reader"), 0);
}

/// An outer decision on the shell value, an inner decision inside branch `a`, and a join of
/// every leaf.
fn nested(choice: &str) -> String {
    format!(
        "name: nested
nodes:
  - {{ id: src, kind: action, type: core.shell, with: {{ command: 'echo {choice}' }} }}
  - id: outer
    kind: decision
    type: core.switch
    needs: src
    with: {{ rules: [{{ case: b, when: \"value == 'b'\" }}], default: a }}
  - id: inner
    kind: decision
    type: core.switch
    needs: outer.a
    with: {{ rules: [{{ case: one, when: \"value == 'a1'\" }}, {{ case: two, when: \"value == 'a2'\" }}] }}
  - {{ id: on_one, kind: action, type: test.probe, needs: inner.one }}
  - {{ id: on_two, kind: action, type: test.probe, needs: [inner.two, src] }}
  - {{ id: on_b, kind: action, type: test.probe, needs: outer.b }}
  - {{ id: join, kind: output, type: test.probe, needs: [on_one, on_two, on_b] }}
"
    )
}

#[test]
fn nested_decisions_skip_the_inner_branches_when_either_case_is_empty() {
    let s = Setup::new();
    // Outer case `a` taken, inner case `two` empty.
    let out = s.run(&s.workflow(&nested("a1")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "inner"), NodeStatus::Succeeded);
    assert_eq!(status(&out, "on_one"), NodeStatus::Succeeded);
    assert_eq!(status(&out, "on_two"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "on_two").reason.as_deref(),
        Some("branch `inner.two` was empty")
    );
    assert_eq!(status(&out, "on_b"), NodeStatus::Skipped);
    assert_eq!(probe_inputs(&s, &out, "join"), ["on_one"]);

    // Outer case `a` empty: the inner decision and everything under it are skipped, although
    // `on_two` also needs `src`, which succeeded.
    let s = Setup::new();
    let out = s.run(&s.workflow(&nested("b")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "inner"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "inner").reason.as_deref(),
        Some("branch `outer.a` was empty")
    );
    assert_eq!(status(&out, "on_one"), NodeStatus::Skipped);
    assert_eq!(status(&out, "on_two"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "on_two").reason.as_deref(),
        Some("`inner` was skipped")
    );
    assert_eq!(probe_inputs(&s, &out, "join"), ["on_b"]);
    assert_eq!((s.runs("on_one"), s.runs("on_two")), (0, 0));

    // Outer case `a` taken, both inner cases empty: every leaf is skipped, so is the join, and
    // the run succeeds.
    let s = Setup::new();
    let out = s.run(&s.workflow(&nested("a3")), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Succeeded);
    assert_eq!(status(&out, "inner"), NodeStatus::Succeeded);
    for id in ["on_one", "on_two", "on_b", "join"] {
        assert_eq!(status(&out, id), NodeStatus::Skipped, "{id}");
    }
}

#[test]
fn a_join_of_a_skipped_branch_and_a_failed_node_by_rule() {
    let extra = "  - { id: bad, kind: action, type: test.probe, with: { fail: true } }
  - { id: join_rule, kind: output, type: test.probe, needs: [on_b, bad] }
  - { id: strict, kind: action, type: test.probe, needs: [on_b, bad] }
  - { id: lenient, kind: action, type: test.probe, needs: [on_b, bad], trigger_rule: none_failed }
  - { id: done, kind: action, type: test.probe, needs: [on_b, bad, on_a], trigger_rule: all_done }
  - { id: alert, kind: action, type: test.probe, needs: [on_b, bad], trigger_rule: one_failed }
  - { id: quiet, kind: action, type: test.probe, needs: [on_a], trigger_rule: one_failed }
";
    let s = Setup::new();
    let out = s.run(&s.workflow(&branchy("a", extra)), None, HashSet::new());
    assert_eq!(out.run.status, RunStatus::Failed);
    for id in ["join_rule", "strict", "lenient"] {
        assert_eq!(status(&out, id), NodeStatus::UpstreamFailed, "{id}");
        assert_eq!(
            record(&out, id).reason.as_deref(),
            Some("input `bad` did not succeed")
        );
        assert_eq!(s.runs(id), 0, "{id}");
    }
    assert_eq!(status(&out, "done"), NodeStatus::Succeeded);
    assert_eq!(probe_inputs(&s, &out, "done"), ["on_a"]);
    assert_eq!(status(&out, "alert"), NodeStatus::Succeeded);
    assert!(probe_inputs(&s, &out, "alert").is_empty());
    assert_eq!(status(&out, "quiet"), NodeStatus::Skipped);
    assert_eq!(
        record(&out, "quiet").reason.as_deref(),
        Some("no input failed")
    );
}

#[test]
fn rows_routed_to_a_case_that_reaches_no_output_are_reported() {
    // Case `b` has no subscriber; `c` has one, but it leads to no output.
    let yaml = "name: t
nodes:
  - { id: src, kind: action, type: core.shell, with: { command: 'echo VALUE' } }
  - id: d
    kind: decision
    type: core.switch
    needs: src
    with: { rules: [{ case: a, when: \"value == 'a'\" }, { case: b, when: \"value == 'b'\" }], default: c }
  - { id: on_a, kind: action, type: test.probe, needs: d.a }
  - { id: on_c, kind: action, type: test.probe, needs: d.c }
  - { id: out, kind: output, type: test.probe, needs: on_a }
";
    let s = Setup::new();
    let wf = s.workflow(&yaml.replace("VALUE", "a"));
    let cases: Vec<&str> = wf
        .node("d")
        .unwrap()
        .undelivered_cases
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(cases, ["b", "c"]);
    let out = s.run(&wf, None, HashSet::new());
    assert!(record(&out, "d").warnings.is_empty());

    for (value, case, why) in [
        ("b", "b", "has no subscriber"),
        ("z", "c", "leads to no output node"),
    ] {
        let wf = s.workflow(&yaml.replace("VALUE", value));
        let out = s.run(&wf, None, HashSet::new());
        assert_eq!(out.run.status, RunStatus::Succeeded);
        let warnings = &record(&out, "d").warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("1 row routed to case `{case}`, which {why}")),
            "{warnings:?}"
        );
    }
}

#[test]
fn changing_a_trigger_rule_reruns_the_node_on_resume() {
    let s = Setup::new();
    let yaml = "name: t
nodes:
  - { id: one, kind: action, type: test.probe }
  - { id: two, kind: action, type: test.probe, needs: one RULE}
  - { id: three, kind: action, type: test.probe, needs: two, with: { fail: true } }
";
    let wf = s.workflow(&yaml.replace("RULE", ""));
    let first = s.run(&wf, None, HashSet::new());
    assert_eq!(first.run.status, RunStatus::Failed);
    let changed = s.workflow(&yaml.replace("RULE", ", trigger_rule: all_done "));
    assert_ne!(
        wf.node("two").unwrap().fingerprint,
        changed.node("two").unwrap().fingerprint
    );
    let plan = crate::runs::plan_resume(&changed, &first.run, &first.nodes, None, &[]).unwrap();
    assert_eq!(plan.reused, ["one"]);
    let rerun: Vec<&str> = plan.reruns.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(rerun, ["two", "three"]);
    assert_eq!(plan.reruns[0].reason, "its definition changed");
}

#[test]
fn a_nodes_log_is_stored_with_its_final_record() {
    let s = Setup::new();
    let wf = s.workflow(
        "name: t\nnodes:\n  - id: go\n    kind: trigger\n    type: manual\n  - id: noisy\n    kind: action\n    type: test.probe\n    needs: [go]\n    with: { fail: true }\n",
    );
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
    let run_id = record.id.clone();
    // What the node logged while it ran (the tracing layer's part is tested with it).
    crate::node_log::record(
        &run_id,
        "noisy",
        "info",
        "command stderr\nfirst\nsecond".into(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_tx, rx) = watch::channel(Shutdown::None);
    let outcome = rt
        .block_on(execute(
            wf,
            s.store.clone(),
            record,
            HashMap::new(),
            HashSet::new(),
            ExecOptions {
                concurrency: 2,
                shutdown: rx,
                events: None,
                remote: None,
            },
        ))
        .unwrap();
    assert_eq!(status(&outcome, "noisy"), NodeStatus::Failed);
    let stored = s
        .store
        .get(
            crate::node_log::LOGS,
            &crate::node_log::key(&run_id, "noisy"),
        )
        .unwrap()
        .expect("the failed node's log is stored");
    let lines: Vec<crate::node_log::LogLine> = serde_json::from_slice(&stored).unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].message.contains("first\nsecond"), "{lines:?}");
    // Taken out of memory once stored.
    assert!(crate::node_log::take(&run_id, "noisy").is_none());
    // Removing the run takes its logs too.
    s.store
        .remove(&crate::store::Removal {
            run_ids: vec![run_id.clone()],
            keys: vec![],
        })
        .unwrap();
    assert!(
        s.store
            .get(
                crate::node_log::LOGS,
                &crate::node_log::key(&run_id, "noisy")
            )
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_retry_gets_the_same_inputs_again_from_their_checkpoints() {
    // The first attempt is handed the only in-memory copy of its inputs; the second reads
    // them from the checkpoints.
    let s = Setup::new();
    let wf = s.workflow(
        r#"
name: t
nodes:
  - { id: a, kind: action, type: test.probe }
  - { id: c, kind: action, type: test.probe }
  - id: b
    kind: output
    type: test.probe
    needs: [a, c]
    retry: { max_attempts: 2, backoff: 1ms }
    with: { fail_first: true }
"#,
    );
    let outcome = s.run(&wf, None, HashSet::new());
    assert_eq!(outcome.run.status, RunStatus::Succeeded);
    assert_eq!(s.runs("b"), 2);
    assert_eq!(record(&outcome, "b").attempts.len(), 2);
    assert_eq!(probe_inputs(&s, &outcome, "b"), ["a", "c"]);
}

#[test]
fn a_large_output_left_for_a_dependent_that_cannot_start_is_read_back_from_its_checkpoint() {
    // `big` is read by `first` at once and by `last` only at the end: once `first` is done,
    // no copy stays in memory until `last` starts, and `last` reads the checkpoint. A small
    // output stays in memory.
    for (rows, released) in [(2_200_000u64, true), (1_000, false)] {
        let s = Setup::new();
        let wf = s.workflow(&format!(
            r#"
name: t
nodes:
  - {{ id: big, kind: action, type: test.probe, with: {{ rows: {rows} }} }}
  - {{ id: first, kind: action, type: test.probe, needs: big }}
  - {{ id: slow, kind: action, type: test.probe, needs: first, with: {{ check_released: true }} }}
  - {{ id: last, kind: output, type: test.probe, needs: [big, slow] }}
"#
        ));
        let outcome = s.run(&wf, None, HashSet::new());
        assert_eq!(outcome.run.status, RunStatus::Succeeded, "{rows} rows");
        assert_eq!(
            *s.probe.released.lock().unwrap(),
            Some(released),
            "{rows} rows"
        );
        assert!(record(&outcome, "last").rows_in >= rows, "{rows} rows");
        assert_eq!(probe_inputs(&s, &outcome, "last"), ["big", "slow"]);
    }
}

#[test]
fn a_role_that_reads_its_declared_columns_gets_only_those_from_memory_and_from_a_checkpoint() {
    // The first attempt is handed the table in memory, the retry reads it from its checkpoint:
    // both see only `x` of the producer's `y` and `x`.
    let s = Setup::new();
    let wf = s.workflow(
        r#"
name: t
nodes:
  - { id: wide, kind: action, type: test.narrow, with: { wide: true } }
  - id: narrow
    kind: output
    type: test.narrow
    needs: wide
    retry: { max_attempts: 2, backoff: 1ms }
    with: { fail_first: true }
"#,
    );
    let outcome = s.run(&wf, None, HashSet::new());
    assert_eq!(outcome.run.status, RunStatus::Succeeded);
    assert_eq!(record(&outcome, "narrow").attempts.len(), 2);
    assert_eq!(*s.narrow.0.lock().unwrap(), [["x"], ["x"]]);
}
