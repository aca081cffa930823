//! Node types of the customer segmentation workflow.
//!
//! - [`Metrics`] (`segmentation.metrics`): per-customer RFM, `lifetimes` summary, BG/NBD and
//!   Gamma-Gamma predictions, CLV and category affinity, from a transactions table.
//! - [`Affinity`] (`segmentation.affinity`): item-to-item co-purchase statistics (support,
//!   confidence, lift) from the same table.
//!
//! The model math lives in [`flow_analytics`]; these nodes turn Arrow tables into the
//! plain slices it takes and its results back into tables.
//!
//! # The `transactions` table (one row per line item)
//! Required: `customer_id` Utf8, `order_id` Utf8, `date` Date32, `amount` Float64 (net line
//! amount; negative = refund). Optional: `product_id`, `product_name`, `category`, `email`,
//! `customer_name` (Utf8), `quantity` (Float64), `accepts_marketing` (Boolean). The helpers below
//! also accept what a `file.read` of a CSV produces: integer ids are read as text, integer
//! amounts as floats, `YYYY-MM-DD` text (optionally followed by a time) as dates, and
//! `true`/`false`/`yes`/`no` text as booleans.

mod affinity;
mod campaign;
mod classify;
mod deploy;
mod first_rows;
mod metrics;
mod no_products;
mod recommend;
mod retail_inputs;
pub(crate) mod tables;

pub use affinity::Affinity;
pub use campaign::Campaign;
pub use classify::Classify;
pub use deploy::Deploy;
pub use metrics::Metrics;
pub use recommend::{Recommend, harness as recommend_harness};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch,
};
use arrow_array::{StringArray, StringViewArray};
use arrow_schema::DataType;
use chrono::NaiveDate;

use flow_engine::data::Output;
use flow_engine::node::{Inputs, NodeError, ParamError, Params, Registry};

pub fn register(registry: &mut Registry) {
    registry
        .register(Metrics)
        .register(Affinity)
        .register(Classify);
    registry
        .register(Recommend)
        .register(Campaign)
        .register(Deploy);
}

/// The columns of a transactions table a node needs.
pub(crate) const TRANSACTION_COLUMNS: [&str; 4] = ["customer_id", "order_id", "date", "amount"];

/// Days since the Unix epoch of 1970-01-01 (the Date32 origin).
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Date32 day number of a date.
pub(crate) fn day_number(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// The date of a Date32 day number, as `YYYY-MM-DD`.
pub(crate) fn day_string(day: i32) -> String {
    (epoch() + chrono::Duration::days(i64::from(day)))
        .format("%Y-%m-%d")
        .to_string()
}

/// Parses `YYYY-MM-DD`, optionally followed by `T` or a space and a time (ignored).
pub(crate) fn parse_iso_day(text: &str) -> Option<i32> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .map(day_number)
}

/// An optional `YYYY-MM-DD` parameter as a Date32 day number. An empty value (a template that
/// rendered nothing, say) counts as absent.
pub(crate) fn date_param(params: &Params, name: &str) -> Result<Option<i32>, ParamError> {
    match params.opt_str(name)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            let trimmed = text.trim();
            let day = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .ok()
                .filter(|_| trimmed.len() == 10)
                .map(day_number);
            day.map(Some).ok_or_else(|| {
                ParamError::new(
                    name,
                    format!("`{text}` is not a date; write it as YYYY-MM-DD, e.g. 2024-06-30"),
                )
            })
        }
    }
}

/// Runs `compute` on the table in the `transactions` role (the node's only role: the engine
/// gives it to every input that is not a trigger's) off the async runtime, as the analyses are
/// CPU-bound. `node` names the node type in errors.
pub(crate) async fn on_transactions(
    inputs: &Inputs,
    node: &'static str,
    compute: impl FnOnce(&RecordBatch) -> Result<Output, NodeError> + Send + 'static,
) -> Result<Output, NodeError> {
    let batch = retail_inputs::ByRole::new(inputs, node)
        .require("transactions", &tables::transactions())?
        .clone();
    flow_engine::node::spawn_compute(move || compute(&batch))
        .await
        .map_err(|e| NodeError::msg(format!("{node} computation stopped: {e}")))?
}

