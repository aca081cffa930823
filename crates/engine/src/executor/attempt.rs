//! A node's attempts: retries with their delays, each attempt in a task of its own under the
//! node's timeout and the stop signal, and the check of what the node produced.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::context::StoreNodeState;
use super::job::{Job, Source};
use super::remote::{NodeTask, Remote, RemoteEnd, TaskInput};
use super::{Event, Shutdown};
use crate::data::{Body, Output};
use crate::node::{Inputs, Node, NodeContext, NodeKind};
use crate::store::{AttemptOutcome, NodeEvent, Write};

/// Aborts the attempt task when the node task is dropped (cancelled).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum AttemptEnd {
    Ok(Output),
    Failed(String),
    TimedOut(Duration),
    Stopped,
}

impl Job {
    /// Runs attempts until one succeeds, the policy gives up, or a stop is requested.
    pub(super) async fn attempts(&mut self) -> Result<Output, String> {
        let node = match &self.configured {
            Ok(node) => node.clone(),
            Err(e) => return Err(format!("invalid parameters: {e}")),
        };
        let inputs = self.load_inputs().await?;
        self.record.rows_in = inputs.rows();
        // The first attempt is given the only copy of the inputs held in memory, so the node can
        // free an input it is done with; a retry reads them again from their checkpoints.
        for source in &mut self.sources {
            source.3 = Source::Stored;
        }
        let mut first = Some(inputs);
        let mut attempt_in_execution = 0;
        loop {
            let inputs = match first.take() {
                Some(inputs) => inputs,
                // A worker reads its inputs itself.
                None if self.remote.is_some() => Inputs::default(),
                None => {
                    self.inputs_durable().await?;
                    self.load_inputs().await?
                }
            };
            attempt_in_execution += 1;
            self.record
                .apply(NodeEvent::AttemptStarted {
                    execution: self.execution,
                    at: Utc::now(),
                })
                .map_err(|e| e.to_string())?;
            let number = self.record.attempts.len() as u32;
            self.report_attempts();
            self.checkpoints.lazy(vec![Write::Node {
                run_id: self.run_id.clone(),
                record: self.record.clone(),
                output: None,
            }]);
            self.emit(Event::Started {
                node: self.node_id.clone(),
                attempt: number,
            });

            let run_cache = self.base.run_cache.for_node();
            let ctx = NodeContext {
                run_id: self.base.run_id.clone(),
                node_id: self.node_id.clone(),
                attempt: number,
                workflow_dir: self.base.workflow_dir.clone(),
                workflow_path: self.base.workflow_path.clone(),
                params: self.base.params.clone(),
                trigger: self.base.trigger.clone(),
                effects: self.base.effects.clone(),
                state: Arc::new(StoreNodeState {
                    store: self.base.store.clone(),
                    namespace: format!("node-state/{}", self.type_name),
                }),
                routed: self.routed.clone(),
                run_cache: run_cache.clone(),
                histories: self.base.store.histories(),
            };
            let end = match self.one_attempt(node.clone(), ctx, inputs).await {
                AttemptEnd::Ok(output) => match self.check_output(&output) {
                    Ok(()) => AttemptEnd::Ok(run_cache.annotate(output)),
                    Err(e) => AttemptEnd::Failed(e),
                },
                other => other,
            };
            let (outcome, error, output) = match end {
                AttemptEnd::Ok(output) => (AttemptOutcome::Succeeded, None, Some(output)),
                AttemptEnd::Failed(e) => (AttemptOutcome::Failed, Some(e), None),
                AttemptEnd::TimedOut(limit) => (
                    AttemptOutcome::TimedOut,
                    Some(format!(
                        "timed out after {}",
                        humantime::format_duration(limit)
                    )),
                    None,
                ),
                AttemptEnd::Stopped => (
                    AttemptOutcome::Interrupted,
                    Some("cancelled by shutdown".to_string()),
                    None,
                ),
            };
            self.record
                .apply(NodeEvent::AttemptEnded {
                    outcome,
                    at: Utc::now(),
                    error: error.clone(),
                })
                .map_err(|e| e.to_string())?;
            if let Some(output) = output {
                return Ok(output);
            }
            let error = error.unwrap_or_default();
            if outcome == AttemptOutcome::Interrupted {
                return Err(error);
            }
            self.report_attempts();
            if attempt_in_execution >= self.retry.max_attempts {
                return Err(if self.retry.max_attempts > 1 {
                    format!("{error} (after {attempt_in_execution} attempts)")
                } else {
                    error
                });
            }
            let delay = self.retry.delay_after(attempt_in_execution);
            self.emit(Event::Retrying {
                node: self.node_id.clone(),
                attempt: number,
                delay,
                error: error.clone(),
            });
            // Whoever receives the events shows the retry; without them the log is the place.
            if self.events.is_none() {
                tracing::warn!(node = %self.node_id, attempt = number, ?delay, %error, "attempt failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = reached(self.shutdown.clone(), Shutdown::Drain) => {
                    return Err(format!("{error} (retries stopped by shutdown)"));
                }
            }
        }
    }

