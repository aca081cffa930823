//! JSON Lines of orders, Shopify-Admin-like (format `jsonl`): one order object per line.
//!
//! ```json
//! {"id": 5001, "email": "ada@example.com", "created_at": "2024-03-01T10:15:00-05:00",
//!  "currency": "USD", "financial_status": "paid", "cancelled_at": null,
//!  "customer": {"id": 77, "email": "ada@example.com", "first_name": "Ada",
//!               "last_name": "Lovelace", "accepts_marketing": true},
//!  "line_items": [{"id": 1, "product_id": 632910392, "sku": "MUG-BLU", "title": "Mug",
//!                  "quantity": 2, "price": "18.00", "total_discount": "0.00",
//!                  "category": "Kitchen"}],
//!  "refunds": [{"refund_line_items": [{"line_item_id": 1, "quantity": 1, "subtotal": 18.0}]}]}
//! ```
//!
//! Decisions:
//! - Ids, quantities and prices may be JSON numbers or strings (`"18.00"`, as Shopify writes
//!   money); money strings go through [`super::money`] with a `.` decimal separator.
//! - **Customer key** ([`CustomerKey`]): `auto` (default) uses `customer.id` when present, else
//!   the email (top-level `email`, else `customer.email`) lowercased; `id` and `email` force one.
//!   With `auto`, a customer who sometimes has an id and sometimes only an email splits in two:
//!   pick `email` for such data. Orders without a key are counted in `rows_without_customer` and
//!   skipped. Name = `customer.first_name` + `last_name`; consent = `customer.accepts_marketing`,
//!   else top-level `buyer_accepts_marketing`.
//! - `cancelled_at` non-null excludes the order (`cancelled_orders`); `financial_status`
//!   `refunded` / `voided` exclude it (`refunded_orders` / `voided_orders`).
//! - Refunds: each `refunds[].refund_line_items[]` entry subtracts its `subtotal` (else
//!   quantity x price) and its `quantity` from the line item with that `line_item_id`; orders
//!   with such entries count in `partially_refunded_orders`. A `partially_refunded` order without
//!   refund details is kept at full value (and counted).
//! - Line amount = `price` x `quantity` - `total_discount`; product id = `product_id`, else `sku`,
//!   else `title`; category = `category`, else `product_type`.
//! - A line that is not valid JSON, not an object, or has a missing / malformed field is one bad
//!   row (the whole order), with its line number and the JSON path of the field at fault. Blank
//!   lines are skipped and not counted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dates::{DateFormat, DateParser, Timestamp};
use super::model::{
    BadRow, CustomerBook, CustomerSeen, LineItem, ParseReport, PosError, StreamOutcome,
};
use super::money::{DecimalSeparator, parse_money};

/// Which field is the customer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerKey {
    /// `customer.id`, else the email.
    #[default]
    Auto,
    /// `customer.id` only.
    Id,
    /// The email only (lowercased).
    Email,
}

/// Options of the JSON Lines format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonlOptions {
    /// Which field is the customer key.
    pub customer_key: CustomerKey,
    /// How `created_at` is written (default: auto, ISO 8601).
    pub date_format: DateFormat,
}

