//! `pos.extract`'s work: parse the export, join the catalog and the customers file, and build
//! the `transactions` table.

use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Float64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, BooleanArray, DictionaryArray, Int32Array, RecordBatch, StringArray};
use chrono::NaiveDate;

use super::super::{
    CatalogOptions, Customer, CustomersOptions, Format, LineItem, MaxBadRows, OnBadRows, PosError,
};
use super::report::{checked, file_error, report_json};
use super::transactions_schema;
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

    let mut b = Builders {
        expected_rows: expected_rows(path),
        ..Builders::default()
    };
    let mut after_until = 0u64;
    let mut keep = |item: &LineItem, customer: u32| {
        let date = item.date();
        if until.is_some_and(|u| date > u) {
            after_until += 1;
            return;
        }
        b.push(item, date, &products, customer);
    };
    let outcome =
        super::super::parse_file_with(path, format, &mut keep).map_err(|e| file_error(path, e))?;
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

    // Customer details, by the builders' customer index: from the export itself, overridden by
    // a customers file. Customers without a kept row are not needed.
    let mut seen = outcome.customers;
    let mut customers_report = None;
    if let Some((p, o)) = &customers {
        let list = super::super::parse_customers_file(p, o).map_err(|e| file_error(p, e))?;
        checked(p, &list.report, policy, max_bad)?;
        customers_report = Some(report_json(&list.report));
        let at: HashMap<&str, usize> = seen
            .iter()
            .enumerate()
            .map(|(i, c)| (c.customer_id.as_str(), i))
            .collect();
        let found: Vec<(usize, Customer)> = list
            .customers
            .into_iter()
            .filter_map(|c| Some((*at.get(c.customer_id.as_str())?, c)))
            .collect();
        drop(at);
        for (i, c) in found {
            let entry = &mut seen[i];
            entry.email = c.email.or(entry.email.take());
            entry.name = c.name.or(entry.name.take());
            entry.accepts_marketing = c.accepts_marketing.or(entry.accepts_marketing);
        }
    }
    let people = b.people(seen);
    let rows = b.rows();
    let (has_orders, has_products) = (format.has_orders(), format.has_products());
    let batch = b.finish(&people)?;
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
    let mut b = Builders {
        expected_rows: rows_hint,
        ..Builders::default()
    };
    // Customers numbered in the order they are first seen, as a parse numbers them.
    let mut numbers: HashMap<String, u32> = HashMap::default();
    for item in items {
        let date = item.date();
        let next = numbers.len() as u32;
        let customer = match numbers.get(item.customer_id.as_str()) {
            Some(&n) => n,
            None => {
                numbers.insert(item.customer_id.clone(), next);
                next
            }
        };
        b.push(&item, date, products, customer);
    }
    let mut seen = vec![Customer::default(); numbers.len()];
    for c in customers {
        if let Some(&n) = numbers.get(c.customer_id.as_str()) {
            seen[n as usize] = c;
        }
    }
    let people = b.people(seen);
    let count = people.len();
    Ok((b.finish(&people)?, count))
}

/// About how many rows a transactions file holds, from its size and the lines in its first
/// 64 KiB (a capacity hint only: the builders still grow if it is short).
fn expected_rows(path: &std::path::Path) -> usize {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len()) as usize;
    let mut sample = Vec::with_capacity(64 * 1024);
    if file.take(64 * 1024).read_to_end(&mut sample).is_err() || sample.is_empty() {
        return 0;
    }
    let lines = sample.iter().filter(|&&b| b == b'\n').count().max(1);
    // A little over, so a file of slightly shorter lines does not grow every column once more.
    (len / (sample.len() / lines).max(1)) * 21 / 20
}

/// Rows after which the builders are re-created with room for the whole file.
const SIZING_ROWS: usize = 4096;

#[derive(Default)]
struct Builders {
    /// The capacity hint; the builders are sized from it once [`SIZING_ROWS`] rows show how long
    /// the values are. Growing a column of a gigabyte by doubling copies it each time.
    expected_rows: usize,
    /// Per row, the customer's index: the key of the dictionary-encoded `customer_id` column
    /// (each id is stored once), and of the contact columns joined per customer.
    customer_index: Vec<u32>,
    /// Per customer number of the parse, the customer's index here (`u32::MAX`: no row kept
    /// yet). A customer whose rows are all left out (after `until`) has no index.
    index_of: Vec<u32>,
    /// Per index here, the customer's number in the parse.
    number_of: Vec<u32>,
    /// The distinct customer ids, by index.
    customer_ids: StringBuilder,
    order_id: StringBuilder,
    date: Date32Builder,
    product_id: StringDictionaryBuilder<Int32Type>,
    product_name: StringDictionaryBuilder<Int32Type>,
    category: StringDictionaryBuilder<Int32Type>,
    quantity: Float64Builder,
    amount: Float64Builder,
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

impl Builders {
    fn push(
        &mut self,
        item: &LineItem,
        date: NaiveDate,
        products: &HashMap<&str, (Option<&str>, Option<&str>)>,
        customer: u32,
    ) {
        let known = products.get(item.product_id.as_str());
        let number = customer as usize;
        if number >= self.index_of.len() {
            self.index_of.resize(number + 1, u32::MAX);
        }
        let index = match self.index_of[number] {
            u32::MAX => {
                let index = self.number_of.len() as u32;
                self.index_of[number] = index;
                self.number_of.push(customer);
                self.customer_ids.append_value(&item.customer_id);
                index
            }
            index => index,
        };
        self.customer_index.push(index);
        self.order_id.append_value(&item.order_id);
        self.date.append_value((date - EPOCH).num_days() as i32);
        // An export without products (a payments export) has no product id: null, not "".
        self.product_id
            .append_option((!item.product_id.is_empty()).then_some(item.product_id.as_str()));
        self.product_name
            .append_option(item.product_name.as_deref().or(known.and_then(|k| k.0)));
        self.category
            .append_option(item.category.as_deref().or(known.and_then(|k| k.1)));
        self.quantity.append_value(item.quantity);
        self.amount.append_value(item.amount);
        if self.customer_index.len() == SIZING_ROWS && self.expected_rows > 2 * SIZING_ROWS {
            self.size_for(self.expected_rows);
        }
    }

