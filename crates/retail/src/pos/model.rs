//! The normalized model every format parser produces: [`LineItem`]s, [`Customer`]s and a
//! [`ParseReport`]; and the crate-level error type [`PosError`].
//!
//! Decisions that hold for every format:
//! - `LineItem::line` is the 1-based physical line of the source file where the row (or the JSON
//!   line) starts; the header is line 1 in CSV files.
//! - `timestamp` is the wall-clock time *as written in the file* (the shop's local time); the UTC
//!   offset, when the source states one (Shopify `-0500`, ISO `Z` / `+01:00`), is kept separately in
//!   `utc_offset_secs`. Daily analyses should use the local date ([`LineItem::date`]): a purchase at
//!   21:00 in New York belongs to that day, not to the next UTC day.
//! - `amount` is the net line amount in the currency's major unit (dollars, not cents); refunds are
//!   negative.
//! - Customers are collected only from rows that produced a line item. When several rows carry a
//!   customer's email / name / marketing consent, the value from the row with the latest timestamp
//!   wins (ties: the later row in the file), so the most recent consent is the one kept.
//! - Bad rows are counted exactly (`bad_row_count`); the first [`MAX_BAD_ROWS_KEPT`] are kept with
//!   their line numbers and reasons. Whether they fail the run is the caller's choice
//!   ([`ParseReport::check`] with [`OnBadRows`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::max_bad_rows::MaxBadRows;
use crate::str_map::{StrMap, TOUCH_AHEAD};
use flow_engine::plural::plural_of;

/// How many [`BadRow`]s a report keeps; the count beyond that stays exact.
pub const MAX_BAD_ROWS_KEPT: usize = 1000;

/// How many bad rows [`ParseReport::check`] lists in its error.
pub const BAD_ROWS_SHOWN: usize = 5;

/// Line breaks a quoted field may hold before it is taken for a runaway quote.
pub const MAX_QUOTED_LINES: u64 = 100;

/// Bytes a quoted field may hold before it is taken for a runaway quote (twice the 32,767
/// characters a spreadsheet cell can hold).
pub const MAX_QUOTED_BYTES: u64 = 64 * 1024;

/// A column the mapping needs that the header lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumn {
    /// The column name looked for.
    pub column: String,
    /// What the column is for (`customer`, `amount`, ...).
    pub role: String,
}

/// One sold (or refunded) line of an order, normalized across formats.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineItem {
    /// 1-based line in the source file where the row starts.
    pub line: u64,
    /// Order / transaction id (Shopify `Name`, Square `Transaction ID`, JSON `id`).
    pub order_id: String,
    /// The customer key (Shopify: email lowercased; Square: `Customer ID`; see each format).
    pub customer_id: String,
    /// Local wall-clock time of the order as written in the source.
    pub timestamp: NaiveDateTime,
    /// UTC offset of `timestamp` in seconds when the source states it (east of UTC positive).
    pub utc_offset_secs: Option<i32>,
    /// Product key (SKU, product id, or the item name when nothing better exists).
    pub product_id: String,
    /// Human-readable product name, when the source has one.
    pub product_name: Option<String>,
    /// Product category, when the source has one (the catalog usually supplies it).
    pub category: Option<String>,
    /// Units; negative for refunded units.
    pub quantity: f64,
    /// Price of one unit before line discounts, when known.
    pub unit_price: Option<f64>,
    /// Net line amount (after line discounts and refunds); negative for refunds.
    pub amount: f64,
    /// ISO 4217 code, when the source states it.
    pub currency: Option<String>,
}

impl LineItem {
    /// The local calendar date of the purchase.
    pub fn date(&self) -> NaiveDate {
        self.timestamp.date()
    }

    /// The timestamp converted to UTC, when the offset is known.
    pub fn timestamp_utc(&self) -> Option<NaiveDateTime> {
        let offset = self.utc_offset_secs?;
        self.timestamp
            .checked_sub_signed(Duration::seconds(i64::from(offset)))
    }
}

/// Customer attributes some formats carry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Customer {
    /// The same key as [`LineItem::customer_id`].
    pub customer_id: String,
    /// Email address (lowercased where the format uses it as the key).
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Whether the customer accepted marketing (email) messages; `None` when unknown.
    pub accepts_marketing: Option<bool>,
}

