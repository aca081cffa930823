//! What every POS API connector shares: the [`Connector`] trait, the [`Sink`] it hands what it
//! fetched to, and [`sync`], which runs one incremental sync against the node's history.
//!
//! A sync fetches what changed since the history's cursor (everything on the first run, after
//! `flow sync reset`, or with `full_sync: true`), and commits it with the new cursor in one
//! durable step (see [`flow_engine::sync::History`]). A crash or kill before that step leaves
//! the history and cursor as they were, so the next attempt fetches the same changes again;
//! after it, they are in the history and the cursor has moved past them. Orders are keyed by
//! id, so fetching one twice (the overlap a connector keeps behind its watermark) replaces it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::history::{self, CUSTOMERS, LINES, LinesBuilder, PRODUCTS, ProductRow};
use crate::pos::{Customer, LineItem};
use flow_engine::node::{NodeContext, NodeError};
use flow_engine::secret::SecretError;
use flow_engine::sync::{Commit, History, Merged, SyncError};

/// Lines buffered before they are handed to the commit as one batch.
const BATCH_ROWS: usize = 64 * 1024;

/// A POS API the history is synced from.
pub trait Connector: Send + Sync + 'static {
    /// `shopify`, `square`, ...: named in messages and metadata.
    fn name(&self) -> &'static str;
    /// Fetches what changed since `cursor` (everything when it is `None`) into `sink`, and
    /// returns the new cursor. Blocking: [`sync`] runs it on a blocking thread.
    fn pull(&self, cursor: Option<&Json>, sink: &mut Sink<'_>) -> Result<Json, ConnectorError>;
}

/// Why a sync failed. Messages name the endpoint and field; never a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("{endpoint}: HTTP {status}: {message}")]
    Http {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("{endpoint}: the credentials were refused (HTTP {status}); {hint}")]
    Auth {
        endpoint: String,
        status: u16,
        hint: String,
    },
    #[error("{endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    #[error("{endpoint}: unexpected response: `{field}` {reason}")]
    Malformed {
        endpoint: String,
        field: String,
        reason: String,
    },
    #[error("{endpoint}: {message}")]
    Remote { endpoint: String, message: String },
    #[error("{0}")]
    Credentials(#[from] SecretError),
    #[error("{0}")]
    History(#[from] SyncError),
}

impl From<ConnectorError> for NodeError {
    fn from(e: ConnectorError) -> Self {
        NodeError::msg(e.to_string())
    }
}

/// One version of an order: all its lines as they are now. No lines means the order no longer
/// counts (cancelled, voided, deleted) and leaves the history.
#[derive(Debug, Clone, Default)]
pub struct OrderVersion {
    pub order_id: String,
    /// When the POS last changed it (RFC 3339), kept with its lines.
    pub updated_at: String,
    pub lines: Vec<LineItem>,
}

/// What one sync fetched, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStats {
    /// Orders new or changed (kept with lines).
    pub orders: u64,
    /// Orders that left the history (cancelled, voided, deleted) or were never in it.
    pub removed: u64,
    pub lines: u64,
    /// Lines without a customer (walk-in sales): not kept.
    pub walk_in_lines: u64,
    pub customers: u64,
    pub products: u64,
    /// HTTP requests made.
    pub requests: u64,
}

/// Where a connector puts what it fetched; hands it to the history's commit in batches.
pub struct Sink<'h> {
    commit: Commit<'h>,
    lines: LinesBuilder,
    customers: Vec<(Customer, String)>,
    products: Vec<ProductRow>,
    stats: PullStats,
}

impl<'h> Sink<'h> {
    fn new(commit: Commit<'h>) -> Self {
        Sink {
            commit,
            lines: LinesBuilder::default(),
            customers: Vec::new(),
            products: Vec::new(),
            stats: PullStats::default(),
        }
    }

    /// Whether this sync loads everything (and replaces the history).
    pub fn is_full_load(&self) -> bool {
        self.commit.is_full()
    }

    /// Counts one HTTP request.
    pub fn request(&mut self) {
        self.stats.requests += 1;
    }

    pub fn stats(&self) -> &PullStats {
        &self.stats
    }

    /// The current version of an order. Lines without a customer are walk-in sales: counted,
    /// not kept; an order left without lines leaves the history.
    pub fn order(&mut self, order: OrderVersion) -> Result<(), ConnectorError> {
        let before = self.lines.rows();
        for item in &order.lines {
            if item.customer_id.is_empty() {
                self.stats.walk_in_lines += 1;
            } else {
                self.lines.push(item, &order.updated_at);
            }
        }
        let kept = self.lines.rows() - before;
        if kept == 0 {
            // Buffered lines go first, so this removal comes after any earlier version.
            self.flush_lines()?;
            self.commit.delete(LINES, "order_id", [order.order_id])?;
            self.stats.removed += 1;
        } else {
            self.stats.orders += 1;
            self.stats.lines += kept as u64;
            if self.lines.rows() >= BATCH_ROWS {
                self.flush_lines()?;
            }
        }
        Ok(())
    }

    /// A customer's details, with when the POS last changed them.
    pub fn customer(&mut self, customer: Customer, updated_at: &str) -> Result<(), ConnectorError> {
        self.customers.push((customer, updated_at.to_string()));
        self.stats.customers += 1;
        if self.customers.len() >= BATCH_ROWS {
            self.flush_customers()?;
        }
        Ok(())
    }

    /// A catalog product.
    pub fn product(&mut self, product: ProductRow) -> Result<(), ConnectorError> {
        self.products.push(product);
        self.stats.products += 1;
        if self.products.len() >= BATCH_ROWS {
            self.flush_products()?;
        }
        Ok(())
    }

