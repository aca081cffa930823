//! Shopify as a [`Connector`]: one sync into the node's history.
//!
//! A full load (bulk operation) hands each order on as it is rebuilt: the result lists every
//! order once. An incremental sync may see an order twice (it moves to the end of the
//! `UPDATED_AT` order when it changes while the pages are read), so its orders are collected by
//! id and handed on at the end, the last version of each. Customers are handed on once each,
//! the last version read.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::ShopifyError;
use super::incremental::Stream;
use super::mapping::Gone;
use super::source::{self, Receiver, SourceConfig};
use crate::connectors::{Connector, ConnectorError, OrderVersion, ProductRow, Sink};
use crate::pos::Customer;

/// Shopify orders (with their customers) or products.
pub struct ShopifyConnector {
    pub cfg: SourceConfig,
    pub stream: Stream,
    /// Read by the node before the sync starts, so a missing token fails early.
    pub token: String,
}

impl std::fmt::Debug for ShopifyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyConnector")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl From<ShopifyError> for ConnectorError {
    fn from(e: ShopifyError) -> Self {
        match e {
            ShopifyError::Http {
                endpoint,
                status,
                message,
            } => ConnectorError::Http {
                endpoint,
                status,
                message,
            },
            ShopifyError::Transport { endpoint, message } => ConnectorError::Transport {
                endpoint,
                reason: message,
            },
            ShopifyError::Malformed {
                endpoint,
                field,
                reason,
            } => ConnectorError::Malformed {
                endpoint,
                field,
                reason,
            },
            ShopifyError::Auth { endpoint, status } => ConnectorError::Auth {
                endpoint,
                status,
                hint: "check the Admin API access token and that the app has the read_orders, \
                       read_customers and read_products scopes"
                    .into(),
            },
            ShopifyError::Credentials(e) => ConnectorError::Credentials(e),
            ShopifyError::Sink(e) => *e,
            e @ (ShopifyError::Throttled { .. }
            | ShopifyError::GraphQl { .. }
            | ShopifyError::Bulk { .. }
            | ShopifyError::Config(_)) => ConnectorError::Remote {
                endpoint: "Shopify".into(),
                message: e.to_string(),
            },
        }
    }
}

struct ToSink<'s, 'h> {
    sink: &'s mut Sink<'h>,
    full: bool,
    /// Incremental syncs: the last version of each order, by id.
    orders: BTreeMap<String, OrderVersion>,
    customers: BTreeMap<String, (Customer, String)>,
}

fn sink_err(e: ConnectorError) -> ShopifyError {
    ShopifyError::Sink(Box::new(e))
}

impl Receiver for ToSink<'_, '_> {
    fn order(
        &mut self,
        order: OrderVersion,
        customer: Option<Customer>,
        _gone: Option<Gone>,
    ) -> Result<(), ShopifyError> {
        if let Some(c) = customer {
            self.customers
                .insert(c.customer_id.clone(), (c, order.updated_at.clone()));
        }
        if self.full {
            self.sink.order(order).map_err(sink_err)
        } else {
            self.orders.insert(order.order_id.clone(), order);
            Ok(())
        }
    }

    fn product(&mut self, product: ProductRow) -> Result<(), ShopifyError> {
        self.sink.product(product).map_err(sink_err)
    }
}

impl Connector for ShopifyConnector {
    fn name(&self) -> &'static str {
        "shopify"
    }

    fn pull(&self, cursor: Option<&Json>, sink: &mut Sink<'_>) -> Result<Json, ConnectorError> {
        // A full load (first sync, reset, full_sync) ignores any cursor.
        let full = sink.is_full_load();
        let cursor = if full { None } else { cursor };
        let mut to = ToSink {
            sink,
            full,
            orders: BTreeMap::new(),
            customers: BTreeMap::new(),
        };
        let pulled = source::pull(&self.cfg, self.token.clone(), self.stream, cursor, &mut to)?;
        let ToSink {
            sink,
            orders,
            customers,
            ..
        } = to;
        let mut orders: Vec<OrderVersion> = orders.into_values().collect();
        orders.sort_by(|a, b| a.updated_at.cmp(&b.updated_at));
        for o in orders {
            sink.order(o)?;
        }
        for (_, (c, at)) in customers {
            sink.customer(c, &at)?;
        }
        for _ in 0..pulled.requests {
            sink.request();
        }
        Ok(pulled.cursor)
    }
}