/// A row that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// 1-based line in the source file.
    pub line: u64,
    /// The column at fault, when a single column is.
    pub column: Option<String>,
    /// Why, without the line prefix (e.g. "column `amount`: `12,3x` is not a number ...").
    pub reason: String,
}

impl BadRow {
    /// A bad row not tied to one column.
    pub fn new(line: u64, reason: impl Into<String>) -> Self {
        Self {
            line,
            column: None,
            reason: one_line(reason.into()),
        }
    }

    /// A bad row caused by one column's value.
    pub fn in_column(line: u64, column: &str, message: impl fmt::Display) -> Self {
        Self {
            line,
            column: Some(column.to_string()),
            reason: one_line(format!("column `{column}`: {message}")),
        }
    }
}

/// Escapes line breaks and other control characters, so a reason quoting a value from the file
/// (a multi-line quoted field, say) stays on its own line in a report.
fn one_line(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What to do when a file has bad rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadRows {
    /// Any bad row fails the run ([`ParseReport::check`] returns [`PosError::BadRows`]).
    #[default]
    Fail,
    /// Bad rows are skipped (and reported).
    Skip,
}

/// Counts and problems of one parse.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParseReport {
    /// Data rows read (CSV records or non-blank JSON lines), bad ones included; blank lines and
    /// the header are not counted.
    pub rows_read: u64,
    /// Line items produced.
    pub items: u64,
    /// Distinct customers among the produced items (or records, for a customers file).
    pub customers: u64,
    /// Exact number of bad rows.
    pub bad_row_count: u64,
    /// The first [`MAX_BAD_ROWS_KEPT`] bad rows, in file order.
    pub bad_rows: Vec<BadRow>,
    /// Orders excluded because they were cancelled (Shopify `Cancelled at`, JSON `cancelled_at`).
    pub cancelled_orders: u64,
    /// Orders excluded because their payment was voided.
    pub voided_orders: u64,
    /// Orders excluded because they were fully refunded.
    pub refunded_orders: u64,
    /// Orders kept with their amounts reduced by a partial refund.
    pub partially_refunded_orders: u64,
    /// Refund rows kept as negative line items (Square `Event Type` = `Refund`).
    pub refund_rows: u64,
    /// Rows without a customer key: skipped (or keyed by order, where the format allows it).
    pub rows_without_customer: u64,
    /// Good rows that produced no item: rows of excluded orders and rows without a customer.
    pub excluded_rows: u64,
    /// Duplicate keys (catalog products, customers) reported as bad rows.
    pub duplicates: u64,
}

impl ParseReport {
    /// Records a bad row (counted always, kept while fewer than [`MAX_BAD_ROWS_KEPT`]).
    pub fn push_bad(&mut self, bad: BadRow) {
        self.bad_row_count += 1;
        if self.bad_rows.len() < MAX_BAD_ROWS_KEPT {
            self.bad_rows.push(bad);
        }
    }

    /// Adds the counts and bad rows of a later part of the same file.
    pub fn absorb(&mut self, part: &ParseReport) {
        self.rows_read += part.rows_read;
        self.items += part.items;
        self.customers += part.customers;
        for bad in &part.bad_rows {
            if self.bad_rows.len() < MAX_BAD_ROWS_KEPT {
                self.bad_rows.push(bad.clone());
            }
        }
        self.bad_row_count += part.bad_row_count;
        self.cancelled_orders += part.cancelled_orders;
        self.voided_orders += part.voided_orders;
        self.refunded_orders += part.refunded_orders;
        self.partially_refunded_orders += part.partially_refunded_orders;
        self.refund_rows += part.refund_rows;
        self.rows_without_customer += part.rows_without_customer;
        self.excluded_rows += part.excluded_rows;
        self.duplicates += part.duplicates;
    }

    /// Applies the bad-row policy: with [`OnBadRows::Fail`] and at least one bad row, an error
    /// listing the first [`BAD_ROWS_SHOWN`] of them.
    pub fn check(&self, policy: OnBadRows) -> Result<(), PosError> {
        if policy == OnBadRows::Fail && self.bad_row_count > 0 {
            return Err(PosError::BadRows {
                total: self.bad_row_count,
                shown: self.bad_rows.iter().take(BAD_ROWS_SHOWN).cloned().collect(),
            });
        }
        Ok(())
    }

