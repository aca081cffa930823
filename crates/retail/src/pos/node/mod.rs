//! `pos.extract` and `pos.catalog`: POS exports into tables.
//!
//! `pos.extract` produces the `transactions` table the segmentation nodes read: one row per line
//! item with `customer_id, order_id, date, product_id, product_name, category, quantity, amount`
//! and, when known, `email, customer_name, accepts_marketing`. A catalog fills in product names
//! and categories; a customers file fills in contact details and marketing consent.

mod extract;
mod report;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use chrono::NaiveDate;
use serde_json::Value as Json;

use super::{CatalogOptions, CustomersOptions, Format, MaxBadRows, OnBadRows};
use extract::extract;
pub(crate) use extract::transactions_table;
use flow_engine::data::Output;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params, TableKind,
};
use report::{checked, file_error, report_json};

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

/// The schema of the `transactions` table `pos.extract` produces.
pub(crate) fn transactions_schema() -> Schema {
    // Values that repeat row after row (a customer's id and contact details, product ids,
    // names and categories) are dictionary-encoded: stored once, with an index per row.
    let text = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let types = [
        text(),
        DataType::Utf8,
        DataType::Date32,
        text(),
        text(),
        text(),
        DataType::Float64,
        DataType::Float64,
        text(),
        text(),
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
    Schema::new(fields)
}

/// The schema of the `catalog` table `pos.catalog` produces.
pub(crate) fn catalog_schema() -> Schema {
    Schema::new(vec![
        Field::new("product_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("stock", DataType::Int64, true),
    ])
}

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
    fn output_kind(&self) -> Option<TableKind> {
        Some(crate::segmentation::tables::transactions())
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("path", ParamType::Path, "the transactions export"),
            ParamSpec::with_default(
                "format",
                ParamType::String,
                "csv",
                "csv, shopify_orders, square_items, lightspeed_sales or jsonl",
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
                    format!("{msg} (formats: csv, shopify_orders, square_items, lightspeed_sales, jsonl)"),
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
        flow_engine::node::spawn_compute(move || {
            extract(&path, &format, catalog, customers, (policy, max_bad), until)
        })
        .await
        .map_err(|e| NodeError::msg(format!("extract task failed: {e}")))?
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
    fn output_kind(&self) -> Option<TableKind> {
        Some(crate::segmentation::tables::catalog())
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
        let schema = catalog_schema();
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
mod tests;
