//! One node's task: load its inputs (from memory, or from the checkpoint of a reused node), run
//! its attempts, then write its output and record in one durable checkpoint.
//!
//! Once the checkpoint is handed over, the output goes to the scheduler ([`Handover`]) so that
//! effect-free dependants can start while it is flushed; the node counts as done (its task
//! ends) only once the checkpoint is durable. A node waits for the checkpoints of its inputs to
//! be durable before it runs unless it is effect-free and has them in memory, and always before
//! a retry (which reads them from the store).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use super::checkpoint::{Checkpointer, Ticket};
use super::context::BaseContext;
use super::scheduler::AttemptLog;
use super::{Event, Shutdown};
use crate::compile::Need;
use crate::data::{self, Output};
use crate::node::{Input, Inputs, Node, NodeKind, RoutedCase};
use crate::store::{NodeEvent, NodeRecord, NodeStatus, Write};
use crate::table_kind::InputPlan;

/// Where a node's input comes from.
pub(super) enum Source {
    Memory(Arc<Output>),
    /// A node reused from an earlier execution: read its checkpoint.
    Stored,
}

pub(super) struct Job {
    pub(super) index: usize,
    pub(super) node_id: String,
    pub(super) kind: NodeKind,
    pub(super) declared_cases: Vec<String>,
    /// Cases whose rows reach no output (see [`crate::compile::CompiledNode`]).
    pub(super) undelivered_cases: Vec<(String, String)>,
    pub(super) routed: Vec<RoutedCase>,
    pub(super) type_name: String,
    pub(super) configured: Result<Arc<dyn Node>, String>,
    /// Per input: the node it comes from, the need (case and role), how it is handed to the
    /// node, and where its output is.
    pub(super) sources: Vec<(String, Need, InputPlan, Source)>,
    /// Checkpoints of inputs (or of what decided them) that may not be durable yet, by node.
    pub(super) after: Vec<(String, Ticket)>,
    /// Whether the node may run before those are durable.
    pub(super) early: bool,
    /// Where the output goes once its checkpoint is handed over.
    pub(super) handover: mpsc::UnboundedSender<Handover>,
    pub(super) retry: crate::compile::RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) labels: Vec<String>,
    pub(super) record: NodeRecord,
    pub(super) run_id: String,
    pub(super) execution: u32,
    pub(super) base: BaseContext,
    pub(super) checkpoints: Checkpointer,
    pub(super) events: Option<mpsc::UnboundedSender<Event>>,
    pub(super) shutdown: watch::Receiver<Shutdown>,
    /// Where this task reports its attempts as they start and end.
    pub(super) attempt_log: AttemptLog,
    /// Runs the attempts in another process when set.
    pub(super) remote: Option<std::sync::Arc<dyn super::Remote>>,
}

/// A succeeded node's output and record whose checkpoint is handed over but maybe not durable.
pub(super) struct Handover {
    pub(super) index: usize,
    pub(super) record: NodeRecord,
    pub(super) output: Arc<Output>,
    pub(super) ticket: Ticket,
}

pub(super) struct TaskResult {
    pub(super) index: usize,
    pub(super) record: NodeRecord,
    pub(super) output: Option<Arc<Output>>,
    /// Why the run cannot go on: the checkpoint was not saved, or a state change was refused.
    pub(super) fatal: Option<String>,
}