    /// [`ParseReport::check`], and with [`OnBadRows::Skip`] the `max_bad_rows` bound: more
    /// bad rows than it allows fail the read, listing the first [`BAD_ROWS_SHOWN`].
    pub fn check_bounded(&self, policy: OnBadRows, max: MaxBadRows) -> Result<(), PosError> {
        self.check(policy)?;
        let limit = max.limit(self.rows_read);
        if self.bad_row_count > limit {
            return Err(PosError::TooManyBadRows {
                total: self.bad_row_count,
                rows_read: self.rows_read,
                limit,
                setting: max.to_string(),
                shown: self.bad_rows.iter().take(BAD_ROWS_SHOWN).cloned().collect(),
            });
        }
        Ok(())
    }

    /// A one-line human summary for logs, e.g.
    /// `120 rows read, 112 line items, 40 customers, 2 bad rows, 1 cancelled order`.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            plural_of(self.rows_read, "row read", "rows read"),
            plural_of(self.items, "line item", "line items"),
            plural_of(self.customers, "customer", "customers"),
            plural_of(self.bad_row_count, "bad row", "bad rows"),
        ];
        let optional = [
            (self.cancelled_orders, "cancelled order", "cancelled orders"),
            (self.voided_orders, "voided order", "voided orders"),
            (self.refunded_orders, "refunded order", "refunded orders"),
            (
                self.partially_refunded_orders,
                "partially refunded order",
                "partially refunded orders",
            ),
            (self.refund_rows, "refund row", "refund rows"),
            (
                self.rows_without_customer,
                "row without customer",
                "rows without customer",
            ),
            (self.duplicates, "duplicate", "duplicates"),
        ];
        for (n, one, many) in optional {
            if n > 0 {
                parts.push(plural_of(n, one, many));
            }
        }
        parts.join(", ")
    }
}

/// Errors that stop a parse (as opposed to bad rows, which are reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosError {
    /// The file could not be opened or read.
    Io {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The I/O error message.
        message: String,
    },
    /// Configured (or required) columns are not in the header; all of them are listed.
    MissingColumns {
        /// The columns looked for, in mapping order.
        missing: Vec<MissingColumn>,
        /// The header as read.
        header: Vec<String>,
        /// A hint (e.g. a likely wrong delimiter), possibly empty.
        hint: String,
    },
    /// A quoted field opened and ran on for more than [`MAX_QUOTED_LINES`] lines or
    /// [`MAX_QUOTED_BYTES`] bytes, or to the end of the file: almost always a stray `"`, which
    /// would otherwise swallow the rest of the file into one field.
    RunawayQuote {
        /// The line where the quote opened.
        line: u64,
        /// Whether the field reached the end of the file (else it passed a limit).
        to_end: bool,
    },
    /// The file has a header but no data rows.
    NoDataRows,
    /// The file is empty: not even a header.
    Empty,
    /// Every row was bad, excluded or filtered out; the summary says how many of each.
    NoUsableRows(String),
    /// With [`OnBadRows::Skip`], more bad rows than `max_bad_rows` allows.
    TooManyBadRows {
        /// Total bad rows.
        total: u64,
        /// Data rows read, bad ones included.
        rows_read: u64,
        /// The bad rows allowed.
        limit: u64,
        /// The setting the limit came from, as written for the user.
        setting: String,
        /// The first few bad rows.
        shown: Vec<BadRow>,
    },
    /// The header is unusable (empty file, duplicated column, ...).
    Header(String),
    /// The options are invalid (bad date format, conflicting mapping, ...).
    Config(String),
    /// [`ParseReport::check`] with [`OnBadRows::Fail`] found bad rows.
    BadRows {
        /// Total bad rows.
        total: u64,
        /// The first few.
        shown: Vec<BadRow>,
    },
}

