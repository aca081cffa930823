//! Nodes handed to `flow worker` processes: a queue in `flow_tasks`.
//!
//! A task is `ready` until a worker claims it (`FOR UPDATE SKIP LOCKED`, so no task goes to two
//! workers at once) under a lease that the worker renews. A lease that runs out (the worker died
//! or lost the database) lets another worker claim the task again; every claim raises its
//! `claim` count, and renewing or finishing needs the count the worker got, so a worker that
//! lost its claim can neither renew it nor report a result. The process that submitted the task
//! reads its outcome and removes it.
//!
//! A queued or handed-back task is announced on the channel [`READY`], an ended one on
//! [`ENDED`], so listeners need not poll fast.

use std::time::Duration;

use super::PgStore;
use crate::store::StoreError;

/// A task a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub id: i64,
    pub claim: i64,
    pub spec: Vec<u8>,
}

/// Where a submitted task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a worker, or running on one.
    Pending {
        worker: Option<String>,
    },
    Done(Vec<u8>),
    Failed(String),
    /// Cancelled by its submitter, or gone.
    Gone,
}

/// Notification channel: a task can be claimed.
pub const READY: &str = "flow_tasks_ready";
/// Notification channel: a task ended (done or failed).
pub const ENDED: &str = "flow_tasks_ended";

impl PgStore {
    /// Queues a task that only workers with all of `labels` may claim; its id.
    pub fn submit_task(
        &self,
        run_id: &str,
        node_id: &str,
        spec: Vec<u8>,
        labels: &[String],
    ) -> Result<i64, StoreError> {
        let (run_id, node_id) = (run_id.to_string(), node_id.to_string());
        let labels = labels.to_vec();
        self.call(move |c| {
            Ok(c.query_one(
                "WITH queued AS (
                     INSERT INTO flow_tasks (run_id, node_id, spec, labels, state)
                     VALUES ($1, $2, $3, $4, 'ready') RETURNING id)
                 SELECT id, pg_notify($5, '') FROM queued",
                &[&run_id, &node_id, &spec, &labels, &READY],
            )?
            .get(0))
        })
    }

    /// Claims the oldest task that is ready or whose lease ran out, and whose labels are all
    /// among the worker's, for `lease`.
    pub fn claim_task(
        &self,
        worker: &str,
        labels: &[String],
        lease: Duration,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let (worker, labels) = (worker.to_string(), labels.to_vec());
        let secs = lease.as_secs_f64();
        self.call(move |c| {
            Ok(c.query_opt(
                "UPDATE flow_tasks t
                 SET state = 'claimed', worker = $1, claim = t.claim + 1,
                     lease_until = now() + make_interval(secs => $2)
                 WHERE t.id = (
                     SELECT id FROM flow_tasks
                     WHERE (state = 'ready' OR (state = 'claimed' AND lease_until < now()))
                       AND labels <@ $3::text[]
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING t.id, t.claim, t.spec",
                &[&worker, &secs, &labels],
            )?
            .map(|r| ClaimedTask {
                id: r.get(0),
                claim: r.get(1),
                spec: r.get(2),
            }))
        })
    }

    /// Extends a claim; false when the claim is no longer this worker's (its lease ran out and
    /// another worker claimed the task, or the submitter cancelled it).
    pub fn renew_task(&self, task: &ClaimedTask, lease: Duration) -> Result<bool, StoreError> {
        let (id, claim, secs) = (task.id, task.claim, lease.as_secs_f64());
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE flow_tasks SET lease_until = now() + make_interval(secs => $3)
                 WHERE id = $1 AND claim = $2 AND state = 'claimed'",
                &[&id, &claim, &secs],
            )? == 1)
        })
    }

    /// Reports a claimed task's result; false when the claim was no longer this worker's (the
    /// result is dropped: another worker runs the task).
    pub fn finish_task(
        &self,
        task: &ClaimedTask,
        result: Result<Vec<u8>, String>,
    ) -> Result<bool, StoreError> {
        let (id, claim) = (task.id, task.claim);
        let (state, bytes, error) = match result {
            Ok(bytes) => ("done", Some(bytes), None),
            Err(e) => ("failed", None, Some(e)),
        };
        self.call(move |c| {
            Ok(c
                .query(
                    "WITH ended AS (
                         UPDATE flow_tasks SET state = $3, result = $4, error = $5, lease_until = NULL
                         WHERE id = $1 AND claim = $2 AND state = 'claimed' RETURNING id)
                     SELECT id, pg_notify($6, id::text) FROM ended",
                    &[&id, &claim, &state, &bytes, &error, &ENDED],
                )?
                .len()
                == 1)
        })
    }

    /// Hands a claimed task back to the queue (a worker stopping before it finished).
    pub fn release_task(&self, task: &ClaimedTask) -> Result<(), StoreError> {
        let (id, claim) = (task.id, task.claim);
        self.call(move |c| {
            c.query(
                "WITH released AS (
                     UPDATE flow_tasks SET state = 'ready', worker = NULL, lease_until = NULL
                     WHERE id = $1 AND claim = $2 AND state = 'claimed' RETURNING id)
                 SELECT id, pg_notify($3, '') FROM released",
                &[&id, &claim, &READY],
            )
            .map(|_| ())
        })
    }

    pub fn task_state(&self, id: i64) -> Result<TaskState, StoreError> {
        self.call(move |c| {
            let Some(row) = c.query_opt(
                "SELECT state, worker, result, error FROM flow_tasks WHERE id = $1",
                &[&id],
            )?
            else {
                return Ok(TaskState::Gone);
            };
            let state: String = row.get(0);
            Ok(match state.as_str() {
                "done" => TaskState::Done(row.get::<_, Option<Vec<u8>>>(2).unwrap_or_default()),
                "failed" => TaskState::Failed(row.get::<_, Option<String>>(3).unwrap_or_default()),
                "cancelled" => TaskState::Gone,
                _ => TaskState::Pending { worker: row.get(1) },
            })
        })
    }

    /// Cancels a task that has not finished (a worker running it stops at its next renewal).
    pub fn cancel_task(&self, id: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE flow_tasks SET state = 'cancelled' WHERE id = $1 AND state IN ('ready', 'claimed')",
                &[&id],
            )
            .map(|_| ())
        })
    }

    /// Removes a task once its submitter has its outcome.
    pub fn remove_task(&self, id: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM flow_tasks WHERE id = $1", &[&id])
                .map(|_| ())
        })
    }
}
