//! A Square order (Orders API) → the line items of the history.
//!
//! Decisions:
//! - **Which orders count**: `COMPLETED` orders only (paid and closed). `OPEN` orders (open
//!   tickets, unpaid invoices, orders in fulfilment), `DRAFT` and `CANCELED` orders map to no
//!   lines: the version in the history is replaced by nothing, so an order that was counted and
//!   is later canceled leaves the history, and an open order enters it when it completes (its
//!   `updated_at` moves, so the next sync fetches it).
//! - **Lines**: `line_items[]`; `quantity` is a decimal string; `unit_price` =
//!   `base_price_money`; `amount` = `total_money` − `total_tax_money` (after discounts, before
//!   tax: the same as `Net Sales` in the item sales export). Money is `{amount, currency}` in
//!   minor units, divided by the currency's exponent (JPY 0, USD 2, KWD 3).
//! - **Product id** = `catalog_object_id` (the item variation, which `square.catalog` lists),
//!   else the line's `name` (custom amounts and ad-hoc items have no catalog object).
//! - **Returns**: an order's `returns[].return_line_items` become negative lines (quantity and
//!   amount negated) of *that* order: Square records an itemized return in a separate return
//!   order, so the refund is counted once, on the day of the return.
//! - **Time**: `created_at` (RFC 3339, UTC) converted to the location's time zone
//!   (`ListLocations` `timezone`); `utc_offset_secs` is the zone's offset at that instant.
//! - **Customer**: `customer_id`; an order without one is a walk-in sale: its lines have an
//!   empty customer id (the sync counts them and keeps none) and `walk_in` is set.

use chrono::{DateTime, Offset, Utc};
use chrono_tz::Tz;

use super::client::SquareError;
use super::json::Node;
use super::money::major;
use crate::pos::LineItem;

/// What one order became.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLines {
    pub order_id: String,
    /// `updated_at` as Square wrote it (RFC 3339 UTC).
    pub updated_at: String,
    /// Empty: the order is not (or no longer) a sale to count. Lines of a walk-in sale have an
    /// empty customer id.
    pub lines: Vec<LineItem>,
    /// A completed order without a customer.
    pub walk_in: bool,
}

/// Maps one order; `zone` gives the time zone of a location id.
pub fn order(o: &Node<'_>, zone: &dyn Fn(&str) -> Option<Tz>) -> Result<OrderLines, SquareError> {
    let order_id = o.str("id")?.to_string();
    let updated_at = o.str("updated_at")?.to_string();
    let state = o.str("state")?;
    let mut out = OrderLines {
        order_id,
        updated_at,
        lines: Vec::new(),
        walk_in: false,
    };
    if state != "COMPLETED" {
        return Ok(out);
    }
    let customer = o.opt_str("customer_id")?.unwrap_or("");
    out.walk_in = customer.is_empty();
    let created = o.str("created_at")?;
    let utc = DateTime::parse_from_rfc3339(created)
        .map_err(|e| o.malformed("created_at", format!("`{created}` is not RFC 3339 ({e})")))?
        .with_timezone(&Utc);
    let location = o.str("location_id")?;
    let tz = zone(location).unwrap_or(Tz::UTC);
    let local = utc.with_timezone(&tz);
    let offset = local.offset().fix().local_minus_utc();
    let base = LineItem {
        order_id: out.order_id.clone(),
        customer_id: customer.to_string(),
        timestamp: local.naive_local(),
        utc_offset_secs: Some(offset),
        ..LineItem::default()
    };
    for li in o.list("line_items")? {
        out.lines.push(line(&li, &base, 1.0)?);
    }
    for ret in o.list("returns")? {
        for li in ret.list("return_line_items")? {
            out.lines.push(line(&li, &base, -1.0)?);
        }
    }
    Ok(out)
}

fn line(li: &Node<'_>, base: &LineItem, sign: f64) -> Result<LineItem, SquareError> {
    let name = li.opt_str("name")?.filter(|n| !n.is_empty());
    let product = li
        .opt_str("catalog_object_id")?
        .filter(|p| !p.is_empty())
        .or(name)
        .ok_or_else(|| li.malformed("catalog_object_id", "and `name` are both missing"))?;
    let qty_text = li.str("quantity")?;
    let quantity: f64 = qty_text
        .parse()
        .ok()
        .filter(|q: &f64| q.is_finite())
        .ok_or_else(|| li.malformed("quantity", format!("`{qty_text}` is not a decimal")))?;
    let (total, currency) =
        money(li, "total_money")?.ok_or_else(|| li.malformed("total_money", "is missing"))?;
    let tax = match money(li, "total_tax_money")? {
        Some((t, c)) if c == currency => t,
        Some((_, c)) => {
            return Err(li.malformed(
                "total_tax_money.currency",
                format!("`{c}` differs from total_money's `{currency}`"),
            ));
        }
        None => 0,
    };
    let unit_price = money(li, "base_price_money")?.map(|(a, c)| major(a, &c));
    Ok(LineItem {
        product_id: product.to_string(),
        product_name: name.map(str::to_string),
        quantity: sign * quantity,
        unit_price,
        amount: sign * major(total - tax, &currency),
        currency: Some(currency),
        ..base.clone()
    })
}

