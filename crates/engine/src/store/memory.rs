//! An in-memory store with the same layout as the sled one, for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    NodeRecord, Removal, Removed, RunRecord, StateStore, StoreError, Write, decode_json, keys,
    to_pairs,
};

/// A store that lives as long as the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
        let mut guard = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    fn prefixed(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.with(|m| {
            m.range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

impl StateStore for MemoryStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let pairs = to_pairs(writes)?;
        self.with(|m| m.extend(pairs));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.with(|m| m.get(&keys::run(run_id)).cloned())
            .map(|b| decode_json(run_id, &b))
            .transpose()
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = self
            .prefixed(keys::RUN_PREFIX)
            .into_iter()
            .map(|(k, v)| decode_json(&k, &v))
            .collect::<Result<Vec<RunRecord>, _>>()?;
        crate::run_id::newest_first(&mut runs);
        Ok(runs)
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRecord>, StoreError> {
        self.prefixed(&keys::node_prefix(run_id))
            .into_iter()
            .map(|(k, v)| decode_json(&k, &v))
            .collect()
    }

    fn output(&self, run_id: &str, node_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| m.get(&keys::output(run_id, node_id)).cloned()))
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|m| m.get(&keys::kv(namespace, key)).cloned()))
    }

    fn scan(&self, namespace: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let strip = keys::kv(namespace, "").len();
        Ok(self
            .prefixed(&keys::kv(namespace, prefix))
            .into_iter()
            .map(|(k, v)| (k[strip..].to_string(), v))
            .collect())
    }

    fn location(&self) -> String {
        "memory".into()
    }

    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        let mut doomed: Vec<String> = Vec::new();
        let mut removed = Removed::default();
        self.with(|m| {
            for run_id in &removal.run_ids {
                let key = keys::run(run_id);
                if m.contains_key(&key) {
                    removed.runs += 1;
                    doomed.push(key);
                }
                for prefix in keys::run_prefixes(run_id) {
                    doomed.extend(
                        m.range(prefix.clone()..)
                            .take_while(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, _)| k.clone()),
                    );
                }
            }
            doomed.extend(removal.keys.iter().map(|(ns, k)| keys::kv(ns, k)));
            for key in doomed {
                if let Some(value) = m.remove(&key) {
                    removed.entries += 1;
                    removed.bytes += (key.len() + value.len()) as u64;
                }
            }
        });
        Ok(removed)
    }
}
