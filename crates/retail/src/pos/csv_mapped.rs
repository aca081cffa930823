//! Generic transaction CSV with a column mapping (format `csv`).
//!
//! One row = one line item. The default column names are the ones [`super::generate`] writes:
//! `order_id, customer_id, date, product_id, category, quantity, unit_price, amount`.
//!
//! Mapping rules ([`ColumnMap`]):
//! - `customer`, `order`, `date`, `product` are required (defaults `customer_id`, `order_id`,
//!   `date`, `product_id`). All missing columns are reported together in one
//!   [`PosError::MissingColumns`] listing the header.
//! - `order: null` and `product: null` read exports without them (payment exports often have
//!   only customer, date and amount): without orders each row is one order (order id
//!   `line:<N>`); without products the line items have an empty product id (a null
//!   `product_id` in the `transactions` table). This is explicit so that a misspelt column is
//!   never mistaken for an absent one.
//! - Optional columns (`product_name`, `category`, `quantity`, `amount`, `unit_price`,
//!   `currency`, `name`, `email`, `accepts_marketing`): when set in the mapping they must exist;
//!   when not set, the default name (`product_name`, `category`, `quantity`, `amount`,
//!   `unit_price`, `currency`, `customer_name`, `email`, `accepts_marketing`) is used if the
//!   header has it.
//! - At least one of `amount` and `unit_price` must be found. Without `amount`,
//!   amount = quantity x unit_price. Without `quantity`, quantity = 1.
//! - Money goes through [`super::money`] with the configured decimal separator; the currency is
//!   the `currency` column, else the one stated in the amount/price text (`€3,50`), else the
//!   `currency` option.
//!
//! Row rules: an empty order id, product id or date, an unparseable date / number / flag, or an
//! empty quantity or amount is a bad row naming the column. A row with an empty customer is not
//! bad: anonymous (walk-in) sales are common in POS data; it is counted in
//! `rows_without_customer` and skipped (rows are validated first, so a malformed anonymous row
//! is a bad row). Header lookup is exact, then case-insensitive.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use super::dates::{DateFormat, DateParser, Timestamp};
use super::model::{
    BadRow, CustomerBook, CustomerSeen, LineItem, ParseReport, PosError, StreamOutcome, parse_flag,
};
use super::money::{Currency, DecimalSeparator, parse_money, parse_number};
use super::part_sink::{Idle, Merge, OneReader, PartSink};
use super::parts::Part;
use super::table::{Delimiter, Row, TableReader};

/// Which header column holds what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnMap {
    /// Customer key (required). Default `customer_id`.
    pub customer: String,
    /// Order id. Default `order_id`, required; `null` for an export without order ids (each
    /// row is then one order).
    pub order: Option<String>,
    /// Date or date-time (required). Default `date`.
    pub date: String,
    /// Product id. Default `product_id`, required; `null` for an export without products (a
    /// payments export: the rows then carry no product).
    pub product: Option<String>,
    /// Product name. Default: `product_name` if present.
    pub product_name: Option<String>,
    /// Category. Default: `category` if present.
    pub category: Option<String>,
    /// Quantity. Default: `quantity` if present, else every row is 1 unit.
    pub quantity: Option<String>,
    /// Net line amount. Default: `amount` if present.
    pub amount: Option<String>,
    /// Unit price. Default: `unit_price` if present.
    pub unit_price: Option<String>,
    /// Currency code. Default: `currency` if present.
    pub currency: Option<String>,
    /// Customer display name. Default: `customer_name` if present.
    pub name: Option<String>,
    /// Customer email. Default: `email` if present.
    pub email: Option<String>,
    /// Marketing consent (yes/no). Default: `accepts_marketing` if present.
    pub accepts_marketing: Option<String>,
}

impl Default for ColumnMap {
    fn default() -> Self {
        ColumnMap {
            customer: "customer_id".into(),
            order: Some("order_id".into()),
            date: "date".into(),
            product: Some("product_id".into()),
            product_name: None,
            category: None,
            quantity: None,
            amount: None,
            unit_price: None,
            currency: None,
            name: None,
            email: None,
            accepts_marketing: None,
        }
    }
}

/// Options of the generic CSV format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    /// The column mapping.
    pub columns: ColumnMap,
    /// How dates are written (default: auto-detect).
    pub date_format: DateFormat,
    /// Field separator (default `,`).
    pub delimiter: Delimiter,
    /// Decimal separator of amounts and quantities (default `.`).
    pub decimal: DecimalSeparator,
    /// Currency to assume when neither a column nor the amounts state one.
    pub currency: Option<String>,
    /// Lowercase the customer key (useful when it is an email address).
    pub lowercase_customer: bool,
}

