//! Group commit: checkpoint writes from all node tasks go to one thread, which applies whatever
//! has queued up as one batch and flushes once for every writer that waits for durability.
//!
//! Writes that need not be durable (a node's record when an attempt starts) wait up to
//! [`LAZY_WAIT`] for a durable batch to join, and are otherwise applied without a flush: a
//! short node's start and end then cost one store batch and one flush, not two of each.
//!
//! Writes reach the store in the order they were handed over, and once a batch fails no later
//! one is applied: a write that is durable implies every write handed over before it is too.
//! The executor relies on that to let a dependant start before its input's checkpoint is durable
//! (its own checkpoint, handed over later, cannot become durable first).

use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::{StateStore, StoreError, Write};

/// How long writes that need not be durable wait for a durable batch to join.
const LAZY_WAIT: Duration = Duration::from_millis(50);

/// A checkpoint's fate: `None` until its batch is flushed or failed.
type Outcome = Option<Result<(), Arc<StoreError>>>;

/// Batches checkpoint writes from all tasks into shared flushes on a dedicated thread.
#[derive(Clone)]
pub(super) struct Checkpointer {
    tx: std::sync::mpsc::Sender<Request>,
}

/// Resolves once a checkpoint handed over with [`Checkpointer::submit`] is durable (or failed);
/// clones wait for the same checkpoint.
#[derive(Clone)]
pub(super) struct Ticket(watch::Receiver<Outcome>);

impl Ticket {
    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        let mut rx = self.0.clone();
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(match e.as_ref() {
                StoreError::NotDurable { path, reason } => StoreError::NotDurable {
                    path: path.clone(),
                    reason: reason.clone(),
                },
                other => StoreError::Io(other.to_string()),
            }),
            None => Err(StoreError::Io("checkpoint writer stopped".into())),
        }
    }
}

struct Request {
    writes: Vec<Write>,
    ack: Option<watch::Sender<Outcome>>,
}

impl Checkpointer {
    pub(super) fn start(store: Arc<dyn StateStore>) -> Self {
        Self::with_lazy_wait(store, LAZY_WAIT)
    }

    fn with_lazy_wait(store: Arc<dyn StateStore>, lazy_wait: Duration) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("flow-checkpoint".into())
            .spawn(move || {
                // The first failure: no later batch may land after a batch that did not.
                let mut failed: Option<Arc<StoreError>> = None;
                while let Ok(first) = rx.recv() {
                    let mut durable = first.ack.is_some();
                    let mut batch = vec![first];
                    let deadline = Instant::now() + lazy_wait;
                    while !durable && failed.is_none() {
                        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                            Ok(more) => {
                                durable = more.ack.is_some();
                                batch.push(more);
                            }
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                                break;
                            }
                        }
                    }
                    while let Ok(more) = rx.try_recv() {
                        durable |= more.ack.is_some();
                        batch.push(more);
                    }
                    let mut writes = Vec::new();
                    let mut acks = Vec::new();
                    for req in batch {
                        writes.extend(req.writes);
                        acks.extend(req.ack);
                    }
                    let result = match &failed {
                        Some(e) => Err(e.clone()),
                        None if durable => store.apply_durable(writes).map_err(Arc::new),
                        None => store.apply(writes).map_err(Arc::new),
                    };
                    if let Err(e) = &result {
                        failed.get_or_insert_with(|| e.clone());
                    }
                    for ack in acks {
                        ack.send_replace(Some(result.clone()));
                    }
                }
            })
            .expect("spawn checkpoint thread");
        Checkpointer { tx }
    }

    /// Hands writes over to be flushed; the ticket tells when they are durable.
    pub(super) fn submit(&self, writes: Vec<Write>) -> Result<Ticket, StoreError> {
        let (ack, done) = watch::channel(None);
        self.tx
            .send(Request {
                writes,
                ack: Some(ack),
            })
            .map_err(|_| StoreError::Io("checkpoint writer stopped".into()))?;
        Ok(Ticket(done))
    }

    /// Writes and waits until they are flushed to disk.
    pub(super) async fn durable(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.submit(writes)?.wait().await
    }

    /// Writes with the next batch, without waiting for durability.
    pub(super) fn lazy(&self, writes: Vec<Write>) {
        let _ = self.tx.send(Request { writes, ack: None });
    }

    pub(super) fn close(self) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::{MemoryStore, NodeRecord};

    /// Counts the batches and flushes that reach a memory store.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        batches: Mutex<Vec<usize>>,
        flushes: Mutex<usize>,
        /// Fails the next apply.
        fail_next: Mutex<bool>,
    }

    impl StateStore for Counting {
        fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
            if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
                return Err(StoreError::Io("failed on purpose".into()));
            }
            self.batches.lock().unwrap().push(writes.len());
            self.inner.apply(writes)
        }
        fn flush(&self) -> Result<(), StoreError> {
            *self.flushes.lock().unwrap() += 1;
            self.inner.flush()
        }
        crate::store::delegate_reads!(inner);
        fn location(&self) -> String {
            self.inner.location()
        }
        fn remove(
            &self,
            removal: &crate::store::Removal,
        ) -> Result<crate::store::Removed, StoreError> {
            self.inner.remove(removal)
        }
    }

    fn record(node: &str) -> Write {
        Write::Node {
            run_id: "r".into(),
            record: NodeRecord::new(node),
            output: None,
        }
    }

    #[tokio::test]
    async fn a_write_that_need_not_be_durable_joins_the_next_durable_batch() {
        let store = Arc::new(Counting::default());
        let checkpoints = Checkpointer::with_lazy_wait(store.clone(), Duration::from_secs(60));
        checkpoints.lazy(vec![record("a")]);
        checkpoints.durable(vec![record("b")]).await.unwrap();
        assert_eq!(*store.batches.lock().unwrap(), vec![2]);
        assert_eq!(*store.flushes.lock().unwrap(), 1);
        assert_eq!(store.nodes("r").unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_write_that_need_not_be_durable_is_applied_after_the_wait_without_a_flush() {
        let store = Arc::new(Counting::default());
        let checkpoints = Checkpointer::with_lazy_wait(store.clone(), Duration::from_millis(10));
        checkpoints.lazy(vec![record("a")]);
        let waited = Instant::now();
        while store.nodes("r").unwrap().is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(30), "never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*store.batches.lock().unwrap(), vec![1]);
        assert_eq!(*store.flushes.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn after_a_failed_batch_no_later_write_reaches_the_store() {
        let store = Arc::new(Counting::default());
        let checkpoints = Checkpointer::with_lazy_wait(store.clone(), Duration::from_secs(60));
        *store.fail_next.lock().unwrap() = true;
        let first = checkpoints.submit(vec![record("a")]).unwrap();
        assert!(first.wait().await.is_err());
        checkpoints.lazy(vec![record("b")]);
        let later = checkpoints.submit(vec![record("c")]).unwrap();
        assert!(later.wait().await.is_err());
        assert!(store.nodes("r").unwrap().is_empty());
        assert_eq!(*store.flushes.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_ticket_and_its_clones_resolve_when_the_batch_is_durable() {
        let store = Arc::new(Counting::default());
        let checkpoints = Checkpointer::with_lazy_wait(store.clone(), Duration::from_secs(60));
        let ticket = checkpoints.submit(vec![record("a")]).unwrap();
        let clone = ticket.clone();
        ticket.wait().await.unwrap();
        clone.wait().await.unwrap();
        assert_eq!(*store.flushes.lock().unwrap(), 1);
    }
}
