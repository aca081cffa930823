//! Shopify orders CSV export (format `shopify_orders`).
//!
//! The export has one row per line item; order-level fields (`Email`, `Financial Status`,
//! `Accepts Marketing`, `Currency`, `Total`, `Created at`, `Cancelled at`, `Refunded Amount`,
//! `Billing Name`, ...) are filled on an order's *first* row only (some exports repeat a few of
//! them). Rows are grouped by `Name` (the order number, e.g. `#1001`), so an order's rows need
//! not be contiguous; the whole file is buffered (Shopify exports are at most a few hundred
//! thousand rows).
//!
//! Decisions:
//! - **Order fields** come from the order's first row (first in file order); later rows' copies
//!   are ignored. If that first row is bad, the order's other rows are bad too (their order is
//!   unknown: it may be cancelled or refunded), each with a reason naming the first row.
//! - **Customer key**: `Email`, trimmed and lowercased. Orders without an email (POS walk-in
//!   sales) are counted in `rows_without_customer` and skipped by default; with
//!   `missing_email: order` they are kept with the key `order:<Name>` (a one-time customer per
//!   order, for revenue completeness). The customer name is `Billing Name`, else
//!   `Shipping Name`; `Accepts Marketing` is yes/no.
//! - **Cancelled** orders (`Cancelled at` set) are excluded and counted in `cancelled_orders`,
//!   whatever their financial status. **Voided** orders (`Financial Status` = `voided`) are
//!   excluded (`voided_orders`). **Refunded** orders (`refunded`) are excluded
//!   (`refunded_orders`). Pending / authorized / partially paid orders are kept: the customer
//!   placed them.
//! - **Partial refunds**: when `Refunded Amount` > 0 on a kept order, every line amount is
//!   scaled by `1 - Refunded Amount / Total` (clamped to 0..1). The refunded amount includes its
//!   share of tax and shipping, and so does `Total`, so the ratio is the refunded share of the
//!   order; subtracting the raw amount from the (tax-exclusive) lines would over-deduct. Without
//!   a usable `Total` the ratio is taken against the sum of the line amounts. A refund of the
//!   whole total counts as a full refund. Counted in `partially_refunded_orders`.
//! - **Line amount** = `Lineitem price` x `Lineitem quantity` - `Lineitem discount` (before the
//!   refund scaling); `unit_price` = `Lineitem price`. Order-level discount codes that Shopify
//!   did not allocate to lines are not spread over them.
//! - **Product id** = `Lineitem sku`, else `Lineitem name` (so a catalog keyed by SKU joins);
//!   the category is unknown (the export has none: the catalog supplies it).
//! - **Timestamp** = `Created at` (`2024-03-01 10:15:00 -0500`: local time, offset kept).
//! - Items are emitted grouped by order, orders in first-seen order.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::dates::{DateFormat, DateParser, Timestamp};
use super::model::{
    BadRow, CustomerBook, CustomerSeen, LineItem, ParseReport, PosError, StreamOutcome, parse_flag,
};
use super::money::{DecimalSeparator, parse_money, parse_number};
use super::table::{Delimiter, Row, TableReader};

/// What to do with orders that have no email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingEmail {
    /// Count them in `rows_without_customer` and skip them.
    #[default]
    Skip,
    /// Keep them under the customer key `order:<Name>`.
    Order,
}

/// Options of the Shopify orders format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopifyOptions {
    /// How `Created at` is written (default: auto, which reads Shopify's format).
    pub date_format: DateFormat,
    /// Decimal separator of money columns (default `.`).
    pub decimal: DecimalSeparator,
    /// Orders without an email.
    pub missing_email: MissingEmail,
}

struct Cols {
    name: usize,
    email: Option<usize>,
    financial_status: Option<usize>,
    accepts_marketing: Option<usize>,
    currency: Option<usize>,
    total: Option<usize>,
    created_at: usize,
    quantity: usize,
    item_name: usize,
    price: usize,
    sku: Option<usize>,
    discount: Option<usize>,
    cancelled_at: Option<usize>,
    refunded: Option<usize>,
    billing_name: Option<usize>,
    shipping_name: Option<usize>,
}

