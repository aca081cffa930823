//! The customer profile columns copied to the output.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::DataType;

use crate::segmentation::{bool_column, f64_column};
use flow_engine::node::NodeError;

/// Customer columns copied to the output, with their output type (the label and dates let a
/// report name the segment and the analysed period).
pub(super) const PROFILE_COLUMNS: [(&str, DataType); 18] = [
    ("segment_label", DataType::Utf8),
    ("email", DataType::Utf8),
    ("customer_name", DataType::Utf8),
    ("accepts_marketing", DataType::Boolean),
    ("r_score", DataType::Int64),
    ("f_score", DataType::Int64),
    ("m_score", DataType::Int64),
    ("rfm", DataType::Utf8),
    ("rfm_segment", DataType::Utf8),
    ("clv", DataType::Float64),
    ("p_alive", DataType::Float64),
    ("p_purchase", DataType::Float64),
    ("orders", DataType::Int64),
    ("total_spend", DataType::Float64),
    ("avg_order_value", DataType::Float64),
    ("first_purchase", DataType::Date32),
    ("last_purchase", DataType::Date32),
    ("days_since_last", DataType::Int64),
];

/// A customer column converted to `dt`, or nulls when absent.
pub(super) fn profile_column(
    batch: &RecordBatch,
    name: &str,
    dt: &DataType,
) -> Result<ArrayRef, NodeError> {
    let n = batch.num_rows();
    let Some(array) = batch.column_by_name(name) else {
        return Ok(arrow_array::new_null_array(dt, n));
    };
    Ok(match dt {
        DataType::Boolean => Arc::new(bool_column(batch, name)?.expect("present")),
        DataType::Float64 => Arc::new(f64_column(batch, name)?.expect("present")),
        DataType::Int64 if array.data_type().is_integer() => arrow_cast::cast(array, dt)?,
        DataType::Int64 => {
            let floats = f64_column(batch, name)?.expect("present");
            Arc::new(Int64Array::from_iter(
                floats.iter().map(|v| v.map(|v| v.round() as i64)),
            ))
        }
        _ => arrow_cast::cast(array, dt)?,
    })
}