/// Parses JSON Lines orders, handing each line item to `sink`.
pub fn parse_with<R: Read>(
    reader: R,
    opts: &JsonlOptions,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    let dates = DateParser::new(&opts.date_format).map_err(PosError::Config)?;
    let mut reader = BufReader::new(reader);
    let mut report = ParseReport::default();
    let mut book = CustomerBook::default();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| PosError::io(None, &e))?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_start_matches('\u{feff}').trim(),
            Err(_) => {
                report.rows_read += 1;
                report.push_bad(BadRow::new(line, "the line is not valid UTF-8"));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        report.rows_read += 1;
        let order = match parse_order(text, line, &dates, opts.customer_key) {
            Ok(o) => o,
            Err(bad) => {
                report.push_bad(bad);
                continue;
            }
        };
        let n_items = order.items.len() as u64;
        match order.status {
            Status::Cancelled => {
                report.cancelled_orders += 1;
                report.excluded_rows += 1;
                continue;
            }
            Status::Voided => {
                report.voided_orders += 1;
                report.excluded_rows += 1;
                continue;
            }
            Status::Refunded => {
                report.refunded_orders += 1;
                report.excluded_rows += 1;
                continue;
            }
            Status::PartiallyRefunded => report.partially_refunded_orders += 1,
            Status::Kept => {}
        }
        let Some(customer_id) = order.customer_id else {
            report.rows_without_customer += 1;
            report.excluded_rows += 1;
            continue;
        };
        if n_items == 0 {
            continue;
        }
        let customer = book.observe(
            &customer_id,
            order.created.local,
            line,
            CustomerSeen {
                email: order.email.as_deref(),
                name: order.name.as_deref(),
                accepts_marketing: order.accepts_marketing,
            },
        );
        for it in order.items {
            report.items += 1;
            sink(
                &LineItem {
                    line,
                    order_id: order.id.clone(),
                    customer_id: customer_id.clone(),
                    timestamp: order.created.local,
                    utc_offset_secs: order.created.offset_secs,
                    product_id: it.product_id,
                    product_name: it.title,
                    category: it.category,
                    quantity: it.quantity,
                    unit_price: Some(it.price),
                    amount: it.amount,
                    currency: order.currency.clone(),
                },
                customer,
            );
        }
    }
    report.customers = book.len() as u64;
    Ok(StreamOutcome {
        customers: book.into_customers(),
        report,
    })
}

enum Status {
    Kept,
    Cancelled,
    Voided,
    Refunded,
    PartiallyRefunded,
}

struct Item {
    id: Option<String>,
    product_id: String,
    title: Option<String>,
    category: Option<String>,
    quantity: f64,
    price: f64,
    amount: f64,
}

struct Order {
    id: String,
    customer_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    accepts_marketing: Option<bool>,
    created: Timestamp,
    currency: Option<String>,
    status: Status,
    items: Vec<Item>,
}

fn bad(line: u64, path: &str, msg: impl std::fmt::Display) -> BadRow {
    BadRow {
        line,
        column: Some(path.to_string()),
        reason: format!("`{path}`: {msg}"),
    }
}

/// A string or number as a key; `None` for null / missing / empty.
fn key(v: Option<&Value>, line: u64, path: &str) -> Result<Option<String>, BadRow> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(bad(
            line,
            path,
            format!("expected a string or number, got {other}"),
        )),
    }
}

fn text<'a>(v: Option<&'a Value>, line: u64, path: &str) -> Result<Option<&'a str>, BadRow> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then_some(s))
        }
        Some(other) => Err(bad(line, path, format!("expected a string, got {other}"))),
    }
}

fn number(v: Option<&Value>, line: u64, path: &str) -> Result<Option<f64>, BadRow> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(line, path, format!("{n} is out of range"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_money(s, DecimalSeparator::Dot)
            .map(|m| Some(m.value))
            .map_err(|e| bad(line, path, e)),
        Some(other) => Err(bad(line, path, format!("expected a number, got {other}"))),
    }
}

fn flag(v: Option<&Value>, line: u64, path: &str) -> Result<Option<bool>, BadRow> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => super::model::parse_flag(s).map_err(|e| bad(line, path, e)),
        Some(other) => Err(bad(
            line,
            path,
            format!("expected true or false, got {other}"),
        )),
    }
}