    /// The details of the customers with a kept row, by their index here, from the details of
    /// every customer by their number in the parse.
    fn people(&self, mut seen: Vec<Customer>) -> Vec<Customer> {
        self.number_of
            .iter()
            .map(|&n| {
                seen.get_mut(n as usize)
                    .map(std::mem::take)
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Re-creates the builders with room for `rows` rows, keeping what they hold.
    fn size_for(&mut self, rows: usize) {
        use arrow_array::builder::ArrayBuilder;
        fn strings(b: &mut StringBuilder, rows: usize) {
            let so_far = b.len().max(1);
            // The values so far tell their average length.
            let bytes = b.values_slice().len() / so_far + 1;
            let mut old = std::mem::replace(b, StringBuilder::with_capacity(rows, rows * bytes));
            b.extend(old.finish().iter());
        }
        fn dictionary(b: &mut StringDictionaryBuilder<Int32Type>, rows: usize) {
            let mut old = std::mem::replace(b, StringDictionaryBuilder::with_capacity(rows, 0, 0));
            let old = old.finish();
            let old = old
                .downcast_dict::<arrow_array::StringArray>()
                .expect("a dictionary of strings");
            b.extend(old);
        }
        fn numbers(b: &mut Float64Builder, rows: usize) {
            let mut old = std::mem::replace(b, Float64Builder::with_capacity(rows));
            b.extend(old.finish().iter());
        }
        strings(&mut self.order_id, rows);
        for b in [
            &mut self.product_id,
            &mut self.product_name,
            &mut self.category,
        ] {
            dictionary(b, rows);
        }
        numbers(&mut self.quantity, rows);
        numbers(&mut self.amount, rows);
        let mut old = std::mem::replace(&mut self.date, Date32Builder::with_capacity(rows));
        self.date.extend(old.finish().iter());
        self.customer_index
            .reserve(rows.saturating_sub(self.customer_index.len()));
    }

    fn rows(&self) -> u64 {
        self.customer_index.len() as u64
    }

    /// `people[i]`: the details of the customer with index `i`.
    fn finish(mut self, people: &[Customer]) -> Result<RecordBatch, NodeError> {
        let keys = |has: &dyn Fn(&Customer) -> bool| -> Int32Array {
            self.customer_index
                .iter()
                .map(|&i| has(&people[i as usize]).then_some(i as i32))
                .collect()
        };
        let per_customer = |keys: Int32Array, values: StringArray| -> Result<ArrayRef, NodeError> {
            Ok(Arc::new(DictionaryArray::try_new(keys, Arc::new(values))?))
        };
        let customer_id = per_customer(keys(&|_| true), self.customer_ids.finish())?;
        let email = per_customer(
            keys(&|p| p.email.is_some()),
            people.iter().map(|p| p.email.as_deref()).collect(),
        )?;
        let name = per_customer(
            keys(&|p| p.name.is_some()),
            people.iter().map(|p| p.name.as_deref()).collect(),
        )?;
        let consent: BooleanArray = self
            .customer_index
            .iter()
            .map(|&i| people[i as usize].accepts_marketing)
            .collect();
        let columns: Vec<ArrayRef> = vec![
            customer_id,
            Arc::new(self.order_id.finish()),
            Arc::new(self.date.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.product_name.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.amount.finish()),
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::pos::csv_mapped::CsvOptions;

    #[test]
    fn builders_sized_from_the_file_hold_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "order_id,customer_id,date,product_id,category,quantity,unit_price,amount"
        )
        .unwrap();
        // Enough rows to be re-sized, with values longer after the sizing sample than in it.
        for i in 0..20_000u32 {
            let long = if i < SIZING_ROWS as u32 {
                ""
            } else {
                "-with-a-longer-name"
            };
            writeln!(
                f,
                "O{i},C{}{long},2025-01-{:02} 10:00:00,P{}{long},Cat{},{},2.5,{}",
                i % 977,
                i % 28 + 1,
                i % 101,
                i % 7,
                i % 3 + 1,
                f64::from(i % 3 + 1) * 2.5
            )
            .unwrap();
        }
        drop(f);
        let expected = expected_rows(&path);
        // Estimated from the (shorter) first lines: more than there are, and enough to re-size.
        assert!((20_000..40_000).contains(&expected), "{expected}");

        let format = Format::Csv(CsvOptions::default());
        let products = HashMap::default();
        let table = |expected_rows: usize| {
            let mut b = Builders {
                expected_rows,
                ..Builders::default()
            };
            let mut keep =
                |item: &LineItem, customer| b.push(item, item.date(), &products, customer);
            crate::pos::parse_file_with(&path, &format, &mut keep).unwrap();
            let people = vec![Customer::default(); b.number_of.len()];
            b.finish(&people).unwrap()
        };
        let grown = table(0);
        let sized = table(expected);
        assert_eq!(grown.num_rows(), 20_000);
        assert_eq!(grown, sized);
    }
}
