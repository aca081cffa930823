//! Customers CSV: customer id, name, email, marketing consent (column names mappable), as
//! [`super::generate`] writes it (`customer_id,name,email,accepts_marketing`).
//!
//! Decisions:
//! - `customer_id` is required; `name` (or `first_name` + `last_name`), `email` and
//!   `accepts_marketing` are used when present (or must exist when mapped explicitly).
//! - Emails are trimmed and lowercased (as Shopify keys are); a value without `@` is a bad row.
//!   `accepts_marketing` takes yes/no, true/false, 1/0 ([`super::model::parse_flag`]).
//! - A repeated customer id is a bad row counted in `duplicates`; the first occurrence wins.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::model::{BadRow, Customer, ParseReport, PosError, parse_flag};
use super::table::{Delimiter, TableReader};
use crate::str_map::{StrMap, TOUCH_AHEAD};

/// Which header column holds what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerColumns {
    /// Customer key (required). Default `customer_id`.
    pub customer_id: String,
    /// Full name. Default: `name` if present.
    pub name: Option<String>,
    /// First name, used when there is no full name. Default: `first_name` if present.
    pub first_name: Option<String>,
    /// Last name. Default: `last_name` if present.
    pub last_name: Option<String>,
    /// Email. Default: `email` if present.
    pub email: Option<String>,
    /// Marketing consent. Default: `accepts_marketing` if present.
    pub accepts_marketing: Option<String>,
}

impl Default for CustomerColumns {
    fn default() -> Self {
        CustomerColumns {
            customer_id: "customer_id".into(),
            name: None,
            first_name: None,
            last_name: None,
            email: None,
            accepts_marketing: None,
        }
    }
}

/// Options of the customers file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomersOptions {
    /// The column mapping.
    pub columns: CustomerColumns,
    /// Field separator (default `,`).
    pub delimiter: Delimiter,
    /// Lowercase the customer id (when it is an email address).
    pub lowercase_id: bool,
}

/// A parsed customers file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerList {
    /// Customers in file order, without duplicates.
    pub customers: Vec<Customer>,
    /// Counts and bad rows (`customers` = customers kept).
    pub report: ParseReport,
}

/// A parsed customers file and where each customer id is in it.
#[derive(Debug)]
pub struct IndexedCustomers {
    pub list: CustomerList,
    positions: StrMap,
}

impl IndexedCustomers {
    /// The index in `list.customers` of the customer with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).map(|i| i as usize)
    }

    /// The entry here of each of `people` ([`IndexedCustomers::position`] for each): the
    /// look-ups go in small groups whose entries in the map are brought into the cache
    /// together (the map of a file of a million customers is larger than the caches).
    pub(crate) fn entries_of(&self, people: &[Customer]) -> Vec<Option<&Customer>> {
        let mut found = Vec::with_capacity(people.len());
        for group in people.chunks(TOUCH_AHEAD) {
            let ids = group.iter().map(|p| p.customer_id.as_str());
            self.positions.touch(ids.clone());
            found.extend(ids.map(|id| Some(&self.list.customers[self.position(id)?])));
        }
        found
    }
}

/// Parses a customers CSV.
pub fn parse_customers<R: Read>(
    reader: R,
    opts: &CustomersOptions,
) -> Result<CustomerList, PosError> {
    CustomersReader::new(reader, opts)?.finish()
}

/// A customers CSV read some rows at a time ([`CustomersReader::read_rows`]), so that a thread
/// busy with other work can read it while it would otherwise wait.
pub struct CustomersReader<R: Read> {
    table: TableReader<R>,
    /// The header, for messages.
    header: Vec<String>,
    cols: CustomerCols,
    lowercase_id: bool,
    list: CustomerList,
    /// Per customer id, its index in `list.customers`.
    seen: StrMap,
    /// `lines[i]` is customer `i`'s line.
    lines: Vec<u64>,
    state: Reading,
}

/// How far a [`CustomersReader`] got.
enum Reading {
    /// Rows are left to read.
    Rows,
    /// Read to the end of the file.
    End,
    /// Stopped by this error.
    Failed(PosError),
}

/// The header columns of each field.
struct CustomerCols {
    id: usize,
    name: Option<usize>,
    first: Option<usize>,
    last: Option<usize>,
    email: Option<usize>,
    flag: Option<usize>,
}

