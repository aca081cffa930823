//! `pos.extract`'s work: parse the export, join the catalog and the customers file, and build
//! the `transactions` table.

use rustc_hash::FxHashMap as HashMap;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::Int32Builder;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array, RecordBatch,
    StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use chrono::NaiveDate;

use super::super::part_sink::{OneReader, PartSink};
use super::super::rows_estimate::rows_in;
use super::super::{
    CatalogOptions, Customer, CustomersOptions, CustomersReader, Format, IndexedCustomers,
    LineItem, MaxBadRows, OnBadRows, PosError,
};
use super::report::{checked, file_error, report_json};
use super::transactions_schema;
use crate::beside::Beside;
use crate::str_map::StrMap;
use crate::text_dictionary::TextDictionary;
use flow_engine::data::Output;
use flow_engine::node::NodeError;
use flow_engine::plural::plural_of;

pub(super) fn extract(
    path: &std::path::Path,
    format: &Format,
    catalog: Option<(PathBuf, CatalogOptions)>,
    customers: Option<(PathBuf, CustomersOptions)>,
    (policy, max_bad): (OnBadRows, MaxBadRows),
    until: Option<NaiveDate>,
) -> Result<Output, NodeError> {
    let catalog = match &catalog {
        Some((p, o)) => {
            let c = super::super::parse_catalog_file(p, o).map_err(|e| file_error(p, e))?;
            checked(p, &c.report, policy, max_bad)?;
            Some(c)
        }
        None => None,
    };
    let products: HashMap<&str, (Option<&str>, Option<&str>)> = catalog
        .iter()
        .flat_map(|c| c.products.iter())
        .map(|p| {
            (
                p.product_id.as_str(),
                (p.name.as_deref(), p.category.as_deref()),
            )
        })
        .collect();

    let export_rows = rows_in(path);
    let mut b = Builders::new(export_rows);
    let new_part = || PartRows::new(until);
    // The export is parsed on this node's core and the ones no other work holds (up to 8
    // threads) while this thread merges the parts. This thread also reads the customers file
    // (whose errors come after the export's): while it waits for the next part, and after
    // each part as far as the export has come, so that little of it is left once the export
    // is parsed (what is left is read on one core).
    let cores = flow_engine::node::spare_cores(8);
    let customers_rows = customers.as_ref().map_or(0, |(p, _)| rows_in(p));
    let list = RefCell::new(
        customers
            .as_ref()
            .map(|(p, o)| super::super::customers_file_reader(p, o)),
    );
    let with_list = |read: &mut dyn FnMut(&mut CustomersReader<std::fs::File>) -> bool| match list
        .borrow_mut()
        .as_mut()
    {
        Some(Ok(l)) => read(l),
        _ => false,
    };
    let mut merge = |part: &mut PartRows, customers: &[u32]| {
        b.merge(part, customers, &products);
        let export_done = (b.rows() + b.after_until) as f64 / export_rows.max(1) as f64;
        let target = (customers_rows as f64 * export_done) as u64;
        with_list(&mut |l| {
            while l.rows_read() < target && l.read_rows(256) {}
            false
        });
    };
    let mut idle = || with_list(&mut |l| l.read_rows(256));
    let outcome = super::super::parse_file_in_parts(
        path,
        format,
        &new_part,
        &mut merge,
        // The customers file names about as many customers as the export.
        (cores.threads(), customers_rows),
        &mut idle,
    );
    drop(cores);
    let outcome = outcome.map_err(|e| file_error(path, e))?;
    let list = list.into_inner();
    let after_until = b.after_until;
    let report = outcome.report;
    checked(path, &report, policy, max_bad)?;
    if report.bad_row_count > 0 {
        tracing::warn!(
            path = %path.display(),
            "skipped {}; first: {}",
            plural_of(report.bad_row_count, "bad row", "bad rows"),
            report.bad_rows.first().map(|b| b.to_string()).unwrap_or_default()
        );
    }
    if b.rows() == 0 {
        let mut why = report.summary();
        if after_until > 0 {
            why.push_str(&format!(", {after_until} after `until`"));
        }
        return Err(file_error(path, PosError::NoUsableRows(why)));
    }

    // The customers' columns: their details from the export, overridden by a customers file.
    // Customers without a kept row are not needed. When a core is free, the rows' columns are
    // built beside the rest of the customers file being read and the customers' columns,
    // which are built on both cores. The customers file's errors come before the table's.
    let rows = b.rows();
    let (has_orders, has_products) = (format.has_orders(), format.has_products());
    let number_of = std::mem::take(&mut b.number_of);
    let seen = outcome.customers;
    let side = flow_engine::node::spare_cores(2).split_one();
    let two = side.is_some();
    let (row_columns, people, customers_report) = std::thread::scope(|scope| {
        let row_columns = Beside::start(scope, two, || b.row_columns());
        let file = match (&customers, list) {
            (Some((p, _)), Some(list)) => {
                let file = list
                    .and_then(|l| l.finish_indexed().map_err(|e| e.with_path(p)))
                    .map_err(|e| file_error(p, e))?;
                checked(p, &file.list.report, policy, max_bad)?;
                Some(file)
            }
            _ => None,
        };
        let people = people(&number_of, seen);
        let columns = PeopleColumns::new(&people, file.as_ref(), two);
        let report = file.as_ref().map(|f| report_json(&f.list.report));
        // Freed on this thread, which allocated most of their strings: mimalloc frees another
        // thread's blocks several times more slowly (0.4-0.8 s against under 0.1 s at 1M
        // customers).
        drop((people, file));
        Ok::<_, NodeError>((row_columns.join(), columns, report))
    })?;
    let batch = row_columns?.into_table(people, two)?;
    drop(side);
    let mut out = Output::table(batch)
        .with_meta("source", path.display().to_string())
        .with_meta("format", format.name())
        .with_meta("report", report_json(&report))
        .with_meta("rows", rows);
    if after_until > 0 {
        out = out.with_meta("after_until", after_until);
    }
    // Exports without order ids or products (payment exports) still give RFM and CLV; say what
    // is missing so that empty product-based outputs downstream are not a surprise.
    if !has_orders {
        tracing::info!(path = %path.display(), "the export has no order ids: each row is one order");
        out = out.with_meta("orders", "none in the export: each row is one order");
    }
    if !has_products {
        tracing::info!(
            path = %path.display(),
            "the export has no products: product affinity and recommendations will be empty"
        );
        out = out.with_meta("products", "none in the export");
    }
    if let Some(c) = &catalog {
        out = out.with_meta("catalog_products", c.products.len() as u64);
    }
    if let Some(r) = customers_report {
        out = out.with_meta("customers_report", r);
    }
    Ok(out)
}

