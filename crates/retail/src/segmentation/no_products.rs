//! Transactions without products: payment exports often have only a customer, a date and an
//! amount. RFM and CLV need nothing more, but co-purchase statistics and recommendations need
//! products; those nodes then produce empty tables and say why in their metadata, rather than
//! failing the run.

use arrow_array::{Array, RecordBatch};

/// The metadata key of the explanation.
pub(crate) const META_KEY: &str = "no_products";

/// The explanation, for a node's metadata.
pub(crate) const MESSAGE: &str =
    "the transactions have no products (no product ids in the export): nothing to compute";

/// Whether a transactions table has no product at all: no `product_id` column, or only nulls
/// in it (what `pos.extract` writes for an export mapped with `product: null`).
pub(crate) fn has_no_products(transactions: &RecordBatch) -> bool {
    transactions
        .column_by_name("product_id")
        .is_none_or(|c| c.null_count() == c.len() && !c.is_empty())
}
