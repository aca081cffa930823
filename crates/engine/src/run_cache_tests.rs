//! The run cache on its own and as the executor hands it to nodes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use async_trait::async_trait;
use tokio::sync::watch;

use super::*;
use crate::compile::compile;
use crate::data::{Data, Output};
use crate::executor::{ExecOptions, RunOutcome, Shutdown, execute};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, Registry,
};
use crate::store::{MemoryStore, StateStore};

#[test]
fn a_value_is_computed_once_per_key_and_type() {
    let cache = RunCache::new();
    let computed = AtomicUsize::new(0);
    let get = |cache: &RunCache, key: (&'static str, i32)| {
        cache.get_or_compute(key, || {
            computed.fetch_add(1, Ordering::SeqCst);
            format!("{}-{}", key.0, key.1)
        })
    };
    let first = get(&cache, ("a", 1));
    let again = get(&cache, ("a", 1));
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });

    // Another key, or the same key for a value of another type, is another value.
    assert_eq!(*get(&cache, ("a", 2)), "a-2");
    assert_eq!(*cache.get_or_compute(("a", 1), || 7u8), 7);
    assert_eq!(computed.load(Ordering::SeqCst), 2);
    assert_eq!(*get(&cache, ("a", 1)), "a-1");
    assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 3 });

    // A node's handle shares the values and counts its own lookups.
    let node = cache.for_node();
    assert!(Arc::ptr_eq(&get(&node, ("a", 1)), &first));
    assert_eq!(node.stats(), CacheStats { hits: 1, misses: 0 });
    assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 3 });

    // Another cache (another run) shares nothing.
    let other = RunCache::new();
    assert!(!Arc::ptr_eq(&get(&other, ("a", 1)), &first));
    assert_eq!(computed.load(Ordering::SeqCst), 3);
}

#[test]
fn callers_asking_at_once_wait_for_one_computation() {
    let cache = RunCache::new();
    let computed = AtomicUsize::new(0);
    let barrier = Barrier::new(6);
    let values: Vec<Arc<u64>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let node = cache.for_node();
                let (computed, barrier) = (&computed, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    node.get_or_compute("slow", || {
                        computed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        42u64
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|v| Arc::ptr_eq(v, &values[0])));
}

#[test]
fn an_output_records_the_lookups_only_when_there_were_some() {
    let cache = RunCache::new();
    let out = cache.annotate(Output::data(Data::Json(serde_json::json!(1))));
    assert!(!out.meta.contains_key(META_KEY));
    cache.get_or_compute(1, || ());
    cache.get_or_compute(1, || ());
    let out = cache.annotate(Output::data(Data::Json(serde_json::json!(1))));
    assert_eq!(
        out.meta[META_KEY],
        serde_json::json!({"hits": 1, "misses": 1})
    );
}

/// A node type whose nodes look up one shared value (`key`) and count its computations.
#[derive(Clone, Default)]
struct Shared {
    computed: Arc<AtomicUsize>,
}

struct SharedNode {
    computed: Arc<AtomicUsize>,
    key: Option<String>,
    /// The value is computed from the node's inputs.
    from_inputs: bool,
}

impl NodeType for Shared {
    fn name(&self) -> &'static str {
        "test.shared"
    }
    fn summary(&self) -> &'static str {
        "test"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("key", ParamType::String, "key"),
            ParamSpec::optional("from_inputs", ParamType::Bool, "computed from the inputs"),
        ]
    }
    fn configure(&self, p: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(SharedNode {
            computed: self.computed.clone(),
            key: p.opt_str("key").map_err(|e| vec![e])?.map(String::from),
            from_inputs: p.bool_or("from_inputs", false).map_err(|e| vec![e])?,
        }))
    }
}

#[async_trait]
impl Node for SharedNode {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let Some(key) = self.key.clone() else {
            return Ok(Output::data(Data::Json(serde_json::Value::Null)));
        };
        let computed = self.computed.clone();
        let from: Vec<String> = match self.from_inputs {
            true => inputs.iter().map(|i| i.name()).collect(),
            false => Vec::new(),
        };
        let cache = ctx.run_cache.clone();
        let value = cache.get_or_compute_from(&from, key, move || {
            computed.fetch_add(1, Ordering::SeqCst);
            ctx.run_id.clone()
        });
        Ok(Output::data(Data::Json(serde_json::json!(*value))))
    }
}

fn run_once(
    store: &Arc<MemoryStore>,
    wf: &Arc<crate::compile::Workflow>,
    newest: Option<&str>,
) -> RunOutcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut record = crate::runs::new_run(
        wf,
        wf.params.clone(),
        "test",
        &[],
        chrono::Utc::now(),
        None,
        newest,
    )
    .unwrap();
    record.workflow_fingerprint = wf.fingerprint.clone();
    let (_tx, rx) = watch::channel(Shutdown::None);
    let opts = ExecOptions {
        concurrency: 4,
        shutdown: rx,
        events: None,
        remote: None,
    };
    rt.block_on(execute(
        wf.clone(),
        store.clone(),
        record,
        HashMap::new(),
        HashSet::new(),
        opts,
    ))
    .unwrap()
}