/// A column by name; `None` when absent.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

/// The error for a required column that is absent, listing the columns present.
pub(crate) fn missing_column(batch: &RecordBatch, name: &str, purpose: &str) -> NodeError {
    let schema = batch.schema();
    let present: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    NodeError::msg(format!(
        "the input has no `{name}` column ({purpose}); its columns are: {}",
        if present.is_empty() {
            "(none)".to_string()
        } else {
            present.join(", ")
        }
    ))
}

/// Checks at validation time that upstream nodes declaring their columns provide `required`.
pub(crate) fn check_known_columns(
    known: Option<Vec<&str>>,
    required: &[&str],
    errors: &mut Vec<ParamError>,
) {
    let Some(known) = known else { return };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !known.contains(c))
        .collect();
    if !missing.is_empty() {
        errors.push(ParamError::node(format!(
            "the input has no column{} {}; its columns are: {}",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
}

fn bad_type(name: &str, data_type: &DataType, want: &str) -> NodeError {
    NodeError::msg(format!(
        "column `{name}` has type {data_type}; expected {want}"
    ))
}

/// A text column (integers and other scalars are converted to text).
pub(crate) enum TextColumn {
    Utf8(StringArray),
    View(StringViewArray),
    /// Dictionary-encoded text: each row holds the index of its value.
    Dict {
        keys: Int32Array,
        values: StringArray,
    },
}

impl TextColumn {
    /// For a dictionary-encoded column, row `i`'s key (`None` when null or not a dictionary):
    /// rows with the same key have the same value.
    #[inline]
    pub(crate) fn dict_key(&self, i: usize) -> Option<usize> {
        match self {
            TextColumn::Dict { keys, .. } => keys.is_valid(i).then(|| keys.value(i) as usize),
            _ => None,
        }
    }

    /// The number of distinct keys of a dictionary-encoded column (0 for others).
    pub(crate) fn dict_len(&self) -> usize {
        match self {
            TextColumn::Dict { values, .. } => values.len(),
            _ => 0,
        }
    }

    /// Whether some row has no value.
    pub(crate) fn has_nulls(&self) -> bool {
        match self {
            TextColumn::Utf8(a) => a.null_count() > 0,
            TextColumn::View(a) => a.null_count() > 0,
            TextColumn::Dict { keys, values } => keys.null_count() > 0 || values.null_count() > 0,
        }
    }

    /// Whether row `i` has a value; for a dictionary without null values, without reading it.
    #[inline]
    pub(crate) fn is_valid(&self, i: usize) -> bool {
        match self {
            TextColumn::Utf8(a) => a.is_valid(i),
            TextColumn::View(a) => a.is_valid(i),
            TextColumn::Dict { keys, values } => {
                keys.is_valid(i)
                    && (values.null_count() == 0 || values.is_valid(keys.value(i) as usize))
            }
        }
    }

    /// The value of row `i`, `None` when null.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        match self {
            TextColumn::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            TextColumn::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            TextColumn::Dict { values, .. } => {
                let k = self.dict_key(i)?;
                (!values.is_null(k)).then(|| values.value(k))
            }
        }
    }
}

/// A text column; `Ok(None)` when absent.
pub(crate) fn text_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<TextColumn>, NodeError> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    Ok(Some(match array.data_type() {
        DataType::Utf8 => TextColumn::Utf8(array.as_string::<i32>().clone()),
        DataType::Utf8View => TextColumn::View(array.as_string_view().clone()),
        DataType::Dictionary(key, value)
            if key.as_ref() == &DataType::Int32 && value.as_ref() == &DataType::Utf8 =>
        {
            let dict = array.as_dictionary::<Int32Type>();
            TextColumn::Dict {
                keys: dict.keys().clone(),
                values: dict.values().as_string::<i32>().clone(),
            }
        }
        DataType::Dictionary(_, _)
        | DataType::LargeUtf8
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Null => {
            let cast = arrow_cast::cast(array, &DataType::Utf8)
                .map_err(|_| bad_type(name, array.data_type(), "text"))?;
            TextColumn::Utf8(cast.as_string::<i32>().clone())
        }
        other => return Err(bad_type(name, other, "text (Utf8)")),
    }))
}

