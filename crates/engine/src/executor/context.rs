//! What all nodes of a run share: the run's context, and the state store behind the ledger of
//! side effects and each node type's persistent state.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::node::{EffectLedger, NodeState};
use crate::run_cache::RunCache;
use crate::store::{StateStore, StoreError, Write};

#[derive(Clone)]
pub(super) struct BaseContext {
    pub(super) run_id: String,
    pub(super) workflow_dir: std::path::PathBuf,
    pub(super) workflow_path: std::path::PathBuf,
    pub(super) params: std::collections::BTreeMap<String, Json>,
    pub(super) trigger: Json,
    pub(super) effects: Arc<dyn EffectLedger>,
    pub(super) store: Arc<dyn StateStore>,
    pub(super) run_cache: RunCache,
}

/// Side effects recorded in the state store.
pub(crate) struct StoreLedger {
    pub(crate) store: Arc<dyn StateStore>,
}

impl EffectLedger for StoreLedger {
    fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.store.get("effects", key)?.is_some())
    }

    fn mark_done(&self, key: &str, detail: &Json) -> Result<(), StoreError> {
        let value = serde_json::to_vec(detail).unwrap_or_default();
        self.store.apply(vec![Write::Put {
            namespace: "effects".into(),
            key: key.into(),
            value,
        }])?;
        self.store.flush()
    }
}

pub(crate) struct StoreNodeState {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) namespace: String,
}

impl NodeState for StoreNodeState {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(&self.namespace, key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.apply(vec![Write::Put {
            namespace: self.namespace.clone(),
            key: key.into(),
            value: value.to_vec(),
        }])?;
        self.store.flush()
    }
}