/// The `transactions` table of line items from another source than an export (a POS API's
/// synced history): `customers` supply contact details and consent, `products` names and
/// categories the items lack. Returns the table and the number of distinct customers.
pub(crate) fn transactions_table(
    items: impl Iterator<Item = LineItem>,
    rows_hint: usize,
    customers: Vec<Customer>,
    products: &HashMap<&str, (Option<&str>, Option<&str>)>,
) -> Result<(RecordBatch, usize), NodeError> {
    let mut b = Builders::new(rows_hint);
    let mut merge = |part: &mut PartRows, customers: &[u32]| b.merge(part, customers, products);
    let mut parts = OneReader::new(PartRows::new(None), &mut merge);
    // Customers numbered in the order they are first seen, as a parse numbers them.
    let mut numbers: HashMap<String, u32> = HashMap::default();
    for item in items {
        let next = numbers.len() as u32;
        let customer = match numbers.get(item.customer_id.as_str()) {
            Some(&n) => n,
            None => {
                numbers.insert(item.customer_id.clone(), next);
                next
            }
        };
        parts.push(&item, customer);
    }
    parts.finish();
    let mut seen = vec![Customer::default(); numbers.len()];
    for (id, &n) in &numbers {
        seen[n as usize].customer_id.clone_from(id);
    }
    for c in customers {
        if let Some(&n) = numbers.get(c.customer_id.as_str()) {
            seen[n as usize] = c;
        }
    }
    b.table(seen, false)
}

