//! How many distinct orders each customer placed.

use crate::segmentation::{FirstRows, TextColumn};

/// Per customer (by the index `rank` gives), the number of distinct order ids among the rows
/// `row_customer` keeps (`u32::MAX`: not kept).
///
/// Counting distinct ids means a hash table as large as the number of orders, whose random
/// accesses dominate. The work is split over the cores by the id's hash: each thread numbers
/// only the ids in its share and counts them, so every order is counted by exactly one thread
/// and the sums are what one thread would count.
pub(super) fn distinct_orders(
    order: &TextColumn,
    row_customer: &[u32],
    rank: &[u32],
    n_customers: usize,
) -> Vec<u32> {
    let threads = super::worker_threads();
    let counts: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|share| {
                scope.spawn(move || {
                    count_share(order, row_customer, rank, n_customers, share, threads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an order-counting thread panicked"))
            .collect()
    });
    let mut total = vec![0u32; n_customers];
    for part in &counts {
        for (t, c) in total.iter_mut().zip(part) {
            *t += c;
        }
    }
    total
}

/// The distinct orders per customer among the ids whose hash is `share` modulo `shares`.
fn count_share(
    order: &TextColumn,
    row_customer: &[u32],
    rank: &[u32],
    n_customers: usize,
    share: usize,
    shares: usize,
) -> Vec<u32> {
    let mut ids = FirstRows::with_capacity(order, row_customer.len() / 2 / shares);
    let mut pairs: Vec<u64> = Vec::with_capacity(row_customer.len() / shares + 1024);
    // The lines of an order come one after another: the previous row's id and whether it is
    // in this share.
    let mut last: Option<(&str, Option<u32>)> = None;
    for (i, &old) in row_customer.iter().enumerate() {
        if old == u32::MAX {
            continue;
        }
        let Some(o) = order.get(i) else { continue };
        let id = match last {
            Some((l, id)) if l == o => id,
            _ => {
                let hash = FirstRows::hash(o);
                let mine = hash % shares as u64 == share as u64;
                let id = mine.then(|| ids.first_hashed(i, o, hash));
                last = Some((o, id));
                id
            }
        };
        if let Some(id) = id {
            pairs.push((u64::from(rank[old as usize]) << 32) | u64::from(id));
        }
    }
    drop(ids);
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0u32; n_customers];
    for key in &pairs {
        counts[(key >> 32) as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn each_customers_distinct_orders_are_counted_once_whatever_the_share() {
        // Orders repeated next to each other and far apart, shared by two customers, and rows
        // left out; against a plain count, for one share and for several.
        let orders = ["o1", "o1", "o2", "o3", "o1", "o2", "o4", "o4", "o5", "o3"];
        let row_customer = [0, 0, 1, 0, 0, 1, u32::MAX, 2, 2, 1];
        let rank = [2, 0, 1];
        let column = TextColumn::Utf8(StringArray::from(orders.to_vec()));
        let expected = {
            let mut seen = std::collections::BTreeSet::new();
            let mut counts = vec![0u32; 3];
            for (i, &c) in row_customer.iter().enumerate() {
                if c != u32::MAX && seen.insert((rank[c as usize], orders[i])) {
                    counts[rank[c as usize] as usize] += 1;
                }
            }
            counts
        };
        assert_eq!(expected, [2, 2, 2]);
        for shares in 1..=4 {
            let counts: Vec<u32> = (0..shares)
                .map(|share| count_share(&column, &row_customer, &rank, 3, share, shares))
                .fold(vec![0; 3], |acc, part| {
                    acc.iter().zip(&part).map(|(a, b)| a + b).collect()
                });
            assert_eq!(counts, expected, "{shares} shares");
        }
        assert_eq!(distinct_orders(&column, &row_customer, &rank, 3), expected);
    }
}