fn resolve<R: Read>(t: &TableReader<R>) -> Result<Cols, PosError> {
    let mut c = t.columns();
    let cols = Cols {
        name: c.require("Name", "order number"),
        email: c.find("Email"),
        financial_status: c.find("Financial Status"),
        accepts_marketing: c.find("Accepts Marketing"),
        currency: c.find("Currency"),
        total: c.find("Total"),
        created_at: c.require("Created at", "order date"),
        quantity: c.require("Lineitem quantity", "quantity"),
        item_name: c.require("Lineitem name", "product name"),
        price: c.require("Lineitem price", "unit price"),
        sku: c.find("Lineitem sku"),
        discount: c.find("Lineitem discount"),
        cancelled_at: c.find("Cancelled at"),
        refunded: c.find("Refunded Amount"),
        billing_name: c.find("Billing Name"),
        shipping_name: c.find("Shipping Name"),
    };
    c.finish()?;
    Ok(cols)
}

#[derive(Debug)]
struct OrderFields {
    email: Option<String>,
    status: String,
    accepts_marketing: Option<bool>,
    currency: Option<String>,
    total: Option<f64>,
    created: Timestamp,
    cancelled: bool,
    refunded: f64,
    customer_name: Option<String>,
}

#[derive(Debug)]
struct LineFields {
    line: u64,
    quantity: f64,
    price: f64,
    amount: f64,
    product_id: String,
    product_name: String,
}

#[derive(Debug)]
struct Order {
    name: String,
    first_line: u64,
    /// `Err(line)` when the first row was bad.
    fields: Result<OrderFields, u64>,
    lines: Vec<LineFields>,
}

