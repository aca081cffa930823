//! POS exports: parsing into a normalized model, and a deterministic sample-data generator.
//!
//! Pure, synchronous code with no node wiring: the `pos.extract` node turns the items into
//! Arrow tables. Nothing here panics on input data; problems are either a [`PosError`] (the
//! file cannot be used at all: unreadable, empty, a missing column, invalid options) or a
//! [`BadRow`] in the [`ParseReport`] (the caller applies `on_bad_rows` with
//! [`ParseReport::check`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`model`] | [`LineItem`], [`Customer`], [`ParseReport`], [`BadRow`], [`PosError`] |
//! | [`money`] | `$3.00`, `-$3.00`, `($3.00)`, `1,234.56`, `1.234,56`, `€3,50`, `3.00 USD` |
//! | [`dates`] | strftime formats, ISO 8601 auto-detection, Square's date + time + zone |
//! | [`csv_mapped`] | format `csv`: generic CSV with a column mapping, any delimiter |
//! | [`shopify`] | format `shopify_orders`: the Shopify orders CSV export |
//! | [`square`] | format `square_items`: the Square item sales CSV export |
//! | [`lightspeed`] | format `lightspeed_sales`: the Lightspeed Retail (X-Series) sales export |
//! | [`jsonl`] | format `jsonl`: JSON Lines of Shopify-Admin-like orders |
//! | [`catalog`] | product catalog CSV (id, name, category, price, stock) |
//! | [`customers`] | customers CSV (id, name, email, marketing consent) |
//! | [`generate`] | deterministic realistic sample data (transactions, catalog, customers) |
//!
//! Each format module documents its decisions (customer key, cancelled orders, refunds, ...).
//! Every parse can stream: [`parse_with`] hands items to a callback one by one (memory stays
//! O(customers), except Shopify which buffers the file to group rows by order), and [`parse`]
//! collects them.
//!
//! Line numbers are 1-based physical lines, counted independently of the `csv` crate (whose
//! own line numbers skip blank lines and miscount CRLF files).

pub mod catalog;
mod columns;
pub mod csv_mapped;
pub mod customers;
pub mod dates;
#[cfg(test)]
mod fuzz_tests;
pub mod generate;
pub mod jsonl;
pub mod lightspeed;
pub mod max_bad_rows;
pub mod model;
pub mod money;
mod node;
pub mod part_sink;
mod parts;
mod rows_estimate;
mod runaway_quote;
pub mod shopify;
pub mod square;
mod table;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use catalog::{Catalog, CatalogColumns, CatalogOptions, Product, parse_catalog};
pub use csv_mapped::{ColumnMap, CsvOptions};
pub use customers::{
    CustomerColumns, CustomerList, CustomersOptions, CustomersReader, IndexedCustomers,
    parse_customers,
};
pub use dates::{DateFormat, DateParser, Timestamp};
pub use jsonl::{CustomerKey, JsonlOptions};
pub use lightspeed::LightspeedOptions;
pub use max_bad_rows::MaxBadRows;
pub use model::{
    BadRow, Customer, LineItem, MissingColumn, OnBadRows, ParseReport, Parsed, PosError,
    StreamOutcome,
};
pub use money::{DecimalSeparator, parse_money, parse_number};
pub use node::{CATALOG_COLUMNS, CatalogNode, Extract, TRANSACTION_COLUMNS};
pub(crate) use node::{catalog_schema, transactions_schema, transactions_table};
pub use shopify::{MissingEmail, ShopifyOptions};
pub use square::SquareOptions;
pub use table::Delimiter;

/// Registers `pos.extract` and `pos.catalog`.
pub fn register(registry: &mut flow_engine::node::Registry) {
    registry.register(Extract).register(CatalogNode);
}

/// A transaction file format with its options. Deserializes from a map tagged by `format`:
/// `{format: csv, columns: {...}, delimiter: ";"}`, `{format: shopify_orders}`,
/// `{format: square_items, currency: USD}`, `{format: jsonl}`.
// One value per node: the size difference between variants does not matter, and unboxed
// options are simpler to build and match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Format {
    /// Generic CSV with a column mapping.
    Csv(CsvOptions),
    /// Shopify orders CSV export.
    ShopifyOrders(ShopifyOptions),
    /// Square item sales CSV export.
    SquareItems(SquareOptions),
    /// Lightspeed Retail (X-Series) sales export.
    LightspeedSales(LightspeedOptions),
    /// JSON Lines of orders.
    #[serde(alias = "json_lines")]
    Jsonl(JsonlOptions),
}