/// A numeric column as Float64; `Ok(None)` when absent.
pub(crate) fn f64_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<Float64Array>, NodeError> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let dt = array.data_type();
    if dt == &DataType::Float64 {
        return Ok(Some(array.as_primitive::<Float64Type>().clone()));
    }
    if dt.is_numeric() || dt == &DataType::Null {
        let cast = arrow_cast::cast(array, &DataType::Float64)
            .map_err(|_| bad_type(name, dt, "a number"))?;
        return Ok(Some(cast.as_primitive::<Float64Type>().clone()));
    }
    if matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        // Numbers as text: parse, failing on the first value that is not a number.
        let text = text_column(batch, name)?.expect("present");
        let mut values = Vec::with_capacity(array.len());
        for i in 0..array.len() {
            values.push(match text.get(i).map(str::trim) {
                None | Some("") => None,
                Some(s) => Some(s.parse::<f64>().map_err(|_| {
                    NodeError::msg(format!(
                        "column `{name}`, row {}: `{s}` is not a number",
                        i + 1
                    ))
                })?),
            });
        }
        return Ok(Some(Float64Array::from(values)));
    }
    Err(bad_type(name, dt, "a number (Float64)"))
}

/// A date column as Date32 day numbers; `Ok(None)` when absent. Text must be `YYYY-MM-DD`
/// (optionally followed by a time); an unparseable value is an error naming its row.
pub(crate) fn date_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<Date32Array>, NodeError> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let dt = array.data_type();
    match dt {
        DataType::Date32 => Ok(Some(array.as_primitive::<Date32Type>().clone())),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = text_column(batch, name)?.expect("present");
            let mut days = Vec::with_capacity(array.len());
            for i in 0..array.len() {
                days.push(match text.get(i) {
                    None => None,
                    Some(s) if s.trim().is_empty() => None,
                    Some(s) => Some(parse_iso_day(s).ok_or_else(|| {
                        NodeError::msg(format!(
                            "column `{name}`, row {}: `{s}` is not a date (expected YYYY-MM-DD)",
                            i + 1
                        ))
                    })?),
                });
            }
            Ok(Some(Date32Array::from(days)))
        }
        DataType::Date64 | DataType::Timestamp(_, _) | DataType::Null => {
            let cast = arrow_cast::cast(array, &DataType::Date32)
                .map_err(|_| bad_type(name, dt, "a date"))?;
            Ok(Some(cast.as_primitive::<Date32Type>().clone()))
        }
        other => Err(bad_type(name, other, "a date (Date32 or YYYY-MM-DD text)")),
    }
}

/// A boolean column; text such as `true`/`false`/`yes`/`no`/`1`/`0` is converted and other
/// text becomes null (unknown). `Ok(None)` when absent.
pub(crate) fn bool_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<BooleanArray>, NodeError> {
    let Some(array) = column(batch, name) else {
        return Ok(None);
    };
    let dt = array.data_type();
    if dt == &DataType::Boolean {
        return Ok(Some(array.as_boolean().clone()));
    }
    let cast =
        arrow_cast::cast(array, &DataType::Boolean).map_err(|_| bad_type(name, dt, "a boolean"))?;
    Ok(Some(cast.as_boolean().clone()))
}

/// Interns strings to dense indices in first-seen order, with a fast path for a value equal
/// to the previous one (rows of one order or one customer usually come together).
pub(crate) struct Interner<'a> {
    map: std::collections::HashMap<&'a str, u32, FastHash>,
    names: Vec<&'a str>,
    last: Option<(&'a str, u32)>,
}