impl PosError {
    /// An I/O error, with the path when known.
    pub fn io(path: Option<&Path>, err: &io::Error) -> Self {
        PosError::Io {
            path: path.map(Path::to_path_buf),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    /// Attaches a path to an I/O error that has none.
    pub fn with_path(self, p: &Path) -> Self {
        match self {
            PosError::Io {
                path: None,
                kind,
                message,
            } => PosError::Io {
                path: Some(p.to_path_buf()),
                kind,
                message,
            },
            other => other,
        }
    }
}

impl fmt::Display for PosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PosError::Io {
                path: Some(path),
                message,
                ..
            } => {
                write!(f, "cannot read `{}`: {message}", path.display())
            }
            PosError::Io {
                path: None,
                message,
                ..
            } => write!(f, "read error: {message}"),
            PosError::MissingColumns {
                missing,
                header,
                hint,
            } => {
                let wanted: Vec<String> = missing
                    .iter()
                    .map(|m| format!("`{}` (for {})", m.column, m.role))
                    .collect();
                // A quoted header cell may hold a line break: keep the error on one line.
                let listed: Vec<String> = header
                    .iter()
                    .map(|h| format!("`{}`", one_line(h.clone())))
                    .collect();
                write!(
                    f,
                    "{} {} {} not in the header; the header has {}: {}",
                    if missing.len() == 1 {
                        "column"
                    } else {
                        "columns"
                    },
                    wanted.join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                    plural_of(header.len() as u64, "column", "columns"),
                    listed.join(", ")
                )?;
                if !hint.is_empty() {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            PosError::RunawayQuote { line, to_end: true } => write!(
                f,
                "the quoted field opened on line {line} is never closed: it runs to the end of \
                 the file (a stray `\"`?)"
            ),
            PosError::RunawayQuote {
                line,
                to_end: false,
            } => write!(
                f,
                "the quoted field opened on line {line} is still open after {MAX_QUOTED_LINES} \
                 lines or {} KiB (a stray `\"`?)",
                MAX_QUOTED_BYTES / 1024
            ),
            PosError::NoDataRows => write!(f, "the file has a header but no data rows"),
            PosError::Empty => write!(f, "the file is empty: no header and no data rows"),
            PosError::NoUsableRows(summary) => write!(f, "no usable rows: {summary}"),
            PosError::TooManyBadRows {
                total,
                rows_read,
                limit,
                setting,
                shown,
            } => {
                write!(
                    f,
                    "{total} of {} are bad, more than the {limit} that `max_bad_rows` ({setting}) \
                     allows; is the format, delimiter or mapping right?",
                    plural_of(*rows_read, "data row", "data rows"),
                )?;
                write_shown(f, *total, shown)
            }
            PosError::Header(message) => write!(f, "bad header: {message}"),
            PosError::Config(message) => write!(f, "invalid options: {message}"),
            PosError::BadRows { total, shown } => {
                write!(
                    f,
                    "{} (on_bad_rows: fail)",
                    plural_of(*total, "bad row", "bad rows")
                )?;
                write_shown(f, *total, shown)
            }
        }
    }
}

/// The listed bad rows, one per line, after `; first N:`.
fn write_shown(f: &mut fmt::Formatter<'_>, total: u64, shown: &[BadRow]) -> fmt::Result {
    if !shown.is_empty() {
        let what = if (shown.len() as u64) < total {
            "first "
        } else {
            ""
        };
        write!(f, "; {what}{}:", shown.len())?;
        for bad in shown {
            write!(f, "\n  {bad}")?;
        }
    }
    Ok(())
}

impl std::error::Error for PosError {}

/// Everything a parse produced, collected in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// The line items, in file order (Shopify: grouped by order, orders in first-seen order).
    pub items: Vec<LineItem>,
    /// The customers seen in produced items, in first-seen order.
    pub customers: Vec<Customer>,
    /// Counts and bad rows.
    pub report: ParseReport,
}

/// What a streaming parse returns besides the items it handed to the sink.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamOutcome {
    /// The customers seen in produced items, in first-seen order.
    pub customers: Vec<Customer>,
    /// Counts and bad rows.
    pub report: ParseReport,
}