/// The rows of one part of the file, as columns, with the part's products numbered: filled on
/// the thread that parses the part, so that merging it costs a few array look-ups per row.
#[derive(Default)]
struct PartRows {
    /// Rows dated after this are left out (and counted).
    until: Option<NaiveDate>,
    after_until: u64,
    /// Per row, the customer's number in the part.
    customer: Vec<u32>,
    /// The order ids, one after another, and where each ends.
    order_bytes: Vec<u8>,
    order_ends: Vec<usize>,
    /// Days since 1970-01-01.
    date: Vec<i32>,
    /// Per row, the index of its product in `products`.
    product: Vec<u32>,
    quantity: Vec<f64>,
    amount: Vec<f64>,
    products: PartProducts,
}

impl PartRows {
    fn new(until: Option<NaiveDate>) -> Self {
        PartRows {
            until,
            ..PartRows::default()
        }
    }
}

impl PartSink for PartRows {
    fn push(&mut self, item: &LineItem, customer: u32) {
        let date = item.date();
        if self.until.is_some_and(|u| date > u) {
            self.after_until += 1;
            return;
        }
        self.customer.push(customer);
        self.order_bytes.extend_from_slice(item.order_id.as_bytes());
        self.order_ends.push(self.order_bytes.len());
        self.date.push((date - EPOCH).num_days() as i32);
        self.product.push(self.products.index(item));
        self.quantity.push(item.quantity);
        self.amount.push(item.amount);
    }

    fn clear(&mut self) {
        self.after_until = 0;
        self.customer.clear();
        self.order_bytes.clear();
        self.order_ends.clear();
        self.date.clear();
        self.product.clear();
        self.quantity.clear();
        self.amount.clear();
        self.products.clear();
    }
}

/// A part's distinct products as its items name them (id, name, category), in the order the
/// part first shows them.
#[derive(Default)]
struct PartProducts {
    list: Vec<(String, Option<String>, Option<String>)>,
    /// Per product id, the index in `list` of the first product with that id.
    by_id: StrMap,
    /// Per product in `list`, the next with the same id and another name or category
    /// (`u32::MAX`: none; most ids have one).
    same_id: Vec<u32>,
}

impl PartProducts {
    fn index(&mut self, item: &LineItem) -> u32 {
        let (name, category) = (item.product_name.as_deref(), item.category.as_deref());
        let next = self.list.len() as u32;
        let mut i = self.by_id.get_or_insert(&item.product_id, next);
        if i != next {
            loop {
                let (_, n, c) = &self.list[i as usize];
                if n.as_deref() == name && c.as_deref() == category {
                    return i;
                }
                match self.same_id[i as usize] {
                    u32::MAX => break,
                    later => i = later,
                }
            }
            self.same_id[i as usize] = next;
        }
        self.list.push((
            item.product_id.clone(),
            item.product_name.clone(),
            item.category.clone(),
        ));
        self.same_id.push(u32::MAX);
        next
    }

    fn clear(&mut self) {
        self.list.clear();
        self.by_id.clear();
        self.same_id.clear();
    }
}

/// The `transactions` table being built from the parts, merged in file order.
struct Builders {
    /// About how many rows the file holds: the columns are sized for it once the first part
    /// shows how long order ids are. Growing a column of a gigabyte by doubling copies it.
    expected_rows: usize,
    after_until: u64,
    /// Per row, the customer's index: the key of the dictionary-encoded `customer_id` column
    /// (each id is stored once), and of the contact columns joined per customer.
    customer_index: Vec<i32>,
    /// Per customer number of the parse, the customer's index here (`u32::MAX`: no row kept
    /// yet). A customer whose rows are all left out (after `until`) has no index.
    index_of: Vec<u32>,
    /// Per index here, the customer's number in the parse.
    number_of: Vec<u32>,
    order_bytes: Vec<u8>,
    order_offsets: Vec<i32>,
    date: Vec<i32>,
    quantity: Vec<f64>,
    amount: Vec<f64>,
    product_ids: TextDictionary,
    product_names: TextDictionary,
    categories: TextDictionary,
    /// Per product of the part being merged, its keys in the three product columns.
    part_keys: Vec<[Option<i32>; 3]>,
    /// Set when the order ids pass the 2 GiB a string column can address.
    order_ids_overflow: bool,
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

impl Builders {
    fn new(expected_rows: usize) -> Self {
        Builders {
            expected_rows,
            after_until: 0,
            customer_index: Vec::new(),
            index_of: Vec::new(),
            number_of: Vec::new(),
            order_bytes: Vec::new(),
            order_offsets: vec![0],
            date: Vec::new(),
            quantity: Vec::new(),
            amount: Vec::new(),
            product_ids: TextDictionary::default(),
            product_names: TextDictionary::default(),
            categories: TextDictionary::default(),
            part_keys: Vec::new(),
            order_ids_overflow: false,
        }
    }

