//! The kinds of table the retail nodes exchange, each with the Arrow schema its tables have.
//!
//! Node types name these kinds as their output ([`NodeType::output_kind`]) and as the tables
//! their input roles take ([`NodeType::inputs`]); the engine gives every input its role from
//! them and checks the columns. Each schema is the one the producing node builds (or, for
//! transactions, the columns of it the segmentation nodes need), so it is declared once.
//!
//! [`NodeType::output_kind`]: flow_engine::node::NodeType::output_kind
//! [`NodeType::inputs`]: flow_engine::node::NodeType::inputs

use arrow_schema::{DataType, Field, Schema};

use flow_engine::node::TableKind;

/// Line items from `pos.extract`: the columns every transactions table needs (the extract
/// adds product, quantity and contact columns).
pub(crate) fn transactions() -> TableKind {
    let full = crate::pos::transactions_schema();
    let needed: Vec<usize> = super::TRANSACTION_COLUMNS
        .iter()
        .map(|c| full.index_of(c).expect("a transactions column"))
        .collect();
    TableKind::new(
        "transactions",
        "one row per line item (pos.extract)",
        full.project(&needed).expect("columns of the schema"),
    )
}

/// Customer scores from `segmentation.metrics` (the column every consumer relies on; the
/// node documents the rest).
pub(crate) fn metrics() -> TableKind {
    TableKind::new(
        "metrics",
        "one row per customer with RFM scores, CLV and affinity (segmentation.metrics)",
        Schema::new(vec![Field::new("customer_id", DataType::Utf8, true)]),
    )
}

/// Products from `pos.catalog`.
pub(crate) fn catalog() -> TableKind {
    TableKind::new(
        "catalog",
        "one row per product with price and stock (pos.catalog)",
        crate::pos::catalog_schema(),
    )
}

/// The customers of a segment, from a `segmentation.classify` branch.
pub(crate) fn customers() -> TableKind {
    TableKind::new(
        "customers",
        "one row per customer with their segment (a segmentation.classify branch)",
        super::classify::no_customers().schema(),
    )
}

/// Co-purchase pairs from `segmentation.affinity`.
pub(crate) fn affinity() -> TableKind {
    TableKind::new(
        "affinity",
        "item-to-item co-purchase statistics (segmentation.affinity)",
        super::affinity::output_schema(),
    )
}

/// Ranked products per customer from `segmentation.recommend`.
pub(crate) fn recommendations() -> TableKind {
    TableKind::new(
        "recommendations",
        "ranked products per customer (segmentation.recommend)",
        schema(&super::deploy::RECOMMENDATION_COLUMNS),
    )
}

/// A campaign message and profile row per customer from `segmentation.campaign`.
pub(crate) fn campaign() -> TableKind {
    TableKind::new(
        "campaign",
        "a message and profile row per customer (segmentation.campaign)",
        schema(&super::deploy::CAMPAIGN_COLUMNS),
    )
}

fn schema(columns: &[(&str, DataType)]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|(name, ty)| Field::new(*name, ty.clone(), true))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_columns_its_consumers_read() {
        let names = |k: TableKind| -> Vec<String> {
            k.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        assert_eq!(
            names(transactions()),
            ["customer_id", "order_id", "date", "amount"]
        );
        assert_eq!(names(customers()), ["customer_id", "segment"]);
        assert!(names(recommendations()).contains(&"rank".to_string()));
        assert!(names(campaign()).contains(&"send".to_string()));
        assert!(names(catalog()).contains(&"stock".to_string()));
        assert_eq!(names(metrics()), ["customer_id"]);
        assert!(names(affinity()).contains(&"other_product_id".to_string()));
        // The extract's own table is a transactions table.
        assert_eq!(
            transactions().check_declared(&crate::pos::transactions_schema()),
            Ok(())
        );
    }
}
