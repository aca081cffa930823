//! Shopify Admin GraphQL API: orders, customers and products in (a bulk operation for the first
//! full load, then only what changed), segment tags and profile metafields out.
//!
//! - [`client`]: the versioned endpoint, the token header, retries.
//! - [`throttle`]: the cost-based leaky bucket.
//! - [`bulk`]: bulk operations and the JSONL result with `__parentId` nesting.
//! - [`incremental`]: orders or products updated since a watermark, cursor paginated.
//! - [`mapping`]: orders → sale lines, customers, products → catalog rows.
//! - [`source`]: one sync: full or incremental, and the cursor it leaves.
//! - [`connector`]: a sync into the node's history; `node`: `shopify.orders`, `shopify.catalog`.
//! - [`push`]: segment tags and profile metafields on the customers.

pub mod bulk;
pub mod client;
pub mod connector;
pub mod incremental;
pub mod mapping;
#[cfg(any(test, feature = "testing"))]
pub mod mock;
mod node;
pub mod push;
pub mod queries;
pub mod source;
pub mod throttle;

#[cfg(test)]
mod tests;

use flow_engine::secret::SecretError;

pub(crate) use node::connection;
pub use node::register;

/// The API version requests go to unless `api_version` says otherwise.
pub const DEFAULT_API_VERSION: &str = "2025-07";

/// What went wrong talking to Shopify. Names the endpoint and, for bad data, the field; never
/// holds the access token.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    #[error("Shopify {endpoint}: HTTP {status}: {message}")]
    Http {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("Shopify {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("Shopify {endpoint}: malformed response: `{field}` {reason}")]
    Malformed {
        endpoint: String,
        field: String,
        reason: String,
    },
    #[error(
        "Shopify {endpoint}: access denied (HTTP {status}): check the access token and that the \
         app has the scopes the connector needs"
    )]
    Auth { endpoint: String, status: u16 },
    #[error("Shopify {endpoint}: still THROTTLED after {attempts} attempts")]
    Throttled { endpoint: String, attempts: u32 },
    #[error("Shopify {endpoint}: {what}: {message}")]
    GraphQl {
        endpoint: String,
        what: String,
        message: String,
    },
    #[error("Shopify bulk operation {id} ended {status}{}", error_code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Bulk {
        id: String,
        status: String,
        error_code: Option<String>,
    },
    #[error("Shopify access token: {0}")]
    Credentials(#[from] SecretError),
    #[error("Shopify: {0}")]
    Config(String),
    /// The history refused what was read (a full disk, a lock).
    #[error("{0}")]
    Sink(Box<crate::connectors::ConnectorError>),
}