    /// Appends a part's rows; `customers[n]` is the parse's number of the part's customer `n`.
    fn merge(
        &mut self,
        part: &PartRows,
        customers: &[u32],
        catalog: &HashMap<&str, (Option<&str>, Option<&str>)>,
    ) {
        self.after_until += part.after_until;
        let rows = part.customer.len();
        if rows == 0 {
            return;
        }
        if self.customer_index.is_empty() {
            self.reserve(rows, part.order_bytes.len());
        }
        // The part's products, keyed once each; the catalog fills in a missing name or
        // category. An export without products (a payments export) has no product id: null.
        self.part_keys.clear();
        for (id, name, category) in &part.products.list {
            let known = catalog.get(id.as_str());
            let name = name.as_deref().or(known.and_then(|k| k.0));
            let category = category.as_deref().or(known.and_then(|k| k.1));
            self.part_keys.push([
                (!id.is_empty()).then(|| self.product_ids.key(id)),
                name.map(|n| self.product_names.key(n)),
                category.map(|c| self.categories.key(c)),
            ]);
        }
        for (&customer, &product) in part.customer.iter().zip(&part.product) {
            let number = customers[customer as usize];
            let n = number as usize;
            if n >= self.index_of.len() {
                self.index_of.resize(n + 1, u32::MAX);
            }
            let index = match self.index_of[n] {
                u32::MAX => {
                    let index = self.number_of.len() as u32;
                    self.index_of[n] = index;
                    self.number_of.push(number);
                    index
                }
                index => index,
            };
            self.customer_index.push(index as i32);
            let [id, name, category] = self.part_keys[product as usize];
            self.product_ids.rows.append_option(id);
            self.product_names.rows.append_option(name);
            self.categories.rows.append_option(category);
        }
        let base = self.order_bytes.len();
        self.order_bytes.extend_from_slice(&part.order_bytes);
        for &end in &part.order_ends {
            match i32::try_from(base + end) {
                Ok(offset) => self.order_offsets.push(offset),
                Err(_) => {
                    self.order_ids_overflow = true;
                    self.order_offsets.push(0);
                }
            }
        }
        self.date.extend_from_slice(&part.date);
        self.quantity.extend_from_slice(&part.quantity);
        self.amount.extend_from_slice(&part.amount);
    }

    /// Makes room for the whole file, from the first part's `rows` holding `order_bytes` bytes
    /// of order ids, if memory allows (the columns still grow when it is short). Only what is
    /// written is touched, so a reserve too large costs nothing.
    fn reserve(&mut self, rows: usize, order_bytes: usize) {
        let total = self.expected_rows.max(rows);
        let reserved = self.customer_index.try_reserve(total).is_ok()
            && self.order_offsets.try_reserve(total).is_ok()
            && self
                .order_bytes
                .try_reserve(
                    (total / rows)
                        .saturating_mul(order_bytes)
                        .saturating_add(order_bytes),
                )
                .is_ok()
            && self.date.try_reserve(total).is_ok()
            && self.quantity.try_reserve(total).is_ok()
            && self.amount.try_reserve(total).is_ok();
        if reserved {
            for column in [
                &mut self.product_ids,
                &mut self.product_names,
                &mut self.categories,
            ] {
                // Nothing appended yet: the first part reserves.
                column.rows = Int32Builder::with_capacity(total);
            }
        }
    }