/// Parses a Shopify orders export, handing each line item to `sink`.
pub fn parse_with<R: Read>(
    reader: R,
    opts: &ShopifyOptions,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    let dates = DateParser::new(&opts.date_format).map_err(PosError::Config)?;
    let mut table = TableReader::new(reader, Delimiter::Comma)?;
    let cols = resolve(&table)?;
    let header = table.header().to_vec();
    let col = |i: usize| header.get(i).map_or("?", String::as_str);
    let mut report = ParseReport::default();
    let mut bad: Vec<BadRow> = Vec::new();
    let mut orders: Vec<Order> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();

    while let Some(row) = table.next_row(&mut report)? {
        let name = row.get(cols.name);
        if name.is_empty() {
            bad.push(BadRow::in_column(row.line, col(cols.name), "empty"));
            continue;
        }
        let idx = match by_name.get(name) {
            Some(&i) => i,
            None => {
                let fields = order_fields(&row, &cols, &dates, opts.decimal, &col);
                let fields = fields.map_err(|b| {
                    bad.push(b);
                    row.line
                });
                orders.push(Order {
                    name: name.to_string(),
                    first_line: row.line,
                    fields,
                    lines: Vec::new(),
                });
                by_name.insert(name.to_string(), orders.len() - 1);
                let i = orders.len() - 1;
                if orders[i].fields.is_err() {
                    continue;
                }
                i
            }
        };
        match line_fields(&row, &cols, opts.decimal, &col) {
            Ok(l) => orders[idx].lines.push(l),
            Err(b) => bad.push(b),
        }
    }

    let mut book = CustomerBook::default();
    for order in orders {
        let fields = match order.fields {
            Ok(f) => f,
            Err(first) => {
                for l in &order.lines {
                    bad.push(BadRow::new(
                        l.line,
                        format!(
                            "order `{}`: its first row (line {first}) is bad, so the order's \
                             date and status are unknown",
                            order.name
                        ),
                    ));
                }
                continue;
            }
        };
        let n_lines = order.lines.len() as u64;
        let status = fields.status.as_str();
        let line_total: f64 = order.lines.iter().map(|l| l.amount).sum();
        let base = fields.total.filter(|t| *t > 0.0).unwrap_or(line_total);
        let fully_refunded =
            status == "refunded" || (fields.refunded > 0.0 && fields.refunded >= base);
        if fields.cancelled {
            report.cancelled_orders += 1;
            report.excluded_rows += n_lines;
            continue;
        }
        if status == "voided" {
            report.voided_orders += 1;
            report.excluded_rows += n_lines;
            continue;
        }
        if fully_refunded {
            report.refunded_orders += 1;
            report.excluded_rows += n_lines;
            continue;
        }
        let factor = if fields.refunded > 0.0 && base > 0.0 {
            report.partially_refunded_orders += 1;
            (1.0 - fields.refunded / base).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let customer_id = match (&fields.email, opts.missing_email) {
            (Some(email), _) => email.clone(),
            (None, MissingEmail::Order) => format!("order:{}", order.name),
            (None, MissingEmail::Skip) => {
                report.rows_without_customer += n_lines;
                report.excluded_rows += n_lines;
                continue;
            }
        };
        if n_lines == 0 {
            continue;
        }
        let customer = book.observe(
            &customer_id,
            fields.created.local,
            order.first_line,
            CustomerSeen {
                email: fields.email.as_deref(),
                name: fields.customer_name.as_deref(),
                accepts_marketing: fields.accepts_marketing,
            },
        );
        for l in order.lines {
            report.items += 1;
            sink(
                &LineItem {
                    line: l.line,
                    order_id: order.name.clone(),
                    customer_id: customer_id.clone(),
                    timestamp: fields.created.local,
                    utc_offset_secs: fields.created.offset_secs,
                    product_id: l.product_id,
                    product_name: Some(l.product_name),
                    category: None,
                    quantity: l.quantity,
                    unit_price: Some(l.price),
                    amount: round_cents(l.amount * factor),
                    currency: fields.currency.clone(),
                },
                customer,
            );
        }
    }
    bad.sort_by_key(|b| b.line);
    for b in bad {
        report.push_bad(b);
    }
    report.customers = book.len() as u64;
    Ok(StreamOutcome {
        customers: book.into_customers(),
        report,
    })
}

/// Rounds to 1e-6 to drop binary noise from the refund scaling without losing cents.
fn round_cents(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn money_opt<'h>(
    row: &Row,
    idx: Option<usize>,
    decimal: DecimalSeparator,
    col: &dyn Fn(usize) -> &'h str,
) -> Result<Option<f64>, BadRow> {
    match (idx, row.opt(idx)) {
        (Some(i), Some(v)) => parse_money(v, decimal)
            .map(|m| Some(m.value))
            .map_err(|e| BadRow::in_column(row.line, col(i), e)),
        _ => Ok(None),
    }
}

fn order_fields<'h>(
    row: &Row,
    c: &Cols,
    dates: &DateParser,
    decimal: DecimalSeparator,
    col: &dyn Fn(usize) -> &'h str,
) -> Result<OrderFields, BadRow> {
    let created_raw = row.get(c.created_at);
    if created_raw.is_empty() {
        return Err(BadRow::in_column(
            row.line,
            col(c.created_at),
            "empty on the order's first row",
        ));
    }
    let created = dates
        .parse(created_raw)
        .map_err(|e| BadRow::in_column(row.line, col(c.created_at), e))?;
    let accepts_marketing = match (c.accepts_marketing, row.opt(c.accepts_marketing)) {
        (Some(i), Some(v)) => parse_flag(v).map_err(|e| BadRow::in_column(row.line, col(i), e))?,
        _ => None,
    };
    let customer_name = row.opt(c.billing_name).or_else(|| row.opt(c.shipping_name));
    Ok(OrderFields {
        email: row.opt(c.email).map(str::to_lowercase),
        status: row
            .opt(c.financial_status)
            .unwrap_or("")
            .to_ascii_lowercase(),
        accepts_marketing,
        currency: row.opt(c.currency).map(str::to_ascii_uppercase),
        total: money_opt(row, c.total, decimal, col)?,
        created,
        cancelled: row.opt(c.cancelled_at).is_some(),
        refunded: money_opt(row, c.refunded, decimal, col)?.unwrap_or(0.0),
        customer_name: customer_name.map(str::to_string),
    })
}