impl<'a> Interner<'a> {
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An interner sized for about `capacity` distinct strings.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Interner {
            map: std::collections::HashMap::with_capacity_and_hasher(capacity, FastHash),
            names: Vec::with_capacity(capacity),
            last: None,
        }
    }

    #[inline]
    pub(crate) fn intern(&mut self, s: &'a str) -> u32 {
        if let Some((last, id)) = self.last
            && last == s
        {
            return id;
        }
        let next = self.names.len() as u32;
        let id = *self.map.entry(s).or_insert(next);
        if id == next {
            self.names.push(s);
        }
        self.last = Some((s, id));
        id
    }

    /// The interned strings, by index.
    pub(crate) fn into_names(self) -> Vec<&'a str> {
        self.names
    }
}

/// Interns a text column's values row by row. A dictionary-encoded column's values are hashed
/// once each and then found by their key, so rows cost an array lookup, not a string hash.
pub(crate) struct RowInterner<'a> {
    column: &'a TextColumn,
    interner: Interner<'a>,
    /// Per dictionary key, its interned index (`u32::MAX`: not seen yet).
    by_key: Vec<u32>,
}

impl<'a> RowInterner<'a> {
    /// An interner for `column`, sized for about `capacity` distinct values.
    pub(crate) fn new(column: &'a TextColumn, capacity: usize) -> Self {
        RowInterner {
            column,
            interner: Interner::with_capacity(capacity),
            by_key: vec![u32::MAX; column.dict_len()],
        }
    }

    /// The index of row `i`'s value, `None` when null.
    #[inline]
    pub(crate) fn intern(&mut self, i: usize) -> Option<u32> {
        match self.column {
            TextColumn::Dict { values, .. } => {
                let k = self.column.dict_key(i)?;
                if values.is_null(k) {
                    return None;
                }
                let slot = &mut self.by_key[k];
                if *slot == u32::MAX {
                    *slot = self.interner.intern(values.value(k));
                }
                Some(*slot)
            }
            column => column.get(i).map(|v| self.interner.intern(v)),
        }
    }

    /// The interned values, by index.
    pub(crate) fn into_names(self) -> Vec<&'a str> {
        self.interner.into_names()
    }
}

/// A text column's usable values (not null, not empty) as numbers: for a dictionary-encoded
/// column its keys, so a row is read without touching the text; for others the row.
pub(crate) struct TextCodes<'a> {
    column: &'a TextColumn,
    /// For a dictionary, whether each value is usable.
    usable: Vec<bool>,
}

impl<'a> TextCodes<'a> {
    pub(crate) fn new(column: &'a TextColumn) -> Self {
        let usable = match column {
            TextColumn::Dict { values, .. } => (0..values.len())
                .map(|k| values.is_valid(k) && !values.value(k).is_empty())
                .collect(),
            _ => Vec::new(),
        };
        TextCodes { column, usable }
    }

    /// The number of row `row`'s value, `None` when it is null or empty.
    #[inline]
    pub(crate) fn code(&self, row: usize) -> Option<u32> {
        match self.column {
            TextColumn::Dict { .. } => {
                let k = self.column.dict_key(row)?;
                self.usable[k].then_some(k as u32)
            }
            column => column
                .get(row)
                .is_some_and(|v| !v.is_empty())
                .then_some(row as u32),
        }
    }

    /// The text numbered `code`.
    pub(crate) fn text(&self, code: u32) -> &'a str {
        match self.column {
            TextColumn::Dict { values, .. } => values.value(code as usize),
            column => column.get(code as usize).unwrap_or(""),
        }
    }
}

/// A permutation that sorts `names`, and its inverse: `rank[old index] = new index`. Equal
/// names keep their order.
///
/// The names are sorted by their first 8 bytes as one integer, which settles most comparisons
/// without reading the strings, and a large list in halves on two threads when a core is
/// free for the second, then merged.
pub(crate) fn sorted_ranks(names: &[&str]) -> (Vec<u32>, Vec<u32>) {
    let cores = flow_engine::node::spare_cores(if names.len() < 200_000 { 1 } else { 2 });
    sorted_ranks_on(names, cores.threads())
}