    fn rows(&self) -> u64 {
        self.customer_index.len() as u64
    }

    /// The table, from the details of every customer by their number in the parse, on this
    /// thread and another one when `two`; and the number of customers with a kept row.
    fn table(mut self, seen: Vec<Customer>, two: bool) -> Result<(RecordBatch, usize), NodeError> {
        let people = people(&std::mem::take(&mut self.number_of), seen);
        let row_columns = self.row_columns()?;
        Ok((
            row_columns.into_table(PeopleColumns::new(&people, None, two), two)?,
            people.len(),
        ))
    }

    /// The columns taken from the rows themselves, the customers' dictionary keys among them
    /// (which [`RowColumns::into_table`] also reads the customers' details by).
    fn row_columns(&mut self) -> Result<RowColumns, NodeError> {
        if self.order_ids_overflow {
            return Err(NodeError::msg(
                "the order ids add up to more than 2 GiB, more than a table column holds; \
                 split the export",
            ));
        }
        let order_id = StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut self.order_offsets))),
            Buffer::from_vec(std::mem::take(&mut self.order_bytes)),
            None,
        )?;
        Ok(RowColumns {
            customer_keys: ScalarBuffer::from(std::mem::take(&mut self.customer_index)),
            order_id: Arc::new(order_id),
            date: Arc::new(Date32Array::from(std::mem::take(&mut self.date))),
            product_id: std::mem::take(&mut self.product_ids).finish()?,
            product_name: std::mem::take(&mut self.product_names).finish()?,
            category: std::mem::take(&mut self.categories).finish()?,
            quantity: Arc::new(Float64Array::from(std::mem::take(&mut self.quantity))),
            amount: Arc::new(Float64Array::from(std::mem::take(&mut self.amount))),
        })
    }
}

/// The `transactions` columns that come from the rows alone.
struct RowColumns {
    /// Per row, its customer's index.
    customer_keys: ScalarBuffer<i32>,
    order_id: ArrayRef,
    date: ArrayRef,
    product_id: ArrayRef,
    product_name: ArrayRef,
    category: ArrayRef,
    quantity: ArrayRef,
    amount: ArrayRef,
}

impl RowColumns {
    /// The table, of these columns and the customers' by their index (the customers'
    /// dictionary keys); the email and name columns on a thread of their own when `two`.
    fn into_table(self, people: PeopleColumns, two: bool) -> Result<RecordBatch, NodeError> {
        let rows = self;
        // The three per-customer columns share one buffer of keys (a row's customer index);
        // a row's key is null where its customer lacks the value. What each customer has is
        // read from one byte per customer, not from the customers themselves.
        let keys = rows.customer_keys;
        let PeopleColumns {
            customer_id,
            email,
            name,
            has,
        } = people;
        let (index, has) = (&keys, &has);
        let flag = |bit: u8| {
            BooleanBuffer::collect_bool(index.len(), move |i| has[index[i] as usize] & bit != 0)
        };
        let per_customer =
            |nulls: Option<BooleanBuffer>, values: StringArray| -> Result<ArrayRef, NodeError> {
                let keys = Int32Array::try_new(keys.clone(), nulls.map(NullBuffer::new))?;
                Ok(Arc::new(DictionaryArray::try_new(keys, Arc::new(values))?))
            };
        let (contact, customer_id, consent) = std::thread::scope(|scope| {
            let contact = Beside::start(scope, two, || -> Result<_, NodeError> {
                Ok((
                    per_customer(Some(flag(PeopleColumns::EMAIL)), email)?,
                    per_customer(Some(flag(PeopleColumns::NAME)), name)?,
                ))
            });
            let customer_id = per_customer(None, customer_id);
            let consent = BooleanArray::new(
                flag(PeopleColumns::CONSENT),
                Some(NullBuffer::new(flag(PeopleColumns::CONSENT_KNOWN))),
            );
            (contact.join(), customer_id, consent)
        });
        let (email, name) = contact?;
        let columns: Vec<ArrayRef> = vec![
            customer_id?,
            rows.order_id,
            rows.date,
            rows.product_id,
            rows.product_name,
            rows.category,
            rows.quantity,
            rows.amount,
            email,
            name,
            Arc::new(consent),
        ];
        Ok(RecordBatch::try_new(
            Arc::new(transactions_schema()),
            columns,
        )?)
    }
}

