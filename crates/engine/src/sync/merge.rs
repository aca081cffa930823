//! Merging keyed parts into the current table: a key in a later part replaces every row with
//! that key in the earlier parts, and a deleted key removes them.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

use super::SyncError;

/// One part, oldest first in a merge.
pub(super) enum Part {
    Rows(RecordBatch),
    Deleted(Vec<String>),
}

/// The keys of `batch`'s `key` column (a Utf8 column without nulls).
pub(super) fn key_column<'a>(
    batch: &'a RecordBatch,
    table: &str,
    key: &str,
) -> Result<&'a arrow_array::StringArray, SyncError> {
    let col = batch.column_by_name(key).ok_or_else(|| SyncError::Schema {
        table: table.into(),
        reason: format!("the key column `{key}` is missing"),
    })?;
    if col.data_type() != &DataType::Utf8 {
        return Err(SyncError::Schema {
            table: table.into(),
            reason: format!(
                "the key column `{key}` must be text, not {}",
                col.data_type()
            ),
        });
    }
    if col.null_count() > 0 {
        return Err(SyncError::Schema {
            table: table.into(),
            reason: format!("the key column `{key}` has empty (null) keys"),
        });
    }
    Ok(col.as_string::<i32>())
}

/// The rows of `parts` that no later part replaced, oldest first, as one batch.
pub(super) fn merge(
    schema: &SchemaRef,
    table: &str,
    key: &str,
    parts: &[Part],
) -> Result<RecordBatch, SyncError> {
    let mut replaced: HashSet<&str> = HashSet::new();
    let mut kept: Vec<RecordBatch> = Vec::new();
    for part in parts.iter().rev() {
        match part {
            Part::Rows(batch) => {
                let keys = key_column(batch, table, key)?;
                if replaced.is_empty() {
                    kept.push(batch.clone());
                } else {
                    let mask: BooleanArray = keys
                        .iter()
                        .map(|k| Some(!replaced.contains(k.unwrap_or_default())))
                        .collect();
                    if mask.true_count() == batch.num_rows() {
                        kept.push(batch.clone());
                    } else if mask.true_count() > 0 {
                        kept.push(arrow_select::filter::filter_record_batch(batch, &mask)?);
                    }
                }
                replaced.extend(keys.iter().map(Option::unwrap_or_default));
            }
            Part::Deleted(keys) => replaced.extend(keys.iter().map(String::as_str)),
        }
    }
    kept.reverse();
    let kept: Vec<RecordBatch> = kept
        .into_iter()
        .map(|b| conform(schema, b))
        .collect::<Result<_, _>>()?;
    Ok(arrow_select::concat::concat_batches(schema, &kept)?)
}

/// `batch` with `schema`'s field metadata (columns must match by name and type).
fn conform(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, SyncError> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(
        Arc::clone(schema),
        batch.columns().to_vec(),
    )?)
}

/// Distinct keys of a merged table.
pub(super) fn distinct_keys(batch: &RecordBatch, table: &str, key: &str) -> Result<u64, SyncError> {
    let keys = key_column(batch, table, key)?;
    let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len() / 2);
    for k in keys.iter().flatten() {
        seen.insert(k);
    }
    Ok(seen.len() as u64)
}