/// [`sorted_ranks`] on one thread, or on two when `threads` is 2 or more.
fn sorted_ranks_on(names: &[&str], threads: usize) -> (Vec<u32>, Vec<u32>) {
    let keyed: Vec<(u64, u32)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name_prefix(name), i as u32))
        .collect();
    let less = |a: &(u64, u32), b: &(u64, u32)| {
        a.0.cmp(&b.0)
            .then_with(|| names[a.1 as usize].cmp(names[b.1 as usize]))
            .then(a.1.cmp(&b.1))
            .is_lt()
    };
    let sort = |part: &mut [(u64, u32)]| {
        part.sort_unstable_by(|a, b| {
            if less(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
    };
    let order: Vec<u32> = if threads < 2 {
        let mut keyed = keyed;
        sort(&mut keyed);
        keyed.into_iter().map(|(_, i)| i).collect()
    } else {
        let mut keyed = keyed;
        let (left, right) = keyed.split_at_mut(names.len() / 2);
        std::thread::scope(|scope| {
            scope.spawn(|| sort(left));
            sort(right);
        });
        let (mut l, mut r) = (0, 0);
        let mut order = Vec::with_capacity(names.len());
        while l < left.len() && r < right.len() {
            if less(&right[r], &left[l]) {
                order.push(right[r].1);
                r += 1;
            } else {
                order.push(left[l].1);
                l += 1;
            }
        }
        order.extend(left[l..].iter().chain(&right[r..]).map(|&(_, i)| i));
        order
    };
    let mut rank = vec![0u32; names.len()];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    (order, rank)
}

/// The first 8 bytes of `name` as a big-endian integer, zero-padded: a smaller prefix means a
/// smaller name.
fn name_prefix(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut prefix = [0u8; 8];
    let n = bytes.len().min(8);
    prefix[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(prefix)
}

/// A fast hasher for the ids of the workflow's own data (no untrusted-input concern for a batch
/// job). rustc-hash 2 mixes every input bit into the bits a hash table indexes with, so ids that
/// differ only in their last characters (`C0000001`, `C0000002`, ...) do not collide.
pub(crate) use first_rows::FirstRows;
pub(crate) use rustc_hash::FxBuildHasher as FastHash;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn dictionary_text_reads_as_text_and_interns_a_repeated_value_once() {
        // `b` twice in the dictionary (as after joining two tables), a null key and a null value.
        let values = StringArray::from(vec![Some("b"), Some("a"), Some("b"), None]);
        let keys = Int32Array::from(vec![Some(0), Some(1), None, Some(2), Some(3), Some(0)]);
        let dict = arrow_array::DictionaryArray::try_new(keys, Arc::new(values)).unwrap();
        let batch = RecordBatch::try_from_iter([("id", Arc::new(dict) as ArrayRef)]).unwrap();
        let column = text_column(&batch, "id").unwrap().unwrap();
        assert!(matches!(column, TextColumn::Dict { .. }));
        let read: Vec<Option<&str>> = (0..6).map(|i| column.get(i)).collect();
        assert_eq!(
            read,
            [Some("b"), Some("a"), None, Some("b"), None, Some("b")]
        );
        let valid: Vec<bool> = (0..6).map(|i| column.is_valid(i)).collect();
        assert_eq!(valid, read.iter().map(Option::is_some).collect::<Vec<_>>());
        let mut interner = RowInterner::new(&column, 4);
        let ids: Vec<Option<u32>> = (0..6).map(|i| interner.intern(i)).collect();
        assert_eq!(ids, [Some(0), Some(1), None, Some(0), None, Some(0)]);
        assert_eq!(interner.into_names(), ["b", "a"]);
        // The same values as plain text intern the same way.
        let plain = TextColumn::Utf8(read.iter().copied().collect());
        let mut interner = RowInterner::new(&plain, 4);
        let plain_ids: Vec<Option<u32>> = (0..6).map(|i| interner.intern(i)).collect();
        assert_eq!(plain_ids, ids);
    }

    #[test]
    fn converts_csv_style_columns() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("customer_id", DataType::Int64, true),
                Field::new("date", DataType::Utf8, true),
                Field::new("amount", DataType::Int64, true),
                Field::new("accepts_marketing", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![
                    Some("2024-03-01"),
                    Some("2024-03-02T10:00:00"),
                ])),
                Arc::new(Int64Array::from(vec![3, -2])),
                Arc::new(StringArray::from(vec![Some("yes"), Some("maybe")])),
            ],
        )
        .unwrap();
        let ids = text_column(&batch, "customer_id").unwrap().unwrap();
        assert_eq!((ids.get(0), ids.get(1)), (Some("7"), None));
        let days = date_column(&batch, "date").unwrap().unwrap();
        assert_eq!(day_string(days.value(0)), "2024-03-01");
        assert_eq!(day_string(days.value(1)), "2024-03-02");
        let amounts = f64_column(&batch, "amount").unwrap().unwrap();
        assert_eq!(amounts.values().to_vec(), vec![3.0, -2.0]);
        let marketing = bool_column(&batch, "accepts_marketing").unwrap().unwrap();
        assert!(marketing.value(0) && marketing.is_null(1));
        assert!(text_column(&batch, "email").unwrap().is_none());

        let bad = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("date", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec![
                "2024-03-01",
                "03/02/2024",
            ]))],
        )
        .unwrap();
        let err = date_column(&bad, "date").err().unwrap().to_string();
        assert!(err.contains("row 2") && err.contains("03/02/2024"), "{err}");
    }

    #[test]
    fn interner_and_ranks() {
        let mut i = Interner::new();
        let ids: Vec<u32> = ["b", "b", "a", "c", "a", "b"]
            .iter()
            .map(|s| i.intern(s))
            .collect();
        assert_eq!(ids, vec![0, 0, 1, 2, 1, 0]);
        let names = i.into_names();
        assert_eq!(names, vec!["b", "a", "c"]);
        let (order, rank) = sorted_ranks(&names);
        assert_eq!(order, vec![1, 0, 2]);
        assert_eq!(rank, vec![1, 0, 2]);
    }

    #[test]
    fn ranks_of_a_long_list_are_those_of_a_plain_stable_sort() {
        // Long enough to be sorted on two threads; ids sharing their first 8 bytes, shorter ids,
        // NUL bytes (where the zero padding of the prefix ties), non-ASCII and repeats.
        let mut texts: Vec<String> = (0..240_000u32)
            .map(|i| match i % 6 {
                0 => format!("CUSTOMER-{:07}", i.wrapping_mul(2_654_435_761) % 1_000_000),
                1 => format!("C{}", i % 977),
                2 => format!("ab\0{}", i % 13),
                3 => format!("é{}", i % 5000),
                4 => "ab".to_string(),
                _ => format!("{:x}", i.wrapping_mul(40_503)),
            })
            .collect();
        texts.push(String::new());
        let names: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut expected: Vec<u32> = (0..names.len() as u32).collect();
        expected.sort_by(|&a, &b| names[a as usize].cmp(names[b as usize]));
        for threads in [1, 2] {
            let (order, rank) = sorted_ranks_on(&names, threads);
            assert_eq!(order, expected, "{threads} threads");
            for (new, &old) in order.iter().enumerate() {
                assert_eq!(rank[old as usize], new as u32);
            }
        }
        let few = &names[..1000];
        let mut expected: Vec<u32> = (0..1000).collect();
        expected.sort_by(|&a, &b| few[a as usize].cmp(few[b as usize]));
        assert_eq!(sorted_ranks(few).0, expected);
    }

    #[test]
    fn date_params() {
        let values = serde_json::json!({
            "d": "2024-02-29", "bad": "2024-02-30", "loose": "2024-2-1", "e": " "
        });
        let params = Params::new(values.as_object().unwrap().clone(), ".");
        assert_eq!(
            date_param(&params, "d").unwrap().map(day_string).as_deref(),
            Some("2024-02-29")
        );
        assert!(date_param(&params, "bad").is_err());
        assert!(date_param(&params, "loose").is_err());
        assert_eq!(date_param(&params, "absent").unwrap(), None);
        assert_eq!(date_param(&params, "e").unwrap(), None);
    }
}
