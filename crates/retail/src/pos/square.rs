//! Square item sales CSV ("Items Detail" export; format `square_items`).
//!
//! Columns used: `Date`, `Time`, `Time Zone`, `Category`, `Item`, `Qty`, `SKU`, `Gross Sales`,
//! `Net Sales`, `Transaction ID`, `Event Type`, `Customer ID`, `Customer Name` (others, such as
//! `Price Point Name`, `Modifiers Applied`, `Discounts`, `Tax`, `Location`, are ignored).
//! Required: `Date`, `Item`, `Qty`, `Net Sales`, `Transaction ID`, `Customer ID`.
//!
//! Decisions:
//! - **Money** like `$3.00`, `-$3.00`, `($3.00)` through [`super::money`]; the bare `$` names no
//!   currency, so `currency` is the `currency` option (none by default).
//! - **amount** = `Net Sales` (after discounts, before tax); `unit_price` = `Gross Sales` / `Qty`
//!   when both are there and `Qty` is not 0.
//! - **Refunds**: rows with `Event Type` = `Refund` are kept as negative line items (quantity and
//!   amount forced negative whatever sign the export used) and counted in `refund_rows`; they
//!   keep the original `Transaction ID`, so they reduce that order rather than add one. Rows
//!   with `Payment` or no event type are sales; any other event type is a bad row.
//! - **Timestamp**: `Date` + `Time` (+ `Time Zone`): see [`super::dates::DateParser::parse_parts`]
//!   (zone names leave the offset unknown; the local time is kept).
//! - **Product id** = `SKU`, else `Item` (variations without SKUs collapse onto the item).
//! - **Customer key** = `Customer ID`; rows without one (anonymous card or cash sales) are
//!   counted in `rows_without_customer` and skipped, not bad (a malformed one is still a bad
//!   row: rows are validated first). `Customer Name` is the name.
//! - Order id = `Transaction ID`.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::dates::{DateFormat, DateParser};
use super::model::{
    BadRow, CustomerBook, CustomerSeen, LineItem, ParseReport, PosError, StreamOutcome,
};
use super::money::{Currency, DecimalSeparator, parse_money, parse_number};
use super::table::{Delimiter, Row, TableReader};

/// Options of the Square item sales format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SquareOptions {
    /// How `Date` is written (default: auto: `2024-03-01` or `03/01/2024`).
    pub date_format: DateFormat,
    /// Decimal separator of money columns (default `.`).
    pub decimal: DecimalSeparator,
    /// The shop's currency (Square writes `$` only); none by default.
    pub currency: Option<String>,
}

struct Cols {
    date: usize,
    time: Option<usize>,
    zone: Option<usize>,
    category: Option<usize>,
    item: usize,
    qty: usize,
    sku: Option<usize>,
    gross: Option<usize>,
    net: usize,
    transaction: usize,
    event: Option<usize>,
    customer: usize,
    customer_name: Option<usize>,
}

fn resolve<R: Read>(t: &TableReader<R>) -> Result<Cols, PosError> {
    let mut c = t.columns();
    let cols = Cols {
        date: c.require("Date", "date"),
        time: c.find("Time"),
        zone: c.find("Time Zone"),
        category: c.find("Category"),
        item: c.require("Item", "product name"),
        qty: c.require("Qty", "quantity"),
        sku: c.find("SKU"),
        gross: c.find("Gross Sales"),
        net: c.require("Net Sales", "amount"),
        transaction: c.require("Transaction ID", "order"),
        event: c.find("Event Type"),
        customer: c.require("Customer ID", "customer"),
        customer_name: c.find("Customer Name"),
    };
    c.finish()?;
    Ok(cols)
}

