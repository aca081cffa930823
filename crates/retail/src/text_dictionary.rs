//! A dictionary-encoded text column built row by row: each distinct value is stored once and
//! each row holds a 4-byte key, so a column of a few thousand product names over millions of
//! rows costs the rows' keys, not millions of copies of the names.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder as _, Int32Builder, StringBuilder};
use arrow_array::{ArrayRef, DictionaryArray};
use rustc_hash::FxHashMap as HashMap;

/// Distinct values numbered in the order they are first keyed, and each row's key.
#[derive(Default)]
pub(crate) struct TextDictionary {
    index: HashMap<Box<str>, i32>,
    values: StringBuilder,
    pub(crate) rows: Int32Builder,
}

impl TextDictionary {
    /// Room for `rows` rows.
    pub(crate) fn with_rows(rows: usize) -> Self {
        TextDictionary {
            rows: Int32Builder::with_capacity(rows),
            ..Self::default()
        }
    }

    /// The key of `value`, adding it to the values when new.
    pub(crate) fn key(&mut self, value: &str) -> i32 {
        if let Some(&k) = self.index.get(value) {
            return k;
        }
        let k = self.values.len() as i32;
        self.index.insert(value.into(), k);
        self.values.append_value(value);
        k
    }

    /// A row holding `value`.
    pub(crate) fn append(&mut self, value: &str) {
        let k = self.key(value);
        self.rows.append_value(k);
    }

    /// The key of a value the caller knows is new and will not look up again: it is stored
    /// without being indexed (a column of ids, each on a run of rows).
    pub(crate) fn key_unindexed(&mut self, value: &str) -> i32 {
        let k = self.values.len() as i32;
        self.values.append_value(value);
        k
    }

    pub(crate) fn finish(mut self) -> Result<ArrayRef, arrow_schema::ArrowError> {
        Ok(Arc::new(DictionaryArray::try_new(
            self.rows.finish(),
            Arc::new(self.values.finish()),
        )?))
    }
}
