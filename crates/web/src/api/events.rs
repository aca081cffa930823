//! `GET /api/events`: run and node changes as server-sent events, so pages update without
//! polling. Fed by the store's change announcements and the catalog of served workflows; a
//! stream that fell behind says `resync` (clients refetch); every stream ends when the server
//! stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use flow_engine::serve::Catalog;
use flow_engine::store::StoreChange;
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::nodes::shown_node_status;
use super::query;
use super::summary::RunSummary;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A node's change, as `event: node` carries it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeEvent {
    pub run_id: String,
    pub node: NodeChange,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeChange {
    pub id: String,
    pub status: String,
    pub duration_ms: Option<u64>,
    pub rows_out: u64,
    pub error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

struct Listener {
    state: AppState,
    run: Option<String>,
    changes: broadcast::Receiver<StoreChange>,
    catalog: watch::Receiver<Arc<Catalog>>,
    shutdown: watch::Receiver<bool>,
    greeted: bool,
}

#[utoipa::path(get, path = "/api/events", tag = "events",
    params(("run" = Option<String>, Query, description = "Only this run's events")),
    responses(
        (status = 200, description = "Server-sent events: `run` (a RunSummary), `node` (a NodeEvent), `removed` ({run_ids}), `catalog` ({}), `resync` ({})", content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad query", body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let pairs = query::pairs(raw.as_deref())?;
    query::only(&pairs, &["run"])?;
    let listener = Listener {
        run: query::last(&pairs, "run").map(str::to_string),
        changes: state.store.subscribe(),
        catalog: state.handle.watch_catalog(),
        shutdown: state.shutdown.clone(),
        state,
        greeted: false,
    };
    let stream = futures_util::stream::unfold(listener, |mut l| async move {
        let event = l.next().await?;
        Some((Ok(event), l))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

impl Listener {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        if *self.shutdown.borrow() {
            return None;
        }
        if !self.greeted {
            // Tells the client it is subscribed: changes from now on reach it.
            self.greeted = true;
            return Some(Event::default().comment("connected"));
        }
        loop {
            let change = tokio::select! {
                _ = self.shutdown.wait_for(|s| *s) => return None,
                changed = self.catalog.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    return Some(Event::default().event("catalog").data("{}"));
                }
                change = self.changes.recv() => change,
            };
            match change {
                Ok(change) => {
                    if let Some(event) = self.event(change) {
                        return Some(event);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    return Some(Event::default().event("resync").data("{}"));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn wanted(&self, run_id: &str) -> bool {
        self.run.as_deref().is_none_or(|r| r == run_id)
    }

    fn event(&self, change: StoreChange) -> Option<Event> {
        match change {
            StoreChange::Run(run) if self.wanted(&run.id) => {
                let live = self.state.live.contains(&run.id);
                let summary = RunSummary::new(&run, live, &self.state.handle.catalog());
                Event::default().event("run").json_data(summary).ok()
            }
            StoreChange::Node { run_id, record } if self.wanted(&run_id) => {
                let live = self.state.live.contains(&run_id);
                let data = NodeEvent {
                    run_id,
                    node: NodeChange {
                        id: record.node_id.clone(),
                        status: shown_node_status(&record, live).to_string(),
                        duration_ms: record.duration_ms,
                        rows_out: record.rows_out,
                        error: record.error.clone(),
                        started_at: record.started_at,
                        finished_at: record.finished_at,
                    },
                };
                Event::default().event("node").json_data(data).ok()
            }
            StoreChange::Removed(ids) => {
                let ids: Vec<&String> = ids.iter().filter(|id| self.wanted(id)).collect();
                if ids.is_empty() {
                    return None;
                }
                Event::default()
                    .event("removed")
                    .json_data(json!({ "run_ids": ids }))
                    .ok()
            }
            _ => None,
        }
    }
}
