//! Tables as JSON: a slice of a table's rows as objects keyed by column, for previews, paged
//! output and webhook answers.

use arrow_array::RecordBatch;
use flow_engine::data::Data;
use serde_json::{Map, Value};

/// Data as one JSON value: a table as a list of row objects, nothing as `null`.
pub(crate) fn data_json(data: Data) -> Result<Value, arrow_schema::ArrowError> {
    Ok(match data {
        Data::Empty => Value::Null,
        Data::Json(v) => v,
        Data::Table(batch) => Value::Array(
            rows_json(&batch, 0, batch.num_rows())?
                .into_iter()
                .map(Value::Object)
                .collect(),
        ),
    })
}

/// Rows `offset..offset + limit` of `batch` as JSON objects (nulls kept as `null`).
pub(crate) fn rows_json(
    batch: &RecordBatch,
    offset: usize,
    limit: usize,
) -> Result<Vec<Map<String, Value>>, arrow_schema::ArrowError> {
    let start = offset.min(batch.num_rows());
    let len = limit.min(batch.num_rows() - start);
    let slice = batch.slice(start, len);
    let mut out = Vec::new();
    {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::JsonArray>(&mut out);
        writer.write(&slice)?;
        writer.finish()?;
    }
    if out.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&out).map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    #[test]
    fn a_slice_of_rows_keeps_nulls_and_stops_at_the_end() {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("<c>")])) as ArrayRef,
            ),
        ])
        .unwrap();
        let rows = rows_json(&batch, 1, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["id"], 2);
        assert_eq!(rows[0]["name"], Value::Null);
        assert_eq!(rows[1]["name"], "<c>");
        assert!(rows_json(&batch, 5, 10).unwrap().is_empty());
    }
}