struct Cols {
    customer: usize,
    order: Option<usize>,
    date: usize,
    product: Option<usize>,
    product_name: Option<usize>,
    category: Option<usize>,
    quantity: Option<usize>,
    amount: Option<usize>,
    unit_price: Option<usize>,
    currency: Option<usize>,
    name: Option<usize>,
    email: Option<usize>,
    accepts: Option<usize>,
}

fn resolve<R: Read>(t: &TableReader<R>, m: &ColumnMap) -> Result<Cols, PosError> {
    let mut c = t.columns();
    let cols = Cols {
        customer: c.require(&m.customer, "customer"),
        order: m.order.as_deref().map(|name| {
            c.require(
                name,
                "order; map `order: null` if the export has no order ids",
            )
        }),
        date: c.require(&m.date, "date"),
        product: m.product.as_deref().map(|name| {
            c.require(
                name,
                "product; map `product: null` if the export has no products",
            )
        }),
        product_name: c.optional(m.product_name.as_deref(), "product_name", "product_name"),
        category: c.optional(m.category.as_deref(), "category", "category"),
        quantity: c.optional(m.quantity.as_deref(), "quantity", "quantity"),
        amount: c.optional(m.amount.as_deref(), "amount", "amount"),
        unit_price: c.optional(m.unit_price.as_deref(), "unit_price", "unit_price"),
        currency: c.optional(m.currency.as_deref(), "currency", "currency"),
        name: c.optional(m.name.as_deref(), "customer_name", "name"),
        email: c.optional(m.email.as_deref(), "email", "email"),
        accepts: c.optional(
            m.accepts_marketing.as_deref(),
            "accepts_marketing",
            "accepts_marketing",
        ),
    };
    if cols.amount.is_none() && cols.unit_price.is_none() {
        c.missing(
            "amount",
            "amount (or map `unit_price` to compute quantity x unit price)",
        );
    }
    c.finish()?;
    Ok(cols)
}

/// Parses a generic transaction CSV, handing each line item to `sink`.
pub fn parse_with<R: Read>(
    reader: R,
    opts: &CsvOptions,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    let (table, ctx) = open(reader, opts)?;
    read_rows(table, &ctx, sink)
}

/// Checks the options, reads the header and finds the mapped columns, as every parse starts
/// (in that order, so the same file gives the same first error).
fn open<R: Read>(reader: R, opts: &CsvOptions) -> Result<(TableReader<R>, Ctx<'_>), PosError> {
    let dates = DateParser::new(&opts.date_format).map_err(PosError::Config)?;
    let default_currency = match &opts.currency {
        Some(c) => Some(
            super::money::Currency::from_code(c)
                .ok_or_else(|| PosError::Config(format!("currency `{c}` is not a 3-letter code")))?
                .to_string(),
        ),
        None => None,
    };
    let table = TableReader::new(reader, opts.delimiter)?;
    let cols = resolve(&table, &opts.columns)?;
    let header = table.header().to_vec();
    let ctx = Ctx {
        cols,
        header,
        dates,
        opts,
        default_currency,
    };
    Ok((table, ctx))
}

