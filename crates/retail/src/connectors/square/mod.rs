//! Square: pull orders, customers and the catalog; the push of segments lives in
//! `segmentation::deploy::square`.
//!
//! | module | what |
//! | --- | --- |
//! | [`client`] | HTTP, `Square-Version`, retries on 429 (`Retry-After`) and 5xx, error shape |
//! | [`json`] | reading answers: malformed fields named with their path |
//! | [`locations`] | `ListLocations`: ids and time zones |
//! | [`orders`] | `SearchOrders` across locations (groups of 10), `updated_at` watermark |
//! | [`mapping`] | an order → line items (money, returns, states, local time) |
//! | [`customers`] | `ListCustomers` / `SearchCustomers`: names, emails, consent, groups |
//! | [`catalog`] | `ListCatalog`: item variations, categories, prices |
//! | [`money`] | minor units → major units by currency |
//!
//! # Incremental sync
//! The cursor is `{orders_updated_at, customers_updated_at}`: the latest `updated_at` seen.
//! The next pull asks for everything updated since the watermark minus `lookback` (orders
//! updated in the same instant as the last one seen, or committed late on Square's side, are
//! fetched again; the history keys orders by id, so a repeat replaces, never doubles).

pub mod catalog;
pub mod client;
mod connector;
pub mod customers;
pub mod json;
pub mod locations;
pub mod mapping;
pub mod money;
mod node;
pub mod orders;

#[cfg(any(test, feature = "testing"))]
pub mod mock;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value as Json, json};

pub use client::{Client, SquareConfig, SquareError};
pub use connector::SquareConnector;
pub use customers::SquareCustomer;
pub use mapping::OrderLines;
pub use node::{SquareCatalogNode, SquareOrdersNode};

/// Registers `square.orders` and `square.catalog`.
pub fn register(registry: &mut flow_engine::node::Registry) {
    registry
        .register(SquareOrdersNode)
        .register(SquareCatalogNode);
}

/// What a Square source pulls, and how.
#[derive(Debug, Clone)]
pub struct SquareSource {
    pub config: SquareConfig,
    /// Locations to read (all when empty).
    pub location_ids: Vec<String>,
    /// Orders per page (at most 1000).
    pub limit: u32,
    /// Overlap subtracted from the watermark.
    pub lookback: Duration,
}

/// What one pull fetched.
#[derive(Debug, Clone, Default)]
pub struct SquarePull {
    /// The current version of every order updated since the watermark (empty lines: the order
    /// is not, or no longer, a counted sale).
    pub orders: Vec<OrderLines>,
    pub customers: Vec<SquareCustomer>,
    /// The new cursor.
    pub cursor: Json,
    /// Completed orders without a customer (walk-in sales), skipped.
    pub walk_in_orders: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
}

impl SquareSource {
    /// Pulls what changed since `cursor` (everything when `None`).
    pub fn pull(&self, client: &Client, cursor: Option<&Json>) -> Result<SquarePull, SquareError> {
        let before = client.requests();
        let since = |key: &str| -> Result<Option<String>, SquareError> {
            let Some(c) = cursor.and_then(|c| c.get(key)).and_then(Json::as_str) else {
                return Ok(None);
            };
            let t = DateTime::parse_from_rfc3339(c).map_err(|e| {
                SquareError::Config(format!(
                    "the sync cursor's `{key}` `{c}` is not RFC 3339 ({e}); reset the sync"
                ))
            })?;
            let start = t.with_timezone(&Utc)
                - chrono::Duration::from_std(self.lookback).unwrap_or_default();
            Ok(Some(start.to_rfc3339_opts(SecondsFormat::Millis, true)))
        };
        let (orders_since, customers_since) =
            (since("orders_updated_at")?, since("customers_updated_at")?);
        let locations = locations::list(client, &self.location_ids)?;
        let mut pull = SquarePull::default();
        let mut orders_mark = cursor
            .and_then(|c| c.get("orders_updated_at"))
            .and_then(Json::as_str)
            .map(str::to_string);
        let mut by_id: std::collections::HashMap<String, usize> = Default::default();
        orders::search(
            client,
            &locations,
            orders_since.as_deref(),
            self.limit,
            &mut |o| {
                newest(&mut orders_mark, &o.updated_at);
                // An order updated during paging may appear twice: keep its latest version.
                match by_id.get(&o.order_id) {
                    Some(&i) => pull.orders[i] = o,
                    None => {
                        by_id.insert(o.order_id.clone(), pull.orders.len());
                        pull.orders.push(o);
                    }
                }
            },
        )?;
        pull.walk_in_orders = pull
            .orders
            .iter()
            .filter(|o| o.walk_in && !o.lines.is_empty())
            .count() as u64;
        let mut customers_mark = cursor
            .and_then(|c| c.get("customers_updated_at"))
            .and_then(Json::as_str)
            .map(str::to_string);
        customers::fetch(client, customers_since.as_deref(), &mut |c| {
            newest(&mut customers_mark, &c.updated_at);
            pull.customers.push(c);
        })?;
        pull.cursor = json!({
            "orders_updated_at": orders_mark,
            "customers_updated_at": customers_mark,
        });
        pull.requests = client.requests() - before;
        Ok(pull)
    }
}

/// Keeps the later of two RFC 3339 instants (compared as instants, not as text).
fn newest(mark: &mut Option<String>, seen: &str) {
    let Ok(t) = DateTime::parse_from_rfc3339(seen) else {
        return;
    };
    let later = match mark.as_deref().map(DateTime::parse_from_rfc3339) {
        Some(Ok(m)) => t > m,
        _ => true,
    };
    if later {
        *mark = Some(seen.to_string());
    }
}