/// Parses a Square item sales export, handing each line item to `sink`.
pub fn parse_with<R: Read>(
    reader: R,
    opts: &SquareOptions,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    let dates = DateParser::new(&opts.date_format).map_err(PosError::Config)?;
    let currency = match &opts.currency {
        Some(c) => Some(
            Currency::from_code(c)
                .ok_or_else(|| PosError::Config(format!("currency `{c}` is not a 3-letter code")))?
                .to_string(),
        ),
        None => None,
    };
    let mut table = TableReader::new(reader, Delimiter::Comma)?;
    let cols = resolve(&table)?;
    let header = table.header().to_vec();
    let mut report = ParseReport::default();
    let mut book = CustomerBook::default();
    while let Some(row) = table.next_row(&mut report)? {
        match parse_row(&row, &cols, &header, &dates, opts.decimal) {
            Ok(Parsed {
                mut item,
                refund,
                name,
            }) => {
                if item.customer_id.is_empty() {
                    report.rows_without_customer += 1;
                    report.excluded_rows += 1;
                    continue;
                }
                if refund {
                    report.refund_rows += 1;
                }
                item.currency = currency.clone();
                let seen = CustomerSeen {
                    name,
                    ..CustomerSeen::default()
                };
                let customer = book.observe(&item.customer_id, item.timestamp, item.line, seen);
                report.items += 1;
                sink(&item, customer);
            }
            Err(bad) => report.push_bad(bad),
        }
    }
    report.customers = book.len() as u64;
    Ok(StreamOutcome {
        customers: book.into_customers(),
        report,
    })
}

struct Parsed<'r> {
    item: LineItem,
    refund: bool,
    name: Option<&'r str>,
}