impl<R: Read> CustomersReader<R> {
    /// Reads the header and maps the columns.
    pub fn new(reader: R, opts: &CustomersOptions) -> Result<Self, PosError> {
        let table = TableReader::new(reader, opts.delimiter)?;
        let m = &opts.columns;
        let mut c = table.columns();
        let cols = CustomerCols {
            id: c.require(&m.customer_id, "customer id"),
            name: c.optional(m.name.as_deref(), "name", "name"),
            first: c.optional(m.first_name.as_deref(), "first_name", "first name"),
            last: c.optional(m.last_name.as_deref(), "last_name", "last name"),
            email: c.optional(m.email.as_deref(), "email", "email"),
            flag: c.optional(
                m.accepts_marketing.as_deref(),
                "accepts_marketing",
                "accepts_marketing",
            ),
        };
        c.finish()?;
        Ok(CustomersReader {
            header: table.header().to_vec(),
            table,
            cols,
            lowercase_id: opts.lowercase_id,
            list: CustomerList::default(),
            seen: StrMap::default(),
            lines: Vec::new(),
            state: Reading::Rows,
        })
    }

    /// Makes room for about `rows` customers in all if memory allows (a capacity hint: the
    /// list still grows when it is short).
    pub fn reserve_hint(&mut self, rows: usize) {
        let more = rows.saturating_sub(self.list.customers.len());
        if self.list.customers.try_reserve(more).is_ok() && self.lines.try_reserve(more).is_ok() {
            self.seen.reserve_hint(more);
        }
    }