    fn report_attempts(&self) {
        let mut log = self.attempt_log.lock().unwrap_or_else(|e| e.into_inner());
        log.clone_from(&self.record.attempts);
    }

    async fn one_attempt(
        &self,
        node: Arc<dyn Node>,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> AttemptEnd {
        if let Some(remote) = &self.remote {
            return self.remote_attempt(remote.as_ref(), ctx.attempt).await;
        }
        // Whatever the node logs is attributed to it. A `warn` span: enabled whenever warnings are.
        let span = tracing::warn_span!("node", run = %self.run_id, node = %self.node_id);
        let mut handle = AbortOnDrop(tokio::spawn(tracing::Instrument::instrument(
            async move { node.run(ctx, inputs).await },
            span,
        )));
        let guarded = async {
            tokio::select! {
                joined = &mut handle.0 => joined_to_end(joined),
                _ = reached(self.shutdown.clone(), Shutdown::Cancel) => AttemptEnd::Stopped,
            }
        };
        match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(end) => end,
                Err(_) => AttemptEnd::TimedOut(limit),
            },
            None => guarded.await,
        }
    }

    /// The attempt on a worker, under the node's timeout (running out withdraws the task).
    async fn remote_attempt(&self, remote: &dyn Remote, attempt: u32) -> AttemptEnd {
        let task = NodeTask {
            run_id: self.run_id.clone(),
            node_index: self.index,
            node_id: self.node_id.clone(),
            node_fingerprint: self.record.fingerprint.clone(),
            attempt,
            workflow_path: self.base.workflow_path.clone(),
            inputs: self
                .sources
                .iter()
                .map(|(from, need, _, _)| TaskInput {
                    from: from.clone(),
                    case: need.case.clone(),
                    role: need.role.clone(),
                })
                .collect(),
            routed: self.routed.clone(),
            labels: self.labels.clone(),
        };
        let ended = async {
            match remote.run(task, self.shutdown.clone()).await {
                RemoteEnd::Ok(output) => AttemptEnd::Ok(output),
                RemoteEnd::Failed(e) => AttemptEnd::Failed(e),
                RemoteEnd::Stopped => AttemptEnd::Stopped,
            }
        };
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, ended)
                .await
                .unwrap_or(AttemptEnd::TimedOut(limit)),
            None => ended.await,
        }
    }

    fn check_output(&self, output: &Output) -> Result<(), String> {
        match (&output.body, self.kind) {
            (Body::Cases(cases), NodeKind::Decision) => {
                for (case, _) in cases {
                    if !self.declared_cases.contains(case) {
                        return Err(format!(
                            "produced undeclared case `{case}` (declared: {})",
                            self.declared_cases.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            (Body::Data(_), NodeKind::Decision) => {
                Err("a decision must partition its output into cases".into())
            }
            (Body::Cases(_), _) => Err("only a decision node can produce cases".into()),
            _ => Ok(()),
        }
    }
}

/// Resolves once the stop level reaches `level`; never, if the sender is gone.
async fn reached(mut shutdown: watch::Receiver<Shutdown>, level: Shutdown) {
    if shutdown.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn joined_to_end(
    joined: Result<Result<Output, crate::node::NodeError>, tokio::task::JoinError>,
) -> AttemptEnd {
    match joined {
        Ok(Ok(output)) => AttemptEnd::Ok(output),
        Ok(Err(e)) => AttemptEnd::Failed(e.to_string()),
        Err(e) if e.is_panic() => {
            AttemptEnd::Failed(format!("panicked: {}", panic_text(e.into_panic())))
        }
        Err(_) => AttemptEnd::Stopped,
    }
}

pub(super) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
