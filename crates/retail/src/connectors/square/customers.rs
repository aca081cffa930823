//! Customers: `ListCustomers` (`GET /v2/customers`) for a full load, `SearchCustomers`
//! (`POST /v2/customers/search`, `query.filter.updated_at.start_at`) for the ones updated since
//! the watermark; both paged by `cursor`, 100 per page (Square's maximum).
//!
//! Mapping: `id` → customer id; `email_address` (lowercased) → email; `given_name` +
//! `family_name` → name; marketing consent from `preferences.email_unsubscribed`: Square
//! records only the opt-out, so a customer with an email address who has not unsubscribed
//! accepts marketing, an unsubscribed one does not, and one without an email address or
//! preferences is unknown (`None`). Each customer's `group_ids` are kept for the push.

use serde_json::{Value as Json, json};

use super::client::{Client, Method, SquareError};
use super::json::Node;
use crate::pos::Customer;

const LIST: &str = "GET /v2/customers";
const SEARCH: &str = "POST /v2/customers/search";

/// A Square customer as the connector needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SquareCustomer {
    pub customer: Customer,
    pub updated_at: String,
    /// The customer groups it belongs to.
    pub group_ids: Vec<String>,
}

/// Every customer, or those updated at or after `since`.
pub fn fetch(
    client: &Client,
    since: Option<&str>,
    sink: &mut dyn FnMut(SquareCustomer),
) -> Result<(), SquareError> {
    let mut cursor: Option<String> = None;
    loop {
        let (endpoint, answer) = match since {
            None => {
                let mut q = vec![("limit", "100")];
                if let Some(c) = &cursor {
                    q.push(("cursor", c.as_str()));
                }
                (
                    LIST,
                    client.call(Method::Get, LIST, "/v2/customers", &q, None)?,
                )
            }
            Some(since) => {
                let mut body = json!({
                    "limit": 100,
                    "query": {"filter": {"updated_at": {"start_at": since}}}
                });
                if let Some(c) = &cursor {
                    body["cursor"] = Json::from(c.as_str());
                }
                (
                    SEARCH,
                    client.call(
                        Method::Post,
                        SEARCH,
                        "/v2/customers/search",
                        &[],
                        Some(&body),
                    )?,
                )
            }
        };
        let root = Node::root(endpoint, &answer);
        for c in root.list("customers")? {
            sink(customer(&c)?);
        }
        match root.cursor()? {
            Some(next) if Some(&next) == cursor.as_ref() => {
                return Err(root.malformed("cursor", "repeats the cursor just sent"));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

fn customer(c: &Node<'_>) -> Result<SquareCustomer, SquareError> {
    let id = c.str("id")?;
    let email = c
        .opt_str("email_address")?
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_lowercase);
    let name = [c.opt_str("given_name")?, c.opt_str("family_name")?]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let unsubscribed = match c.opt("preferences")? {
        Some(p) => p.opt_bool("email_unsubscribed")?,
        None => None,
    };
    let accepts_marketing = match (&email, unsubscribed) {
        (_, Some(true)) => Some(false),
        (Some(_), Some(false)) => Some(true),
        _ => None,
    };
    let group_ids = c
        .list("group_ids")?
        .iter()
        .map(|g| {
            g.value()
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| g.malformed("", "is not a string"))
        })
        .collect::<Result<_, _>>()?;
    Ok(SquareCustomer {
        customer: Customer {
            customer_id: id.to_string(),
            email,
            name: (!name.is_empty()).then_some(name),
            accepts_marketing,
        },
        updated_at: c.opt_str("updated_at")?.unwrap_or("").to_string(),
        group_ids,
    })
}