/// Each customer's id, email and name by their index, and one byte per customer saying which
/// details they have.
struct PeopleColumns {
    customer_id: StringArray,
    email: StringArray,
    name: StringArray,
    has: Vec<u8>,
}

impl PeopleColumns {
    const EMAIL: u8 = 1;
    const NAME: u8 = 2;
    const CONSENT_KNOWN: u8 = 4;
    const CONSENT: u8 = 8;

    /// The columns of `people`, whose details their entry in a customers file (`file`)
    /// overrides, each one it has; on two threads when `two`.
    fn new(people: &[Customer], file: Option<&IndexedCustomers>, two: bool) -> Self {
        let n = people.len();
        let listed: Vec<Option<&Customer>> = match file {
            None => vec![None; n],
            Some(file) => {
                let (first, second) = people.split_at(n / 2);
                std::thread::scope(|scope| {
                    let first = Beside::start(scope, two, || file.entries_of(first));
                    let second = file.entries_of(second);
                    let mut listed = first.join();
                    listed.extend(second);
                    listed
                })
            }
        };
        let email = |i: usize| {
            let listed = listed[i].and_then(|c| c.email.as_deref());
            listed.or(people[i].email.as_deref())
        };
        let name = |i: usize| {
            let listed = listed[i].and_then(|c| c.name.as_deref());
            listed.or(people[i].name.as_deref())
        };
        let consent = |i: usize| {
            let listed = listed[i].and_then(|c| c.accepts_marketing);
            listed.or(people[i].accepts_marketing)
        };
        // Copying the emails and the names is mostly waiting on memory (each string is an
        // allocation of its own): one column on each core.
        std::thread::scope(|scope| {
            let the_rest = Beside::start(scope, two, || {
                let ids: StringArray = people
                    .iter()
                    .map(|p| Some(p.customer_id.as_str()))
                    .collect();
                let bit = |has: bool, bit: u8| if has { bit } else { 0 };
                let has: Vec<u8> = (0..n)
                    .map(|i| {
                        let consent = consent(i);
                        bit(email(i).is_some(), Self::EMAIL)
                            | bit(name(i).is_some(), Self::NAME)
                            | bit(consent.is_some(), Self::CONSENT_KNOWN)
                            | bit(consent == Some(true), Self::CONSENT)
                    })
                    .collect();
                let name: StringArray = (0..n).map(name).collect();
                (ids, has, name)
            });
            let email: StringArray = (0..n).map(email).collect();
            let (customer_id, has, name) = the_rest.join();
            PeopleColumns {
                customer_id,
                email,
                name,
                has,
            }
        })
    }
}

