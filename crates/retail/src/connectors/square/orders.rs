//! `SearchOrders` (`POST /v2/orders/search`): the orders updated since a watermark, across
//! locations.
//!
//! Square takes at most 10 `location_ids` per query, so the locations are searched in groups of
//! 10. Each query filters on `updated_at.start_at` and sorts by `UPDATED_AT` ascending (Square
//! requires the sort field to match the date filter); pages follow `cursor`, and every page
//! repeats the first page's query unchanged (Square rejects a cursor with a different query).
//! A page may be empty and still carry a cursor: paging ends only when the cursor is absent.

use std::collections::HashMap;

use chrono_tz::Tz;
use serde_json::{Value as Json, json};

use super::client::{Client, Method, SquareError};
use super::json::Node;
use super::locations::Location;
use super::mapping::{self, OrderLines};

const ENDPOINT: &str = "POST /v2/orders/search";

/// The most location ids one query may name.
pub const MAX_LOCATIONS: usize = 10;

/// The most orders one page may hold.
pub const MAX_LIMIT: u32 = 1000;

/// The query of one group of locations (without the cursor).
pub fn query(location_ids: &[&str], since: Option<&str>, limit: u32) -> Json {
    let mut q = json!({
        "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"}
    });
    if let Some(since) = since {
        q["filter"] = json!({"date_time_filter": {"updated_at": {"start_at": since}}});
    }
    json!({
        "location_ids": location_ids,
        "query": q,
        "limit": limit.clamp(1, MAX_LIMIT),
        "return_entries": false,
    })
}

/// Every order of `locations` updated at or after `since` (all orders when `None`), mapped.
pub fn search(
    client: &Client,
    locations: &[Location],
    since: Option<&str>,
    limit: u32,
    sink: &mut dyn FnMut(OrderLines),
) -> Result<(), SquareError> {
    let zones: HashMap<&str, Tz> = locations
        .iter()
        .map(|l| (l.id.as_str(), l.timezone))
        .collect();
    let zone = |id: &str| zones.get(id).copied();
    for group in locations.chunks(MAX_LOCATIONS) {
        let ids: Vec<&str> = group.iter().map(|l| l.id.as_str()).collect();
        let base = query(&ids, since, limit);
        let mut cursor: Option<String> = None;
        loop {
            let mut body = base.clone();
            if let Some(c) = &cursor {
                body["cursor"] = Json::from(c.as_str());
            }
            let answer = client.call(
                Method::Post,
                ENDPOINT,
                "/v2/orders/search",
                &[],
                Some(&body),
            )?;
            let root = Node::root(ENDPOINT, &answer);
            for o in root.list("orders")? {
                sink(mapping::order(&o, &zone)?);
            }
            match root.cursor()? {
                Some(next) if Some(&next) == cursor.as_ref() => {
                    return Err(root.malformed(
                        "cursor",
                        "repeats the cursor just sent (paging would never end)",
                    ));
                }
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}
