//! `pos.extract` and `pos.catalog`: POS exports into tables.
//!
//! `pos.extract` produces the `transactions` table the segmentation nodes read: one row per line
//! item with `customer_id, order_id, date, product_id, product_name, category, quantity, amount`
//! and, when known, `email, customer_name, accepts_marketing`. A catalog fills in product names
//! and categories; a customers file fills in contact details and marketing consent.

use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use chrono::NaiveDate;
use serde_json::{Value as Json, json};

use super::{
    CatalogOptions, Customer, CustomersOptions, Format, LineItem, MaxBadRows, OnBadRows,
    ParseReport, PosError,
};
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use flow_engine::plural::plural_of;

/// Columns of the `transactions` table, in order.
pub const TRANSACTION_COLUMNS: [&str; 11] = [
    "customer_id",
    "order_id",
    "date",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "amount",
    "email",
    "customer_name",
    "accepts_marketing",
];

/// Columns of the `catalog` table, in order.
pub const CATALOG_COLUMNS: [&str; 5] = ["product_id", "name", "category", "price", "stock"];

#[derive(Debug)]
pub struct Extract;

#[derive(Debug)]
pub struct CatalogNode;

struct ExtractNode {
    path: PathBuf,
    format: Format,
    catalog: Option<(PathBuf, CatalogOptions)>,
    customers: Option<(PathBuf, CustomersOptions)>,
    on_bad_rows: OnBadRows,
    max_bad_rows: MaxBadRows,
    until: Option<NaiveDate>,
}

fn on_bad_rows(params: &Params) -> Result<OnBadRows, ParamError> {
    match params.str_or("on_bad_rows", "fail")? {
        "fail" => Ok(OnBadRows::Fail),
        "skip" => Ok(OnBadRows::Skip),
        other => Err(ParamError::new(
            "on_bad_rows",
            format!("`on_bad_rows` must be fail or skip, got `{other}`"),
        )),
    }
}

fn max_bad_rows(params: &Params) -> Result<MaxBadRows, ParamError> {
    match params.get("max_bad_rows") {
        None | Some(Json::Null) => Ok(MaxBadRows::Default),
        Some(value) => MaxBadRows::from_json(value).map_err(|e| ParamError::new("max_bad_rows", e)),
    }
}

fn max_bad_rows_spec() -> ParamSpec {
    ParamSpec::with_default(
        "max_bad_rows",
        ParamType::Any,
        "5%",
        "with on_bad_rows: skip, fail when more rows than this are bad: a count (100), a \
         fraction (0.05) or a percentage (\"5%\"); the default allows 5% of the data rows, at \
         least 10",
    )
}

/// Deserializes an options mapping, locating serde's complaint at the parameter.
fn options<T: serde::de::DeserializeOwned + Default>(
    params: &Params,
    name: &str,
) -> Result<T, ParamError> {
    Ok(params.parse::<T>(name)?.unwrap_or_default())
}

