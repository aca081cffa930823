//! Group commit: checkpoint writes from all node tasks go to one thread, which applies whatever
//! has queued up as one batch and flushes once for every writer that waits for durability.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::store::{StateStore, StoreError, Write};

/// Batches checkpoint writes from all tasks into shared flushes on a dedicated thread.
#[derive(Clone)]
pub(super) struct Checkpointer {
    tx: std::sync::mpsc::Sender<Request>,
}

struct Request {
    writes: Vec<Write>,
    ack: Option<oneshot::Sender<Result<(), Arc<StoreError>>>>,
}

impl Checkpointer {
    pub(super) fn start(store: Arc<dyn StateStore>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("flow-checkpoint".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let durable = batch.iter().any(|r| r.ack.is_some());
                    let mut writes = Vec::new();
                    let mut acks = Vec::new();
                    for req in batch {
                        writes.extend(req.writes);
                        acks.extend(req.ack);
                    }
                    let mut result = store.apply(writes).map_err(Arc::new);
                    if result.is_ok() && durable {
                        result = store.flush().map_err(Arc::new);
                    }
                    for ack in acks {
                        let _ = ack.send(result.clone());
                    }
                }
            })
            .expect("spawn checkpoint thread");
        Checkpointer { tx }
    }

    /// Writes and waits until they are flushed to disk.
    pub(super) async fn durable(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Request {
                writes,
                ack: Some(ack),
            })
            .map_err(|_| StoreError::Io("checkpoint writer stopped".into()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match e.as_ref() {
                StoreError::NotDurable { path, reason } => StoreError::NotDurable {
                    path: path.clone(),
                    reason: reason.clone(),
                },
                other => StoreError::Io(other.to_string()),
            }),
            Err(_) => Err(StoreError::Io("checkpoint writer stopped".into())),
        }
    }

    /// Writes with the next batch, without waiting for durability.
    pub(super) fn lazy(&self, writes: Vec<Write>) {
        let _ = self.tx.send(Request { writes, ack: None });
    }

    pub(super) fn close(self) {}
}