fn parse_order(
    text_line: &str,
    line: u64,
    dates: &DateParser,
    key_mode: CustomerKey,
) -> Result<Order, BadRow> {
    let value: Value = serde_json::from_str(text_line).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        BadRow::new(
            line,
            format!("invalid JSON at column {}: {msg}", e.column()),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(BadRow::new(
            line,
            "expected a JSON object (one order per line)",
        ));
    };
    let empty = Map::new();
    let customer = match obj.get("customer") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(bad(
                line,
                "customer",
                format!("expected an object, got {other}"),
            ));
        }
    };
    let id = key(obj.get("id"), line, "id")?.ok_or_else(|| bad(line, "id", "missing"))?;
    let created_raw = text(obj.get("created_at"), line, "created_at")?
        .ok_or_else(|| bad(line, "created_at", "missing"))?;
    let created = dates
        .parse(created_raw)
        .map_err(|e| bad(line, "created_at", e))?;
    let email = match text(obj.get("email"), line, "email")? {
        Some(e) => Some(e),
        None => text(customer.get("email"), line, "customer.email")?,
    }
    .map(str::to_lowercase);
    let customer_ref = key(customer.get("id"), line, "customer.id")?;
    let customer_id = match key_mode {
        CustomerKey::Auto => customer_ref.or_else(|| email.clone()),
        CustomerKey::Id => customer_ref,
        CustomerKey::Email => email.clone(),
    };
    let first = text(customer.get("first_name"), line, "customer.first_name")?;
    let last = text(customer.get("last_name"), line, "customer.last_name")?;
    let name = match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    };
    let accepts_marketing = match flag(
        customer.get("accepts_marketing"),
        line,
        "customer.accepts_marketing",
    )? {
        Some(b) => Some(b),
        None => flag(
            obj.get("buyer_accepts_marketing"),
            line,
            "buyer_accepts_marketing",
        )?,
    };
    let currency = text(obj.get("currency"), line, "currency")?.map(str::to_ascii_uppercase);
    let status_text = text(obj.get("financial_status"), line, "financial_status")?
        .unwrap_or("")
        .to_ascii_lowercase();
    let cancelled = !matches!(obj.get("cancelled_at"), None | Some(Value::Null))
        && text(obj.get("cancelled_at"), line, "cancelled_at")?.is_some();

    let items_value = obj
        .get("line_items")
        .ok_or_else(|| bad(line, "line_items", "missing"))?;
    let Value::Array(raw_items) = items_value else {
        return Err(bad(
            line,
            "line_items",
            format!("expected an array, got {items_value}"),
        ));
    };
    let mut items = Vec::with_capacity(raw_items.len());
    for (i, raw) in raw_items.iter().enumerate() {
        let p = |f: &str| format!("line_items[{i}].{f}");
        let Value::Object(it) = raw else {
            return Err(bad(line, &format!("line_items[{i}]"), "expected an object"));
        };
        let title =
            text(it.get("title"), line, &p("title"))?.or(text(it.get("name"), line, &p("name"))?);
        let product_id = match key(it.get("product_id"), line, &p("product_id"))? {
            Some(k) => k,
            None => match text(it.get("sku"), line, &p("sku"))? {
                Some(s) => s.to_string(),
                None => title.map(str::to_string).ok_or_else(|| {
                    bad(line, &p("product_id"), "missing (and no `sku` or `title`)")
                })?,
            },
        };
        let quantity = number(it.get("quantity"), line, &p("quantity"))?
            .ok_or_else(|| bad(line, &p("quantity"), "missing"))?;
        let price = number(it.get("price"), line, &p("price"))?
            .ok_or_else(|| bad(line, &p("price"), "missing"))?;
        let discount = number(it.get("total_discount"), line, &p("total_discount"))?.unwrap_or(0.0);
        let category = match text(it.get("category"), line, &p("category"))? {
            Some(c) => Some(c),
            None => text(it.get("product_type"), line, &p("product_type"))?,
        };
        items.push(Item {
            id: key(it.get("id"), line, &p("id"))?,
            product_id,
            title: title.map(str::to_string),
            category: category.map(str::to_string),
            quantity,
            price,
            amount: price * quantity - discount,
        });
    }
    let refunded_lines = apply_refunds(&obj, &mut items, line)?;

    let status = if cancelled {
        Status::Cancelled
    } else if status_text == "voided" {
        Status::Voided
    } else if status_text == "refunded" {
        Status::Refunded
    } else if refunded_lines || status_text == "partially_refunded" {
        Status::PartiallyRefunded
    } else {
        Status::Kept
    };
    Ok(Order {
        id,
        customer_id,
        email,
        name,
        accepts_marketing,
        created,
        currency,
        status,
        items,
    })
}