/// `{amount, currency}` at `key`, absent as `None`.
pub fn money(n: &Node<'_>, key: &str) -> Result<Option<(i64, String)>, SquareError> {
    let Some(m) = n.opt(key)? else {
        return Ok(None);
    };
    let amount = m.i64("amount")?;
    let currency = m.str("currency")?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(m.malformed("currency", format!("`{currency}` is not an ISO 4217 code")));
    }
    Ok(Some((amount, currency.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone(id: &str) -> Option<Tz> {
        match id {
            "L_NY" => Some(chrono_tz::America::New_York),
            "L_TK" => Some(chrono_tz::Asia::Tokyo),
            _ => None,
        }
    }

    fn map(v: serde_json::Value) -> Result<OrderLines, SquareError> {
        order(&Node::root("POST /v2/orders/search", &v), &zone)
    }

    #[test]
    fn completed_order_lines_money_and_local_time() {
        let o = map(json!({
            "id": "O1", "location_id": "L_NY", "customer_id": "C1", "state": "COMPLETED",
            "created_at": "2025-01-15T02:30:00.000Z", "updated_at": "2025-01-15T02:31:00Z",
            "line_items": [
                {"name": "Latte", "quantity": "2", "catalog_object_id": "V1",
                 "base_price_money": {"amount": 450, "currency": "USD"},
                 "total_tax_money": {"amount": 72, "currency": "USD"},
                 "total_money": {"amount": 872, "currency": "USD"}},
                {"name": "Custom", "quantity": "1.5",
                 "total_money": {"amount": 300, "currency": "USD"}}
            ]
        }))
        .unwrap();
        assert_eq!(o.lines.len(), 2);
        let l = &o.lines[0];
        // 02:30 UTC is 21:30 the day before in New York (EST, -5 h).
        assert_eq!(l.timestamp.to_string(), "2025-01-14 21:30:00");
        assert_eq!(l.utc_offset_secs, Some(-5 * 3600));
        assert_eq!((l.quantity, l.unit_price, l.amount), (2.0, Some(4.5), 8.0));
        assert_eq!(l.product_id, "V1");
        assert_eq!(o.lines[1].product_id, "Custom");
        assert_eq!(o.lines[1].quantity, 1.5);
    }

    #[test]
    fn zero_decimal_currency_returns_and_states() {
        let o = map(json!({
            "id": "R1", "location_id": "L_TK", "customer_id": "C2", "state": "COMPLETED",
            "created_at": "2025-07-01T15:00:00Z", "updated_at": "2025-07-01T15:00:00Z",
            "returns": [{"source_order_id": "O9", "return_line_items": [
                {"name": "Tea", "quantity": "1", "catalog_object_id": "V2",
                 "base_price_money": {"amount": 500, "currency": "JPY"},
                 "total_money": {"amount": 500, "currency": "JPY"}}]}]
        }))
        .unwrap();
        assert_eq!(o.lines[0].timestamp.to_string(), "2025-07-02 00:00:00");
        assert_eq!(o.lines[0].utc_offset_secs, Some(9 * 3600));
        assert_eq!((o.lines[0].quantity, o.lines[0].amount), (-1.0, -500.0));
        for state in ["OPEN", "CANCELED", "DRAFT"] {
            let o = map(json!({"id": "O2", "state": state, "updated_at": "x"})).unwrap();
            assert!(o.lines.is_empty() && !o.walk_in, "{state}");
        }
        let o = map(json!({"id": "O3", "state": "COMPLETED", "updated_at": "x",
            "location_id": "L_NY", "created_at": "2025-01-15T02:30:00Z",
            "line_items": [{"name": "A", "quantity": "1",
                "total_money": {"amount": 100, "currency": "USD"}}]}))
        .unwrap();
        assert!(o.walk_in && o.lines.len() == 1 && o.lines[0].customer_id.is_empty());
    }

    #[test]
    fn malformed_fields_are_named() {
        let bad = |li: serde_json::Value| {
            map(
                json!({"id": "O1", "location_id": "L_NY", "customer_id": "C1",
                "state": "COMPLETED", "created_at": "2025-01-15T02:30:00Z",
                "updated_at": "2025-01-15T02:30:00Z", "line_items": [li]}),
            )
            .unwrap_err()
            .to_string()
        };
        let e = bad(json!({"name": "A", "quantity": "2",
            "total_money": {"amount": "8.72", "currency": "USD"}}));
        assert_eq!(
            e,
            "Square POST /v2/orders/search: malformed response: field \
             `line_items[0].total_money.amount` is not an integer (a string)"
        );
        let e = bad(json!({"name": "A", "quantity": "two",
            "total_money": {"amount": 1, "currency": "USD"}}));
        assert!(
            e.contains("`line_items[0].quantity` `two` is not a decimal"),
            "{e}"
        );
        let e = map(json!({"id": "O1", "state": "COMPLETED", "customer_id": "C",
            "updated_at": "x", "created_at": "yesterday", "location_id": "L_NY"}))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("field `created_at` `yesterday` is not RFC 3339"),
            "{e}"
        );
    }
}
