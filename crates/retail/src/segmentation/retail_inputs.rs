//! Reading the inputs of a retail node by their role.
//!
//! The recommendation, campaign and deploy nodes take several tables (customers, transactions,
//! catalog, affinity, recommendations, campaign rows). Each node type declares them as input
//! roles; the engine gives every input its role at validation time (from the upstream node's
//! declared table kind, or `as:` in the workflow) and passes it with the input, so a node takes
//! its tables by role and never guesses from the columns.

use arrow_array::RecordBatch;

use flow_engine::node::{Inputs, NodeError, TableKind};

/// The inputs of one run of a node, looked up by role.
#[derive(Debug)]
pub(crate) struct ByRole<'a> {
    inputs: &'a Inputs,
    node: &'static str,
}

impl<'a> ByRole<'a> {
    pub(crate) fn new(inputs: &'a Inputs, node: &'static str) -> Self {
        ByRole { inputs, node }
    }

    /// Every table in `role`, in `needs` order.
    pub(crate) fn all(&self, role: &str) -> Vec<RecordBatch> {
        self.inputs.role_tables(role).cloned().collect()
    }

    /// The table in `role`, if any.
    pub(crate) fn first(&self, role: &'static str) -> Option<&'a RecordBatch> {
        self.inputs.role_tables(role).next()
    }

    /// The table in `role`, or an error naming what is missing and what was received.
    pub(crate) fn require(
        &self,
        role: &'static str,
        kind: &TableKind,
    ) -> Result<&'a RecordBatch, NodeError> {
        self.first(role)
            .ok_or_else(|| self.missing(&[(role, kind)]))
    }

    /// The error for missing inputs: any of `wanted` would have done.
    pub(crate) fn missing(&self, wanted: &[(&str, &TableKind)]) -> NodeError {
        let wanted: Vec<String> = wanted
            .iter()
            .map(|(role, kind)| format!("{} table (role `{role}`: {})", kind.name(), kind.doc()))
            .collect();
        NodeError::msg(format!(
            "{} needs a {} among its inputs; inputs received: {}",
            self.node,
            wanted.join(" or a "),
            describe_inputs(self.inputs)
        ))
    }
}

/// `name (role, table: a, b, c)` for every input; `(none)` without inputs.
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
            match &input.role {
                Some(role) => format!("`{}` (role `{role}`, {what})", input.name()),
                None => format!("`{}` (no role, {what})", input.name()),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field, Schema};
    use flow_engine::data::Data;
    use flow_engine::node::Input;
    use std::sync::Arc;

    fn table(cols: &[&str]) -> RecordBatch {
        let schema = Schema::new(
            cols.iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let arrays = cols
            .iter()
            .map(|_| Arc::new(StringArray::from(vec!["x"])) as _)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
    }

    #[test]
    fn tables_are_found_by_role_whatever_their_columns() {
        // Customers that happen to have a `rank` column are still customers.
        let inputs = Inputs(vec![
            Input {
                from: "classify".into(),
                case: Some("vip".into()),
                role: Some("customers".into()),
                data: Data::Table(table(&["customer_id", "segment", "rank"])),
                meta: Default::default(),
            },
            Input {
                from: "recommend_vip".into(),
                case: None,
                role: Some("recommendations".into()),
                data: Data::Table(table(&["customer_id", "rank", "product_id"])),
                meta: Default::default(),
            },
        ]);
        let by = ByRole::new(&inputs, "test.node");
        assert_eq!(by.all("customers").len(), 1);
        assert_eq!(by.all("customers")[0].num_columns(), 3);
        assert_eq!(by.all("recommendations")[0].num_columns(), 3);
        let err = by
            .require("catalog", &crate::segmentation::tables::catalog())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("test.node needs a catalog table (role `catalog`: one row per product"),
            "{err}"
        );
        assert!(
            err.contains(
                "`classify.vip` (role `customers`, table of 1 row: customer_id, segment, rank)"
            ),
            "{err}"
        );
    }
}