/// Applies `refunds[].refund_line_items[]`; true when any line was refunded.
fn apply_refunds(obj: &Map<String, Value>, items: &mut [Item], line: u64) -> Result<bool, BadRow> {
    let Some(refunds) = obj.get("refunds") else {
        return Ok(false);
    };
    let Value::Array(refunds) = refunds else {
        if refunds.is_null() {
            return Ok(false);
        }
        return Err(bad(line, "refunds", "expected an array"));
    };
    let by_id: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| it.id.clone().map(|id| (id, i)))
        .collect();
    let mut any = false;
    for (r, refund) in refunds.iter().enumerate() {
        let Some(Value::Array(rlis)) = refund.get("refund_line_items") else {
            continue;
        };
        for (k, rli) in rlis.iter().enumerate() {
            let p = |f: &str| format!("refunds[{r}].refund_line_items[{k}].{f}");
            let target = key(rli.get("line_item_id"), line, &p("line_item_id"))?
                .ok_or_else(|| bad(line, &p("line_item_id"), "missing"))?;
            let Some(&idx) = by_id.get(&target) else {
                return Err(bad(
                    line,
                    &p("line_item_id"),
                    format!("no line item has id `{target}`"),
                ));
            };
            let qty = number(rli.get("quantity"), line, &p("quantity"))?.unwrap_or(0.0);
            let item = &mut items[idx];
            let subtotal =
                number(rli.get("subtotal"), line, &p("subtotal"))?.unwrap_or(qty * item.price);
            item.amount -= subtotal;
            item.quantity -= qty;
            any = true;
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::super::model::Parsed;
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/orders.jsonl");

    fn parse(text: &str, opts: &JsonlOptions) -> Result<Parsed, PosError> {
        super::super::parse(text.as_bytes(), &super::super::Format::Jsonl(opts.clone()))
    }

    #[test]
    fn fixture_counts_and_bad_rows() {
        let p = parse(FIXTURE, &JsonlOptions::default()).unwrap();
        let r = &p.report;
        let reasons: Vec<String> = r.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 6: invalid JSON at column 51: expected `,` or `}`",
                "line 9: `line_items[1].price`: `12,3x` is not a number (unexpected `x`)",
                "line 11: expected a JSON object (one order per line)",
                "line 13: `created_at`: `2024-02-30T10:00:00Z` is not a valid date (day 30 does \
                 not exist in 2024-02)",
            ]
        );
        assert_eq!(r.rows_read, 15);
        assert_eq!(r.excluded_rows, 3);
        assert_eq!(r.cancelled_orders, 1);
        assert_eq!(r.refunded_orders, 1);
        assert_eq!(r.partially_refunded_orders, 1);
        assert_eq!(r.rows_without_customer, 1);
        assert_eq!(r.items, 11);
        assert_eq!(r.customers, 5);
    }

    #[test]
    fn fixture_values() {
        let p = parse(FIXTURE, &JsonlOptions::default()).unwrap();
        let first = &p.items[0];
        assert_eq!(first.line, 1);
        assert_eq!(first.order_id, "5001");
        // customer.id wins over the email in `auto` mode.
        assert_eq!(first.customer_id, "77");
        assert_eq!(first.product_id, "632910392");
        assert_eq!(first.category.as_deref(), Some("Kitchen"));
        assert_eq!(
            (first.quantity, first.unit_price, first.amount),
            (2.0, Some(18.0), 36.0)
        );
        assert_eq!(first.timestamp.to_string(), "2024-01-15 10:15:00");
        assert_eq!(first.utc_offset_secs, Some(-18000));
        // Numbers as strings and discounts.
        let disc = p.items.iter().find(|i| i.order_id == "5002").unwrap();
        assert_eq!(disc.amount, 2.0 * 12.5 - 5.0);
        // Refund line items reduce the refunded line only.
        let refunded: Vec<&LineItem> = p.items.iter().filter(|i| i.order_id == "5005").collect();
        assert_eq!(refunded.len(), 2);
        assert_eq!((refunded[0].quantity, refunded[0].amount), (1.0, 18.0));
        assert_eq!((refunded[1].quantity, refunded[1].amount), (1.0, 12.0));
        // Email-only order: key is the lowercased email; product id falls back to the SKU.
        let email_only = p.items.iter().find(|i| i.order_id == "5003").unwrap();
        assert_eq!(email_only.customer_id, "grace@example.com");
        assert_eq!(email_only.product_id, "BEAN-DECAF");
        let ada = p.customers.iter().find(|c| c.customer_id == "77").unwrap();
        assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
        assert_eq!(ada.accepts_marketing, Some(true));
    }

    #[test]
    fn email_key_mode_merges_id_and_email_orders() {
        let opts = JsonlOptions {
            customer_key: CustomerKey::Email,
            ..JsonlOptions::default()
        };
        let p = parse(FIXTURE, &opts).unwrap();
        assert!(p.items.iter().any(|i| i.customer_id == "ada@example.com"));
        assert!(!p.items.iter().any(|i| i.customer_id == "77"));
        let opts = JsonlOptions {
            customer_key: CustomerKey::Id,
            ..JsonlOptions::default()
        };
        let p = parse(FIXTURE, &opts).unwrap();
        assert!(!p.items.iter().any(|i| i.customer_id.contains('@')));
        assert!(p.report.rows_without_customer > 1);
    }

    #[test]
    fn field_errors_name_the_json_path() {
        let cases = [
            (
                r#"{"created_at": "2024-01-01", "line_items": []}"#,
                "line 1: `id`: missing",
            ),
            (
                r#"{"id": 1, "line_items": []}"#,
                "line 1: `created_at`: missing",
            ),
            (
                r#"{"id": 1, "created_at": "2024-01-01"}"#,
                "line 1: `line_items`: missing",
            ),
            (
                r#"{"id": 1, "created_at": "2024-01-01", "line_items": [{"sku": "A", "price": 1}]}"#,
                "line 1: `line_items[0].quantity`: missing",
            ),
            (
                r#"{"id": [1], "created_at": "2024-01-01", "line_items": []}"#,
                "line 1: `id`: expected a string or number, got [1]",
            ),
            (
                r#"{"id": 1, "created_at": "2024-01-01", "line_items": [{"quantity": 1, "price": 1}]}"#,
                "line 1: `line_items[0].product_id`: missing (and no `sku` or `title`)",
            ),
            (
                r#"{"id": 1, "created_at": "2024-01-01", "customer": {"accepts_marketing": "maybe"}, "line_items": []}"#,
                "line 1: `customer.accepts_marketing`: `maybe` is not a yes/no value",
            ),
            (
                r#"{"id": 1, "created_at": "2024-01-01", "line_items": [{"id": 1, "sku": "A", "quantity": 1, "price": 1}], "refunds": [{"refund_line_items": [{"line_item_id": 9}]}]}"#,
                "line 1: `refunds[0].refund_line_items[0].line_item_id`: no line item has id `9`",
            ),
        ];
        for (text, expected) in cases {
            let p = parse(text, &JsonlOptions::default()).unwrap();
            let got: Vec<String> = p.report.bad_rows.iter().map(ToString::to_string).collect();
            assert_eq!(got, vec![expected.to_string()], "{text}");
        }
    }

    #[test]
    fn blank_lines_crlf_and_bom_are_tolerated() {
        let text = "\u{feff}{\"id\": 1, \"email\": \"A@X.com\", \"created_at\": \"2024-01-01\", \
                    \"line_items\": [{\"sku\": \"A\", \"quantity\": 1, \"price\": \"2.50\"}]}\r\n\r\n\n";
        let p = parse(text, &JsonlOptions::default()).unwrap();
        assert_eq!(p.report.rows_read, 1);
        assert_eq!(p.items[0].customer_id, "a@x.com");
        assert_eq!(p.items[0].amount, 2.5);
    }
}
