//! The [`Connector`](crate::connectors::Connector) of `square.orders` and `square.catalog`: a
//! pull handed to the synced history's sink, and Square's errors as connector errors.

use serde_json::{Value as Json, json};

use super::{Client, SquareError, SquareSource, catalog};
use crate::connectors as conn;

/// A Square source with its token: the [`Connector`](conn::Connector) of `square.orders`
/// (orders and customers, with the catalog's names and categories when `catalog` is set) or
/// `square.catalog` (the catalog only).
#[derive(Debug)]
pub struct SquareConnector {
    pub source: SquareSource,
    pub token: String,
    pub orders: bool,
    pub catalog: bool,
}

impl From<SquareError> for conn::ConnectorError {
    fn from(e: SquareError) -> Self {
        use conn::ConnectorError as C;
        match e {
            SquareError::Http {
                endpoint,
                status,
                message,
            } => C::Http {
                endpoint: format!("Square {endpoint}"),
                status,
                message,
            },
            SquareError::Auth {
                endpoint,
                status,
                message,
            } => C::Auth {
                endpoint: format!("Square {endpoint}"),
                status,
                hint: format!(
                    "{message}; check the access token and that it has ORDERS_READ, \
                     CUSTOMERS_READ, ITEMS_READ and MERCHANT_PROFILE_READ"
                ),
            },
            SquareError::Malformed {
                endpoint,
                field,
                reason,
            } => C::Malformed {
                endpoint: format!("Square {endpoint}"),
                field,
                reason,
            },
            SquareError::Credentials(e) => C::Credentials(e),
            SquareError::Throttled { endpoint, attempts } => C::Remote {
                endpoint: format!("Square {endpoint}"),
                message: format!("still rate-limited (HTTP 429) after {attempts} attempts"),
            },
            SquareError::Transport {
                endpoint,
                message,
                attempts,
            } => C::Transport {
                endpoint: format!("Square {endpoint}"),
                reason: format!("{message} (after {attempts} attempts)"),
            },
            SquareError::Config(message) => C::Remote {
                endpoint: "Square".into(),
                message,
            },
        }
    }
}

impl conn::Connector for SquareConnector {
    fn name(&self) -> &'static str {
        "square"
    }

    fn pull(
        &self,
        cursor: Option<&Json>,
        sink: &mut conn::Sink<'_>,
    ) -> Result<Json, conn::ConnectorError> {
        let client = Client::new(self.source.config.clone(), self.token.clone());
        let result = self.pull_into(&client, cursor, sink);
        for _ in 0..client.requests() {
            sink.request();
        }
        result
    }
}

impl SquareConnector {
    fn pull_into(
        &self,
        client: &Client,
        cursor: Option<&Json>,
        sink: &mut conn::Sink<'_>,
    ) -> Result<Json, conn::ConnectorError> {
        let mut next = cursor.cloned().unwrap_or_else(|| json!({}));
        if self.catalog {
            for p in catalog::list(client)? {
                sink.product(conn::ProductRow {
                    product_id: p.product_id,
                    name: Some(p.name),
                    category: p.category,
                    price: p.price,
                    stock: None,
                })?;
            }
        }
        if self.orders {
            let pull = self.source.pull(client, cursor)?;
            for o in pull.orders {
                sink.order(conn::OrderVersion {
                    order_id: o.order_id,
                    updated_at: o.updated_at,
                    lines: o.lines,
                })?;
            }
            for c in pull.customers {
                sink.customer(c.customer, &c.updated_at)?;
            }
            next = pull.cursor;
        }
        Ok(next)
    }
}
