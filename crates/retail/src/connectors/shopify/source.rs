//! One sync of a shop: a bulk operation when there is no cursor yet, else the changes since
//! its watermark; the orders mapped to sale lines, and the cursor the next sync starts from.
//!
//! The cursor is `{"updated_at": RFC 3339, "api_version": ...}`: the highest `updatedAt` seen
//! (after a bulk load, the time the operation started, since objects changed while it ran may
//! be missing from its result). The next sync asks for `updated_at >= updated_at - lookback`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value as Json, json};

use super::client::{Client, ClientConfig};
use super::incremental::{self, Stream};
use super::mapping::{self, Gone, OrderVersion, ProductRow};
use super::{ShopifyError, bulk, queries};
use crate::pos::Customer;

/// Where the shop is and how to read it.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub client: ClientConfig,
    /// The environment variable (or secrets-file entry) holding the Admin API access token.
    pub token_env: String,
    pub lookback: Duration,
    /// Objects per page of an incremental sync (at most 250).
    pub page_size: u32,
    /// Wait between two polls of a bulk operation.
    pub poll: Duration,
    /// How long a bulk operation may run before the sync gives up.
    pub bulk_timeout: Duration,
}

/// Receives what a sync reads, object by object.
pub trait Receiver {
    /// An order's current version, its customer, and why it has no lines (or, walk-ins, no
    /// customer).
    fn order(
        &mut self,
        order: OrderVersion,
        customer: Option<Customer>,
        gone: Option<Gone>,
    ) -> Result<(), ShopifyError>;
    fn product(&mut self, product: ProductRow) -> Result<(), ShopifyError>;
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulled {
    /// Where the next sync starts.
    pub cursor: Json,
    /// HTTP requests made.
    pub requests: u64,
    /// A full load (bulk operation) rather than an incremental one.
    pub full: bool,
}

/// Everything one sync read, collected (for tests and small shops).
#[derive(Debug, Default)]
pub struct Fetched {
    pub orders: Vec<OrderVersion>,
    /// Each customer once, the last version read.
    pub customers: Vec<Customer>,
    pub products: Vec<ProductRow>,
    pub cursor: Json,
    pub requests: u64,
    pub full: bool,
    pub walk_in: u64,
    pub cancelled: u64,
}

impl Receiver for Fetched {
    fn order(
        &mut self,
        order: OrderVersion,
        customer: Option<Customer>,
        gone: Option<Gone>,
    ) -> Result<(), ShopifyError> {
        match gone {
            Some(Gone::NoCustomer) => self.walk_in += 1,
            Some(Gone::Cancelled) => self.cancelled += 1,
            _ => {}
        }
        if let Some(c) = customer {
            self.customers.retain(|k| k.customer_id != c.customer_id);
            self.customers.push(c);
        }
        self.orders.push(order);
        Ok(())
    }
    fn product(&mut self, product: ProductRow) -> Result<(), ShopifyError> {
        self.products.push(product);
        Ok(())
    }
}

/// Runs one sync and collects what it read.
pub fn fetch(
    cfg: &SourceConfig,
    token: String,
    stream: Stream,
    cursor: Option<&Json>,
) -> Result<Fetched, ShopifyError> {
    let mut out = Fetched::default();
    let pulled = pull(cfg, token, stream, cursor, &mut out)?;
    out.customers
        .sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    out.cursor = pulled.cursor;
    out.requests = pulled.requests;
    out.full = pulled.full;
    Ok(out)
}

/// The watermark of a cursor; `None` when the cursor has none (a full load follows).
pub fn watermark(cursor: Option<&Json>) -> Option<DateTime<Utc>> {
    let s = cursor?.get("updated_at")?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl SourceConfig {
    /// The access token, from the environment or the secrets file.
    pub fn token(&self) -> Result<String, ShopifyError> {
        Ok(flow_engine::secret::require("token_env", &self.token_env)?)
    }
}

/// Runs one sync of `stream` with the access token `token`, handing what it reads to `rx`.
pub fn pull(
    cfg: &SourceConfig,
    token: String,
    stream: Stream,
    cursor: Option<&Json>,
    rx: &mut dyn Receiver,
) -> Result<Pulled, ShopifyError> {
    let client = Client::new(cfg.client.clone(), token);
    let tz = match stream {
        Stream::Orders => shop_time_zone(&client)?,
        Stream::Products => Tz::UTC,
    };
    let endpoint = client.endpoint().to_string();
    let mut high: Option<DateTime<Utc>> = None;
    let mut take = |obj: Json| -> Result<(), ShopifyError> {
        match stream {
            Stream::Orders => {
                let (version, customer, gone) = mapping::order(&obj, tz, &endpoint)?;
                let t = DateTime::parse_from_rfc3339(&version.updated_at)
                    .map(|t| t.with_timezone(&Utc))
                    .ok();
                high = high.max(t);
                rx.order(version, customer, gone)
            }
            Stream::Products => {
                let t = obj
                    .get("updatedAt")
                    .and_then(Json::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                high = high.max(t);
                rx.product(mapping::product(&obj, &endpoint)?)
            }
        }
    };
    let full = watermark(cursor).is_none();
    let next = match watermark(cursor) {
        None => {
            let query = match stream {
                Stream::Orders => queries::bulk_orders(),
                Stream::Products => queries::bulk_products(),
            };
            let result = bulk::run(&client, &query, cfg.poll, cfg.bulk_timeout, &mut take)?;
            let started = result
                .created_at
                .as_deref()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc));
            started.or(high).unwrap_or_else(Utc::now)
        }
        Some(previous) => {
            let lookback = chrono::Duration::from_std(cfg.lookback).unwrap_or_default();
            incremental::since(
                &client,
                stream,
                previous - lookback,
                cfg.page_size,
                &mut take,
            )?;
            high.map_or(previous, |h| h.max(previous))
        }
    };
    Ok(Pulled {
        cursor: json!({
            "updated_at": next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "api_version": cfg.client.api_version,
        }),
        requests: client.requests(),
        full,
    })
}

/// The shop's time zone (`shop { ianaTimezone }`), to turn UTC times into its wall clock.
fn shop_time_zone(client: &Client) -> Result<Tz, ShopifyError> {
    let data = client.graphql("shop", queries::SHOP, json!({}), 1.0)?;
    let name = data
        .pointer("/shop/ianaTimezone")
        .and_then(Json::as_str)
        .ok_or_else(|| ShopifyError::Malformed {
            endpoint: client.endpoint().to_string(),
            field: "shop.ianaTimezone".into(),
            reason: "is missing".into(),
        })?;
    name.parse::<Tz>().map_err(|_| ShopifyError::Malformed {
        endpoint: client.endpoint().to_string(),
        field: "shop.ianaTimezone".into(),
        reason: format!("`{name}` is not an IANA time zone"),
    })
}