fn parse_row<'r>(
    row: &'r Row,
    c: &Cols,
    header: &[String],
    dates: &DateParser,
    decimal: DecimalSeparator,
) -> Result<Parsed<'r>, BadRow> {
    let line = row.line;
    let col = |i: usize| header.get(i).map_or("?", String::as_str);
    let nonempty = |i: usize| -> Result<&'r str, BadRow> {
        let v = row.get(i);
        if v.is_empty() {
            Err(BadRow::in_column(line, col(i), "empty"))
        } else {
            Ok(v)
        }
    };
    let transaction = nonempty(c.transaction)?;
    let date = nonempty(c.date)?;
    let time = c.time.map_or("", |i| row.get(i));
    let zone = c.zone.map_or("", |i| row.get(i));
    let ts = dates.parse_parts(date, time, zone).map_err(|e| {
        // Name the column at fault: the time if the date alone parses.
        let at = match (dates.parse(date), c.time) {
            (Ok(_), Some(t)) => t,
            _ => c.date,
        };
        BadRow::in_column(line, col(at), e)
    })?;
    let item_name = nonempty(c.item)?;
    let qty = parse_number(nonempty(c.qty)?, decimal)
        .map_err(|e| BadRow::in_column(line, col(c.qty), e))?;
    let net = parse_money(nonempty(c.net)?, decimal)
        .map_err(|e| BadRow::in_column(line, col(c.net), e))?
        .value;
    let gross = match c.gross.and_then(|i| row.opt(Some(i)).map(|v| (i, v))) {
        Some((i, v)) => Some(
            parse_money(v, decimal)
                .map_err(|e| BadRow::in_column(line, col(i), e))?
                .value,
        ),
        None => None,
    };
    let refund = match row.opt(c.event) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("payment") => false,
        Some(e) if e.eq_ignore_ascii_case("refund") => true,
        Some(e) => {
            return Err(BadRow::in_column(
                line,
                col(c.event.unwrap_or(0)),
                format!("unknown event type `{e}` (expected `Payment` or `Refund`)"),
            ));
        }
    };
    let (quantity, amount) = if refund {
        (-qty.abs(), -net.abs())
    } else {
        (qty, net)
    };
    let unit_price = match gross {
        Some(g) if qty != 0.0 => Some((g / qty).abs()),
        _ => None,
    };
    let product_id = row.opt(c.sku).unwrap_or(item_name);
    Ok(Parsed {
        item: LineItem {
            line,
            order_id: transaction.to_string(),
            customer_id: row.get(c.customer).to_string(),
            timestamp: ts.local,
            utc_offset_secs: ts.offset_secs,
            product_id: product_id.to_string(),
            product_name: Some(item_name.to_string()),
            category: row.opt(c.category).map(str::to_string),
            quantity,
            unit_price,
            amount,
            currency: None,
        },
        refund,
        name: row.opt(c.customer_name),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::Parsed;
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/square_items.csv");

    fn parse(text: &str, opts: &SquareOptions) -> Result<Parsed, PosError> {
        super::super::parse(
            text.as_bytes(),
            &super::super::Format::SquareItems(opts.clone()),
        )
    }

    #[test]
    fn fixture_counts_and_bad_rows() {
        let p = parse(FIXTURE, &SquareOptions::default()).unwrap();
        let r = &p.report;
        let reasons: Vec<String> = r.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 8: column `Net Sales`: `$12.x0` is not a number (unexpected `x`)",
                "line 11: the row has 36 fields but the header has 35",
                "line 14: column `Date`: `2024-02-31` is not a valid date (day 31 does not exist \
                 in 2024-02)",
                "line 17: column `Event Type`: unknown event type `Exchange` (expected `Payment` \
                 or `Refund`)",
                "line 19: column `Time`: `25:10:00` is not a valid date (hour 25 is not 0-23)",
            ]
        );
        assert_eq!(r.rows_read, 21);
        assert_eq!(r.rows_without_customer, 4);
        assert_eq!(r.refund_rows, 2);
        assert_eq!(r.items, 12);
        assert_eq!(r.rows_read, r.items + r.bad_row_count + r.excluded_rows);
        assert_eq!(p.customers.len(), 4);
        assert_eq!(r.customers, 4);
    }

    #[test]
    fn fixture_values() {
        let opts = SquareOptions {
            currency: Some("usd".into()),
            ..SquareOptions::default()
        };
        let p = parse(FIXTURE, &opts).unwrap();
        let first = &p.items[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.order_id, "TXN-0001");
        assert_eq!(first.customer_id, "CUST-7Q2K");
        assert_eq!(first.timestamp.to_string(), "2024-02-01 08:05:12");
        assert_eq!(first.utc_offset_secs, None);
        assert_eq!(first.product_id, "ESP-DBL");
        assert_eq!(first.category.as_deref(), Some("Coffee"));
        assert_eq!(
            (first.quantity, first.unit_price, first.amount),
            (2.0, Some(3.5), 6.3)
        );
        assert_eq!(first.currency.as_deref(), Some("USD"));
        // No SKU: the item name is the product id.
        let croissant = p
            .items
            .iter()
            .find(|i| i.product_name.as_deref() == Some("Croissant"))
            .unwrap();
        assert_eq!(croissant.product_id, "Croissant");
        // Refunds are negative, keep their transaction id, and "-$" or "($)" both work.
        let refunds: Vec<&LineItem> = p.items.iter().filter(|i| i.amount < 0.0).collect();
        assert_eq!(refunds.len(), 2);
        assert_eq!(
            (
                refunds[0].order_id.as_str(),
                refunds[0].quantity,
                refunds[0].amount
            ),
            ("TXN-0003", -1.0, -18.0)
        );
        assert_eq!((refunds[1].quantity, refunds[1].amount), (-1.0, -4.5));
        // A fixed zone gives the offset.
        let utc = p.items.iter().find(|i| i.order_id == "TXN-0012").unwrap();
        assert_eq!(utc.utc_offset_secs, Some(0));
        let names: Vec<Option<&str>> = p.customers.iter().map(|c| c.name.as_deref()).collect();
        assert_eq!(
            names,
            vec![
                Some("Dee Example"),
                Some("Sam Ortiz"),
                Some("Lena Fischer"),
                None
            ]
        );
    }

    #[test]
    fn missing_required_columns_are_named_together() {
        let err = parse("Date,Item,Qty\n", &SquareOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "columns `Net Sales` (for amount), `Transaction ID` (for order), `Customer ID` \
                 (for customer) are not in the header"
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_required_column_names_it() {
        let err = parse(
            "Date,Time,Item,Qty,Net Sales,Transaction ID\n",
            &SquareOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("column `Customer ID` (for customer) is not in the header"),
            "{err}"
        );
    }

    #[test]
    fn bad_currency_option() {
        let opts = SquareOptions {
            currency: Some("dollars".into()),
            ..SquareOptions::default()
        };
        assert!(matches!(parse(FIXTURE, &opts), Err(PosError::Config(_))));
    }
}