impl Job {
    pub(super) fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    pub(super) async fn run(mut self) -> TaskResult {
        // Not part of the node's time: what it waits for is another node's checkpoint.
        let waited = if self.early {
            Ok(())
        } else {
            self.inputs_durable().await
        };
        let started = Instant::now();
        let now = Utc::now();
        self.record.started_at = Some(now);
        self.record.execution = self.execution;
        self.record.error = None;
        self.record.reason = None;
        self.record.warnings.clear();

        let outcome = match waited {
            Ok(()) => self.attempts().await,
            Err(e) => Err(e),
        };
        let duration = started.elapsed();
        self.record.finished_at = Some(Utc::now());
        self.record.duration_ms = Some(duration.as_millis() as u64);
        // An output that cannot be encoded or written is a checkpoint that cannot be saved.
        let (mut output, bytes, error, unsaved) = match outcome {
            Ok(output) => {
                let output = Arc::new(output);
                match self.encode(&output).await {
                    Ok(bytes) => (Some(output), Some(bytes), None, None),
                    Err(e) => (Some(output), None, None, Some(e)),
                }
            }
            Err(e) => (None, None, Some(e), None),
        };
        let mut refused = match (&output, &error) {
            (Some(out), None) => {
                let refused = self.record.apply(NodeEvent::Succeeded).err();
                self.record.rows_out = out.rows();
                self.record.case_rows = out.case_rows();
                self.record.meta = out.meta.clone();
                self.record.warnings = self.undelivered_rows();
                refused
            }
            _ => {
                let error = error.clone().unwrap_or_default();
                self.record.apply(NodeEvent::Failed { error }).err()
            }
        };
        let write = Write::Node {
            run_id: self.run_id.clone(),
            record: self.record.clone(),
            output: bytes,
        };
        // The node's log lands with its final record.
        let writes: Vec<Write> = std::iter::once(write)
            .chain(crate::node_log::take(&self.run_id, &self.node_id))
            .collect();
        let store_error = match unsaved {
            Some(e) => Some(e),
            None => match self.checkpoints.submit(writes) {
                Err(e) => Some(e.to_string()),
                Ok(ticket) => {
                    // The scheduler keeps the output from here on, for as long as it needs it.
                    if refused.is_none()
                        && self.record.status == NodeStatus::Succeeded
                        && let Some(output) = output.take()
                    {
                        let _ = self.handover.send(Handover {
                            index: self.index,
                            record: self.record.clone(),
                            output,
                            ticket: ticket.clone(),
                        });
                    }
                    ticket.wait().await.err().map(|e| e.to_string())
                }
            },
        };
        let output = match &store_error {
            // Not durable, so not done: the node counts as failed and the run stops.
            Some(e) => {
                let error = format!("cannot save the checkpoint: {e}");
                if let Err(e) = self.record.apply(NodeEvent::CheckpointFailed { error }) {
                    refused.get_or_insert(e);
                }
                None
            }
            None => output,
        };
        let status = self.record.status;
        if status == NodeStatus::Succeeded {
            for message in &self.record.warnings {
                self.emit(Event::Warning {
                    node: self.node_id.clone(),
                    message: message.clone(),
                });
            }
        }
        self.emit(Event::Finished {
            node: self.node_id.clone(),
            status,
            duration,
            rows_out: self.record.rows_out,
            error: self.record.error.clone(),
        });
        TaskResult {
            index: self.index,
            record: self.record,
            output,
            fatal: store_error.or_else(|| refused.map(|e| e.to_string())),
        }
    }

    /// The output encoded for its checkpoint by the store, which may write a large one to a file
    /// as it is encoded: that one off the async threads, as it takes a while and syncs a file.
    async fn encode(&self, output: &Arc<Output>) -> Result<Vec<u8>, String> {
        // A small output takes microseconds: handing it to another thread would cost more.
        if data::size_hint(output) < crate::store::OUTPUT_FILE_THRESHOLD {
            return self
                .base
                .store
                .encode_output(&self.run_id, &self.node_id, output)
                .map_err(|e| e.to_string());
        }
        let (store, output) = (self.base.store.clone(), output.clone());
        let (run_id, node_id) = (self.run_id.clone(), self.node_id.clone());
        tokio::task::spawn_blocking(move || store.encode_output(&run_id, &node_id, &output))
            .await
            .map_err(|e| format!("encoding the output stopped: {e}"))?
            .map_err(|e| e.to_string())
    }

    /// Warnings for rows this decision routed to cases that reach no output.
    fn undelivered_rows(&self) -> Vec<String> {
        let Some(rows) = &self.record.case_rows else {
            return Vec::new();
        };
        self.undelivered_cases
            .iter()
            .filter_map(|(case, why)| {
                let n = rows.get(case).copied().unwrap_or(0);
                (n > 0).then(|| {
                    format!(
                        "{n} row{} routed to case `{case}`, which {why}: they are not delivered",
                        if n == 1 { "" } else { "s" }
                    )
                })
            })
            .collect()
    }

    /// Waits until the checkpoints this node's inputs depend on are durable.
    pub(super) async fn inputs_durable(&mut self) -> Result<(), String> {
        for (from, ticket) in std::mem::take(&mut self.after) {
            ticket.wait().await.map_err(|e| {
                format!(
                    "not run: the checkpoint of `{from}`, which it depends on, was not saved: {e}"
                )
            })?;
        }
        Ok(())
    }

    pub(super) async fn load_inputs(&self) -> Result<Inputs, String> {
        let mut inputs = Vec::with_capacity(self.sources.len());
        for (from, need, plan, source) in &self.sources {
            let output = match source {
                Source::Memory(out) => out.clone(),
                Source::Stored => {
                    let store = self.base.store.clone();
                    let (run_id, node_id) = (self.run_id.clone(), from.clone());
                    let (case, columns) = (need.case.clone(), plan.columns.clone());
                    let loaded = tokio::task::spawn_blocking(move || {
                        let bytes = store
                            .output(&run_id, &node_id)
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| "no checkpointed output".to_string())?;
                        data::decode_for(&bytes, case.as_deref(), columns.as_deref())
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                    Arc::new(
                        loaded.map_err(|e| format!("cannot load the output of `{from}`: {e}"))?,
                    )
                }
            };
            let input = Input {
                from: from.clone(),
                case: need.case.clone(),
                role: need.role.clone(),
                data: output.select(need.case.as_deref()),
                meta: output.meta.clone(),
            };
            inputs.push(plan.receive(input)?);
        }
        Ok(Inputs(inputs))
    }
}