impl NodeType for Extract {
    fn name(&self) -> &'static str {
        "pos.extract"
    }
    fn summary(&self) -> &'static str {
        "Reads POS transactions (generic CSV, Shopify orders CSV, Square item sales CSV, JSON Lines) into a transactions table."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("path", ParamType::Path, "the transactions export"),
            ParamSpec::with_default(
                "format",
                ParamType::String,
                "csv",
                "csv, shopify_orders, square_items or jsonl",
            ),
            ParamSpec::optional(
                "options",
                ParamType::Map,
                "format options: column mapping, delimiter, date format, decimal separator, ...",
            ),
            ParamSpec::optional(
                "catalog",
                ParamType::Path,
                "product catalog CSV: fills in product names and categories",
            ),
            ParamSpec::optional(
                "catalog_options",
                ParamType::Map,
                "catalog column mapping and delimiter",
            ),
            ParamSpec::optional(
                "customers",
                ParamType::Path,
                "customers CSV: email, name, marketing consent",
            ),
            ParamSpec::optional(
                "customers_options",
                ParamType::Map,
                "customers column mapping and delimiter",
            ),
            ParamSpec::with_default(
                "on_bad_rows",
                ParamType::String,
                "fail",
                "fail or skip rows that cannot be read (they are counted and reported with their line numbers)",
            ),
            max_bad_rows_spec(),
            ParamSpec::optional(
                "until",
                ParamType::String,
                "ignore transactions after this date (YYYY-MM-DD)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let path = params.path("path").ok().flatten().unwrap_or_default();
        let format_name = params.str_or("format", "csv").map_err(|e| vec![e])?;
        let mut tagged = match params.get("options") {
            Some(Json::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        tagged.insert("format".into(), Json::String(format_name.to_string()));
        let format = match serde_json::from_value::<Format>(Json::Object(tagged)) {
            Ok(f) => Some(f),
            Err(e) => {
                let msg = e.to_string();
                let param = if msg.contains("unknown variant") {
                    "format"
                } else {
                    "options"
                };
                errors.push(ParamError::new(
                    param,
                    format!("{msg} (formats: csv, shopify_orders, square_items, jsonl)"),
                ));
                None
            }
        };
        let catalog = match (
            params.path("catalog"),
            options::<CatalogOptions>(params, "catalog_options"),
        ) {
            (Ok(Some(p)), Ok(o)) => Some((p, o)),
            (Ok(None), Ok(_)) => None,
            (Err(e), _) | (_, Err(e)) => {
                errors.push(e);
                None
            }
        };
        let customers = match (
            params.path("customers"),
            options::<CustomersOptions>(params, "customers_options"),
        ) {
            (Ok(Some(p)), Ok(o)) => Some((p, o)),
            (Ok(None), Ok(_)) => None,
            (Err(e), _) | (_, Err(e)) => {
                errors.push(e);
                None
            }
        };
        let policy = on_bad_rows(params).map_err(|e| errors.push(e)).ok();
        let max_bad = max_bad_rows(params).map_err(|e| errors.push(e)).ok();
        let until = match params.opt_str("until") {
            Ok(Some(s)) if !s.is_empty() => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(ParamError::new(
                        "until",
                        format!("`{s}` is not a date (YYYY-MM-DD)"),
                    ));
                    None
                }
            },
            Ok(_) => None,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(ExtractNode {
            path,
            format: format.expect("checked"),
            catalog,
            customers,
            on_bad_rows: policy.expect("checked"),
            max_bad_rows: max_bad.expect("checked"),
            until,
        }))
    }
}

/// A parse error of the file at `path`, naming it (I/O errors name it already).
fn file_error(path: &std::path::Path, e: PosError) -> NodeError {
    match e {
        PosError::Io { path: Some(_), .. } => NodeError::msg(e.to_string()),
        e => NodeError::msg(format!("{}: {e}", path.display())),
    }
}

/// Parses with the bad-row policy and bound applied, and refuses a file without data rows.
fn checked(
    path: &std::path::Path,
    report: &ParseReport,
    policy: OnBadRows,
    max: MaxBadRows,
) -> Result<(), NodeError> {
    if report.rows_read == 0 {
        return Err(file_error(path, PosError::NoDataRows));
    }
    report
        .check_bounded(policy, max)
        .map_err(|e| file_error(path, e))
}

fn report_json(report: &ParseReport) -> Json {
    let mut out = serde_json::Map::new();
    out.insert("rows_read".into(), json!(report.rows_read));
    out.insert("bad_rows".into(), json!(report.bad_row_count));
    if !report.bad_rows.is_empty() {
        let first: Vec<String> = report
            .bad_rows
            .iter()
            .take(5)
            .map(|b| b.to_string())
            .collect();
        out.insert("first_bad_rows".into(), json!(first));
    }
    // Only the exclusions that happened, so `flow runs show` stays readable.
    for (name, count) in [
        ("cancelled_orders", report.cancelled_orders),
        ("voided_orders", report.voided_orders),
        ("refunded_orders", report.refunded_orders),
        (
            "partially_refunded_orders",
            report.partially_refunded_orders,
        ),
        ("refund_rows", report.refund_rows),
        ("rows_without_customer", report.rows_without_customer),
        ("duplicates", report.duplicates),
    ] {
        if count > 0 {
            out.insert(name.into(), json!(count));
        }
    }
    Json::Object(out)
}

#[async_trait]
impl Node for ExtractNode {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(TRANSACTION_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, _ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let path = self.path.clone();
        let format = self.format.clone();
        let catalog = self.catalog.clone();
        let customers = self.customers.clone();
        let (policy, max_bad, until) = (self.on_bad_rows, self.max_bad_rows, self.until);
        // Parsing is CPU-bound: keep it off the async workers.
        flow_engine::node::spawn_blocking(move || {
            extract(&path, &format, catalog, customers, (policy, max_bad), until)
        })
        .await
        .map_err(|e| NodeError::msg(format!("extract task failed: {e}")))?
    }
}