/// Reads the rest of `table`'s rows, one after another.
fn read_rows<R: Read>(
    mut table: TableReader<R>,
    ctx: &Ctx,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    let mut report = ParseReport::default();
    let mut book = CustomerBook::default();
    // One item for every row: its strings keep their buffers, so a row allocates nothing.
    let mut item = LineItem::default();
    let mut last_date = LastDate::default();
    while let Some(row) = table.next_row(&mut report)? {
        match ctx.row(&row, &mut item, &mut last_date) {
            Ok(Some(seen)) => {
                let customer = book.observe(&item.customer_id, item.timestamp, item.line, seen);
                report.items += 1;
                sink(&item, customer);
            }
            Ok(None) => {
                report.rows_without_customer += 1;
                report.excluded_rows += 1;
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

/// The last date text parsed and its value: the lines of an order, one after another, repeat
/// their order's timestamp, which is then parsed once.
#[derive(Default)]
struct LastDate {
    text: String,
    value: Option<Timestamp>,
}

impl LastDate {
    fn get(&self, text: &str) -> Option<Timestamp> {
        self.value.filter(|_| self.text == text)
    }

    fn set(&mut self, text: &str, value: Timestamp) {
        self.text.clear();
        self.text.push_str(text);
        self.value = Some(value);
    }
}

/// Bytes of a file's records each thread parses at a time.
const PART_BYTES: u64 = 4 << 20;

/// Parses a file into parts made by `new_part` and merged by `merge` in file order: a large
/// file is parsed on `threads` threads, each part on the thread that reads it, while this
/// thread merges them and does some of `idle` whenever the next part is not ready; a small
/// file (or one thread) by one reader on this thread. Either way the items, their order and
/// the report are those [`parse_with`] gives. `customers` is about how many customers the
/// file names (0: unknown), to size their map.
pub fn parse_file_in_parts<P: PartSink>(
    path: &Path,
    opts: &CsvOptions,
    new_part: &(dyn Fn() -> P + Sync),
    merge: &mut Merge<'_, P>,
    (threads, customers): (usize, usize),
    idle: &mut Idle<'_>,
) -> Result<StreamOutcome, PosError> {
    parse_parts_on(
        path,
        opts,
        new_part,
        merge,
        (threads, customers, idle),
        PART_BYTES,
    )
}

/// [`parse_file_in_parts`] on `threads` threads, in parts of `part_bytes`.
pub(crate) fn parse_parts_on<P: PartSink>(
    path: &Path,
    opts: &CsvOptions,
    new_part: &(dyn Fn() -> P + Sync),
    merge: &mut Merge<'_, P>,
    (threads, customers, idle): (usize, usize, &mut Idle<'_>),
    part_bytes: u64,
) -> Result<StreamOutcome, PosError> {
    let io = |e: std::io::Error| PosError::io(Some(path), &e);
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let (table, ctx) = open(file, opts)?;
    let one_reader = |table, merge: &mut Merge<'_, P>| {
        let mut parts = OneReader::new(new_part(), merge);
        let outcome = read_rows(table, &ctx, &mut |item, customer| {
            parts.push(item, customer)
        });
        parts.finish();
        outcome
    };
    let (Some(data_start), Some(delimiter)) = (table.data_start(), opts.delimiter.byte()) else {
        return one_reader(table, merge);
    };
    if threads < 2 || len.saturating_sub(data_start) < 2 * part_bytes {
        return one_reader(table, merge);
    }
    drop(table);
    let mut report = ParseReport::default();
    let mut book = CustomerBook::with_capacity(customers);
    let mut index = Vec::new();
    // Parts are at least `part_bytes` long (the last one aside): no more workers than parts.
    let workers = threads.min(((len - data_start) / part_bytes) as usize);
    std::thread::scope(|scope| -> Result<(), PosError> {
        let mut queues = Vec::with_capacity(workers);
        let mut to_parse = Vec::with_capacity(workers);
        for _ in 0..workers {
            // A worker parses the parts it is sent, in order. One parsed part waits while the
            // next is parsed; parts handed back are reused.
            let (send_part, mine) = mpsc::channel::<Part>();
            let (done, results) = mpsc::sync_channel::<Result<Parsed<P>, PosError>>(1);
            let (give_back, returned) = mpsc::channel::<Parsed<P>>();
            let ctx = &ctx;
            scope.spawn(move || {
                for part in mine {
                    let parsed = returned.try_recv().unwrap_or_else(|_| Parsed {
                        sink: new_part(),
                        book: CustomerBook::default(),
                        report: ParseReport::default(),
                    });
                    let result = parse_part(path, ctx, part, parsed);
                    let failed = result.is_err();
                    if done.send(result).is_err() || failed {
                        break;
                    }
                }
            });
            to_parse.push(send_part);
            queues.push((results, give_back));
        }
        // The workers parse the first parts while this thread finds the next. A worker stops
        // once its queue of parts is dropped, or once the results it sends are no longer read
        // (this thread returned early), so the scope never waits on one forever.
        let mut parts = 0;
        super::parts::split(path, delimiter, data_start, part_bytes, &mut |part| {
            // A worker that stopped (after sending an error) takes no more.
            let _ = to_parse[parts % workers].send(part);
            parts += 1;
        })?;
        drop(to_parse);
        for i in 0..parts {
            let (results, give_back) = &queues[i % workers];
            let mut parsed = next_part(results, idle)?;
            // Customers are looked up once per part, not once per row.
            book.absorb(&parsed.book, &mut index);
            merge(&mut parsed.sink, &index);
            report.absorb(&parsed.report);
            let _ = give_back.send(parsed);
        }
        Ok(())
    })?;
    report.customers = book.len() as u64;
    Ok(StreamOutcome {
        customers: book.into_customers(),
        report,
    })
}

/// The next part from `results`, doing some of `idle` while it is not ready.
fn next_part<P>(
    results: &mpsc::Receiver<Result<Parsed<P>, PosError>>,
    idle: &mut Idle<'_>,
) -> Result<Parsed<P>, PosError> {
    // A thread stops early only after sending an error, which is returned here first; a
    // thread that panicked makes the scope panic.
    let ended = "a part or an error from each thread";
    loop {
        match results.try_recv() {
            Ok(parsed) => return parsed,
            Err(mpsc::TryRecvError::Empty) if idle() => {}
            Err(mpsc::TryRecvError::Empty) => return results.recv().expect(ended),
            Err(mpsc::TryRecvError::Disconnected) => panic!("{ended}"),
        }
    }
}

/// The rows of one part of a file, parsed.
struct Parsed<P> {
    sink: P,
    /// The part's customers, numbered as `sink` has them.
    book: CustomerBook,
    report: ParseReport,
}

fn parse_part<P: PartSink>(
    path: &Path,
    ctx: &Ctx,
    part: Part,
    mut parsed: Parsed<P>,
) -> Result<Parsed<P>, PosError> {
    let mut table = TableReader::continuing(
        part.reader(path)?,
        ctx.opts.delimiter,
        ctx.header.clone(),
        part.first_line,
    );
    parsed.sink.clear();
    parsed.book.clear();
    parsed.report = ParseReport::default();
    // One item for every row: its strings keep their buffers.
    let mut item = LineItem::default();
    let mut last_date = LastDate::default();
    while let Some(row) = table.next_row(&mut parsed.report)? {
        match ctx.row(&row, &mut item, &mut last_date) {
            Ok(Some(seen)) => {
                let customer =
                    parsed
                        .book
                        .observe(&item.customer_id, item.timestamp, item.line, seen);
                parsed.sink.push(&item, customer);
                parsed.report.items += 1;
            }
            Ok(None) => {
                parsed.report.rows_without_customer += 1;
                parsed.report.excluded_rows += 1;
            }
            Err(bad) => parsed.report.push_bad(bad),
        }
    }
    Ok(parsed)
}

/// What reading a row needs: the mapped columns, the header (for messages), the date parser
/// and the options.
struct Ctx<'a> {
    cols: Cols,
    header: Vec<String>,
    dates: DateParser,
    opts: &'a CsvOptions,
    default_currency: Option<String>,
}

impl Ctx<'_> {
    fn name(&self, idx: usize) -> &str {
        self.header.get(idx).map_or("?", String::as_str)
    }

    fn required<'r>(&self, row: &'r Row, idx: usize) -> Result<&'r str, BadRow> {
        let v = row.get(idx);
        if v.is_empty() {
            Err(BadRow::in_column(row.line, self.name(idx), "empty"))
        } else {
            Ok(v)
        }
    }

    /// Reads a row into `item` (every field is overwritten when the row gives an item; `item`
    /// is left in an unspecified state otherwise). `Ok(None)`: a row without a customer.
    fn row<'r>(
        &self,
        row: &'r Row,
        item: &mut LineItem,
        last_date: &mut LastDate,
    ) -> Result<Option<CustomerSeen<'r>>, BadRow> {
        let c = &self.cols;
        let line = row.line;
        let decimal = self.opts.decimal;
        let order = match c.order {
            Some(i) => Some(self.required(row, i)?),
            None => None,
        };
        let raw_date = self.required(row, c.date)?;
        let ts = match last_date.get(raw_date) {
            Some(ts) => ts,
            None => {
                let ts = self
                    .dates
                    .parse(raw_date)
                    .map_err(|e| BadRow::in_column(line, self.name(c.date), e))?;
                last_date.set(raw_date, ts);
                ts
            }
        };
        let product = match c.product {
            Some(i) => self.required(row, i)?,
            None => "",
        };
        let quantity = match c.quantity {
            Some(i) => parse_number(self.required(row, i)?, decimal)
                .map_err(|e| BadRow::in_column(line, self.name(i), e))?,
            None => 1.0,
        };
        let mut currency = None;
        let unit_price = match c.unit_price {
            Some(i) => match row.opt(Some(i)) {
                Some(v) => {
                    let m = parse_money(v, decimal)
                        .map_err(|e| BadRow::in_column(line, self.name(i), e))?;
                    currency = currency.or(m.currency);
                    Some(m.value)
                }
                None if c.amount.is_none() => {
                    return Err(BadRow::in_column(line, self.name(i), "empty"));
                }
                None => None,
            },
            None => None,
        };
        let amount = match c.amount {
            Some(i) => {
                let m = parse_money(self.required(row, i)?, decimal)
                    .map_err(|e| BadRow::in_column(line, self.name(i), e))?;
                currency = m.currency.or(currency);
                m.value
            }
            None => quantity * unit_price.unwrap_or(0.0),
        };
        let accepts_marketing = match row.opt(c.accepts) {
            Some(v) => parse_flag(v)
                .map_err(|e| BadRow::in_column(line, self.name(c.accepts.unwrap_or(0)), e))?,
            None => None,
        };
        let customer = row.get(c.customer);
        if customer.is_empty() {
            return Ok(None);
        }
        if self.opts.lowercase_customer {
            item.customer_id = customer.to_lowercase();
        } else {
            set(&mut item.customer_id, customer);
        }
        match row.opt(c.currency) {
            Some(code) => {
                let dst = item.currency.get_or_insert_default();
                set(dst, code);
                dst.make_ascii_uppercase();
            }
            None => set_opt(
                &mut item.currency,
                currency
                    .as_ref()
                    .map(Currency::as_str)
                    .or(self.default_currency.as_deref()),
            ),
        }
        item.line = line;
        match order {
            Some(order) => set(&mut item.order_id, order),
            None => {
                // Without order ids each row is one order, keyed by its line.
                item.order_id.clear();
                write!(item.order_id, "line:{line}").expect("writing to a String");
            }
        }
        item.timestamp = ts.local;
        item.utc_offset_secs = ts.offset_secs;
        set(&mut item.product_id, product);
        set_opt(&mut item.product_name, row.opt(c.product_name));
        set_opt(&mut item.category, row.opt(c.category));
        item.quantity = quantity;
        item.unit_price = unit_price;
        item.amount = amount;
        Ok(Some(CustomerSeen {
            email: row.opt(c.email),
            name: row.opt(c.name),
            accepts_marketing,
        }))
    }
}