fn line_fields<'h>(
    row: &Row,
    c: &Cols,
    decimal: DecimalSeparator,
    col: &dyn Fn(usize) -> &'h str,
) -> Result<LineFields, BadRow> {
    let line = row.line;
    let qty_raw = row.get(c.quantity);
    if qty_raw.is_empty() {
        return Err(BadRow::in_column(line, col(c.quantity), "empty"));
    }
    let quantity =
        parse_number(qty_raw, decimal).map_err(|e| BadRow::in_column(line, col(c.quantity), e))?;
    let price_raw = row.get(c.price);
    if price_raw.is_empty() {
        return Err(BadRow::in_column(line, col(c.price), "empty"));
    }
    let price = parse_money(price_raw, decimal)
        .map_err(|e| BadRow::in_column(line, col(c.price), e))?
        .value;
    let discount = money_opt(row, c.discount, decimal, col)?.unwrap_or(0.0);
    let product_name = row.get(c.item_name);
    let product_id = row.opt(c.sku).unwrap_or(product_name);
    if product_id.is_empty() {
        return Err(BadRow::in_column(
            line,
            col(c.item_name),
            "empty (and no `Lineitem sku`)",
        ));
    }
    Ok(LineFields {
        line,
        quantity,
        price,
        amount: round_cents(price * quantity - discount),
        product_id: product_id.to_string(),
        product_name: product_name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::Parsed;
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/shopify_orders.csv");

    fn parse(text: &str, opts: &ShopifyOptions) -> Result<Parsed, PosError> {
        super::super::parse(
            text.as_bytes(),
            &super::super::Format::ShopifyOrders(opts.clone()),
        )
    }

    fn order<'a>(p: &'a Parsed, name: &str) -> Vec<&'a LineItem> {
        p.items.iter().filter(|i| i.order_id == name).collect()
    }

    #[test]
    fn fixture_counts_and_bad_rows() {
        let p = parse(FIXTURE, &ShopifyOptions::default()).unwrap();
        let r = &p.report;
        let reasons: Vec<String> = r.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 3: the row has 40 fields but the header has 79",
                "line 11: column `Lineitem price`: `12,3x` is not a number (unexpected `x`)",
                "line 13: column `Created at`: `2024-02-30 09:10:00 -0500` is not a valid date \
                 (day 30 does not exist in 2024-02)",
                "line 14: order `#1008`: its first row (line 13) is bad, so the order's date and \
                 status are unknown",
            ]
        );
        assert_eq!(r.rows_read, 26);
        assert_eq!(r.cancelled_orders, 1);
        assert_eq!(r.voided_orders, 0);
        assert_eq!(r.refunded_orders, 1);
        assert_eq!(r.partially_refunded_orders, 1);
        assert_eq!(r.rows_without_customer, 1);
        assert_eq!(r.excluded_rows, 2 + 2 + 1);
        assert_eq!(r.items, 17);
        assert_eq!(r.rows_read, r.items + r.bad_row_count + r.excluded_rows);
        assert!(
            p.items
                .iter()
                .all(|i| !["#1004", "#1005", "#1007", "#1008"].contains(&i.order_id.as_str()))
        );
    }

    #[test]
    fn fixture_multi_line_order_and_carry_forward() {
        let p = parse(FIXTURE, &ShopifyOptions::default()).unwrap();
        // #1012: Email and Created at only on the first row; three lines.
        let lines = order(&p, "#1012");
        assert_eq!(lines.len(), 3);
        for l in &lines {
            assert_eq!(l.customer_id, "alan@example.com");
            assert_eq!(l.timestamp.to_string(), "2024-03-02 16:45:00");
            assert_eq!(l.utc_offset_secs, Some(-5 * 3600));
            assert_eq!(l.currency.as_deref(), Some("USD"));
        }
        let amounts: Vec<f64> = lines.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, vec![36.0, 9.5, 14.0]);
        assert_eq!(lines[0].product_id, "MUG-BLU");
        assert_eq!(
            lines[0].product_name.as_deref(),
            Some("Speckled Mug - Blue")
        );
        assert_eq!((lines[0].quantity, lines[0].unit_price), (2.0, Some(18.0)));
    }

    #[test]
    fn fixture_discount_refund_sku_fallback_and_currency() {
        let p = parse(FIXTURE, &ShopifyOptions::default()).unwrap();
        // #1002: Lineitem discount subtracted.
        let l = order(&p, "#1002");
        assert_eq!(l[0].amount, 2.0 * 16.0 - 4.0);
        let l = order(&p, "#1003");
        assert_eq!(l[2].amount, 3.0 * 12.5 - 2.5);
        // #1006: partially refunded, 27.00 of a 54.00 total: lines halved.
        let l = order(&p, "#1006");
        let amounts: Vec<f64> = l.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, vec![12.5, 12.5]);
        // #1014: no SKU: the product id is the line item name.
        let l = order(&p, "#1014");
        assert_eq!(l[0].product_id, "Gift Card $25");
        // #1013 is in CAD.
        assert_eq!(order(&p, "#1013")[0].currency.as_deref(), Some("CAD"));
        // #1009: the bad line is dropped, the good one kept.
        assert_eq!(order(&p, "#1009").len(), 1);
        // #1015: the truncated row is dropped, the good one kept.
        assert_eq!(order(&p, "#1015").len(), 1);
        // #1010 is only authorized: kept.
        assert_eq!(order(&p, "#1010").len(), 1);
    }

    #[test]
    fn fixture_customers() {
        let p = parse(FIXTURE, &ShopifyOptions::default()).unwrap();
        let ids: Vec<&str> = p.customers.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "katherine@example.com",
                "ada@example.com",
                "alan@example.com",
                "grace.hopper@example.com",
                "margaret@example.com",
            ]
        );
        assert_eq!(p.report.customers, 5);
        let ada = &p.customers[1];
        assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
        // `Ada@Example.com` on #1014: the key is lowercased.
        assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
        // Ada opted in on #1001 and #1009 and opted out on #1014 (newest): the newest wins.
        assert_eq!(ada.accepts_marketing, Some(false));
        let grace = &p.customers[3];
        assert_eq!(grace.email.as_deref(), Some("grace.hopper@example.com"));
        // No on #1002 and #1006, yes on the newest (#1011).
        assert_eq!(grace.accepts_marketing, Some(true));
        // Every produced item's customer is in the list.
        assert!(
            p.items
                .iter()
                .all(|i| ids.contains(&i.customer_id.as_str()))
        );
    }

    #[test]
    fn missing_email_can_key_by_order() {
        let opts = ShopifyOptions {
            missing_email: MissingEmail::Order,
            ..ShopifyOptions::default()
        };
        let p = parse(FIXTURE, &opts).unwrap();
        let l = order(&p, "#1007");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].customer_id, "order:#1007");
        assert_eq!(p.report.rows_without_customer, 0);
        assert_eq!(p.report.items, 18);
    }

    const HEADER: &str = "Name,Email,Financial Status,Total,Created at,Lineitem quantity,\
                          Lineitem name,Lineitem price,Lineitem sku,Cancelled at,Refunded Amount";

    #[test]
    fn non_contiguous_rows_and_refund_edge_cases() {
        let text = format!(
            "{HEADER}\n\
             #1,a@x.com,paid,30.00,2024-01-01 10:00:00 +0000,1,A,10.00,A,,\n\
             #2,b@x.com,partially_refunded,,2024-01-02 10:00:00 +0000,1,B,10.00,B,,5.00\n\
             #1,,,,,2,C,10.00,C,,\n\
             #3,c@x.com,paid,20.00,2024-01-03 10:00:00 +0000,1,D,20.00,D,,20.00\n\
             #4,d@x.com,voided,20.00,2024-01-04 10:00:00 +0000,1,E,20.00,E,,\n\
             #5,e@x.com,refunded,20.00,2024-01-05 10:00:00 +0000,1,F,20.00,F,2024-01-05,\n"
        );
        let p = parse(&text, &ShopifyOptions::default()).unwrap();
        let o1 = order(&p, "#1");
        assert_eq!(o1.len(), 2);
        assert_eq!(o1[1].line, 4);
        assert_eq!(o1[1].timestamp, o1[0].timestamp);
        // #2 has no Total: the refund is taken against the line sum.
        assert_eq!(order(&p, "#2")[0].amount, 5.0);
        // #3 refunded its whole total while "paid": a full refund.
        assert!(order(&p, "#3").is_empty());
        assert_eq!(p.report.refunded_orders, 1);
        assert_eq!(p.report.voided_orders, 1);
        // #5 is cancelled and refunded: counted once, as cancelled.
        assert_eq!(p.report.cancelled_orders, 1);
        assert_eq!(p.report.partially_refunded_orders, 1);
    }

    #[test]
    fn missing_required_column() {
        let err = parse(
            "Name,Email,Created at\n#1,a@x.com,2024-01-01\n",
            &ShopifyOptions::default(),
        )
        .unwrap_err()
        .to_string();
        // Every missing column at once, not one per run.
        assert!(
            err.starts_with(
                "columns `Lineitem quantity` (for quantity), `Lineitem name` (for product \
                 name), `Lineitem price` (for unit price) are not in the header"
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_name_and_empty_quantity_are_bad() {
        let text = format!(
            "{HEADER}\n\
             ,a@x.com,paid,10,2024-01-01 10:00:00 +0000,1,A,10.00,A,,\n\
             #1,a@x.com,paid,10,2024-01-01 10:00:00 +0000,,A,10.00,A,,\n"
        );
        let p = parse(&text, &ShopifyOptions::default()).unwrap();
        let reasons: Vec<String> = p.report.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 2: column `Name`: empty",
                "line 3: column `Lineitem quantity`: empty"
            ]
        );
        assert!(p.items.is_empty());
    }
}