fn extract(
    path: &std::path::Path,
    format: &Format,
    catalog: Option<(PathBuf, CatalogOptions)>,
    customers: Option<(PathBuf, CustomersOptions)>,
    (policy, max_bad): (OnBadRows, MaxBadRows),
    until: Option<NaiveDate>,
) -> Result<Output, NodeError> {
    let catalog = match &catalog {
        Some((p, o)) => {
            let c = super::parse_catalog_file(p, o).map_err(|e| file_error(p, e))?;
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
    let mut keep = |item: &LineItem| {
        let date = item.date();
        if until.is_some_and(|u| date > u) {
            after_until += 1;
            return;
        }
        b.push(item, date, &products);
    };
    let outcome =
        super::parse_file_with(path, format, &mut keep).map_err(|e| file_error(path, e))?;
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
    let mut people: Vec<Customer> = vec![Customer::default(); b.customers.len()];
    for c in outcome.customers {
        if let Some(&index) = b.customers.get(c.customer_id.as_str()) {
            people[index as usize] = c;
        }
    }
    let mut customers_report = None;
    if let Some((p, o)) = &customers {
        let list = super::parse_customers_file(p, o).map_err(|e| file_error(p, e))?;
        checked(p, &list.report, policy, max_bad)?;
        customers_report = Some(report_json(&list.report));
        for c in list.customers {
            if let Some(&index) = b.customers.get(c.customer_id.as_str()) {
                let entry = &mut people[index as usize];
                entry.email = c.email.or(entry.email.take());
                entry.name = c.name.or(entry.name.take());
                entry.accepts_marketing = c.accepts_marketing.or(entry.accepts_marketing);
            }
        }
    }
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
    customer_id: StringBuilder,
    /// Per row, the customer's index in `customers` (contact details are joined per customer,
    /// not per row).
    customer_index: Vec<u32>,
    customers: HashMap<String, u32>,
    order_id: StringBuilder,
    date: Date32Builder,
    product_id: StringBuilder,
    product_name: StringBuilder,
    category: StringBuilder,
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
    ) {
        let known = products.get(item.product_id.as_str());
        // Look up before inserting: only a new customer's id is copied.
        let index = match self.customers.get(item.customer_id.as_str()) {
            Some(&index) => index,
            None => {
                let index = self.customers.len() as u32;
                self.customers.insert(item.customer_id.clone(), index);
                index
            }
        };
        self.customer_index.push(index);
        self.customer_id.append_value(&item.customer_id);
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
        fn numbers(b: &mut Float64Builder, rows: usize) {
            let mut old = std::mem::replace(b, Float64Builder::with_capacity(rows));
            b.extend(old.finish().iter());
        }
        for b in [
            &mut self.customer_id,
            &mut self.order_id,
            &mut self.product_id,
            &mut self.product_name,
            &mut self.category,
        ] {
            strings(b, rows);
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
        let rows = self.customer_index.len();
        let mut email = StringBuilder::with_capacity(rows, rows * 24);
        let mut name = StringBuilder::with_capacity(rows, rows * 16);
        let mut consent = BooleanBuilder::with_capacity(rows);
        for &index in &self.customer_index {
            let person = &people[index as usize];
            email.append_option(person.email.as_deref());
            name.append_option(person.name.as_deref());
            consent.append_option(person.accepts_marketing);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer_id.finish()),
            Arc::new(self.order_id.finish()),
            Arc::new(self.date.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.product_name.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(email.finish()),
            Arc::new(name.finish()),
            Arc::new(consent.finish()),
        ];
        let types = [
            DataType::Utf8,
            DataType::Utf8,
            DataType::Date32,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Float64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Boolean,
        ];
        let fields: Vec<Field> = TRANSACTION_COLUMNS
            .iter()
            .zip(types)
            .map(|(name, ty)| {
                Field::new(
                    *name,
                    ty,
                    !matches!(
                        *name,
                        "customer_id" | "order_id" | "date" | "quantity" | "amount"
                    ),
                )
            })
            .collect();
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

struct CatalogReader {
    path: PathBuf,
    options: CatalogOptions,
    on_bad_rows: OnBadRows,
    max_bad_rows: MaxBadRows,
}

impl NodeType for CatalogNode {
    fn name(&self) -> &'static str {
        "pos.catalog"
    }
    fn summary(&self) -> &'static str {
        "Reads a product catalog CSV (product id, name, category, price, stock) into a table."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("path", ParamType::Path, "the catalog CSV"),
            ParamSpec::optional(
                "options",
                ParamType::Map,
                "column mapping (product_id, name, category, price, stock), delimiter, decimal separator",
            ),
            ParamSpec::with_default(
                "on_bad_rows",
                ParamType::String,
                "fail",
                "fail or skip rows that cannot be read",
            ),
            max_bad_rows_spec(),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let path = params.path("path").ok().flatten().unwrap_or_default();
        let options = options::<CatalogOptions>(params, "options")
            .map_err(|e| errors.push(e))
            .ok();
        let policy = on_bad_rows(params).map_err(|e| errors.push(e)).ok();
        let max_bad = max_bad_rows(params).map_err(|e| errors.push(e)).ok();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(CatalogReader {
            path,
            options: options.expect("checked"),
            on_bad_rows: policy.expect("checked"),
            max_bad_rows: max_bad.expect("checked"),
        }))
    }
}

#[async_trait]
impl Node for CatalogReader {
    fn output_columns(&self, _: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(CATALOG_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    async fn run(&self, _ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let catalog = super::parse_catalog_file(&self.path, &self.options)
            .map_err(|e| file_error(&self.path, e))?;
        checked(
            &self.path,
            &catalog.report,
            self.on_bad_rows,
            self.max_bad_rows,
        )?;
        let mut id = StringBuilder::new();
        let mut name = StringBuilder::new();
        let mut category = StringBuilder::new();
        let mut price = Float64Builder::new();
        let mut stock = Int64Builder::new();
        for p in &catalog.products {
            id.append_value(&p.product_id);
            name.append_option(p.name.as_deref());
            category.append_option(p.category.as_deref());
            price.append_option(p.price);
            stock.append_option(p.stock);
        }
        let schema = Schema::new(vec![
            Field::new("product_id", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("category", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
            Field::new("stock", DataType::Int64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(category.finish()),
            Arc::new(price.finish()),
            Arc::new(stock.finish()),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
        Ok(Output::table(batch)
            .with_meta("source", self.path.display().to_string())
            .with_meta("report", report_json(&catalog.report)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::pos::csv_mapped::CsvOptions;

    /// `extract` of `text` written to a file, without catalog or customers.
    fn extract_text(
        text: &str,
        format: &Format,
        policy: OnBadRows,
        max: MaxBadRows,
    ) -> (PathBuf, Result<Output, NodeError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.csv");
        std::fs::write(&path, text).unwrap();
        let out = extract(&path, format, None, None, (policy, max), None);
        // Keep the path for the messages; the directory goes.
        (path, out)
    }

    fn error_of(r: (PathBuf, Result<Output, NodeError>)) -> (String, String) {
        let (path, out) = r;
        let Err(err) = out else {
            panic!("the extract of {} should fail", path.display())
        };
        let err = err.to_string();
        (path.display().to_string(), err)
    }

    fn table_of(out: &Output) -> &RecordBatch {
        match &out.body {
            flow_engine::data::Body::Data(flow_engine::data::Data::Table(batch)) => batch,
            _ => panic!("not a table"),
        }
    }

    fn formats() -> Vec<Format> {
        vec![
            Format::Csv(CsvOptions::default()),
            Format::ShopifyOrders(Default::default()),
            Format::SquareItems(Default::default()),
            Format::Jsonl(Default::default()),
        ]
    }

    #[test]
    fn empty_and_header_only_files_fail_naming_the_path_in_every_format() {
        let headers = [
            "order_id,customer_id,date,product_id,amount\n",
            "Name,Email,Created at,Lineitem quantity,Lineitem name,Lineitem price\n",
            "Date,Item,Qty,Net Sales,Transaction ID,Customer ID\n",
            "\n",
        ];
        for (format, header) in formats().iter().zip(headers) {
            for policy in [OnBadRows::Fail, OnBadRows::Skip] {
                let (path, err) = error_of(extract_text("", format, policy, MaxBadRows::Default));
                let expected = if matches!(format, Format::Jsonl(_)) {
                    "the file has a header but no data rows"
                } else {
                    "the file is empty: no header and no data rows"
                };
                assert_eq!(err, format!("{path}: {expected}"), "{}", format.name());
                let (path, err) =
                    error_of(extract_text(header, format, policy, MaxBadRows::Default));
                assert_eq!(
                    err,
                    format!("{path}: the file has a header but no data rows"),
                    "{}",
                    format.name()
                );
            }
        }
    }

    #[test]
    fn max_bad_rows_bounds_skipped_rows_at_its_boundary() {
        // 40 data rows, `bad` of them with an unreadable amount.
        let text = |bad: usize| {
            let mut t = String::from("order_id,customer_id,date,product_id,amount\n");
            for i in 0..40 {
                let amount = if i < bad { "x1" } else { "2.50" };
                t.push_str(&format!(
                    "O{i},C{},2024-01-{:02},P1,{amount}\n",
                    i % 7,
                    i % 28 + 1
                ));
            }
            t
        };
        let csv = Format::Csv(CsvOptions::default());
        let rows = |r: (PathBuf, Result<Output, NodeError>)| {
            let out = r.1.unwrap();
            out.meta["rows"].as_u64().unwrap()
        };
        let skip = OnBadRows::Skip;
        for (max, allowed) in [
            (MaxBadRows::Count(3), 3),
            (MaxBadRows::Fraction(0.1), 4),
            (MaxBadRows::Default, 10),
            (MaxBadRows::Count(0), 0),
        ] {
            assert_eq!(
                rows(extract_text(&text(allowed), &csv, skip, max)),
                40 - allowed as u64,
                "{max}"
            );
            let (path, err) = error_of(extract_text(&text(allowed + 1), &csv, skip, max));
            assert!(
                err.starts_with(&format!(
                    "{path}: {} of 40 data rows are bad, more than the {allowed} that \
                     `max_bad_rows` ({max}) allows",
                    allowed + 1
                )),
                "{err}"
            );
            assert!(
                err.contains("\n  line 2: column `amount`: `x1` is not a number"),
                "{err}"
            );
        }
        // `fail` fails on the first bad row, whatever the bound.
        let (_, err) = error_of(extract_text(
            &text(1),
            &csv,
            OnBadRows::Fail,
            MaxBadRows::Count(5),
        ));
        assert!(err.contains("1 bad row (on_bad_rows: fail)"), "{err}");
    }

    #[test]
    fn an_export_of_only_bad_rows_fails_at_the_extract_in_every_format() {
        let texts = [
            "order_id,customer_id,date,product_id,amount\nO1,C1,never,P1,1\nO2,C2,never,P2,1\n",
            "Name,Email,Created at,Lineitem quantity,Lineitem name,Lineitem price\n\
             #1,a@x.com,never,1,Mug,3.00\n#2,b@x.com,never,1,Mug,3.00\n",
            "Date,Item,Qty,Net Sales,Transaction ID,Customer ID\n\
             never,Mug,1,$3.00,T1,C1\nnever,Mug,1,$3.00,T2,C2\n",
            "{\"id\": 1}\nnot json\n",
        ];
        for (format, text) in formats().iter().zip(texts) {
            // Even a bound that allows them all leaves nothing to work with.
            let (path, err) = error_of(extract_text(
                text,
                format,
                OnBadRows::Skip,
                MaxBadRows::Count(100),
            ));
            assert!(
                err.starts_with(&format!(
                    "{path}: no usable rows: 2 rows read, 0 line items"
                )),
                "{}: {err}",
                format.name()
            );
            let (_, err) = error_of(extract_text(
                text,
                format,
                OnBadRows::Skip,
                MaxBadRows::Default,
            ));
            assert!(err.contains("no usable rows"), "{err}");
        }
    }

    #[test]
    fn a_payments_export_has_null_products_and_says_so() {
        let format: Format = serde_json::from_value(serde_json::json!({
            "format": "csv",
            "columns": {"customer": "customer", "date": "paid_at", "amount": "amount",
                        "order": null, "product": null}
        }))
        .unwrap();
        let (_, out) = extract_text(
            include_str!("fixtures/payments.csv"),
            &format,
            OnBadRows::Fail,
            MaxBadRows::Default,
        );
        let out = out.unwrap();
        assert_eq!(out.meta["products"], "none in the export");
        assert_eq!(
            out.meta["orders"],
            "none in the export: each row is one order"
        );
        let batch = table_of(&out);
        let product = batch.column_by_name("product_id").unwrap();
        assert_eq!(product.null_count(), batch.num_rows());
        assert!(batch.num_rows() > 30);
        // An export with products says nothing of the kind.
        let (_, out) = extract_text(
            include_str!("fixtures/transactions.csv"),
            &Format::Csv(CsvOptions::default()),
            OnBadRows::Skip,
            MaxBadRows::Default,
        );
        let out = out.unwrap();
        assert!(out.meta.get("products").is_none() && out.meta.get("orders").is_none());
        let batch = table_of(&out);
        assert_eq!(batch.column_by_name("product_id").unwrap().null_count(), 0);
    }

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
            let mut keep = |item: &LineItem| b.push(item, item.date(), &products);
            crate::pos::parse_file_with(&path, &format, &mut keep).unwrap();
            let people = vec![Customer::default(); b.customers.len()];
            b.finish(&people).unwrap()
        };
        let grown = table(0);
        let sized = table(expected);
        assert_eq!(grown.num_rows(), 20_000);
        assert_eq!(grown, sized);
    }
}
