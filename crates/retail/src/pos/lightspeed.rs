//! Lightspeed Retail (X-Series) sales history CSV export (format `lightspeed_sales`).
//!
//! The export has one row per sale (`Line Type` = `Sale`), followed by its product lines
//! (`Sale Line`) and payments (`Payment`), all carrying the sale's `Receipt Number`.
//!
//! Columns used: `Date`, `Receipt Number`, `Line Type`, `Customer Code`, `Customer Name`,
//! `Quantity`, `Subtotal`, `Sales Tax`, `Total`, `Details` (the product name on a sale line),
//! `Status`, `Sku`. Required: `Date`, `Receipt Number`, `Line Type`, `Customer Code`,
//! `Quantity`, `Total`, `Details`, `Status`. Others (`Note`, `Discount`, `Loyalty`, `Paid`,
//! `Register`, `User`, account codes) are ignored.
//!
//! Decisions:
//! - **Items** are the `Sale Line` rows. `Sale` and `Payment` rows produce no item (they count
//!   in `excluded_rows`); any other line type is a bad row.
//! - **Sale fields** (`Customer Code`, `Customer Name`, `Status`, and `Date` when a line has
//!   none) are taken from the line itself when filled, else from the `Sale` row of the same
//!   receipt just above it (exports differ on whether lines repeat them). When that `Sale` row
//!   was bad, its lines are bad rows too, naming the sale's line, rather than silently becoming
//!   walk-in sales.
//! - **Status**: counted: `CLOSED`, `ONACCOUNT`, `ONACCOUNT_CLOSED`, `LAYBY_CLOSED`,
//!   `AWAITING_DISPATCH`, `AWAITING_PICKUP`, `DISPATCHED_CLOSED`, `PICKED_UP_CLOSED` (paid, or
//!   goods taken on account); not counted: `SAVED` / `PARKED` and open `LAYBY` (no sale yet) in
//!   `excluded_rows`, and `VOIDED` sales, also counted once per receipt in `voided_orders`.
//!   Case, spaces and dashes do not matter (`On Account` = `ONACCOUNT`). Any other status is a
//!   bad row.
//! - **Money** through [`super::money`] (`1,327.80`, `$3.00`); `currency` option as in
//!   `square_items`. `amount` = `Total` − `Sales Tax` (after discounts, before tax, so
//!   tax-inclusive and tax-exclusive shops compare); `unit_price` = `Subtotal` / `Quantity`.
//! - **Returns** are sales with negative quantities under their own receipt number: kept as
//!   negative lines (amount forced to the quantity's sign) and counted in `refund_rows`.
//! - **Timestamp**: `Date` as written (the outlet's local time; the export states no zone, so
//!   the offset is unknown). Formats as [`super::dates`] (auto: ISO or `date_format`).
//! - **Product id** = `Sku`, else the product name (`Details`).
//! - **Customer key** = `Customer Code`; empty or `WALKIN` (the walk-in customer) rows are
//!   counted in `rows_without_customer` and skipped. `Customer Name` is the name.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::dates::{DateFormat, DateParser};
use super::model::{
    BadRow, CustomerBook, CustomerSeen, LineItem, ParseReport, PosError, StreamOutcome,
};
use super::money::{Currency, DecimalSeparator, parse_money, parse_number};
use super::table::{Delimiter, Row, TableReader};

/// Options of the Lightspeed sales format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LightspeedOptions {
    /// How `Date` is written (default: auto).
    pub date_format: DateFormat,
    /// Decimal separator of money columns (default `.`).
    pub decimal: DecimalSeparator,
    /// The shop's currency; none by default.
    pub currency: Option<String>,
}

struct Cols {
    date: usize,
    receipt: usize,
    line_type: usize,
    customer: usize,
    customer_name: Option<usize>,
    quantity: usize,
    subtotal: Option<usize>,
    tax: Option<usize>,
    total: usize,
    details: usize,
    status: usize,
    sku: Option<usize>,
}