    fn flush_lines(&mut self) -> Result<(), ConnectorError> {
        if self.lines.rows() > 0 {
            let batch = self.lines.finish();
            self.commit.upsert(LINES, "order_id", batch)?;
        }
        Ok(())
    }

    fn flush_customers(&mut self) -> Result<(), ConnectorError> {
        if !self.customers.is_empty() {
            let batch = history::customers_batch(&self.customers);
            self.customers.clear();
            self.commit.upsert(CUSTOMERS, "customer_id", batch)?;
        }
        Ok(())
    }

    fn flush_products(&mut self) -> Result<(), ConnectorError> {
        if !self.products.is_empty() {
            let batch = history::products_batch(&self.products);
            self.products.clear();
            self.commit.upsert(PRODUCTS, "product_id", batch)?;
        }
        Ok(())
    }

    fn finish(mut self, cursor: Json) -> Result<(Merged, PullStats), ConnectorError> {
        self.flush_lines()?;
        self.flush_customers()?;
        self.flush_products()?;
        let summary = serde_json::to_value(&self.stats).expect("stats serialize");
        let merged = self.commit.commit(cursor, summary)?;
        Ok((merged, self.stats))
    }
}

/// The purpose a source node keeps its synced history under (see
/// [`NodeContext::history_place`]).
pub const HISTORY: &str = "sync";

/// The history after a sync, and what the sync did.
pub struct Synced {
    pub tables: Merged,
    pub report: SyncReport,
}

/// What a sync did and what the history holds, for the node's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub source: &'static str,
    /// Whether everything was loaded (first sync, reset, or `full_sync`).
    pub full: bool,
    pub fetched: PullStats,
    pub orders_held: u64,
    pub lines_held: u64,
    pub customers_held: u64,
    pub products_held: u64,
    pub cursor: Json,
    pub synced_at: DateTime<Utc>,
    /// Where the history lives.
    pub history: String,
}

/// Runs one sync of `connector` into the history of the node `ctx` runs (`full` loads
/// everything and replaces it).
pub async fn sync(
    ctx: &NodeContext,
    connector: Arc<dyn Connector>,
    full: bool,
) -> Result<Synced, NodeError> {
    let place = ctx.history_place(HISTORY)?;
    flow_engine::node::spawn_blocking(move || -> Result<Synced, ConnectorError> {
        let mut history = History::open_at(place)?;
        let cursor = (!full).then(|| history.cursor().cloned()).flatten();
        let commit = history.begin(full);
        let full = commit.is_full();
        let mut sink = Sink::new(commit);
        let next = connector.pull(cursor.as_ref(), &mut sink)?;
        let (tables, fetched) = sink.finish(next.clone())?;
        let status = history.status();
        let held = |t: &str| status.tables.get(t).map_or((0, 0), |s| (s.keys, s.rows));
        let report = SyncReport {
            source: connector.name(),
            full,
            fetched,
            orders_held: held(LINES).0,
            lines_held: held(LINES).1,
            customers_held: held(CUSTOMERS).0,
            products_held: held(PRODUCTS).0,
            cursor: next,
            synced_at: Utc::now(),
            history: history.location(),
        };
        tracing::info!(
            source = report.source,
            full = report.full,
            orders = report.fetched.orders,
            removed = report.fetched.removed,
            requests = report.fetched.requests,
            "synced; {} orders held",
            report.orders_held
        );
        Ok(Synced { tables, report })
    })
    .await
    .map_err(|e| NodeError::msg(format!("sync stopped: {e}")))?
    .map_err(NodeError::from)
}

impl Synced {
    /// The `transactions` table (the columns `pos.extract` produces) of the history's orders,
    /// with the customers' details joined and product names and categories filled in from the
    /// products the history holds.
    pub fn transactions(&self) -> Result<flow_engine::data::Output, NodeError> {
        let empty = || {
            NodeError::msg(format!(
                "the {} history holds no orders with a customer yet, so there is nothing to segment",
                self.report.source
            ))
        };
        let lines = self.tables.get(LINES).ok_or_else(empty)?;
        if lines.num_rows() == 0 {
            return Err(empty());
        }
        let customers = self
            .tables
            .get(CUSTOMERS)
            .map(history::customers)
            .unwrap_or_default();
        let products = self
            .tables
            .get(PRODUCTS)
            .map(history::products)
            .unwrap_or_default();
        let known: rustc_hash::FxHashMap<&str, (Option<&str>, Option<&str>)> = products
            .iter()
            .map(|p| {
                (
                    p.product_id.as_str(),
                    (p.name.as_deref(), p.category.as_deref()),
                )
            })
            .collect();
        let (batch, people) = crate::pos::transactions_table(
            history::line_items(lines),
            lines.num_rows(),
            customers,
            &known,
        )?;
        Ok(flow_engine::data::Output::table(batch)
            .with_meta("source", self.report.source)
            .with_meta("customers", people as u64)
            .with_meta("sync", self.meta()))
    }

    /// The `catalog` table (the columns `pos.catalog` produces) of the history's products.
    pub fn catalog(&self) -> Result<flow_engine::data::Output, NodeError> {
        let batch = match self.tables.get(PRODUCTS) {
            Some(b) => b.clone(),
            None => history::products_batch(&[]),
        };
        Ok(flow_engine::data::Output::table(batch)
            .with_meta("source", self.report.source)
            .with_meta("sync", self.meta()))
    }

    fn meta(&self) -> Json {
        let r = &self.report;
        json!({
            "full": r.full,
            "fetched": r.fetched,
            "orders_held": r.orders_held,
            "lines_held": r.lines_held,
            "customers_held": r.customers_held,
            "products_held": r.products_held,
            "cursor": r.cursor,
            "synced_at": r.synced_at.to_rfc3339(),
            "history": r.history,
        })
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
