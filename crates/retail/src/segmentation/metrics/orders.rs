//! How many distinct orders each customer placed.

use crate::segmentation::{FirstRows, TextColumn};

/// Per customer, the number of distinct order ids among the rows `row_customer` gives a
/// customer (`u32::MAX`: not kept).
///
/// Each thread takes a range of customers: it lists their (customer, hash of the order id,
/// row) triples, one per run of rows of the same order, sorts them and counts the distinct
/// ids in each customer's equal hashes. Sorting small keys beats a hash table as large as
/// the orders, whose random accesses dominated; ids whose hashes collide are told apart by
/// comparing the ids themselves, so the counts are exact.
pub(super) fn distinct_orders(
    order: &TextColumn,
    row_customer: &[u32],
    n_customers: usize,
) -> Vec<u32> {
    let cores = super::step_cores();
    let threads = cores.threads().min(n_customers.max(1));
    let per_thread = n_customers.div_ceil(threads) as u32;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u32)
            .map(|k| {
                let customers = k * per_thread..((k + 1) * per_thread).min(n_customers as u32);
                scope.spawn(move || count_range(order, row_customer, customers, FirstRows::hash))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an order-counting thread panicked"))
            .collect()
    })
}

/// The distinct orders of the customers in `customers`, one count each, with the ids hashed
/// by `hash`.
fn count_range(
    order: &TextColumn,
    row_customer: &[u32],
    customers: std::ops::Range<u32>,
    hash: impl Fn(&str) -> u64,
) -> Vec<u32> {
    // (customer in the range, hash, row) packed so that sorting the numbers sorts the triples.
    let mut keys: Vec<u128> = Vec::new();
    let mut last: Option<(u32, &str)> = None;
    for (i, &customer) in row_customer.iter().enumerate() {
        if !customers.contains(&customer) {
            continue;
        }
        let Some(id) = order.get(i) else { continue };
        // The lines of an order come one after another: one key per run.
        if last == Some((customer, id)) {
            continue;
        }
        last = Some((customer, id));
        let local = u128::from(customer - customers.start);
        keys.push((local << 96) | (u128::from(hash(id)) << 32) | i as u128);
    }
    keys.sort_unstable();
    let mut counts = vec![0u32; customers.len()];
    let mut ids: Vec<&str> = Vec::new();
    for same_hash in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
        let customer = (same_hash[0] >> 96) as usize;
        if let [_] = same_hash {
            counts[customer] += 1;
            continue;
        }
        // The same order in runs apart, or ids whose hashes collide.
        ids.clear();
        for &key in same_hash {
            let id = order.get(key as u32 as usize).unwrap_or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        counts[customer] += ids.len() as u32;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn each_customers_distinct_orders_are_counted_once_whatever_the_split() {
        // Orders repeated next to each other and far apart, shared by two customers, and rows
        // left out; against a plain count, for every split of the customers and with a hash
        // under which every id collides.
        let orders = ["o1", "o1", "o2", "o3", "o1", "o2", "o4", "o4", "o5", "o3"];
        let row_customer = [2, 2, 0, 2, 2, 0, u32::MAX, 1, 1, 0];
        let column = TextColumn::Utf8(StringArray::from(orders.to_vec()));
        let expected = {
            let mut seen = std::collections::BTreeSet::new();
            let mut counts = vec![0u32; 3];
            for (i, &c) in row_customer.iter().enumerate() {
                if c != u32::MAX && seen.insert((c, orders[i])) {
                    counts[c as usize] += 1;
                }
            }
            counts
        };
        assert_eq!(expected, [2, 2, 2]);
        for split in 0..=3 {
            for hash in [FirstRows::hash, |_: &str| 7] {
                let mut counts = count_range(&column, &row_customer, 0..split, hash);
                counts.extend(count_range(&column, &row_customer, split..3, hash));
                assert_eq!(counts, expected, "split at {split}");
            }
        }
        assert_eq!(distinct_orders(&column, &row_customer, 3), expected);
        assert!(distinct_orders(&column, &[], 0).is_empty());
    }
}