impl Format {
    /// The format's name as written in the workflow file.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Csv(_) => "csv",
            Format::ShopifyOrders(_) => "shopify_orders",
            Format::SquareItems(_) => "square_items",
            Format::LightspeedSales(_) => "lightspeed_sales",
            Format::Jsonl(_) => "jsonl",
        }
    }

    /// Whether the rows carry order ids (else each row is one order).
    pub fn has_orders(&self) -> bool {
        !matches!(self, Format::Csv(o) if o.columns.order.is_none())
    }

    /// Whether the rows carry products (a payments export has none).
    pub fn has_products(&self) -> bool {
        !matches!(self, Format::Csv(o) if o.columns.product.is_none())
    }
}

/// Parses transactions, handing each [`LineItem`] to `sink` as soon as it is known, with its
/// customer's index in [`StreamOutcome::customers`] (customers are numbered in the order they are
/// first seen). The item is lent, not given: a parser may reuse one item's buffers for every row.
pub fn parse_with<R: Read>(
    reader: R,
    format: &Format,
    sink: &mut dyn FnMut(&LineItem, u32),
) -> Result<StreamOutcome, PosError> {
    match format {
        Format::Csv(o) => csv_mapped::parse_with(reader, o, sink),
        Format::ShopifyOrders(o) => shopify::parse_with(reader, o, sink),
        Format::SquareItems(o) => square::parse_with(reader, o, sink),
        Format::LightspeedSales(o) => lightspeed::parse_with(reader, o, sink),
        Format::Jsonl(o) => jsonl::parse_with(reader, o, sink),
    }
}

/// Parses transactions into memory.
pub fn parse<R: Read>(reader: R, format: &Format) -> Result<Parsed, PosError> {
    let mut items = Vec::new();
    let out = parse_with(reader, format, &mut |item, _| items.push(item.clone()))?;
    Ok(Parsed {
        items,
        customers: out.customers,
        report: out.report,
    })
}

fn open(path: &Path) -> Result<File, PosError> {
    File::open(path).map_err(|e| PosError::io(Some(path), &e))
}

/// Parses a transaction file into parts made by `new_part`, merged by `merge` in file order
/// (see [`part_sink`]): a large CSV export is parsed on `sizing.0` threads while this one
/// merges their parts, and does some of `idle` (see [`part_sink::Idle`]) whenever the next
/// part is not ready yet; `sizing.1` is about how many customers the file names (0: unknown).
/// I/O errors name the file.
pub fn parse_file_in_parts<P: part_sink::PartSink>(
    path: &Path,
    format: &Format,
    new_part: &(dyn Fn() -> P + Sync),
    merge: &mut part_sink::Merge<'_, P>,
    sizing: (usize, usize),
    idle: &mut part_sink::Idle<'_>,
) -> Result<StreamOutcome, PosError> {
    match format {
        Format::Csv(o) => csv_mapped::parse_file_in_parts(path, o, new_part, merge, sizing, idle),
        _ => {
            let mut parts = part_sink::OneReader::new(new_part(), merge);
            let outcome = parse_with(open(path)?, format, &mut |item, customer| {
                parts.push(item, customer)
            });
            parts.finish();
            outcome
        }
    }
    .map_err(|e| e.with_path(path))
}

/// Parses a transaction file into memory; I/O errors name the file.
pub fn parse_file(path: &Path, format: &Format) -> Result<Parsed, PosError> {
    parse(open(path)?, format).map_err(|e| e.with_path(path))
}

/// Parses a catalog file; I/O errors name the file.
pub fn parse_catalog_file(path: &Path, opts: &CatalogOptions) -> Result<Catalog, PosError> {
    parse_catalog(open(path)?, opts).map_err(|e| e.with_path(path))
}

/// Parses a customers file; I/O errors name the file.
pub fn parse_customers_file(
    path: &Path,
    opts: &CustomersOptions,
) -> Result<CustomerList, PosError> {
    customers_file_reader(path, opts)?
        .finish()
        .map_err(|e| e.with_path(path))
}