/// Collects customers, keeping for each attribute the value from the latest row.
#[derive(Debug, Default)]
pub(super) struct CustomerBook {
    /// Per customer id, its index.
    index: StrMap,
    /// The customers, `customers[..len]`; those past `len` are kept from before a `clear` so
    /// that their ids' buffers are reused (a part of a file sees tens of thousands).
    customers: Vec<Customer>,
    /// Per customer, the row (timestamp, line) each attribute (email, name, consent) was last
    /// set from; apart from the customers, so that absorbing a part whose rows carry no
    /// attributes touches neither (in a book of a million customers each touch is a cache miss).
    stamps: Vec<[Stamp; 3]>,
    len: usize,
    /// The index of the previous row's customer and its id packed (`None` for a long id): the
    /// lines of an order come together.
    last: Option<(usize, Option<[u64; 2]>)>,
}

/// Where an attribute was last set: the row's timestamp and line.
type Stamp = (NaiveDateTime, u64);

/// The stamp of an attribute no row has set: older than any row.
const UNSET: Stamp = (NaiveDateTime::MIN, 0);

/// Customer attributes seen on one row.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CustomerSeen<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub accepts_marketing: Option<bool>,
}

impl CustomerBook {
    /// A book with room for `customers` customers if memory allows (a capacity hint: the
    /// book still grows when it is short).
    pub(super) fn with_capacity(customers: usize) -> Self {
        let mut book = CustomerBook::default();
        if book.customers.try_reserve(customers).is_ok()
            && book.stamps.try_reserve(customers).is_ok()
        {
            book.index.reserve_hint(customers);
        }
        book
    }

    /// Notes customer `id` on a row at `(ts, line)` with the attributes it carries, and returns
    /// the customer's index (customers are numbered in the order they are first seen).
    pub(super) fn observe(
        &mut self,
        id: &str,
        ts: NaiveDateTime,
        line: u64,
        seen: CustomerSeen,
    ) -> u32 {
        let at = (ts, line);
        let packed = StrMap::pack(id);
        let idx = match self.last {
            Some((i, Some(last))) if packed == Some(last) => i,
            Some((i, None)) if packed.is_none() && self.customers[i].customer_id == id => i,
            _ => self.entry(id, packed),
        };
        self.last = Some((idx, packed));
        if seen.email.is_none() && seen.name.is_none() && seen.accepts_marketing.is_none() {
            return idx as u32;
        }
        let (customer, stamps) = (&mut self.customers[idx], &mut self.stamps[idx]);
        if let Some(email) = seen.email
            && at >= stamps[0]
        {
            if customer.email.as_deref() != Some(email) {
                customer.email = Some(email.to_string());
            }
            stamps[0] = at;
        }
        if let Some(name) = seen.name
            && at >= stamps[1]
        {
            if customer.name.as_deref() != Some(name) {
                customer.name = Some(name.to_string());
            }
            stamps[1] = at;
        }
        if let Some(accepts) = seen.accepts_marketing
            && at >= stamps[2]
        {
            customer.accepts_marketing = Some(accepts);
            stamps[2] = at;
        }
        idx as u32
    }

    /// Adds the customers of a later part of the same file, as if its rows had been observed
    /// here, and sets `index[i]` to the index here of the part's customer `i`. Each attribute
    /// keeps the value of the latest row that has one, wherever that row is.
    pub(super) fn absorb(&mut self, part: &CustomerBook, index: &mut Vec<u32>) {
        index.clear();
        let theirs = &part.customers[..part.len];
        let groups = theirs
            .chunks(TOUCH_AHEAD)
            .zip(part.stamps.chunks(TOUCH_AHEAD));
        for (group, stamps) in groups {
            // The map of a large file is larger than the caches: bring the entries of the
            // group's look-ups in together (their cache misses overlap).
            self.index
                .touch(group.iter().map(|c| c.customer_id.as_str()));
            for (theirs, their_stamps) in group.iter().zip(stamps) {
                index.push(self.absorb_one(theirs, their_stamps));
            }
        }
        self.last = None;
    }

