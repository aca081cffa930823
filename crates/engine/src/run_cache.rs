//! A cache that lives for one execution of a run, so nodes that need the same intermediate
//! result (say, an index over the same input tables) compute it once and share it.
//!
//! The executor makes one [`RunCache`] per execution and hands it to every node as
//! [`NodeContext::run_cache`](crate::node::NodeContext::run_cache); it is dropped when the
//! execution ends, so two runs, or two executions of one run, never share a value. The node
//! chooses the key, and it must name everything the value depends on within the run: the inputs
//! it was computed from (their `needs` names identify their data within a run) and the
//! parameters it used. Values stay until the execution ends.
//!
//! Each node's lookups are counted and recorded in its output metadata as
//! `run_cache: {hits, misses}`, which `flow runs show` prints.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::data::Output;

/// The output metadata key under which a node's lookups are recorded.
pub const META_KEY: &str = "run_cache";

/// The values of one execution of a run, shared by its nodes; each handle counts its own
/// lookups. Clones share both the values and the counts.
#[derive(Clone, Default)]
pub struct RunCache {
    entries: Arc<Mutex<Vec<Entry>>>,
    counts: Arc<Counts>,
}

/// A key and the slot its value is (being) computed into.
struct Entry {
    key: Box<dyn Any + Send + Sync>,
    /// An `Arc<OnceLock<Arc<V>>>` for the value's type `V`.
    slot: Arc<dyn Any + Send + Sync>,
    /// The nodes whose outputs the value was computed from: once every node reading one of
    /// them has ended, nobody can ask for the value again.
    from: Vec<String>,
}

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The lookups made through one handle: a miss computed the value, a hit found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl RunCache {
    /// An empty cache, as one execution starts with.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle on the same values with its own counts (one per node attempt).
    pub(crate) fn for_node(&self) -> Self {
        RunCache {
            entries: self.entries.clone(),
            counts: Arc::default(),
        }
    }

    /// The value stored under `key`, else `compute()`'s, stored for the rest of the execution.
    /// Values are told apart by key and type. A caller asking for a value another is computing
    /// waits for it, so `compute` runs once per key: call this from blocking code (such as
    /// [`crate::node::spawn_compute`]) when `compute` is slow. A failure that other nodes
    /// should see too is cached as part of the value (`V = Result<T, String>`).
    pub fn get_or_compute<K, V>(&self, key: K, compute: impl FnOnce() -> V) -> Arc<V>
    where
        K: PartialEq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.get_or_compute_from(&[] as &[&str], key, compute)
    }

    /// [`Self::get_or_compute`] for a value computed from the caller's inputs named `inputs`
    /// ([`crate::node::Input::name`]): only a node that reads them can ask for it, so the cache
    /// lets go of it once every node reading one of them has ended (nodes still holding the
    /// value keep it until they drop it). A large index over the run's transactions is then
    /// freed when the nodes that share it are done, not when the run ends.
    pub fn get_or_compute_from<K, V>(
        &self,
        inputs: &[impl AsRef<str>],
        key: K,
        compute: impl FnOnce() -> V,
    ) -> Arc<V>
    where
        K: PartialEq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let found = entries.iter().find_map(|e| {
                if e.key.downcast_ref::<K>() != Some(&key) {
                    return None;
                }
                e.slot.clone().downcast::<OnceLock<Arc<V>>>().ok()
            });
            match found {
                Some(slot) => slot,
                None => {
                    let slot: Arc<OnceLock<Arc<V>>> = Arc::default();
                    entries.push(Entry {
                        key: Box::new(key),
                        slot: slot.clone(),
                        // `classify.vip` is read from node `classify`.
                        from: inputs
                            .iter()
                            .map(|i| i.as_ref().split('.').next().unwrap_or_default().to_string())
                            .filter(|node| !node.is_empty())
                            .collect(),
                    });
                    slot
                }
            }
        };
        // Computed outside the lock, so other keys are not held up.
        let mut computed = false;
        let value = slot
            .get_or_init(|| {
                computed = true;
                Arc::new(compute())
            })
            .clone();
        let count = if computed {
            &self.counts.misses
        } else {
            &self.counts.hits
        };
        count.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// Every node that reads the output of node `node` has ended: values computed from it go.
    pub(crate) fn release_from(&self, node: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| !e.from.iter().any(|f| f == node));
    }

    /// The lookups made through this handle so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counts.hits.load(Ordering::Relaxed),
            misses: self.counts.misses.load(Ordering::Relaxed),
        }
    }

    /// `output` with this handle's lookups under [`META_KEY`], when it made any.
    pub(crate) fn annotate(&self, output: Output) -> Output {
        let stats = self.stats();
        if stats == CacheStats::default() {
            return output;
        }
        output.with_meta(
            META_KEY,
            serde_json::json!({"hits": stats.hits, "misses": stats.misses}),
        )
    }
}

#[cfg(test)]
#[path = "run_cache_tests.rs"]
mod tests;
