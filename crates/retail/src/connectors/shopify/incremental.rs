//! Later runs: only what changed since the watermark, page by page.
//!
//! `orders(query: "updated_at:>='W'", sortKey: UPDATED_AT, first: N, after: CURSOR)` with
//! `pageInfo { hasNextPage endCursor }`; the query stays identical across the pages of one
//! sync. `W` is the highest `updatedAt` of the previous sync minus a lookback overlap, so a
//! change committed at the same instant as the last one seen is not missed; orders fetched
//! twice replace themselves (they are keyed by id), so the overlap costs requests, not counts.

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::ShopifyError;
use super::client::Client;
use super::queries;

/// Which objects a sync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Orders,
    Products,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Orders => "orders",
            Stream::Products => "products",
        }
    }
}

/// The search filter of a sync from `watermark`.
pub fn filter(watermark: DateTime<Utc>) -> String {
    format!(
        "updated_at:>='{}'",
        watermark.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Reads every object of `stream` updated since `watermark`, handing each to `each`.
/// Returns the number of pages read.
pub fn since(
    client: &Client,
    stream: Stream,
    watermark: DateTime<Utc>,
    page_size: u32,
    mut each: impl FnMut(Json) -> Result<(), ShopifyError>,
) -> Result<u64, ShopifyError> {
    let (query, what) = match stream {
        Stream::Orders => (queries::orders_page(), "orders page"),
        Stream::Products => (queries::products_page(), "products page"),
    };
    let field = stream.name();
    let bad = |f: &str, reason: &str| ShopifyError::Malformed {
        endpoint: client.endpoint().to_string(),
        field: format!("{field}.{f}"),
        reason: reason.to_string(),
    };
    let q = filter(watermark);
    let mut after: Option<String> = None;
    let mut pages = 0u64;
    loop {
        let data = client.graphql(
            what,
            &query,
            json!({ "q": q, "first": page_size, "after": after }),
            (page_size as f64 * 3.0).min(1000.0),
        )?;
        pages += 1;
        let conn = data
            .get(field)
            .filter(|c| c.is_object())
            .ok_or_else(|| bad("", "is missing"))?;
        let nodes = conn
            .get("nodes")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("nodes", "is missing or not a list"))?;
        for node in nodes {
            let mut node = node.clone();
            if stream == Stream::Orders {
                complete_line_items(client, &mut node)?;
            }
            each(node)?;
        }
        let has_next = conn
            .pointer("/pageInfo/hasNextPage")
            .and_then(Json::as_bool)
            .ok_or_else(|| bad("pageInfo.hasNextPage", "is missing or not a boolean"))?;
        if !has_next {
            return Ok(pages);
        }
        // The next page starts after the last cursor; a page may be empty and still point on.
        let cursor = conn
            .pointer("/pageInfo/endCursor")
            .and_then(Json::as_str)
            .ok_or_else(|| {
                bad(
                    "pageInfo.endCursor",
                    "is missing although hasNextPage is true",
                )
            })?;
        if after.as_deref() == Some(cursor) {
            return Err(bad(
                "pageInfo.endCursor",
                "did not advance: the same page would be read forever",
            ));
        }
        after = Some(cursor.to_string());
    }
}

/// Fetches the line items of an order beyond the first page, into its `lineItems.nodes`.
fn complete_line_items(client: &Client, order: &mut Json) -> Result<(), ShopifyError> {
    let mut more = order
        .pointer("/lineItems/pageInfo/hasNextPage")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let mut after = order
        .pointer("/lineItems/pageInfo/endCursor")
        .and_then(Json::as_str)
        .map(str::to_string);
    let id = order.get("id").cloned().unwrap_or(Json::Null);
    while more {
        let data = client.graphql(
            "order line items",
            &queries::order_line_items(),
            json!({ "id": id, "after": after }),
            260.0,
        )?;
        let conn = data
            .pointer("/order/lineItems")
            .ok_or_else(|| ShopifyError::Malformed {
                endpoint: client.endpoint().to_string(),
                field: "order.lineItems".into(),
                reason: format!("is missing for order {id}"),
            })?;
        let nodes = conn
            .get("nodes")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(list) = order
            .pointer_mut("/lineItems/nodes")
            .and_then(Json::as_array_mut)
        {
            list.extend(nodes);
        }
        more = conn
            .pointer("/pageInfo/hasNextPage")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let next = conn
            .pointer("/pageInfo/endCursor")
            .and_then(Json::as_str)
            .map(str::to_string);
        if more && (next.is_none() || next == after) {
            break;
        }
        after = next;
    }
    Ok(())
}
