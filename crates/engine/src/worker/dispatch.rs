//! The executor's side of the task queue: queue an attempt, wait for its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::data;
use crate::executor::{NodeTask, Remote, RemoteEnd, Shutdown};
use crate::store::{PgStore, TaskState};

/// Runs node attempts on `flow worker` processes sharing the PostgreSQL store.
pub struct PgRemote {
    store: Arc<PgStore>,
    /// Wakes the waiting attempts when a task ends; `poll` is the fallback.
    ended: crate::store::Listener,
    poll: Duration,
}

impl PgRemote {
    pub fn new(store: Arc<PgStore>) -> Self {
        PgRemote {
            ended: store.listen(crate::store::TASKS_ENDED),
            store,
            poll: Duration::from_millis(500),
        }
    }
}

/// Withdraws the task if the attempt is dropped before its outcome was read (a timeout).
struct Withdraw<'a> {
    store: &'a PgStore,
    id: i64,
    armed: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.store.cancel_task(self.id);
            let _ = self.store.remove_task(self.id);
        }
    }
}

/// How long an attempt may wait unclaimed before the log says no worker is taking work.
const UNCLAIMED_WARNING: Duration = Duration::from_secs(30);

#[async_trait::async_trait]
impl Remote for PgRemote {
    async fn run(&self, task: NodeTask, mut shutdown: watch::Receiver<Shutdown>) -> RemoteEnd {
        let spec = match serde_json::to_vec(&task) {
            Ok(spec) => spec,
            Err(e) => return RemoteEnd::Failed(format!("cannot queue the attempt: {e}")),
        };
        let id = match self
            .store
            .submit_task(&task.run_id, &task.node_id, spec, &task.labels)
        {
            Ok(id) => id,
            Err(e) => return RemoteEnd::Failed(format!("cannot queue the attempt: {e}")),
        };
        let mut guard = Withdraw {
            store: &self.store,
            id,
            armed: true,
        };
        let queued = Instant::now();
        let mut warned = false;
        let mut ended = self.ended.subscribe();
        let mut listening = true;
        loop {
            match self.store.task_state(id) {
                Ok(TaskState::Pending { worker }) => {
                    if worker.is_none() && !warned && queued.elapsed() > UNCLAIMED_WARNING {
                        let labels = match task.labels.is_empty() {
                            true => String::new(),
                            false => format!(" with the labels {}", task.labels.join(", ")),
                        };
                        tracing::warn!(
                            node = %task.node_id,
                            "no flow worker{labels} has taken this node for {}s; is one running against this store?",
                            UNCLAIMED_WARNING.as_secs()
                        );
                        warned = true;
                    }
                }
                Ok(TaskState::Done(bytes)) => {
                    guard.armed = false;
                    let _ = self.store.remove_task(id);
                    return match data::decode(&bytes) {
                        Ok(output) => RemoteEnd::Ok(output),
                        Err(e) => {
                            RemoteEnd::Failed(format!("the worker's output cannot be read: {e}"))
                        }
                    };
                }
                Ok(TaskState::Failed(error)) => {
                    guard.armed = false;
                    let _ = self.store.remove_task(id);
                    return RemoteEnd::Failed(error);
                }
                Ok(TaskState::Gone) => {
                    guard.armed = false;
                    return RemoteEnd::Failed("the queued attempt was withdrawn".into());
                }
                Err(e) => {
                    return RemoteEnd::Failed(format!("cannot read the attempt's state: {e}"));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                woke = ended.changed(), if listening => listening = woke.is_ok(),
                _ = shutdown.wait_for(|s| *s == Shutdown::Cancel) => return RemoteEnd::Stopped,
            }
        }
    }
}
