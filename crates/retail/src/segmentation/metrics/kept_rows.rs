//! Which rows the metrics use, and whose they are.

use arrow_array::{Array, Date32Array, Float64Array};

use crate::segmentation::{RowInterner, TextColumn, sorted_ranks};
use flow_engine::node::NodeError;

/// The rows the metrics use: per row the customer's number (`u32::MAX`: left out), the
/// customers' ids by number (numbered in id order: byte order, each id once), and how many
/// rows were left out for being dated after the end and for a missing value.
pub(super) struct KeptRows<'a> {
    pub(super) row_customer: Vec<u32>,
    pub(super) names: Vec<&'a str>,
    pub(super) after: u64,
    pub(super) missing: u64,
}

/// The columns a row needs.
#[derive(Clone, Copy)]
pub(super) struct Columns<'a> {
    pub(super) customer: &'a TextColumn,
    pub(super) order: &'a TextColumn,
    pub(super) date: &'a Date32Array,
    pub(super) amount: &'a Float64Array,
}

/// What a chunk of rows found: the dictionary keys its rows use, and its counts.
struct Chunk {
    used: Vec<bool>,
    after: u64,
    missing: u64,
}

enum Row {
    Kept,
    After,
    Missing,
}

impl Columns<'_> {
    fn row(&self, i: usize, end: i32) -> Result<Row, NodeError> {
        if !self.customer.is_valid(i)
            || !self.order.is_valid(i)
            || !self.date.is_valid(i)
            || !self.amount.is_valid(i)
        {
            return Ok(Row::Missing);
        }
        let a = self.amount.value(i);
        if !a.is_finite() {
            return Err(NodeError::msg(format!(
                "column `amount`, row {}: {a} is not a finite amount",
                i + 1
            )));
        }
        Ok(if self.date.value(i) > end {
            Row::After
        } else {
            Row::Kept
        })
    }
}

/// Sorts the rows up to `end` into kept and left out, and numbers the customers of the kept
/// ones in id order. The first row whose amount is not finite is an error.
pub(super) fn kept_rows<'a>(cols: Columns<'a>, end: i32) -> Result<KeptRows<'a>, NodeError> {
    match cols.customer {
        TextColumn::Dict { values, .. } => by_dictionary_key(cols, values, end),
        _ => one_by_one(cols, end),
    }
}

/// Row by row, each customer id hashed.
fn one_by_one<'a>(cols: Columns<'a>, end: i32) -> Result<KeptRows<'a>, NodeError> {
    let n_rows = cols.amount.len();
    let mut customers = RowInterner::new(cols.customer, n_rows / 16);
    let mut row_customer = vec![u32::MAX; n_rows];
    let (mut after, mut missing) = (0u64, 0u64);
    for (i, slot) in row_customer.iter_mut().enumerate() {
        match cols.row(i, end)? {
            Row::Missing => missing += 1,
            Row::After => after += 1,
            Row::Kept => *slot = customers.intern(i).expect("a customer, checked above"),
        }
    }
    // Renumbered in id order.
    let seen = customers.into_names();
    let (order, rank) = sorted_ranks(&seen);
    for slot in row_customer.iter_mut().filter(|s| **s != u32::MAX) {
        *slot = rank[*slot as usize];
    }
    Ok(KeptRows {
        row_customer,
        names: order.iter().map(|&i| seen[i as usize]).collect(),
        after,
        missing,
    })
}

/// For a dictionary-encoded customer column: the rows are read on every core, each noting the
/// dictionary keys its rows use; only the ids of the keys used are then sorted, and numbered
/// in that order (a dictionary may hold one id under several keys: they get one number).
fn by_dictionary_key<'a>(
    cols: Columns<'a>,
    values: &'a arrow_array::StringArray,
    end: i32,
) -> Result<KeptRows<'a>, NodeError> {
    let n_rows = cols.amount.len();
    let chunk_for =
        |cores: &flow_engine::node::SpareCores| n_rows.div_ceil(cores.threads()).max(1 << 16);
    let cores = super::step_cores();
    let chunk = chunk_for(&cores);
    let mut row_customer = vec![u32::MAX; n_rows];
    // Per chunk, in row order: what it found, or its first error.
    let chunks: Vec<Result<Chunk, NodeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = row_customer
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, slots)| {
                scope.spawn(move || {
                    let mut used = vec![false; values.len()];
                    let (mut after, mut missing) = (0u64, 0u64);
                    for (j, slot) in slots.iter_mut().enumerate() {
                        let i = c * chunk + j;
                        match cols.row(i, end)? {
                            Row::Missing => missing += 1,
                            Row::After => after += 1,
                            Row::Kept => {
                                let k = cols.customer.dict_key(i).expect("valid, checked above");
                                used[k] = true;
                                *slot = k as u32;
                            }
                        }
                    }
                    Ok(Chunk {
                        used,
                        after,
                        missing,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let (mut used, mut after, mut missing) = (vec![false; values.len()], 0u64, 0u64);
    for result in chunks {
        // The chunks are in row order: the first error is the first row's.
        let chunk = result?;
        for (u, t) in used.iter_mut().zip(chunk.used) {
            *u |= t;
        }
        after += chunk.after;
        missing += chunk.missing;
    }
    // The sort takes the cores it finds free.
    drop(cores);
    let keys: Vec<usize> = (0..values.len()).filter(|&k| used[k]).collect();
    let ids: Vec<&str> = keys.iter().map(|&k| values.value(k)).collect();
    let (order, _) = sorted_ranks(&ids);
    let mut number = vec![u32::MAX; values.len()];
    let mut names: Vec<&str> = Vec::with_capacity(ids.len());
    for &i in &order {
        let id = ids[i as usize];
        if names.last() != Some(&id) {
            names.push(id);
        }
        number[keys[i as usize]] = names.len() as u32 - 1;
    }
    let cores = super::step_cores();
    let chunk = chunk_for(&cores);
    std::thread::scope(|scope| {
        for slots in row_customer.chunks_mut(chunk) {
            let number = &number;
            scope.spawn(move || {
                for slot in slots.iter_mut().filter(|s| **s != u32::MAX) {
                    *slot = number[*slot as usize];
                }
            });
        }
    });
    drop(cores);
    Ok(KeptRows {
        row_customer,
        names,
        after,
        missing,
    })
}
