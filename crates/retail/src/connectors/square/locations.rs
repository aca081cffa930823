//! `ListLocations` (`GET /v2/locations`): the seller's locations and their time zones.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::client::{Client, Method, SquareError};
use super::json::Node;

const ENDPOINT: &str = "GET /v2/locations";

/// A location's id and time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub id: String,
    /// The IANA zone of the location (`timezone`); UTC when Square gives none.
    pub timezone: Tz,
}

/// Every location (ListLocations is not paged), or the `wanted` ones in that order: a wanted id
/// Square does not list is a configuration error.
pub fn list(client: &Client, wanted: &[String]) -> Result<Vec<Location>, SquareError> {
    let answer = client.call(Method::Get, ENDPOINT, "/v2/locations", &[], None)?;
    let root = Node::root(ENDPOINT, &answer);
    let mut all = BTreeMap::new();
    let mut order = Vec::new();
    for loc in root.list("locations")? {
        let id = loc.str("id")?.to_string();
        let timezone = match loc.opt_str("timezone")? {
            Some(tz) => tz.parse::<Tz>().map_err(|_| {
                loc.malformed("timezone", format!("`{tz}` is not an IANA time zone"))
            })?,
            None => Tz::UTC,
        };
        order.push(id.clone());
        all.insert(id.clone(), Location { id, timezone });
    }
    if wanted.is_empty() {
        return Ok(order.iter().map(|id| all[id].clone()).collect());
    }
    wanted
        .iter()
        .map(|id| {
            all.get(id).cloned().ok_or_else(|| {
                SquareError::Config(format!(
                    "location `{id}` (location_ids) is not one of the seller's locations ({})",
                    order.join(", ")
                ))
            })
        })
        .collect()
}
