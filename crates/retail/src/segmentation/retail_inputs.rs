//! Telling the tables of the retail workflow apart by their columns.
//!
//! The recommendation, campaign and deploy nodes take several inputs (a customers branch, the
//! transactions, the catalog, the affinity table, recommendations, campaign rows). Rather than
//! depending on node ids or the order of `needs`, each input is identified by a column only its
//! kind has; the checks run in this order:
//!
//! | kind | identifying column |
//! | --- | --- |
//! | campaign rows (`segmentation.campaign`) | `send` |
//! | recommendations (`segmentation.recommend`) | `rank` |
//! | item affinity (`segmentation.affinity`) | `other_product_id` |
//! | transactions (the extract node) | `order_id` |
//! | catalog | `stock` |
//! | customers (a `segmentation.classify` branch) | `segment` |

use arrow_array::RecordBatch;

use flow_engine::node::{ConfigureCx, Input, Inputs, NodeError, ParamError};

/// The kinds of table the retail nodes exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableKind {
    Campaign,
    Recommendations,
    Affinity,
    Transactions,
    Catalog,
    Customers,
}

impl TableKind {
    /// How an error message names the kind, with the column that identifies it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TableKind::Campaign => "campaign rows (a `send` column, from segmentation.campaign)",
            TableKind::Recommendations => {
                "recommendations (a `rank` column, from segmentation.recommend)"
            }
            TableKind::Affinity => {
                "an item affinity table (an `other_product_id` column, from segmentation.affinity)"
            }
            TableKind::Transactions => "a transactions table (an `order_id` column)",
            TableKind::Catalog => "a product catalog (a `stock` column)",
            TableKind::Customers => {
                "a customers table (a `segment` column, from a segmentation.classify branch)"
            }
        }
    }
}

/// The kind of a table with these columns, if any.
pub(crate) fn kind_of_columns(has: impl Fn(&str) -> bool) -> Option<TableKind> {
    [
        ("send", TableKind::Campaign),
        ("rank", TableKind::Recommendations),
        ("other_product_id", TableKind::Affinity),
        ("order_id", TableKind::Transactions),
        ("stock", TableKind::Catalog),
        ("segment", TableKind::Customers),
    ]
    .into_iter()
    .find(|(col, _)| has(col))
    .map(|(_, kind)| kind)
}

/// The kind of a table.
pub(crate) fn kind_of(batch: &RecordBatch) -> Option<TableKind> {
    let schema = batch.schema();
    kind_of_columns(|c| schema.column_with_name(c).is_some())
}

/// The table inputs sorted by kind (in `needs` order within a kind).
#[derive(Debug, Default)]
pub(crate) struct Sorted<'a> {
    pub(crate) tables: Vec<(TableKind, &'a Input, &'a RecordBatch)>,
    /// A description of every input, for error messages.
    pub(crate) received: String,
}

impl<'a> Sorted<'a> {
    pub(crate) fn new(inputs: &'a Inputs) -> Self {
        let mut tables = Vec::new();
        for input in inputs.iter() {
            if let Some(batch) = input.data.as_table()
                && let Some(kind) = kind_of(batch)
            {
                tables.push((kind, input, batch));
            }
        }
        Sorted {
            tables,
            received: describe_inputs(inputs),
        }
    }

    /// Every table of `kind`.
    pub(crate) fn all(&self, kind: TableKind) -> Vec<&'a RecordBatch> {
        self.tables
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, b)| *b)
            .collect()
    }

    /// The first table of `kind`, if any.
    pub(crate) fn first(&self, kind: TableKind) -> Option<&'a RecordBatch> {
        self.tables
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, _, b)| *b)
    }

    /// The first table of `kind`, or an error naming what is missing and what was received.
    pub(crate) fn require(
        &self,
        kind: TableKind,
        node: &str,
    ) -> Result<&'a RecordBatch, NodeError> {
        self.first(kind).ok_or_else(|| self.missing(kind, node))
    }

    /// The error for a missing input kind.
    pub(crate) fn missing(&self, kind: TableKind, node: &str) -> NodeError {
        NodeError::msg(format!(
            "{node} needs {} among its inputs; inputs received: {}",
            kind.describe(),
            self.received
        ))
    }
}

/// `name (table: a, b, c)` for every input; `(none)` without inputs.
pub(crate) fn describe_inputs(inputs: &Inputs) -> String {
    if inputs.is_empty() {
        return "(none)".to_string();
    }
    inputs
        .iter()
        .map(|input| {
            let what = match (input.data.as_table(), input.data.as_json()) {
                (Some(batch), _) => {
                    let schema = batch.schema();
                    let mut cols: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    let more = cols.len().saturating_sub(8);
                    cols.truncate(8);
                    let mut text = cols.join(", ");
                    if more > 0 {
                        text.push_str(&format!(", … {more} more"));
                    }
                    format!(
                        "table of {}: {text}",
                        flow_engine::plural::plural(batch.num_rows() as u64, "row")
                    )
                }
                (None, Some(_)) => "a JSON value".to_string(),
                (None, None) => "nothing".to_string(),
            };
            format!("`{}` ({what})", input.name())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// At validation time, when every input declares its columns, reports each kind in `required`
/// that no input provides.
pub(crate) fn check_declared_inputs(
    cx: &ConfigureCx<'_>,
    node: &str,
    required: &[TableKind],
    errors: &mut Vec<ParamError>,
) {
    if cx.input_columns.is_empty() {
        return;
    }
    let mut kinds = Vec::new();
    for cols in cx.input_columns {
        let Some(cols) = cols else { return };
        if let Some(kind) = kind_of_columns(|c| cols.iter().any(|x| x == c)) {
            kinds.push(kind);
        }
    }
    for kind in required {
        if !kinds.contains(kind) {
            errors.push(ParamError::node(format!(
                "{node} needs {} among its inputs (`needs`), and none of them has one",
                kind.describe()
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart_by_their_columns() {
        let kind = |cols: &[&str]| kind_of_columns(|c| cols.contains(&c));
        // Campaign rows and recommendations also carry `segment`; they are not customers.
        assert_eq!(
            kind(&["customer_id", "segment", "send"]),
            Some(TableKind::Campaign)
        );
        assert_eq!(
            kind(&["customer_id", "segment", "rank", "product_id"]),
            Some(TableKind::Recommendations)
        );
        assert_eq!(
            kind(&["product_id", "other_product_id", "lift"]),
            Some(TableKind::Affinity)
        );
        assert_eq!(
            kind(&["customer_id", "order_id", "date"]),
            Some(TableKind::Transactions)
        );
        assert_eq!(
            kind(&["product_id", "price", "stock"]),
            Some(TableKind::Catalog)
        );
        assert_eq!(
            kind(&["customer_id", "segment"]),
            Some(TableKind::Customers)
        );
        assert_eq!(kind(&["customer_id"]), None);
    }
}