/// Overwrites `dst` with `src`, keeping its buffer.
fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// [`set`] for an optional value.
fn set_opt(dst: &mut Option<String>, src: Option<&str>) {
    match src {
        Some(s) => set(dst.get_or_insert_default(), s),
        None => *dst = None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Parsed;
    use super::*;

    fn parse(text: &str, opts: &CsvOptions) -> Result<Parsed, PosError> {
        super::super::parse(text.as_bytes(), &super::super::Format::Csv(opts.clone()))
    }

    fn reasons(p: &Parsed) -> Vec<String> {
        p.report.bad_rows.iter().map(ToString::to_string).collect()
    }

    const FIXTURE: &str = include_str!("fixtures/transactions.csv");

    #[test]
    fn fixture_with_default_mapping() {
        let p = parse(FIXTURE, &CsvOptions::default()).unwrap();
        assert_eq!(
            reasons(&p),
            vec![
                "line 9: column `amount`: `12,3x` is not a number (unexpected `x`)",
                "line 12: column `date`: `2024-02-30 11:00:00` is not a valid date (day 30 does \
                 not exist in 2024-02)",
                "line 15: the row has 7 fields but the header has 8",
                "line 17: column `quantity`: `two` is not a number (no digits)",
                "line 19: column `order_id`: empty",
            ]
        );
        let r = &p.report;
        assert_eq!(r.rows_read, 22);
        assert_eq!(r.rows_without_customer, 1);
        assert_eq!(r.items, 16);
        assert_eq!(r.rows_read, r.items + r.bad_row_count + r.excluded_rows);
        assert_eq!(p.items.len(), 16);
        let first = &p.items[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.order_id, "O1001");
        assert_eq!(first.customer_id, "C001");
        assert_eq!(first.timestamp.to_string(), "2024-01-05 09:12:00");
        assert_eq!(first.product_id, "P010");
        assert_eq!(first.category.as_deref(), Some("Coffee"));
        assert_eq!(
            (first.quantity, first.unit_price, first.amount),
            (2.0, Some(8.5), 17.0)
        );
        // A return line keeps its negative quantity and amount.
        let ret = p.items.iter().find(|i| i.order_id == "R1003").unwrap();
        assert_eq!((ret.quantity, ret.amount), (-1.0, -24.0));
        // Discounted line: amount is taken as given, not qty x price.
        let disc = p.items.iter().find(|i| i.line == 5).unwrap();
        assert_eq!((disc.unit_price, disc.amount), (Some(4.0), 3.6));
        assert_eq!(p.customers.len(), 6);
        assert_eq!(p.report.customers, 6);
    }

    #[test]
    fn custom_mapping_semicolons_decimal_comma_and_unit_price() {
        let text = "Kunde;Beleg;Datum;Artikel;Menge;Preis;Mail\n\
                    K1;B1;01.03.2024 10:00;A-1;2;€3,50;Anna@Example.com\n\
                    K1;B1;01.03.2024 10:00;A-2;1;1.234,00;\n\
                    K2;B2;02.03.2024;A-1;1,5;2,00;\n";
        let opts = CsvOptions {
            columns: ColumnMap {
                customer: "Kunde".into(),
                order: Some("Beleg".into()),
                date: "Datum".into(),
                product: Some("Artikel".into()),
                quantity: Some("Menge".into()),
                unit_price: Some("Preis".into()),
                email: Some("Mail".into()),
                ..ColumnMap::default()
            },
            date_format: DateFormat::AutoDayFirst,
            delimiter: Delimiter::Semicolon,
            decimal: DecimalSeparator::Comma,
            currency: Some("eur".into()),
            lowercase_customer: false,
        };
        let p = parse(text, &opts).unwrap();
        assert!(p.report.bad_rows.is_empty(), "{:?}", p.report.bad_rows);
        let amounts: Vec<f64> = p.items.iter().map(|i| i.amount).collect();
        assert_eq!(amounts, vec![7.0, 1234.0, 3.0]);
        assert_eq!(p.items[0].currency.as_deref(), Some("EUR"));
        assert_eq!(p.items[2].currency.as_deref(), Some("EUR"));
        assert_eq!(p.items[0].timestamp.to_string(), "2024-03-01 10:00:00");
        assert_eq!(p.customers[0].email.as_deref(), Some("Anna@Example.com"));
    }

    #[test]
    fn whitespace_delimited_with_strftime_dates() {
        let text = "cust order when sku qty amount\n\
                    c1 o1 2024/03/01-10:00 s1 1 10.00\n\
                    c2   o2\t2024/03/02-11:30  s2  2  \"1,000.00\"\n\
                    c3 o3 garbage s3 1 1.00\n";
        let opts = CsvOptions {
            columns: ColumnMap {
                customer: "cust".into(),
                order: Some("order".into()),
                date: "when".into(),
                product: Some("sku".into()),
                quantity: Some("qty".into()),
                ..ColumnMap::default()
            },
            date_format: DateFormat::Strftime("%Y/%m/%d-%H:%M".into()),
            delimiter: Delimiter::Whitespace,
            ..CsvOptions::default()
        };
        let p = parse(text, &opts).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[1].amount, 1000.0);
        assert_eq!(p.items[1].timestamp.to_string(), "2024-03-02 11:30:00");
        assert_eq!(p.report.bad_rows.len(), 1);
        assert!(
            p.report.bad_rows[0]
                .to_string()
                .starts_with("line 4: column `when`: `garbage`")
        );
    }

    #[test]
    fn repeated_timestamps_parse_as_each_row_alone() {
        // Runs of one timestamp, a bad date between two equal good ones, a stated offset.
        let text = "customer_id,order_id,date,product_id,amount\n\
                    c1,o1,2024-03-01 10:00:00,p1,1\n\
                    c1,o1,2024-03-01 10:00:00,p2,2\n\
                    c2,o2,2024-03-01 10:00:01,p1,3\n\
                    c2,o3,2024-13-01 10:00:01,p1,4\n\
                    c2,o4,2024-03-01 10:00:01,p1,5\n\
                    c3,o5,2024-03-01T10:00:01+02:00,p1,6\n\
                    c3,o5,2024-03-01T10:00:01+02:00,p2,7\n";
        let p = parse(text, &CsvOptions::default()).unwrap();
        let times: Vec<String> = p
            .items
            .iter()
            .map(|i| format!("{} {:?}", i.timestamp, i.utc_offset_secs))
            .collect();
        assert_eq!(
            times,
            [
                "2024-03-01 10:00:00 None",
                "2024-03-01 10:00:00 None",
                "2024-03-01 10:00:01 None",
                "2024-03-01 10:00:01 None",
                "2024-03-01 10:00:01 Some(7200)",
                "2024-03-01 10:00:01 Some(7200)",
            ]
        );
        let bad = reasons(&p);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("line 5"), "{bad:?}");
    }

    #[test]
    fn missing_mapped_column_is_one_clear_error() {
        let text = "customer_id,order_id,when,product_id,amount\nc,o,2024-01-01,p,1\n";
        let err = parse(text, &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `date` (for date) is not in the header; the header has 5 columns: \
             `customer_id`, `order_id`, `when`, `product_id`, `amount`"
        );
        // A configured optional column must exist too.
        let opts = CsvOptions {
            columns: ColumnMap {
                date: "when".into(),
                category: Some("dept".into()),
                ..ColumnMap::default()
            },
            ..CsvOptions::default()
        };
        let err = parse(text, &opts).unwrap_err();
        assert!(
            err.to_string().starts_with("column `dept` (for category)"),
            "{err}"
        );
    }

    #[test]
    fn every_missing_column_is_listed_in_one_error() {
        let text = "customer_id,when,sku,total\nc,2024-01-01,p,1\n";
        let err = parse(text, &CsvOptions::default()).unwrap_err();
        let PosError::MissingColumns {
            missing, header, ..
        } = &err
        else {
            panic!("{err}")
        };
        let names: Vec<&str> = missing.iter().map(|m| m.column.as_str()).collect();
        assert_eq!(names, ["order_id", "date", "product_id", "amount"]);
        assert_eq!(header.len(), 4);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "columns `order_id` (for order; map `order: null` if the export has no order \
                 ids), `date` (for date), `product_id` (for product; map `product: null` if the \
                 export has no products), `amount` (for amount (or map `unit_price`"
            ),
            "{text}"
        );
        // Mapped optional columns count too.
        let opts = CsvOptions {
            columns: ColumnMap {
                category: Some("dept".into()),
                email: Some("mail".into()),
                ..ColumnMap::default()
            },
            ..CsvOptions::default()
        };
        let text = "customer_id,order_id,date,product_id,amount\nc,o,2024-01-01,p,1\n";
        let err = parse(text, &opts).unwrap_err().to_string();
        assert!(
            err.starts_with("columns `dept` (for category), `mail` (for email) are not"),
            "{err}"
        );
    }

    #[test]
    fn a_payments_export_without_orders_or_products() {
        let text = include_str!("fixtures/payments.csv");
        let opts: CsvOptions = serde_json::from_str(
            r#"{"columns": {"customer": "customer", "date": "paid_at", "amount": "amount",
                            "order": null, "product": null}}"#,
        )
        .unwrap();
        let p = parse(text, &opts).unwrap();
        assert!(p.report.bad_rows.is_empty(), "{:?}", p.report.bad_rows);
        let rows = text.lines().count() as u64 - 1;
        assert_eq!(p.report.items, rows);
        // Each row is its own order, keyed by its line; no product.
        for item in &p.items {
            assert_eq!(item.order_id, format!("line:{}", item.line));
            assert_eq!(item.product_id, "");
            assert_eq!(item.quantity, 1.0);
        }
        let orders: std::collections::HashSet<&str> =
            p.items.iter().map(|i| i.order_id.as_str()).collect();
        assert_eq!(orders.len() as u64, rows);
        assert_eq!(p.customers.len(), 30);
        // Without `null`, the default names are still required.
        let plain: CsvOptions = serde_json::from_str(
            r#"{"columns": {"customer": "customer", "date": "paid_at", "amount": "amount"}}"#,
        )
        .unwrap();
        let err = parse(text, &plain).unwrap_err().to_string();
        assert!(
            err.contains("`order_id` (for order; map `order: null`"),
            "{err}"
        );
        // A row's empty order id is still bad when orders are mapped.
        let p = parse(
            "customer_id,order_id,date,amount,product_id\nc,,2024-01-01,1,p\n",
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(reasons(&p), ["line 2: column `order_id`: empty"]);
    }

    #[test]
    fn neither_amount_nor_unit_price_is_an_error() {
        let text = "customer_id,order_id,date,product_id,quantity\nc,o,2024-01-01,p,1\n";
        let err = parse(text, &CsvOptions::default()).unwrap_err().to_string();
        assert!(
            err.contains("column `amount` (for amount (or map `unit_price`"),
            "{err}"
        );
    }

    #[test]
    fn without_quantity_column_each_row_is_one_unit() {
        let text = "customer_id,order_id,date,product_id,unit_price\nc,o,2024-01-01,p,2.5\n";
        let p = parse(text, &CsvOptions::default()).unwrap();
        assert_eq!((p.items[0].quantity, p.items[0].amount), (1.0, 2.5));
    }

    #[test]
    fn empty_unit_price_without_amount_is_bad_and_lowercasing() {
        let text = "customer_id,order_id,date,product_id,unit_price,accepts_marketing\n\
                    A@X.COM,o,2024-01-01,p,,yes\n\
                    A@X.COM,o,2024-01-01,p,1,perhaps\n\
                    A@X.COM,o,2024-01-01,p,1,YES\n";
        let opts = CsvOptions {
            lowercase_customer: true,
            ..CsvOptions::default()
        };
        let p = parse(text, &opts).unwrap();
        assert_eq!(
            reasons(&p),
            vec![
                "line 2: column `unit_price`: empty",
                "line 3: column `accepts_marketing`: `perhaps` is not a yes/no value",
            ]
        );
        assert_eq!(p.items[0].customer_id, "a@x.com");
        assert_eq!(p.customers[0].accepts_marketing, Some(true));
    }

    #[test]
    fn options_deserialize_with_defaults_and_reject_unknown_keys() {
        let json = r#"{"columns": {"customer": "cust", "amount": "total"}, "delimiter": ";",
                       "decimal": ",", "date_format": "%d/%m/%Y"}"#;
        let opts: CsvOptions = serde_json::from_str(json).unwrap();
        assert_eq!(opts.columns.customer, "cust");
        assert_eq!(opts.columns.order.as_deref(), Some("order_id"));
        assert_eq!(opts.columns.amount.as_deref(), Some("total"));
        assert_eq!(opts.delimiter, Delimiter::Semicolon);
        assert_eq!(opts.decimal, DecimalSeparator::Comma);
        assert!(serde_json::from_str::<CsvOptions>(r#"{"colums": {}}"#).is_err());
        assert!(serde_json::from_str::<CsvOptions>(r#"{"columns": {"custmer": "x"}}"#).is_err());
    }

    /// The items a sink received (with their customer numbers), and what the parse returned.
    type Outcome = Result<(Vec<(LineItem, u32)>, StreamOutcome), PosError>;

    /// A part that keeps copies of its items.
    impl PartSink for Vec<(LineItem, u32)> {
        fn push(&mut self, item: &LineItem, customer: u32) {
            self.push((item.clone(), customer));
        }
        fn clear(&mut self) {
            Vec::clear(self);
        }
    }

    /// Items, customers and report of a sequential parse, and of a parse in parts of
    /// `part_bytes` on `threads` threads.
    fn both(text: &[u8], opts: &CsvOptions, threads: usize, part_bytes: u64) -> [Outcome; 2] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let one = {
            let mut items = Vec::new();
            let mut sink = |item: &LineItem, customer| items.push((item.clone(), customer));
            parse_with(text, opts, &mut sink).map(|o| (items, o))
        };
        let mut items = Vec::new();
        let mut merge = |part: &mut Vec<(LineItem, u32)>, customers: &[u32]| {
            items.extend(
                part.drain(..)
                    .map(|(item, customer)| (item, customers[customer as usize])),
            );
        };
        // Work between parts that runs out after a while: the parts are the same either way.
        let mut left = 20;
        let mut idle = || {
            left -= 1;
            left > 0
        };
        let parts = parse_parts_on(
            file.path(),
            opts,
            &Vec::new,
            &mut merge,
            (threads, 0, &mut idle),
            part_bytes,
        );
        [one, parts.map(|o| (items, o))]
    }

    #[test]
    fn a_file_parsed_in_parts_gives_what_one_reader_gives() {
        // Random files over what makes record boundaries hard: quoted fields with delimiters,
        // line breaks and escaped quotes, CRLF and bare CR, blank lines, a byte order mark,
        // rows with a field too many, bad values, rows without a customer, contact details
        // that change, and invalid UTF-8.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let fields: [&[&str]; 6] = [
            &["O1", "O2", "\"O,3\"", "\"O\n4\"", ""],
            &["C1", "C2", "c3", "", "\"C\"\"4\""],
            &[
                "2024-01-05",
                "2024-02-30",
                "2024-03-01 10:00",
                "\"2024-04-01\"",
            ],
            &["P1", "P2", "\"P\r\n3\""],
            &["2", "two", "-1", "1.5"],
            &["a@x.com", "", "b@y.org", "\"c@z.net\""],
        ];
        let mut opts = CsvOptions::default();
        opts.columns.quantity = Some("quantity".into());
        opts.columns.amount = Some("quantity".into());
        opts.columns.email = Some("email".into());
        for case in 0..300 {
            let mut text: Vec<u8> = Vec::new();
            if case % 5 == 0 {
                text.extend("\u{feff}".as_bytes());
            }
            let eol: &[u8] = [b"\n".as_slice(), b"\r\n", b"\r"]
                [(case % 7 == 0) as usize + (case % 11 == 0) as usize];
            text.extend(b"order_id,customer_id,date,product_id,quantity,email");
            text.extend(eol);
            for _ in 0..next(120) {
                match next(40) {
                    0 => text.extend(eol),
                    1 => text.extend(b"x,y,2024-01-01,p,1,e,extra"),
                    2 => text.extend(b"O9,C\xff,2024-01-01,P1,1,"),
                    _ => {
                        let row: Vec<&str> = fields
                            .iter()
                            .map(|f| f[next(f.len() as u64) as usize])
                            .collect();
                        text.extend(row.join(",").as_bytes());
                    }
                }
                text.extend(eol);
            }
            let threads = 2 + case % 3;
            let part_bytes = 1 + next(150);
            let [one, parts] = both(&text, &opts, threads, part_bytes);
            let text = String::from_utf8_lossy(&text);
            match (one, parts) {
                (Ok((items, out)), Ok((p_items, p_out))) => {
                    assert_eq!(p_items, items, "case {case}: {text:?}");
                    assert_eq!(p_out.report, out.report, "case {case}: {text:?}");
                    assert_eq!(p_out.customers, out.customers, "case {case}: {text:?}");
                }
                (one, parts) => {
                    assert_eq!(parts.map(|_| ()), one.map(|_| ()), "case {case}: {text:?}")
                }
            }
        }
    }

    #[test]
    fn a_runaway_quote_is_the_same_error_in_parts() {
        let mut text = String::from("order_id,customer_id,date,product_id,amount\n");
        for i in 0..200 {
            text.push_str(&format!("O{i},C{i},2024-01-01,P1,1\n"));
        }
        text.push_str("O,\"C,2024-01-01,P1,1\n");
        for i in 0..200 {
            text.push_str(&format!("O{i},C{i},2024-01-01,P1,1\n"));
        }
        let [one, parts] = both(text.as_bytes(), &CsvOptions::default(), 2, 64);
        let expected = PosError::RunawayQuote {
            line: 202,
            to_end: false,
        };
        assert_eq!(one.unwrap_err(), expected);
        assert_eq!(parts.unwrap_err(), expected);
    }
}
