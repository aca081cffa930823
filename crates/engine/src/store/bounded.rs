//! A state store whose writes end within a deadline.
//!
//! sled waits forever when its log cannot be written (on a full disk its flush never returns), so
//! a run would hang instead of failing. Here every write runs on a worker thread and is waited for
//! at most the deadline. A write that fails with an I/O error or does not end breaks the store for
//! this process: every later write fails at once with the same reason, and the store is never
//! closed (closing flushes, which would block again). Nothing durable is lost: the next open
//! recovers the store as after a crash.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Removal, Removed, StateStore, StoreError, Write};

/// How long a checkpoint may take to become durable unless `FLOW_CHECKPOINT_TIMEOUT` says.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Environment variable overriding [`DEFAULT_DEADLINE`] (`90s`, `2m`, or plain seconds).
pub const DEADLINE_ENV: &str = "FLOW_CHECKPOINT_TIMEOUT";

type Job = Box<dyn FnOnce() + Send>;

/// Wraps a store so that writes (apply, flush, remove) fail within a deadline.
pub struct BoundedStore {
    inner: Arc<dyn StateStore>,
    deadline: Duration,
    worker: mpsc::Sender<Job>,
    /// Why writes fail from now on, once one failed or stalled.
    broken: Mutex<Option<String>>,
}

impl BoundedStore {
    /// Wraps `inner` with the deadline from `FLOW_CHECKPOINT_TIMEOUT` (default 60 s).
    pub fn new(inner: Arc<dyn StateStore>) -> Result<Self, StoreError> {
        Ok(Self::with_deadline(inner, deadline_from_env()?))
    }

    pub fn with_deadline(inner: Arc<dyn StateStore>, deadline: Duration) -> Self {
        let (worker, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("flow-store-writer".into())
            .spawn(move || {
                while let Ok(job) = jobs.recv() {
                    job();
                }
            })
            .expect("spawn store writer thread");
        BoundedStore {
            inner,
            deadline,
            worker,
            broken: Mutex::new(None),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.inner.location())
    }

    fn broken_error(&self, reason: String) -> StoreError {
        StoreError::NotDurable {
            path: self.path(),
            reason,
        }
    }

    fn mark_broken(&self, reason: &str) {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        broken.get_or_insert_with(|| reason.to_string());
    }

    /// Runs a write on the worker, waiting at most the deadline.
    fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn StateStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.still_writable()?;
        let (done, result) = mpsc::sync_channel(1);
        let inner = self.inner.clone();
        let job: Job = Box::new(move || {
            stall_for_tests();
            let _ = done.send(op(inner.as_ref()));
        });
        if self.worker.send(job).is_err() {
            let reason = "the store's writer thread stopped".to_string();
            self.mark_broken(&reason);
            return Err(self.broken_error(reason));
        }
        self.wait(&result)
    }

    /// Fails at once when an earlier write failed or stalled.
    fn still_writable(&self) -> Result<(), StoreError> {
        match self
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(reason) => Err(self.broken_error(format!("an earlier write failed: {reason}"))),
            None => Ok(()),
        }
    }

    /// The result of a write, waited for at most the deadline.
    fn wait<T>(&self, result: &mpsc::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        match result.recv_timeout(self.deadline) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(StoreError::Io(reason))) => {
                self.mark_broken(&reason);
                Err(self.broken_error(reason))
            }
            Ok(Err(other)) => Err(other),
            Err(RecvTimeoutError::Timeout) => {
                let reason = format!(
                    "the write did not finish within {} ({DEADLINE_ENV}); {}",
                    humantime::format_duration(self.deadline),
                    super::full_disk::space_check(&self.path())
                );
                self.mark_broken(&reason);
                Err(self.broken_error(reason))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let reason = "the write panicked".to_string();
                self.mark_broken(&reason);
                Err(self.broken_error(reason))
            }
        }
    }
}

impl Drop for BoundedStore {
    fn drop(&mut self) {
        if self
            .broken
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            // Closing the store flushes it, which blocks forever when the disk cannot take the
            // write: leave it open for the process's exit, like a crash the next open recovers.
            std::mem::forget(self.inner.clone());
        }
    }
}

/// The deadline `FLOW_CHECKPOINT_TIMEOUT` asks for, or the default.
pub fn deadline_from_env() -> Result<Duration, StoreError> {
    let Ok(value) = std::env::var(DEADLINE_ENV) else {
        return Ok(DEFAULT_DEADLINE);
    };
    parse_deadline(&value).ok_or_else(|| {
        StoreError::Io(format!(
            "{DEADLINE_ENV}={value:?} is not a duration (write e.g. `60s`, `2m` or `90`)"
        ))
    })
}

fn parse_deadline(value: &str) -> Option<Duration> {
    let value = value.trim();
    let deadline = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(value).ok()?,
    };
    (!deadline.is_zero()).then_some(deadline)
}

/// Debug builds only: `FLOW_FAULT_STALL_WRITES=1` makes every write hang, as on a disk that
/// never answers, so tests can check what happens then.
fn stall_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("FLOW_FAULT_STALL_WRITES").is_some_and(|v| v == "1") {
        loop {
            std::thread::park();
        }
    }
}

impl StateStore for BoundedStore {
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write(move |store| store.apply(writes))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.write(|store| store.flush())
    }

    fn apply_durable(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write(move |store| store.apply_durable(writes))
    }

    fn encode_output(
        &self,
        run_id: &str,
        node_id: &str,
        output: &crate::data::Output,
    ) -> Result<Vec<u8>, StoreError> {
        // A small output is encoded in memory: no I/O to bound.
        if crate::data::size_hint(output) < super::OUTPUT_FILE_THRESHOLD {
            return super::encode_in_memory(output);
        }
        // The inner store may write a large one to a file as it encodes it (no copy of the
        // encoding in memory, the write beside the encoding): within the deadline, on a thread
        // of its own so that other nodes' writes do not queue behind the encoding.
        self.still_writable()?;
        let (done, result) = mpsc::sync_channel(1);
        let (inner, output) = (self.inner.clone(), output.clone());
        let (run_id, node_id) = (run_id.to_string(), node_id.to_string());
        std::thread::Builder::new()
            .name("flow-checkpoint-file".into())
            .spawn(move || {
                stall_for_tests();
                let _ = done.send(inner.encode_output(&run_id, &node_id, &output));
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint's writer: {e}")))?;
        self.wait(&result)
    }
    crate::store::delegate_reads!(inner);

    fn location(&self) -> String {
        self.inner.location()
    }

    fn histories(&self) -> Option<std::sync::Arc<dyn crate::sync::Places>> {
        self.inner.histories()
    }

    fn live_runs(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        self.inner.live_runs()
    }

    fn stored_bytes(&self) -> Option<u64> {
        self.inner.stored_bytes()
    }

    fn lead_schedules(&self) -> Result<bool, StoreError> {
        self.inner.lead_schedules()
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    fn remove(&self, removal: &Removal) -> Result<Removed, StoreError> {
        let removal = removal.clone();
        self.write(move |store| store.remove(&removal))
    }
}

#[cfg(test)]
#[path = "bounded_tests.rs"]
mod tests;
