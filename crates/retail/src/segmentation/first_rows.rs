//! The values of a text column named by the first row that holds each.

use std::hash::BuildHasher;

use super::{FastHash, TextColumn};

/// The values of a text column, each named by the first row offered that holds it. Only those
/// row numbers are kept, four bytes per distinct value, while the strings stay in the column:
/// for millions of order ids a fraction of a map from each id to a number, which also grew by
/// doubling and held both tables while it did. Rows are offered in ascending order, so the
/// names ascend by first appearance and group rows exactly as numbering the values in
/// first-seen order would. Row numbers are `u32`, like the other per-row indices here.
pub(crate) struct FirstRows<'c> {
    column: &'c TextColumn,
    rows: hashbrown::HashTable<u32>,
    /// The previous value and its name: the lines of an order come together.
    last: Option<(&'c str, u32)>,
}

impl<'c> FirstRows<'c> {
    pub(crate) fn new(column: &'c TextColumn) -> Self {
        Self::with_capacity(column, 0)
    }

    /// Room for about `capacity` distinct values.
    pub(crate) fn with_capacity(column: &'c TextColumn, capacity: usize) -> Self {
        FirstRows {
            column,
            rows: hashbrown::HashTable::with_capacity(capacity),
            last: None,
        }
    }

    /// The hash [`FirstRows::first_hashed`] takes.
    #[inline]
    pub(crate) fn hash(value: &str) -> u64 {
        FastHash.hash_one(value)
    }

    /// The first row holding `value`, the value of row `row`.
    #[inline]
    pub(crate) fn first(&mut self, row: usize, value: &'c str) -> u32 {
        if let Some((last, first)) = self.last
            && last == value
        {
            return first;
        }
        let first = self.first_hashed(row, value, Self::hash(value));
        self.last = Some((value, first));
        first
    }

    /// [`FirstRows::first`] for a caller that has hashed `value` already.
    #[inline]
    pub(crate) fn first_hashed(&mut self, row: usize, value: &str, hash: u64) -> u32 {
        let column = self.column;
        let at = |r: u32| column.get(r as usize).unwrap_or_default();
        *self
            .rows
            .entry(hash, |&r| at(r) == value, |&r| Self::hash(at(r)))
            .or_insert(row as u32)
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn each_value_is_named_by_its_first_row_however_often_and_far_apart_it_comes() {
        let values = ["o1", "o1", "o2", "o3", "o1", "o2", "o9", "o9", "o3"];
        let column = TextColumn::Utf8(StringArray::from(values.to_vec()));
        let mut rows = FirstRows::new(&column);
        let names: Vec<u32> = (0..values.len())
            .map(|i| rows.first(i, column.get(i).unwrap()))
            .collect();
        assert_eq!(names, [0, 0, 2, 3, 0, 2, 6, 6, 3]);
        // Enough values to make the table grow several times, each looked up again after.
        let many: Vec<String> = (0..5_000).map(|i| format!("order-{}", i % 1_700)).collect();
        let column = TextColumn::Utf8(StringArray::from(many.clone()));
        let mut rows = FirstRows::new(&column);
        for (i, v) in many.iter().enumerate() {
            let hash = FirstRows::hash(v);
            assert_eq!(rows.first_hashed(i, v, hash), (i % 1_700) as u32, "row {i}");
        }
    }
}