fn resolve<R: Read>(t: &TableReader<R>) -> Result<Cols, PosError> {
    let mut c = t.columns();
    let cols = Cols {
        date: c.require("Date", "date"),
        receipt: c.require("Receipt Number", "order"),
        line_type: c.require("Line Type", "line type"),
        customer: c.require("Customer Code", "customer"),
        customer_name: c.find("Customer Name"),
        quantity: c.require("Quantity", "quantity"),
        subtotal: c.find("Subtotal"),
        tax: c.find("Sales Tax"),
        total: c.require("Total", "amount"),
        details: c.require("Details", "product name"),
        status: c.require("Status", "status"),
        sku: c.find("Sku"),
    };
    c.finish()?;
    Ok(cols)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Counted,
    NotYet,
    Voided,
}

fn status(s: &str) -> Option<Status> {
    let s = s.trim().to_ascii_uppercase().replace([' ', '-'], "_");
    Some(match s.as_str() {
        "CLOSED" | "ONACCOUNT" | "ON_ACCOUNT" | "ONACCOUNT_CLOSED" | "ON_ACCOUNT_CLOSED"
        | "LAYBY_CLOSED" | "AWAITING_DISPATCH" | "AWAITING_PICKUP" | "DISPATCHED_CLOSED"
        | "PICKED_UP_CLOSED" => Status::Counted,
        "SAVED" | "PARKED" | "LAYBY" => Status::NotYet,
        "VOIDED" | "VOID" => Status::Voided,
        _ => return None,
    })
}

/// The `Sale` row of the receipt being read.
struct Sale {
    receipt: String,
    /// `Err(line)`: the sale row was bad.
    fields: Result<SaleFields, u64>,
    voided_counted: bool,
}

#[derive(Default, Clone)]
struct SaleFields {
    customer: String,
    name: Option<String>,
    status: String,
    date: String,
}