    /// Adds one customer of a later part, with the stamps of its attributes there, and
    /// returns its index here.
    fn absorb_one(&mut self, theirs: &Customer, their_stamps: &[Stamp; 3]) -> u32 {
        let id = theirs.customer_id.as_str();
        let idx = self.entry(id, StrMap::pack(id));
        // A stamp is only ever set with a value.
        if *their_stamps == [UNSET; 3] {
            return idx as u32;
        }
        let (ours, stamps) = (&mut self.customers[idx], &mut self.stamps[idx]);
        if their_stamps[0] != UNSET && their_stamps[0] >= stamps[0] {
            ours.email.clone_from(&theirs.email);
            stamps[0] = their_stamps[0];
        }
        if their_stamps[1] != UNSET && their_stamps[1] >= stamps[1] {
            ours.name.clone_from(&theirs.name);
            stamps[1] = their_stamps[1];
        }
        if their_stamps[2] != UNSET && their_stamps[2] >= stamps[2] {
            ours.accepts_marketing = theirs.accepts_marketing;
            stamps[2] = their_stamps[2];
        }
        idx as u32
    }

    /// The index of customer `id` (`packed` is `StrMap::pack(id)`), added (with no attributes
    /// yet) when new.
    fn entry(&mut self, id: &str, packed: Option<[u64; 2]>) -> usize {
        let i = self.len;
        let found = self.index.get_or_insert_packed(id, packed, i as u32) as usize;
        if found != i {
            return found;
        }
        match self.customers.get_mut(i) {
            Some(customer) => {
                let mut reused = std::mem::take(&mut customer.customer_id);
                reused.clear();
                reused.push_str(id);
                *customer = Customer {
                    customer_id: reused,
                    ..Customer::default()
                };
                self.stamps[i] = [UNSET; 3];
            }
            None => {
                self.customers.push(Customer {
                    customer_id: id.to_string(),
                    ..Customer::default()
                });
                self.stamps.push([UNSET; 3]);
            }
        }
        self.len += 1;
        i
    }

    /// Forgets every customer, keeping the allocations.
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.len = 0;
        self.last = None;
    }

    /// Number of distinct customers.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The customers in first-seen order.
    pub(super) fn into_customers(self) -> Vec<Customer> {
        let mut customers = self.customers;
        customers.truncate(self.len);
        customers
    }
}

