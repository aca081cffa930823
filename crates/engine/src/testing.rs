//! Test doubles for crates that define node types (the `testing` feature): a [`context`] for
//! running a node outside the engine, and the seeded [`fuzz`] harness.

pub use crate::fuzz;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    }
}