#[test]
fn nodes_of_one_run_share_a_value_and_two_runs_do_not() {
    let shared = Shared::default();
    let mut registry: Registry = crate::nodes::core_registry();
    registry.register(shared.clone());
    let yaml = "name: t
nodes:
  - { id: one, kind: action, type: test.shared, with: { key: index } }
  - { id: two, kind: action, type: test.shared, with: { key: index } }
  - { id: three, kind: action, type: test.shared, needs: [one, two], with: { key: index } }
  - { id: other, kind: action, type: test.shared, with: { key: another } }
  - { id: none, kind: action, type: test.shared }
";
    let wf = Arc::new(compile(yaml, std::path::Path::new("t.yaml"), &registry).expect("valid"));
    let store = Arc::new(MemoryStore::default());
    let meta = |out: &RunOutcome, id: &str| {
        let node = out.nodes.iter().find(|n| n.node_id == id).unwrap();
        node.meta.get(META_KEY).cloned()
    };
    let lookups = |out: &RunOutcome, ids: &[&str], what: &str| -> u64 {
        ids.iter()
            .map(|id| meta(out, id).unwrap()[what].as_u64().unwrap())
            .sum()
    };

    let first = run_once(&store, &wf, None);
    assert_eq!(shared.computed.load(Ordering::SeqCst), 2);
    let users = ["one", "two", "three"];
    assert_eq!(lookups(&first, &users, "misses"), 1);
    assert_eq!(lookups(&first, &users, "hits"), 2);
    // `three` runs after the value exists.
    assert_eq!(
        meta(&first, "three"),
        Some(serde_json::json!({"hits": 1, "misses": 0}))
    );
    assert_eq!(
        meta(&first, "other"),
        Some(serde_json::json!({"hits": 0, "misses": 1}))
    );
    assert_eq!(meta(&first, "none"), None);

    // A second run in the same process computes its own value.
    let second = run_once(&store, &wf, Some(&first.run.id));
    assert_ne!(second.run.id, first.run.id);
    assert_eq!(shared.computed.load(Ordering::SeqCst), 4);
    assert_eq!(lookups(&second, &users, "misses"), 1);
    let value = |out: &RunOutcome| {
        let bytes = store.output(&out.run.id, "three").unwrap().unwrap();
        match crate::data::decode(&bytes).unwrap().body {
            crate::data::Body::Data(Data::Json(v)) => v,
            _ => panic!("not json"),
        }
    };
    assert_eq!(value(&first), serde_json::json!(first.run.id));
    assert_eq!(value(&second), serde_json::json!(second.run.id));
}

#[test]
fn a_value_computed_from_inputs_goes_once_every_reader_of_one_of_them_has_ended() {
    let cache = RunCache::new();
    let computed = AtomicUsize::new(0);
    let get = |cache: &RunCache| {
        cache.get_or_compute_from(&["transactions", "classify.vip"], "index", || {
            computed.fetch_add(1, Ordering::SeqCst)
        })
    };
    let held = get(&cache);
    cache.release_from("catalog");
    get(&cache);
    assert_eq!(
        computed.load(Ordering::SeqCst),
        1,
        "kept: not computed from `catalog`"
    );
    // `classify.vip` is the output of `classify`.
    cache.release_from("classify");
    get(&cache);
    assert_eq!(
        computed.load(Ordering::SeqCst),
        2,
        "let go of, then computed again"
    );
    // A node still holding the value keeps it.
    assert_eq!(*held, 0);
    // Values computed from nothing stay for the execution.
    cache.get_or_compute("plain", || 1u8);
    cache.release_from("classify");
    cache.release_from("transactions");
    assert_eq!(cache.stats().misses, 3);
    cache.get_or_compute("plain", || 1u8);
    assert_eq!(cache.stats().hits, 2);
}

#[test]
fn the_run_lets_go_of_a_shared_value_when_the_readers_of_its_inputs_have_ended() {
    let shared = Shared::default();
    let mut registry: Registry = crate::nodes::core_registry();
    registry.register(shared.clone());
    // `one` and `two` share a value computed from `src`; `later` reads only what they made,
    // so by the time it asks, the value is gone and is computed again.
    let yaml = "name: t
nodes:
  - { id: src, kind: action, type: test.shared }
  - { id: one, kind: action, type: test.shared, needs: src, with: { key: index, from_inputs: true } }
  - { id: two, kind: action, type: test.shared, needs: src, with: { key: index, from_inputs: true } }
  - { id: later, kind: action, type: test.shared, needs: [one, two], with: { key: index } }
";
    let wf = Arc::new(compile(yaml, std::path::Path::new("t.yaml"), &registry).expect("valid"));
    let store = Arc::new(MemoryStore::default());
    let out = run_once(&store, &wf, None);
    assert_eq!(out.run.status, crate::store::RunStatus::Succeeded);
    assert_eq!(shared.computed.load(Ordering::SeqCst), 2);
}
