//! Test doubles for crates that define node types (the `testing` feature): a [`context`] for
//! running a node outside the engine, and the seeded [`fuzz`] harness.

pub use crate::fuzz;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::node::{EffectLedger, NodeContext, NodeState};
use crate::store::StoreError;

#[derive(Default)]
struct Memory(Mutex<BTreeMap<String, Vec<u8>>>);

impl EffectLedger for Memory {
    fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.0.lock().unwrap().contains_key(key))
    }
    fn mark_done(&self, key: &str, _detail: &serde_json::Value) -> Result<(), StoreError> {
        self.0.lock().unwrap().insert(key.into(), Vec::new());
        Ok(())
    }
}

impl NodeState for Memory {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.lock().unwrap().insert(key.into(), value.to_vec());
        Ok(())
    }
}

/// A context for running a node outside the engine, with in-memory ledger and state.
///
/// Set what a test needs with the `with_*` methods. Clones share the ledger and the state, as
/// the attempts and runs of one workflow share its store: run the first run with
/// `shop.clone().with_run_id("r1")` and the next with `shop.with_run_id("r2")`.
pub fn context() -> NodeContext {
    NodeContext {
        run_id: "test-run".into(),
        node_id: "test-node".into(),
        attempt: 1,
        workflow_dir: std::env::temp_dir(),
        workflow_path: std::env::temp_dir().join("test.yaml"),
        params: BTreeMap::new(),
        trigger: serde_json::Value::Null,
        effects: Arc::new(Memory::default()),
        state: Arc::new(Memory::default()),
        routed: Vec::new(),
        run_cache: crate::run_cache::RunCache::new(),
        histories: None,
    }
}

/// Builder methods for the contexts of tests.
impl NodeContext {
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self
    }
    pub fn with_node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self
    }
    pub fn with_workflow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workflow_dir = dir.into();
        self
    }
    /// The workflow file as the command line gave it (relative or absolute).
    pub fn with_workflow_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.workflow_path = path.into();
        self
    }
    /// Adds (or replaces) one run parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: Json) -> Self {
        self.params.insert(name.into(), value);
        self
    }
    pub fn with_trigger(mut self, trigger: Json) -> Self {
        self.trigger = trigger;
        self
    }
    /// The store directory the node keeps its synced histories under (`DIR/nodes/...`, as a
    /// local store does).
    pub fn with_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.histories = Some(Arc::new(crate::sync::DirPlaces::new(
            dir.into().join("nodes"),
        )));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::context;
    use serde_json::json;

    #[test]
    fn builder_sets_the_fields_a_test_asks_for() {
        let ctx = context()
            .with_run_id("r7")
            .with_node_id("deploy")
            .with_workflow_dir("/shop")
            .with_workflow_path("seg.yaml")
            .with_param("vip_min_clv", json!(300))
            .with_param("vip_min_clv", json!(800))
            .with_trigger(json!({ "time": "2024-04-01T06:00:00Z" }));
        assert_eq!(
            (ctx.run_id.as_str(), ctx.node_id.as_str()),
            ("r7", "deploy")
        );
        assert_eq!(ctx.workflow_dir, std::path::Path::new("/shop"));
        assert_eq!(ctx.workflow_path, std::path::Path::new("seg.yaml"));
        assert_eq!(ctx.params.len(), 1);
        assert_eq!(ctx.params["vip_min_clv"], json!(800));
        assert_eq!(ctx.trigger["time"], "2024-04-01T06:00:00Z");
        assert_eq!(ctx.idempotency_key("x"), "r7/deploy/x");
    }

    #[test]
    fn clones_share_ledger_and_state_fresh_contexts_do_not() {
        let shop = context();
        let first = shop.clone().with_run_id("r1");
        first.state.put("profiles", b"v1").unwrap();
        first.effects.mark_done("k", &json!({})).unwrap();
        let second = shop.with_run_id("r2");
        assert_eq!(second.state.get("profiles").unwrap(), Some(b"v1".to_vec()));
        assert!(second.effects.is_done("k").unwrap());
        let other = context();
        assert_eq!(other.state.get("profiles").unwrap(), None);
        assert!(!other.effects.is_done("k").unwrap());
    }
}