/// Parses a Lightspeed sales export, handing each line item to `sink`.
pub fn parse_with<R: Read>(
    reader: R,
    opts: &LightspeedOptions,
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
    let mut sale: Option<Sale> = None;
    while let Some(row) = table.next_row(&mut report)? {
        let col = |i: usize| header.get(i).map_or("?", String::as_str).to_string();
        let line = row.line;
        let receipt = row.get(cols.receipt).trim();
        if receipt.is_empty() {
            report.push_bad(BadRow::in_column(line, &col(cols.receipt), "empty"));
            continue;
        }
        let kind = row.get(cols.line_type).trim().to_ascii_lowercase();
        match kind.as_str() {
            "sale" => {
                let fields = sale_fields(&row, &cols, &header, &dates);
                let bad = fields.as_ref().err().cloned();
                sale = Some(Sale {
                    receipt: receipt.to_string(),
                    fields: fields.map_err(|_| line),
                    voided_counted: false,
                });
                match bad {
                    Some(b) => report.push_bad(b),
                    None => report.excluded_rows += 1,
                }
                continue;
            }
            "payment" => {
                report.excluded_rows += 1;
                continue;
            }
            "sale line" => {}
            _ => {
                report.push_bad(BadRow::in_column(
                    line,
                    &col(cols.line_type),
                    format!(
                        "unknown line type `{}` (expected `Sale`, `Sale Line` or `Payment`)",
                        row.get(cols.line_type).trim()
                    ),
                ));
                continue;
            }
        }
        let parent = sale.as_mut().filter(|s| s.receipt == receipt);
        let inherited = match parent.as_ref().map(|s| &s.fields) {
            Some(Err(at)) => {
                report.push_bad(BadRow::new(
                    line,
                    format!("the `Sale` row of receipt `{receipt}` (line {at}) is bad"),
                ));
                continue;
            }
            Some(Ok(f)) => f.clone(),
            None => SaleFields::default(),
        };
        match parse_line(&row, &cols, &header, &dates, opts.decimal, &inherited) {
            Ok(Line::Item(mut item, name)) => {
                if item.customer_id.is_empty() || item.customer_id.eq_ignore_ascii_case("walkin") {
                    report.rows_without_customer += 1;
                    report.excluded_rows += 1;
                    continue;
                }
                if item.quantity < 0.0 {
                    report.refund_rows += 1;
                }
                item.currency = currency.clone();
                let seen = CustomerSeen {
                    name: name.as_deref(),
                    ..CustomerSeen::default()
                };
                let customer = book.observe(&item.customer_id, item.timestamp, item.line, seen);
                report.items += 1;
                sink(&item, customer);
            }
            Ok(Line::Skipped(st)) => {
                report.excluded_rows += 1;
                if st == Status::Voided {
                    match parent {
                        Some(s) if s.voided_counted => {}
                        Some(s) => {
                            s.voided_counted = true;
                            report.voided_orders += 1;
                        }
                        None => report.voided_orders += 1,
                    }
                }
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

fn sale_fields(
    row: &Row,
    c: &Cols,
    header: &[String],
    dates: &DateParser,
) -> Result<SaleFields, BadRow> {
    let col = |i: usize| header.get(i).map_or("?", String::as_str);
    let date = row.get(c.date).trim();
    dates
        .parse(date)
        .map_err(|e| BadRow::in_column(row.line, col(c.date), e))?;
    let st = row.get(c.status).trim();
    if status(st).is_none() {
        return Err(unknown_status(row.line, col(c.status), st));
    }
    Ok(SaleFields {
        customer: row.get(c.customer).trim().to_string(),
        name: row.opt(c.customer_name).map(str::to_string),
        status: st.to_string(),
        date: date.to_string(),
    })
}

fn unknown_status(line: u64, col: &str, st: &str) -> BadRow {
    if st.is_empty() {
        return BadRow::in_column(line, col, "empty (and no `Sale` row above gives it)");
    }
    BadRow::in_column(
        line,
        col,
        format!(
            "unknown sale status `{st}` (expected CLOSED, ONACCOUNT, LAYBY, SAVED, VOIDED, ...)"
        ),
    )
}

enum Line {
    Item(Box<LineItem>, Option<String>),
    Skipped(Status),
}

fn parse_line(
    row: &Row,
    c: &Cols,
    header: &[String],
    dates: &DateParser,
    decimal: DecimalSeparator,
    sale: &SaleFields,
) -> Result<Line, BadRow> {
    let line = row.line;
    let col = |i: usize| header.get(i).map_or("?", String::as_str);
    let own = |i: usize| Some(row.get(i).trim()).filter(|v| !v.is_empty());
    let st_text = own(c.status).unwrap_or(&sale.status);
    let st = status(st_text).ok_or_else(|| unknown_status(line, col(c.status), st_text))?;
    let date = own(c.date).unwrap_or(&sale.date);
    let ts = dates
        .parse(date)
        .map_err(|e| BadRow::in_column(line, col(c.date), e))?;
    let name = own(c.details).ok_or_else(|| BadRow::in_column(line, col(c.details), "empty"))?;
    let qty_text =
        own(c.quantity).ok_or_else(|| BadRow::in_column(line, col(c.quantity), "empty"))?;
    let quantity =
        parse_number(qty_text, decimal).map_err(|e| BadRow::in_column(line, col(c.quantity), e))?;
    let money = |i: usize| -> Result<Option<f64>, BadRow> {
        match own(i) {
            None => Ok(None),
            Some(v) => parse_money(v, decimal)
                .map(|m| Some(m.value))
                .map_err(|e| BadRow::in_column(line, col(i), e)),
        }
    };
    let total = money(c.total)?.ok_or_else(|| BadRow::in_column(line, col(c.total), "empty"))?;
    let tax = match c.tax {
        Some(i) => money(i)?.unwrap_or(0.0),
        None => 0.0,
    };
    let subtotal = match c.subtotal {
        Some(i) => money(i)?,
        None => None,
    };
    if st != Status::Counted {
        return Ok(Line::Skipped(st));
    }
    let net = total - tax;
    let amount = if quantity < 0.0 { -net.abs() } else { net };
    let unit_price = subtotal
        .filter(|_| quantity != 0.0)
        .map(|s| (s / quantity).abs());
    let customer = own(c.customer).unwrap_or(&sale.customer);
    let customer_name = c
        .customer_name
        .and_then(own)
        .map(str::to_string)
        .or_else(|| sale.name.clone());
    Ok(Line::Item(
        Box::new(LineItem {
            line,
            order_id: row.get(c.receipt).trim().to_string(),
            customer_id: customer.to_string(),
            timestamp: ts.local,
            utc_offset_secs: ts.offset_secs,
            product_id: c.sku.and_then(own).unwrap_or(name).to_string(),
            product_name: Some(name.to_string()),
            category: None,
            quantity,
            unit_price,
            amount,
            currency: None,
        }),
        customer_name,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::model::Parsed;
    use super::*;

    const FIXTURE: &str = include_str!("fixtures/lightspeed_sales.csv");

    fn parse(text: &str, opts: &LightspeedOptions) -> Result<Parsed, PosError> {
        super::super::parse(
            text.as_bytes(),
            &super::super::Format::LightspeedSales(opts.clone()),
        )
    }

    #[test]
    fn fixture_counts_and_bad_rows() {
        let p = parse(FIXTURE, &LightspeedOptions::default()).unwrap();
        let r = &p.report;
        let reasons: Vec<String> = r.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 13: column `Total`: `13x.00` is not a number (unexpected `x`)",
                "line 15: column `Date`: `2024-02-30 10:00:00` is not a valid date (day 30 does \
                 not exist in 2024-02)",
                "line 16: the `Sale` row of receipt `1006` (line 15) is bad",
                "line 19: column `Status`: unknown sale status `MYSTERY` (expected CLOSED, \
                 ONACCOUNT, LAYBY, SAVED, VOIDED, ...)",
                "line 20: the `Sale` row of receipt `1008` (line 19) is bad",
                "line 21: column `Line Type`: unknown line type `Gift Card` (expected `Sale`, \
                 `Sale Line` or `Payment`)",
            ]
        );
        assert_eq!(r.rows_read, 23);
        assert_eq!(r.items, 5);
        assert_eq!(r.rows_without_customer, 2);
        assert_eq!(r.voided_orders, 1);
        assert_eq!(r.refund_rows, 1);
        assert_eq!(r.rows_read, r.items + r.bad_row_count + r.excluded_rows);
        let ids: Vec<&str> = p.customers.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids, ["C-ANN", "C-BOB", "C-DAN"]);
        assert_eq!(p.customers[2].name.as_deref(), Some("Dan Park"));
    }

    #[test]
    fn fixture_values() {
        let opts = LightspeedOptions {
            currency: Some("nzd".into()),
            ..LightspeedOptions::default()
        };
        let p = parse(FIXTURE, &opts).unwrap();
        let first = &p.items[0];
        assert_eq!((first.line, first.order_id.as_str()), (3, "1001"));
        assert_eq!(first.customer_id, "C-ANN");
        assert_eq!(first.timestamp.to_string(), "2024-03-01 10:15:00");
        assert_eq!(first.utc_offset_secs, None);
        assert_eq!(first.product_id, "MUG-1");
        assert_eq!(
            (first.quantity, first.unit_price, first.amount),
            (2.0, Some(10.0), 20.0)
        );
        assert_eq!(first.currency.as_deref(), Some("NZD"));
        // No SKU: the product name, with its comma, is the id.
        assert_eq!(p.items[1].product_id, "Tea, Earl Grey");
        // The return: a negative line of its own receipt.
        let ret = p.items.iter().find(|i| i.order_id == "1004").unwrap();
        assert_eq!((ret.quantity, ret.amount), (-1.0, -20.0));
        // On account counts; Total − Sales Tax is after the line discount.
        let beans = p.items.iter().find(|i| i.product_id == "BEAN-S").unwrap();
        assert!((beans.amount - 7.0).abs() < 1e-9, "{}", beans.amount);
        // Voided and open layby sales are not items.
        assert!(
            !p.items
                .iter()
                .any(|i| i.order_id == "1003" || i.order_id == "1007")
        );
        // A line that carries its own sale fields.
        let bagel = p.items.iter().find(|i| i.order_id == "1009").unwrap();
        assert_eq!((bagel.customer_id.as_str(), bagel.quantity), ("C-DAN", 2.0));
    }

    #[test]
    fn statuses_and_missing_columns() {
        assert_eq!(status("On Account"), Some(Status::Counted));
        assert_eq!(status("layby"), Some(Status::NotYet));
        assert_eq!(status("LAYBY_CLOSED"), Some(Status::Counted));
        assert_eq!(status("Voided"), Some(Status::Voided));
        assert_eq!(status("??"), None);
        let err = parse(
            "Date,Receipt Number,Quantity\n",
            &LightspeedOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`Line Type`") && err.contains("`Customer Code`"),
            "{err}"
        );
    }
}
