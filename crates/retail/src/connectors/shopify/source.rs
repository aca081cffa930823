//! One sync of a shop: a bulk operation when there is no cursor yet, else the changes since
//! its watermark; the orders mapped to sale lines, and the cursor the next sync starts from.
//!
//! The cursor is `{"updated_at": RFC 3339, "api_version": ...}`: the highest `updatedAt` seen
//! (after a bulk load, the time the operation started, since objects changed while it ran may
//! be missing from its result). The next sync asks for `updated_at >= updated_at - lookback`.

use std::collections::BTreeMap;
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

/// What one sync fetched.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The current version of every order seen; no lines = the order leaves the history.
    pub orders: Vec<OrderVersion>,
    pub customers: Vec<Customer>,
    pub products: Vec<ProductRow>,
    pub cursor: Json,
    /// HTTP requests made.
    pub requests: u64,
    /// A full load (bulk operation) rather than an incremental one.
    pub full: bool,
    /// Orders without a customer (walk-in sales), kept out of the history.
    pub walk_in: u64,
    /// Cancelled orders (out of the history).
    pub cancelled: u64,
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

/// Runs one sync of `stream` with the access token `token`.
pub fn pull(
    cfg: &SourceConfig,
    token: String,
    stream: Stream,
    cursor: Option<&Json>,
) -> Result<Fetched, ShopifyError> {
    let client = Client::new(cfg.client.clone(), token);
    let tz = match stream {
        Stream::Orders => shop_time_zone(&client)?,
        Stream::Products => Tz::UTC,
    };
    let endpoint = client.endpoint().to_string();
    let mut out = Fetched::default();
    let mut customers: BTreeMap<String, Customer> = BTreeMap::new();
    let mut high: Option<DateTime<Utc>> = None;
    let mut take = |obj: Json, out: &mut Fetched| -> Result<(), ShopifyError> {
        match stream {
            Stream::Orders => {
                let (version, customer, gone) = mapping::order(&obj, tz, &endpoint)?;
                match gone {
                    Some(Gone::NoCustomer) => out.walk_in += 1,
                    Some(Gone::Cancelled) => out.cancelled += 1,
                    _ => {}
                }
                let t = DateTime::parse_from_rfc3339(&version.updated_at)
                    .map(|t| t.with_timezone(&Utc))
                    .ok();
                high = high.max(t);
                if let Some(c) = customer {
                    customers.insert(c.customer_id.clone(), c);
                }
                out.orders.push(version);
            }
            Stream::Products => {
                let t = obj
                    .get("updatedAt")
                    .and_then(Json::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                high = high.max(t);
                out.products.push(mapping::product(&obj, &endpoint)?);
            }
        }
        Ok(())
    };
    let next = match watermark(cursor) {
        None => {
            out.full = true;
            let query = match stream {
                Stream::Orders => queries::bulk_orders(),
                Stream::Products => queries::bulk_products(),
            };
            let result = bulk::run(&client, &query, cfg.poll, cfg.bulk_timeout, |o| {
                take(o, &mut out)
            })?;
            let started = result
                .created_at
                .as_deref()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc));
            started.or(high).unwrap_or_else(Utc::now)
        }
        Some(previous) => {
            let lookback = chrono::Duration::from_std(cfg.lookback).unwrap_or_default();
            incremental::since(&client, stream, previous - lookback, cfg.page_size, |o| {
                take(o, &mut out)
            })?;
            high.map_or(previous, |h| h.max(previous))
        }
    };
    out.customers = customers.into_values().collect();
    out.cursor = json!({
        "updated_at": next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "api_version": cfg.client.api_version,
    });
    out.requests = client.requests();
    Ok(out)
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