/// Opens a customers file to be read some rows at a time; I/O errors name the file, but
/// those of [`CustomersReader::finish`] are the caller's to name.
pub fn customers_file_reader(
    path: &Path,
    opts: &CustomersOptions,
) -> Result<CustomersReader<File>, PosError> {
    let mut reader = CustomersReader::new(open(path)?, opts).map_err(|e| e.with_path(path))?;
    reader.reserve_hint(rows_estimate::rows_in(path));
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_deserializes_from_tagged_maps() {
        let f: Format = serde_json::from_str(r#"{"format": "shopify_orders"}"#).unwrap();
        assert_eq!(f, Format::ShopifyOrders(ShopifyOptions::default()));
        let f: Format =
            serde_json::from_str(r#"{"format": "square_items", "currency": "USD"}"#).unwrap();
        assert_eq!(f.name(), "square_items");
        let f: Format = serde_json::from_str(r#"{"format": "json_lines"}"#).unwrap();
        assert_eq!(f, Format::Jsonl(JsonlOptions::default()));
        let f: Format = serde_json::from_str(
            r#"{"format": "csv", "delimiter": "whitespace", "columns": {"amount": "total"}}"#,
        )
        .unwrap();
        let Format::Csv(o) = f else { panic!("not csv") };
        assert_eq!(o.delimiter, Delimiter::Whitespace);
        assert_eq!(o.columns.amount.as_deref(), Some("total"));
        let err = serde_json::from_str::<Format>(r#"{"format": "lightspeed"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
        let err = serde_json::from_str::<Format>(r#"{"format": "csv", "delimter": ";"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn every_format_parses_its_fixture_through_the_dispatcher() {
        let cases = [
            (
                Format::Csv(CsvOptions::default()),
                include_str!("fixtures/transactions.csv"),
            ),
            (
                Format::ShopifyOrders(ShopifyOptions::default()),
                include_str!("fixtures/shopify_orders.csv"),
            ),
            (
                Format::SquareItems(SquareOptions::default()),
                include_str!("fixtures/square_items.csv"),
            ),
            (
                Format::LightspeedSales(LightspeedOptions::default()),
                include_str!("fixtures/lightspeed_sales.csv"),
            ),
            (
                Format::Jsonl(JsonlOptions::default()),
                include_str!("fixtures/orders.jsonl"),
            ),
        ];
        for (format, text) in cases {
            let p = parse(text.as_bytes(), &format).unwrap();
            assert!(!p.items.is_empty(), "{}", format.name());
            assert_eq!(p.report.items, p.items.len() as u64);
            assert!(
                p.report.bad_row_count > 0,
                "{}: fixtures have bad rows",
                format.name()
            );
            assert!(p.report.check(OnBadRows::Skip).is_ok());
            let err = p.report.check(OnBadRows::Fail).unwrap_err().to_string();
            assert!(
                err.contains("(on_bad_rows: fail)") && err.contains("\n  line "),
                "{err}"
            );
            // Every item's customer is listed once.
            let mut ids: Vec<&str> = p.customers.iter().map(|c| c.customer_id.as_str()).collect();
            assert!(
                p.items
                    .iter()
                    .all(|i| ids.contains(&i.customer_id.as_str()))
            );
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), p.customers.len());
        }
    }

    /// Every CSV-based reader: the transaction formats, the catalog and the customers file.
    fn read_csv_like(kind: &str, text: &str) -> Result<u64, PosError> {
        let bytes = text.as_bytes();
        Ok(match kind {
            "csv" => {
                parse(bytes, &Format::Csv(CsvOptions::default()))?
                    .report
                    .rows_read
            }
            "shopify" => {
                parse(bytes, &Format::ShopifyOrders(ShopifyOptions::default()))?
                    .report
                    .rows_read
            }
            "square" => {
                parse(bytes, &Format::SquareItems(SquareOptions::default()))?
                    .report
                    .rows_read
            }
            "lightspeed" => {
                parse(
                    bytes,
                    &Format::LightspeedSales(LightspeedOptions::default()),
                )?
                .report
                .rows_read
            }
            "catalog" => {
                parse_catalog(bytes, &CatalogOptions::default())?
                    .report
                    .rows_read
            }
            "customers" => {
                parse_customers(bytes, &CustomersOptions::default())?
                    .report
                    .rows_read
            }
            other => panic!("{other}"),
        })
    }

    #[test]
    fn a_stray_quote_fails_every_csv_reader_naming_its_line() {
        let customers = "customer_id,name,email\nC1,Ann,a@x.com\nC2,Bob,b@x.com\nC3,Cy,c@x.com\n";
        let cases = [
            ("csv", include_str!("fixtures/transactions.csv")),
            ("shopify", include_str!("fixtures/shopify_orders.csv")),
            ("square", include_str!("fixtures/square_items.csv")),
            ("lightspeed", include_str!("fixtures/lightspeed_sales.csv")),
            ("catalog", include_str!("fixtures/catalog.csv")),
            ("customers", customers),
        ];
        for (kind, fixture) in cases {
            assert!(read_csv_like(kind, fixture).is_ok(), "{kind}");
            let mut lines: Vec<String> = fixture.lines().map(str::to_string).collect();
            // After the fixture's own quoted fields, so the stray quote is the only open one.
            let at = lines.len() - 2;
            let (first, rest) = lines[at].split_once(',').unwrap();
            lines[at] = format!("{first},\"{rest}");
            let line = at as u64 + 1;
            // Up to the end of the file.
            let text = lines.join("\n") + "\n";
            assert_eq!(
                read_csv_like(kind, &text),
                Err(PosError::RunawayQuote { line, to_end: true }),
                "{kind}"
            );
            // Followed by more good rows than a quoted field may span: the rows it would
            // swallow are not lost as one bad row, the parse fails at the quote's line.
            let good = lines[1].clone();
            let mut longer = lines.clone();
            longer.extend(std::iter::repeat_n(good, 150));
            let text = longer.join("\r\n") + "\r\n";
            let err = read_csv_like(kind, &text).unwrap_err();
            assert_eq!(
                err,
                PosError::RunawayQuote {
                    line,
                    to_end: false
                },
                "{kind}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "the quoted field opened on line {line} is still open after 100 lines or \
                     64 KiB (a stray `\"`?)"
                )
            );
        }
        // A stray quote in the header.
        let err = read_csv_like("csv", "customer_id,\"order_id,date\nc,o,d\n").unwrap_err();
        assert_eq!(
            err,
            PosError::RunawayQuote {
                line: 1,
                to_end: true
            }
        );
        // Whitespace-delimited files have no multi-line fields: an open quote is one bad row.
        let opts = CsvOptions {
            delimiter: Delimiter::Whitespace,
            ..CsvOptions::default()
        };
        let text = "customer_id order_id date product_id amount\n\
                    c \"o d p 1\nc o2 2024-01-01 p 1\n";
        let p = parse(text.as_bytes(), &Format::Csv(opts)).unwrap();
        assert_eq!((p.items.len(), p.report.bad_row_count), (1, 1));
    }

    #[test]
    fn empty_files_are_errors_and_header_only_files_read_no_rows() {
        for kind in [
            "csv",
            "shopify",
            "square",
            "lightspeed",
            "catalog",
            "customers",
        ] {
            for empty in ["", "\n\n", " , \r\n"] {
                assert_eq!(read_csv_like(kind, empty), Err(PosError::Empty), "{kind}");
            }
        }
        assert_eq!(
            PosError::Empty.to_string(),
            "the file is empty: no header and no data rows"
        );
        let header = "customer_id,order_id,date,product_id,amount\n\n";
        assert_eq!(read_csv_like("csv", header), Ok(0));
        let p = parse(&b"\n\n"[..], &Format::Jsonl(JsonlOptions::default())).unwrap();
        assert_eq!(p.report.rows_read, 0);
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = Path::new("/nonexistent/dir/orders.csv");
        let err = parse_file(path, &Format::Csv(CsvOptions::default())).unwrap_err();
        assert!(matches!(
            err,
            PosError::Io {
                kind: std::io::ErrorKind::NotFound,
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read `/nonexistent/dir/orders.csv`:"),
            "{text}"
        );
        assert!(parse_catalog_file(path, &CatalogOptions::default()).is_err());
    }

    #[test]
    fn read_errors_midway_are_io_errors_with_the_path() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                let row = b"customer_id,order_id,date,product_id,amount\n";
                let n = row.len().min(buf.len());
                buf[..n].copy_from_slice(&row[..n]);
                Ok(n)
            }
        }
        for format in [
            Format::Csv(CsvOptions::default()),
            Format::Jsonl(JsonlOptions::default()),
        ] {
            let err = parse(Failing(1), &format).unwrap_err();
            assert!(err.to_string().contains("disk on fire"), "{err}");
            let err = err.with_path(Path::new("x.csv"));
            assert!(err.to_string().starts_with("cannot read `x.csv`"), "{err}");
        }
    }

    #[test]
    fn mutated_fixtures_never_panic_and_keep_counts_consistent() {
        // Deterministic mutation fuzzing: random byte edits, deletions, duplications and
        // truncations of every fixture, parsed by every parser.
        let fixtures: [&[u8]; 6] = [
            include_bytes!("fixtures/lightspeed_sales.csv"),
            include_bytes!("fixtures/transactions.csv"),
            include_bytes!("fixtures/shopify_orders.csv"),
            include_bytes!("fixtures/square_items.csv"),
            include_bytes!("fixtures/orders.jsonl"),
            include_bytes!("fixtures/catalog.csv"),
        ];
        let formats = [
            Format::Csv(CsvOptions::default()),
            Format::ShopifyOrders(ShopifyOptions::default()),
            Format::SquareItems(SquareOptions::default()),
            Format::LightspeedSales(LightspeedOptions::default()),
            Format::Jsonl(JsonlOptions::default()),
        ];
        let alphabet: &[u8] = b",\"\n\r;-$().0123456789 :TZ+e\xff\xc3\xa9{}[]";
        let mut rng = flow_analytics::rng::Rng::new(0x1234_5678_9abc_def0);
        let mut next = |n: usize| rng.index(n);
        let mut parsed_ok = 0;
        for fixture in fixtures {
            for _ in 0..60 {
                let mut data = fixture.to_vec();
                for _ in 0..1 + next(8) {
                    let at = next(data.len());
                    match next(4) {
                        0 => data[at] = alphabet[next(alphabet.len())],
                        1 => {
                            let end = (at + next(40)).min(data.len());
                            data.drain(at..end);
                        }
                        2 => {
                            let end = (at + next(60)).min(data.len());
                            let copy = data[at..end].to_vec();
                            let to = next(data.len());
                            data.splice(to..to, copy);
                        }
                        _ => data.truncate(at),
                    }
                    if data.is_empty() {
                        break;
                    }
                }
                for format in &formats {
                    if let Ok(p) = parse(&data[..], format) {
                        parsed_ok += 1;
                        let r = &p.report;
                        assert_eq!(r.items, p.items.len() as u64);
                        assert_eq!(r.customers, p.customers.len() as u64);
                        assert!(r.bad_row_count >= r.bad_rows.len() as u64);
                        if !matches!(format, Format::Jsonl(_)) {
                            assert_eq!(r.rows_read, r.items + r.bad_row_count + r.excluded_rows);
                        }
                    }
                }
                let _ = parse_catalog(&data[..], &CatalogOptions::default());
                let _ = parse_customers(&data[..], &CustomersOptions::default());
            }
        }
        assert!(
            parsed_ok > 100,
            "mutations too destructive to exercise parsing: {parsed_ok}"
        );
    }

    #[test]
    fn directories_and_binary_garbage_do_not_panic() {
        // A directory opens on Linux but fails to read.
        let err = parse_file(Path::new("/"), &Format::Csv(CsvOptions::default())).unwrap_err();
        assert!(matches!(err, PosError::Io { .. }), "{err}");
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for format in [
            Format::Csv(CsvOptions::default()),
            Format::ShopifyOrders(ShopifyOptions::default()),
            Format::SquareItems(SquareOptions::default()),
            Format::LightspeedSales(LightspeedOptions::default()),
            Format::Jsonl(JsonlOptions::default()),
        ] {
            // Either a header error or bad rows; never a panic.
            if let Ok(p) = parse(&garbage[..], &format) {
                assert!(p.items.is_empty());
            }
        }
    }
}
