//! The tables deploy reads and writes: their columns, one table from a kind's inputs, typed
//! access to its columns, and the CSV bytes of a table.

use super::*;

/// The campaign columns deploy reads, with their types.
pub(crate) const CAMPAIGN_COLUMNS: [(&str, DataType); 31] = [
    ("customer_id", DataType::Utf8),
    ("segment", DataType::Utf8),
    ("segment_label", DataType::Utf8),
    ("first_purchase", DataType::Date32),
    ("last_purchase", DataType::Date32),
    ("days_since_last", DataType::Int64),
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
    ("recommended_products", DataType::Utf8),
    ("recommended_action", DataType::Utf8),
    ("channel", DataType::Utf8),
    ("offer", DataType::Utf8),
    ("group", DataType::Utf8),
    ("eligible", DataType::Boolean),
    ("send", DataType::Boolean),
    ("skip_reason", DataType::Utf8),
    ("subject", DataType::Utf8),
    ("body_html", DataType::Utf8),
    ("sender", DataType::Utf8),
];

/// The recommendation columns, with their types.
pub(crate) const RECOMMENDATION_COLUMNS: [(&str, DataType); 9] = [
    ("customer_id", DataType::Utf8),
    ("segment", DataType::Utf8),
    ("rank", DataType::Int64),
    ("product_id", DataType::Utf8),
    ("product_name", DataType::Utf8),
    ("category", DataType::Utf8),
    ("score", DataType::Float64),
    ("reason", DataType::Utf8),
    ("strategy", DataType::Utf8),
];

/// The columns of `segments.csv`: (output name, campaign column).
pub(super) const PROFILE_COLUMNS: [(&str, &str); 22] = [
    ("customer_id", "customer_id"),
    ("customer_name", "customer_name"),
    ("email", "email"),
    ("segment", "segment"),
    ("rfm_segment", "rfm_segment"),
    ("r_score", "r_score"),
    ("f_score", "f_score"),
    ("m_score", "m_score"),
    ("rfm", "rfm"),
    ("orders", "orders"),
    ("total_spend", "total_spend"),
    ("avg_order_value", "avg_order_value"),
    ("clv", "clv"),
    ("p_alive", "p_alive"),
    ("p_purchase", "p_purchase"),
    ("accepts_marketing", "accepts_marketing"),
    ("recommended_products", "recommended_products"),
    ("recommended_action", "recommended_action"),
    ("offer", "offer"),
    ("message_sent", "send"),
    ("skip_reason", "skip_reason"),
    ("group", "group"),
];

/// The columns of `messages/<segment>.csv`.
pub(super) const MESSAGE_CSV_COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "customer_name",
    "from",
    "subject",
    "body_html",
    "offer",
    "message_id",
];