    /// The rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.list.report.rows_read
    }

    /// Reads up to `rows` more rows; whether there is more to read. An error stops the
    /// reading; [`CustomersReader::finish`] returns it.
    pub fn read_rows(&mut self, rows: usize) -> bool {
        for _ in 0..rows {
            if !matches!(self.state, Reading::Rows) {
                break;
            }
            match self.read_row() {
                Ok(true) => {}
                Ok(false) => self.state = Reading::End,
                Err(e) => self.state = Reading::Failed(e),
            }
        }
        matches!(self.state, Reading::Rows)
    }

    /// Reads the rest of the file: the customers, or the error that stopped the reading.
    pub fn finish(self) -> Result<CustomerList, PosError> {
        self.finish_indexed().map(|file| file.list)
    }

    /// [`CustomersReader::finish`], with the customers' positions by id (a join then hashes
    /// each id it looks up, not every id of the file).
    pub fn finish_indexed(mut self) -> Result<IndexedCustomers, PosError> {
        while self.read_rows(usize::MAX) {}
        if let Reading::Failed(e) = self.state {
            return Err(e);
        }
        self.list.report.customers = self.list.customers.len() as u64;
        Ok(IndexedCustomers {
            list: self.list,
            positions: self.seen,
        })
    }

    /// Reads one row; `false` at the end of the file.
    fn read_row(&mut self) -> Result<bool, PosError> {
        let (cols, header, report) = (&self.cols, &self.header, &mut self.list.report);
        let Some(row) = self.table.next_row(report)? else {
            return Ok(false);
        };
        let col = |i: Option<usize>| i.and_then(|i| header.get(i)).map_or("?", String::as_str);
        let line = row.line;
        let raw_id = row.get(cols.id);
        if raw_id.is_empty() {
            report.push_bad(BadRow::in_column(line, col(Some(cols.id)), "empty"));
            return Ok(true);
        }
        let id = if self.lowercase_id {
            raw_id.to_lowercase()
        } else {
            raw_id.to_string()
        };
        let email = row.opt(cols.email).map(str::to_lowercase);
        if let Some(e) = &email
            && !e.contains('@')
        {
            report.push_bad(BadRow::in_column(
                line,
                col(cols.email),
                format!("`{e}` is not an email address"),
            ));
            return Ok(true);
        }
        let accepts_marketing = match row.opt(cols.flag) {
            Some(v) => match parse_flag(v) {
                Ok(f) => f,
                Err(e) => {
                    report.push_bad(BadRow::in_column(line, col(cols.flag), e));
                    return Ok(true);
                }
            },
            None => None,
        };
        let name = match row.opt(cols.name) {
            Some(n) => Some(n.to_string()),
            None => match (row.opt(cols.first), row.opt(cols.last)) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(n), None) | (None, Some(n)) => Some(n.to_string()),
                (None, None) => None,
            },
        };
        let customers = &mut self.list.customers;
        let next = customers.len() as u32;
        let index = self.seen.get_or_insert(&id, next);
        if index != next {
            let first = self.lines[index as usize];
            report.duplicates += 1;
            report.push_bad(BadRow::in_column(
                line,
                col(Some(cols.id)),
                format!("duplicate customer id `{id}` (first at line {first})"),
            ));
            return Ok(true);
        }
        self.lines.push(line);
        customers.push(Customer {
            customer_id: id,
            email,
            name,
            accepts_marketing,
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generated_layout_with_bad_rows() {
        let text = "customer_id,name,email,accepts_marketing\n\
                    C1,Ada Lovelace,Ada@Example.com,yes\n\
                    C2,Alan Turing,,no\n\
                    C3,Grace Hopper,grace-at-example.com,yes\n\
                    C1,Ada Again,ada2@example.com,no\n\
                    C4,Katherine Johnson,k@example.com,sometimes\n\
                    ,Nobody,n@example.com,yes\n\
                    C5,,m@example.com,\n";
        let list = parse_customers(text.as_bytes(), &CustomersOptions::default()).unwrap();
        let reasons: Vec<String> = list
            .report
            .bad_rows
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            reasons,
            vec![
                "line 4: column `email`: `grace-at-example.com` is not an email address",
                "line 5: column `customer_id`: duplicate customer id `C1` (first at line 2)",
                "line 6: column `accepts_marketing`: `sometimes` is not a yes/no value",
                "line 7: column `customer_id`: empty",
            ]
        );
        assert_eq!(list.report.duplicates, 1);
        assert_eq!(
            list.customers,
            vec![
                Customer {
                    customer_id: "C1".into(),
                    email: Some("ada@example.com".into()),
                    name: Some("Ada Lovelace".into()),
                    accepts_marketing: Some(true),
                },
                Customer {
                    customer_id: "C2".into(),
                    email: None,
                    name: Some("Alan Turing".into()),
                    accepts_marketing: Some(false),
                },
                Customer {
                    customer_id: "C5".into(),
                    email: Some("m@example.com".into()),
                    ..Customer::default()
                },
            ]
        );
        assert_eq!(list.report.customers, 3);
    }

    #[test]
    fn entries_of_people_across_groups_are_those_found_one_by_one() {
        let mut text = String::from("customer_id,name,email,accepts_marketing\n");
        for i in 0..100 {
            text.push_str(&format!("C{i},Name {i},c{i}@example.com,yes\n"));
        }
        text.push_str("a customer id longer than fifteen bytes,Long,l@example.com,no\n");
        let file = CustomersReader::new(text.as_bytes(), &CustomersOptions::default())
            .unwrap()
            .finish_indexed()
            .unwrap();
        // More people than a few groups, listed and not, short ids and a long one.
        let people: Vec<Customer> = (0..70)
            .map(|i| format!("C{}", 138 - 2 * i))
            .chain([
                "a customer id longer than fifteen bytes".to_string(),
                "X".into(),
            ])
            .map(|customer_id| Customer {
                customer_id,
                ..Customer::default()
            })
            .collect();
        let one_by_one: Vec<Option<&Customer>> = people
            .iter()
            .map(|p| Some(&file.list.customers[file.position(&p.customer_id)?]))
            .collect();
        let entries = file.entries_of(&people);
        assert_eq!(entries, one_by_one);
        // C0 ... C98 of the even ids, and the long one.
        assert_eq!(entries.iter().flatten().count(), 50 + 1);
        assert_eq!(entries[70].unwrap().name.as_deref(), Some("Long"));
    }

    #[test]
    fn shopify_customers_export_layout() {
        // Shopify's customer export has no id: the email is the key, names are split.
        let text =
            "First Name,Last Name,Email,Accepts Email Marketing\nAda,Lovelace,ADA@x.com,yes\n";
        let opts = CustomersOptions {
            columns: CustomerColumns {
                customer_id: "Email".into(),
                first_name: Some("First Name".into()),
                last_name: Some("Last Name".into()),
                email: Some("Email".into()),
                accepts_marketing: Some("Accepts Email Marketing".into()),
                ..CustomerColumns::default()
            },
            lowercase_id: true,
            ..CustomersOptions::default()
        };
        let list = parse_customers(text.as_bytes(), &opts).unwrap();
        assert_eq!(list.customers[0].customer_id, "ada@x.com");
        assert_eq!(list.customers[0].name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(list.customers[0].accepts_marketing, Some(true));
    }
}