/// The details of the customers with a kept row, by their index (`number_of[i]` is customer
/// `i`'s number in the parse), from the details of every customer by that number.
fn people(number_of: &[u32], mut seen: Vec<Customer>) -> Vec<Customer> {
    // Mostly every customer keeps a row, first kept in the order first seen: already in place.
    let in_place = number_of.len() == seen.len()
        && number_of.iter().enumerate().all(|(i, &n)| n as usize == i);
    if in_place {
        return seen;
    }
    number_of
        .iter()
        .map(|&n| {
            seen.get_mut(n as usize)
                .map(std::mem::take)
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use arrow_array::Array as _;
    use arrow_array::builder::{BooleanBuilder, StringBuilder, StringDictionaryBuilder};
    use arrow_array::types::Int32Type;

    use super::*;
    use crate::pos::csv_mapped::{CsvOptions, parse_parts_on};

    /// The table built row by row with arrow's own builders, from one reader's items.
    fn reference(
        path: &std::path::Path,
        opts: &CsvOptions,
        catalog: &HashMap<&str, (Option<&str>, Option<&str>)>,
        until: NaiveDate,
    ) -> RecordBatch {
        let text = std::fs::read(path).unwrap();
        let parsed = crate::pos::parse(text.as_slice(), &Format::Csv(opts.clone())).unwrap();
        let customers: HashMap<&str, &Customer> = parsed
            .customers
            .iter()
            .map(|c| (c.customer_id.as_str(), c))
            .collect();
        let dict = StringDictionaryBuilder::<Int32Type>::new;
        let (mut id, mut product, mut name, mut category) = (dict(), dict(), dict(), dict());
        let (mut email, mut person) = (dict(), dict());
        let (mut order, mut date, mut consent) =
            (StringBuilder::new(), Vec::new(), BooleanBuilder::new());
        let (mut quantity, mut amount) = (Vec::new(), Vec::new());
        for item in parsed.items.iter().filter(|i| i.date() <= until) {
            let known = catalog.get(item.product_id.as_str());
            let c = customers[item.customer_id.as_str()];
            id.append_value(&item.customer_id);
            order.append_value(&item.order_id);
            date.push((item.date() - EPOCH).num_days() as i32);
            product.append_option((!item.product_id.is_empty()).then_some(&item.product_id));
            name.append_option(item.product_name.as_deref().or(known.and_then(|k| k.0)));
            category.append_option(item.category.as_deref().or(known.and_then(|k| k.1)));
            quantity.push(item.quantity);
            amount.push(item.amount);
            email.append_option(c.email.as_deref());
            person.append_option(c.name.as_deref());
            consent.append_option(c.accepts_marketing);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(order.finish()),
            Arc::new(Date32Array::from(date)),
            Arc::new(product.finish()),
            Arc::new(name.finish()),
            Arc::new(category.finish()),
            Arc::new(Float64Array::from(quantity)),
            Arc::new(Float64Array::from(amount)),
            Arc::new(email.finish()),
            Arc::new(person.finish()),
            Arc::new(consent.finish()),
        ];
        RecordBatch::try_new(Arc::new(transactions_schema()), columns).unwrap()
    }

    #[test]
    fn the_table_built_from_parts_is_the_one_built_row_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "order_id,customer_id,date,product_id,product_name,category,quantity,amount,email,\
             name,accepts_marketing"
        )
        .unwrap();
        // Products named by the export, by the catalog, by both, or by neither; a product
        // renamed halfway; customers whose details come, change and go; rows after `until`.
        let mut lines = 0;
        for i in 0..20_000u32 {
            let product = i * 7 % 101;
            let name = match product % 4 {
                0 => String::new(),
                1 if i > 10_000 => format!("Renamed {product}"),
                _ => format!("Product {product}"),
            };
            let category = if product % 3 == 0 { "" } else { "Cat" };
            let customer = i * 13 % 977;
            let email = if customer % 5 == 0 {
                String::new()
            } else {
                format!("c{customer}.{}@example.com", i / 5000)
            };
            let name_of = if customer % 7 == 0 { "" } else { "Ann" };
            let consent = ["", "yes", "no"][(i % 3) as usize];
            writeln!(
                f,
                "O{},C{customer},2025-01-{:02} 10:00:00,P{product},{name},{category},{},{},\
                 {email},{name_of},{consent}",
                i / 3,
                i % 28 + 1,
                i % 3 + 1,
                f64::from(i % 3 + 1) * 2.5
            )
            .unwrap();
            lines += 1;
        }
        drop(f);
        assert_eq!(lines, 20_000);
        let mut opts = CsvOptions::default();
        opts.columns.product_name = Some("product_name".into());
        opts.columns.category = Some("category".into());
        opts.columns.email = Some("email".into());
        opts.columns.name = Some("name".into());
        opts.columns.accepts_marketing = Some("accepts_marketing".into());
        let names: Vec<(String, Option<String>, Option<String>)> = (0..101)
            .filter(|p| p % 2 == 0)
            .map(|p| {
                (
                    format!("P{p}"),
                    Some(format!("Listed {p}")),
                    Some("Listed".into()),
                )
            })
            .collect();
        let catalog: HashMap<&str, (Option<&str>, Option<&str>)> = names
            .iter()
            .map(|(id, n, c)| (id.as_str(), (n.as_deref(), c.as_deref())))
            .collect();
        let until = NaiveDate::from_ymd_opt(2025, 1, 25).unwrap();
        let expected = reference(&path, &opts, &catalog, until);
        assert!(expected.num_rows() > 15_000);

        // In parts of a few kilobytes on two and three threads, with the columns sized from
        // the file, grown, or sized from an estimate larger than memory holds.
        for (threads, part_bytes, expected_rows) in
            [(2, 4096, 0), (3, 20_000, 30_000), (2, 4096, usize::MAX / 2)]
        {
            let mut b = Builders::new(expected_rows);
            let new_part = || PartRows::new(Some(until));
            let mut merge = |part: &mut PartRows, c: &[u32]| b.merge(part, c, &catalog);
            let outcome = parse_parts_on(
                &path,
                &opts,
                &new_part,
                &mut merge,
                (threads, expected_rows / 8, &mut || false),
                part_bytes,
            )
            .unwrap();
            assert!(b.after_until > 0);
            // The customers' columns on one thread, and on two.
            let (table, _) = b.table(outcome.customers, threads == 3).unwrap();
            assert_eq!(
                table, expected,
                "{threads} threads, parts of {part_bytes} bytes"
            );
        }
    }

    #[test]
    fn the_customers_columns_are_the_same_on_one_thread_and_on_two() {
        // Customers with and without details; a customers file listing some of them (and
        // others), with and without each detail: the file's win, each one it has.
        let people: Vec<Customer> = (0..1001)
            .map(|i| Customer {
                customer_id: format!("C{i}"),
                email: (i % 3 == 0).then(|| format!("old{i}@x.com")),
                name: (i % 5 == 0).then(|| format!("Old {i}")),
                accepts_marketing: [None, Some(true), Some(false)][i % 3],
            })
            .collect();
        let mut text = String::from("customer_id,name,email,accepts_marketing\n");
        for i in (0..1200).step_by(2) {
            let name = if i % 4 == 0 {
                format!("New {i}")
            } else {
                String::new()
            };
            let email = if i % 6 == 0 {
                format!("new{i}@x.com")
            } else {
                String::new()
            };
            let consent = ["", "yes", "no"][i % 7 % 3];
            text.push_str(&format!("C{i},{name},{email},{consent}\n"));
        }
        let file = crate::pos::CustomersReader::new(text.as_bytes(), &CustomersOptions::default())
            .unwrap()
            .finish_indexed()
            .unwrap();
        let one = PeopleColumns::new(&people, Some(&file), false);
        let two = PeopleColumns::new(&people, Some(&file), true);
        assert_eq!(one.customer_id, two.customer_id);
        assert_eq!(one.email, two.email);
        assert_eq!(one.name, two.name);
        assert_eq!(one.has, two.has);
        for (i, p) in people.iter().enumerate() {
            let listed = i % 2 == 0;
            let email = match (listed && i % 6 == 0, &p.email) {
                (true, _) => Some(format!("new{i}@x.com")),
                (false, old) => old.clone(),
            };
            let name = match (listed && i % 4 == 0, &p.name) {
                (true, _) => Some(format!("New {i}")),
                (false, old) => old.clone(),
            };
            let consent = match listed {
                true => [None, Some(true), Some(false)][i % 7 % 3].or(p.accepts_marketing),
                false => p.accepts_marketing,
            };
            assert_eq!(one.customer_id.value(i), p.customer_id);
            let text = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            assert_eq!(text(&one.email), email, "customer {i}");
            assert_eq!(text(&one.name), name, "customer {i}");
            let bits = one.has[i];
            assert_eq!(bits & PeopleColumns::EMAIL != 0, email.is_some());
            assert_eq!(bits & PeopleColumns::NAME != 0, name.is_some());
            assert_eq!(bits & PeopleColumns::CONSENT_KNOWN != 0, consent.is_some());
            assert_eq!(bits & PeopleColumns::CONSENT != 0, consent == Some(true));
        }
    }
}