/// `columns` with their text dictionary-encoded: how deploy holds the recommendations, whose
/// ids, names and reasons repeat from row to row.
pub(super) fn dictionary_text(
    columns: &[(&'static str, DataType)],
) -> Vec<(&'static str, DataType)> {
    columns
        .iter()
        .map(|(name, dt)| {
            let dt = match dt {
                DataType::Utf8 => {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                }
                other => other.clone(),
            };
            (*name, dt)
        })
        .collect()
}

/// A text column of a normalized table, in any of its encodings.
pub(super) fn any_text(t: &RecordBatch, name: &str) -> Result<TextColumn, NodeError> {
    text_column(t, name)?.ok_or_else(|| NodeError::msg(format!("no `{name}` column")))
}

/// Concatenates tables into one with exactly `columns` (cast; absent columns are null).
pub(super) fn normalize(
    tables: &[RecordBatch],
    columns: &[(&str, DataType)],
) -> Result<RecordBatch, NodeError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, dt) in columns {
        let mut parts: Vec<ArrayRef> = Vec::new();
        for t in tables {
            parts.push(match t.column_by_name(name) {
                Some(a) if a.data_type() == dt => a.clone(),
                Some(a) => arrow_cast::cast(a, dt).map_err(|e| {
                    NodeError::msg(format!("column `{name}` cannot be read as {dt}: {e}"))
                })?,
                None => new_null_array(dt, t.num_rows()),
            });
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        arrays.push(if refs.is_empty() {
            new_null_array(dt, 0)
        } else {
            arrow_select::concat::concat(&refs)?
        });
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

pub(super) fn text<'a>(t: &'a RecordBatch, name: &str) -> &'a StringArray {
    t.column_by_name(name)
        .expect("normalized")
        .as_string::<i32>()
}
pub(super) fn floats<'a>(t: &'a RecordBatch, name: &str) -> &'a Float64Array {
    t.column_by_name(name)
        .expect("normalized")
        .as_primitive::<Float64Type>()
}
pub(super) fn ints<'a>(t: &'a RecordBatch, name: &str) -> &'a Int64Array {
    t.column_by_name(name)
        .expect("normalized")
        .as_primitive::<Int64Type>()
}
pub(super) fn bools<'a>(t: &'a RecordBatch, name: &str) -> &'a BooleanArray {
    t.column_by_name(name).expect("normalized").as_boolean()
}
pub(super) fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}
pub(super) fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i))
        .then(|| a.value(i))
        .filter(|v| v.is_finite())
}
pub(super) fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Decimals written for a float column: cents for money, 4 for probabilities and scores, so
/// a file reads `695.81`, not `695.8100000000001`.
pub(super) fn decimals(column: &str) -> i32 {
    const MONEY: [&str; 6] = ["spend", "value", "clv", "revenue", "amount", "price"];
    if MONEY.iter().any(|m| column.contains(m)) {
        2
    } else {
        4
    }
}

pub(super) fn rounded(batch: &RecordBatch) -> Result<RecordBatch, NodeError> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(
            |(field, column)| match column.as_any().downcast_ref::<arrow_array::Float64Array>() {
                Some(values) => {
                    let scale = 10f64.powi(decimals(field.name()));
                    let rounded: arrow_array::Float64Array = values.unary(|v| {
                        if v.is_finite() {
                            (v * scale).round() / scale
                        } else {
                            v
                        }
                    });
                    Arc::new(rounded) as arrow_array::ArrayRef
                }
                None => column.clone(),
            },
        )
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Writes a table as CSV for people: amounts rounded (see [`rounded`]) and, as these files
/// are opened in spreadsheets, formula-like text cells neutralised.
pub(super) fn write_csv(
    batch: &RecordBatch,
    out: &mut dyn std::io::Write,
) -> Result<(), NodeError> {
    if batch.num_rows() == 0 {
        // A reader still wants the header.
        let schema = batch.schema();
        let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return out
            .write_all(format!("{}\n", header.join(",")).as_bytes())
            .map_err(|e| NodeError::io("cannot write a CSV header", e));
    }
    use flow_engine::spreadsheet::{ROWS_PER_WRITE, SpreadsheetCsv};
    // Rounded a slice at a time, as the writer writes them.
    let mut csv = SpreadsheetCsv::new(out);
    for start in (0..batch.num_rows()).step_by(ROWS_PER_WRITE) {
        let len = ROWS_PER_WRITE.min(batch.num_rows() - start);
        csv.write(&rounded(&batch.slice(start, len))?)?;
    }
    Ok(())
}

pub(super) fn csv_bytes(batch: &RecordBatch) -> Result<Vec<u8>, NodeError> {
    let mut buf = Vec::new();
    write_csv(batch, &mut buf)?;
    Ok(buf)
}

/// Writes a table as CSV (see [`write_csv`]) to `path`, atomically, without holding the text.
pub(super) fn write_csv_file(path: &Path, batch: &RecordBatch) -> Result<(), NodeError> {
    private_files::write_atomic_with(path, |out| {
        write_csv(batch, out)
            .map_err(|e| NodeError::msg(format!("cannot write {}: {e}", path.display())))
    })
}

/// A file name from an id: letters, digits and `._@+-` kept, anything else `_`.
pub(super) fn file_stem(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s.truncate(120);
    s
}