/// Parses a yes/no flag as exports write it: `yes`/`no`, `true`/`false`, `1`/`0`, `y`/`n`,
/// `subscribed`/`unsubscribed`/`not_subscribed`, `opted_in`/`opted_out` (any case). Empty is
/// `Ok(None)`.
pub fn parse_flag(s: &str) -> Result<Option<bool>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "yes" | "y" | "true" | "t" | "1" | "subscribed" | "opted_in" | "opt_in" => Ok(Some(true)),
        "no" | "n" | "false" | "f" | "0" | "unsubscribed" | "not_subscribed" | "opted_out"
        | "opt_out" => Ok(Some(false)),
        _ => Err(format!("`{t}` is not a yes/no value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn bad_row_display_names_line_and_column() {
        let bad = BadRow::in_column(17, "amount", "`12,3x` is not a number");
        assert_eq!(
            bad.to_string(),
            "line 17: column `amount`: `12,3x` is not a number"
        );
        assert_eq!(bad.column.as_deref(), Some("amount"));
    }

    #[test]
    fn bad_row_reasons_stay_on_one_line() {
        let bad = BadRow::in_column(4, "date", "`1 May\r\nBcc: x` is not a valid date");
        assert_eq!(
            bad.to_string(),
            "line 4: column `date`: `1 May\\r\\nBcc: x` is not a valid date"
        );
        let bad = BadRow::new(9, "tab\there, bell\u{7}");
        assert_eq!(bad.to_string(), "line 9: tab\\there, bell\\u{7}");
        assert!(!bad.to_string().contains('\n'));
    }

    #[test]
    fn report_caps_kept_rows_but_counts_all() {
        let mut report = ParseReport::default();
        for i in 0..(MAX_BAD_ROWS_KEPT as u64 + 10) {
            report.push_bad(BadRow::new(i + 2, "x"));
        }
        assert_eq!(report.bad_row_count, MAX_BAD_ROWS_KEPT as u64 + 10);
        assert_eq!(report.bad_rows.len(), MAX_BAD_ROWS_KEPT);
    }

    #[test]
    fn check_fails_only_with_fail_policy_and_bad_rows() {
        let mut report = ParseReport::default();
        assert!(report.check(OnBadRows::Fail).is_ok());
        for line in [3, 9, 12, 20, 21, 30, 31] {
            report.push_bad(BadRow::in_column(line, "amount", "`x` is not a number"));
        }
        assert!(report.check(OnBadRows::Skip).is_ok());
        let err = report.check(OnBadRows::Fail).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("7 bad rows (on_bad_rows: fail); first 5:"),
            "{text}"
        );
        assert!(text.contains("\n  line 3: column `amount`"), "{text}");
        assert!(
            text.contains("line 21:") && !text.contains("line 30:"),
            "{text}"
        );
    }

    #[test]
    fn summary_mentions_nonzero_counters_only() {
        let report = ParseReport {
            rows_read: 10,
            items: 8,
            customers: 1,
            bad_row_count: 1,
            cancelled_orders: 1,
            ..ParseReport::default()
        };
        assert_eq!(
            report.summary(),
            "10 rows read, 8 line items, 1 customer, 1 bad row, 1 cancelled order"
        );
    }

    #[test]
    fn customer_book_keeps_latest_values_per_field() {
        let mut book = CustomerBook::default();
        let seen = |email, accepts| CustomerSeen {
            email,
            name: None,
            accepts_marketing: accepts,
        };
        // Newest order first, as Shopify exports them.
        book.observe(
            "a",
            ts("2024-03-01 10:00:00"),
            2,
            seen(Some("a@x.com"), Some(false)),
        );
        book.observe(
            "a",
            ts("2024-01-01 10:00:00"),
            5,
            seen(Some("old@x.com"), Some(true)),
        );
        book.observe("b", ts("2024-01-01 10:00:00"), 6, seen(None, None));
        book.observe(
            "a",
            ts("2024-02-01 10:00:00"),
            7,
            CustomerSeen {
                name: Some("Ann"),
                ..seen(None, None)
            },
        );
        assert_eq!(book.len(), 2);
        let customers = book.into_customers();
        assert_eq!(customers[0].email.as_deref(), Some("a@x.com"));
        assert_eq!(customers[0].accepts_marketing, Some(false));
        assert_eq!(customers[0].name.as_deref(), Some("Ann"));
        assert_eq!(
            customers[1],
            Customer {
                customer_id: "b".into(),
                ..Customer::default()
            }
        );
    }

    #[test]
    fn a_book_absorbing_parts_keeps_what_one_book_of_every_row_keeps() {
        let seen = |email: Option<&'static str>, name: Option<&'static str>, flag| CustomerSeen {
            email,
            name,
            accepts_marketing: flag,
        };
        let long = "a-customer-id-longer-than-15";
        // (id, time, attributes), in file order: rows without attributes keep what earlier
        // rows set, an older row later in the file does not win, a customer can first show
        // in a later part.
        let rows = [
            (
                "a",
                "2024-01-01 10:00:00",
                seen(Some("a@x.com"), Some("Ann"), Some(true)),
            ),
            (long, "2024-01-01 11:00:00", seen(None, Some("Lee"), None)),
            ("b", "2024-01-02 10:00:00", seen(None, None, None)),
            ("a", "2024-01-03 10:00:00", seen(None, None, None)),
            (
                long,
                "2024-01-03 11:00:00",
                seen(Some("lee@x.com"), None, Some(false)),
            ),
            (
                "a",
                "2023-12-31 10:00:00",
                seen(Some("old@x.com"), None, Some(false)),
            ),
            ("c", "2024-01-04 10:00:00", seen(None, Some("Cy"), None)),
            (
                "b",
                "2024-01-05 10:00:00",
                seen(Some("b@x.com"), None, None),
            ),
            ("a", "2024-01-05 10:00:00", seen(None, Some("Annie"), None)),
        ];
        let mut one = CustomerBook::default();
        let numbers: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(line, (id, at, s))| one.observe(id, ts(at), line as u64, *s))
            .collect();
        let customers = one.into_customers();
        // Room for 2 customers, for none, or asked for more than memory holds.
        for (split, room) in [
            ([1, 3], 2),
            ([2, 5], 0),
            ([3, 8], usize::MAX / 4),
            ([0, 9], 2),
        ] {
            let mut merged = CustomerBook::with_capacity(room);
            let mut part = CustomerBook::default();
            let mut index = Vec::new();
            let mut merged_numbers = Vec::new();
            let bounds = [0, split[0], split[1], rows.len()];
            for w in bounds.windows(2) {
                part.clear();
                let local: Vec<u32> = (w[0]..w[1])
                    .map(|line| {
                        let (id, at, s) = rows[line];
                        part.observe(id, ts(at), line as u64, s)
                    })
                    .collect();
                merged.absorb(&part, &mut index);
                merged_numbers.extend(local.iter().map(|&n| index[n as usize]));
            }
            assert_eq!(merged_numbers, numbers, "split at {split:?}");
            assert_eq!(merged.into_customers(), customers, "split at {split:?}");
        }
        assert_eq!(
            customers
                .iter()
                .map(|c| (
                    c.customer_id.as_str(),
                    c.email.as_deref(),
                    c.name.as_deref(),
                    c.accepts_marketing
                ))
                .collect::<Vec<_>>(),
            [
                ("a", Some("a@x.com"), Some("Annie"), Some(true)),
                (long, Some("lee@x.com"), Some("Lee"), Some(false)),
                ("b", Some("b@x.com"), None, None),
                ("c", None, Some("Cy"), None),
            ]
        );
    }

    #[test]
    fn a_cleared_book_forgets_the_customers_whose_entries_it_reuses() {
        let mut book = CustomerBook::default();
        let at = ts("2024-01-01 10:00:00");
        let seen = CustomerSeen {
            email: Some("a@x.com"),
            name: Some("Ann"),
            accepts_marketing: Some(true),
        };
        book.observe("a-long-customer-id-1", at, 1, seen);
        book.observe("b", at, 2, seen);
        book.clear();
        assert_eq!(book.len(), 0);
        book.observe("c", at, 3, CustomerSeen::default());
        book.observe("a-long-customer-id-1", at, 4, CustomerSeen::default());
        assert_eq!(
            book.into_customers(),
            vec![
                Customer {
                    customer_id: "c".into(),
                    ..Customer::default()
                },
                Customer {
                    customer_id: "a-long-customer-id-1".into(),
                    ..Customer::default()
                },
            ]
        );
    }

    #[test]
    fn flags_parse_common_spellings() {
        assert_eq!(parse_flag("Yes"), Ok(Some(true)));
        assert_eq!(parse_flag(" no "), Ok(Some(false)));
        assert_eq!(parse_flag("not_subscribed"), Ok(Some(false)));
        assert_eq!(parse_flag(""), Ok(None));
        assert!(parse_flag("maybe").unwrap_err().contains("`maybe`"));
    }

    #[test]
    fn missing_column_error_lists_header_and_hint() {
        let missing = |column: &str, role: &str| MissingColumn {
            column: column.into(),
            role: role.into(),
        };
        let err = PosError::MissingColumns {
            missing: vec![missing("amount", "amount")],
            header: vec!["a;b;c".into()],
            hint: "is the delimiter `;`?".into(),
        };
        assert_eq!(
            err.to_string(),
            "column `amount` (for amount) is not in the header; the header has 1 column: \
             `a;b;c` (is the delimiter `;`?)"
        );
        let err = PosError::MissingColumns {
            missing: vec![missing("date", "date"), missing("sku", "product")],
            header: vec!["a".into(), "b\nc".into()],
            hint: String::new(),
        };
        assert_eq!(
            err.to_string(),
            "columns `date` (for date), `sku` (for product) are not in the header; the header \
             has 2 columns: `a`, `b\\nc`"
        );
    }

    #[test]
    fn utc_conversion_uses_offset() {
        let item = LineItem {
            line: 2,
            order_id: "1".into(),
            customer_id: "c".into(),
            timestamp: ts("2024-03-01 21:30:00"),
            utc_offset_secs: Some(-5 * 3600),
            product_id: "p".into(),
            product_name: None,
            category: None,
            quantity: 1.0,
            unit_price: None,
            amount: 1.0,
            currency: None,
        };
        assert_eq!(item.date(), NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        assert_eq!(item.timestamp_utc(), Some(ts("2024-03-02 02:30:00")));
    }
}
