//! Offline evaluation of top-k recommendations by a time split, and two baselines to beat.
//!
//! # The split
//! Purchases carry a day number. With a cut-off day `c` and a holdout of `h` days, a customer's
//! *history* is the distinct items bought on days `<= c` and the *relevant* set is the distinct
//! items bought on days in `(c, c + h]`. Two targets:
//!
//! - [`Target::NewItems`]: relevant items exclude the history (what a customer will buy that
//!   they never bought before). Every method is scored against the same sets, and a method's
//!   items already in the history can never hit, so methods that recommend only new items
//!   (every baseline here, every strategy but replenishment) are compared on equal terms.
//! - [`Target::Repurchases`]: relevant items are those of the history bought again; the target
//!   of a method that recommends already bought items (replenishment).
//!
//! A customer is *scored* when they have at least one purchase on or before the cut-off and at
//! least one relevant item.
//!
//! # Metrics at k (means over the scored customers)
//! With `R` the relevant set and `L` the first `k` recommended items (distinct):
//! - hit rate: the share of customers with `|L ∩ R| >= 1`;
//! - precision: `|L ∩ R| / k` (a list shorter than `k` still divides by `k`);
//! - recall: `|L ∩ R| / |R|`;
//! - NDCG: `DCG / IDCG` with `DCG = Σ_{r: L_r ∈ R} 1 / log2(r + 1)` over ranks `r = 1..k` and
//!   `IDCG = Σ_{r=1..min(k, |R|)} 1 / log2(r + 1)` (binary relevance, Järvelin & Kekäläinen
//!   2002).
//!
//! # Baselines
//! - [`popularity`]: items ranked by the number of distinct customers who bought them in the
//!   `window` days up to the cut-off (`(c − window, c]`), ties by item id ascending; each
//!   customer gets the first `k` not in their history ([`top_unseen`]).
//! - [`CoOccurrence`]: item-to-item collaborative filtering (Linden, Smith & York 2003) over the
//!   binary customer × item matrix of the histories: `cos(i, j) = n_ij / sqrt(n_i n_j)`, `n_ij`
//!   the customers who bought both, `n_i` those who bought `i`. A customer's score of an item
//!   `j` outside the history `H` is `Σ_{i ∈ H} cos(i, j)`; items with a positive score, best
//!   first, ties by item id ascending; no backfill (a list may be shorter than `k`). This is
//!   what `implicit`'s `CosineRecommender` with an unbounded `K` and a binary matrix computes.
//!
//! Everything is deterministic: ties always go to the lower item id.

/// One purchase: a customer bought an item on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// Customer id.
    pub customer: u32,
    /// Item id (dense: below the item count given to the baselines).
    pub item: u32,
    /// Day number (any epoch).
    pub day: i32,
}

/// What counts as relevant in the holdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Items bought in the holdout and never before the cut-off.
    NewItems,
    /// Items bought in the holdout that were also bought before the cut-off.
    Repurchases,
}

/// The scored customers of a split, ascending by customer id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalSet {
    /// Customer ids.
    pub customers: Vec<u32>,
    /// Per customer: distinct items bought on or before the cut-off, ascending.
    pub history: Vec<Vec<u32>>,
    /// Per customer: the relevant items, ascending (never empty).
    pub relevant: Vec<Vec<u32>>,
}

/// Every customer's history: `(customer, distinct items bought on or before cutoff)`, both
/// ascending; customers without such purchases are absent.
pub fn histories(purchases: &[Purchase], cutoff: i32) -> Vec<(u32, Vec<u32>)> {
    let mut pairs: Vec<(u32, u32)> = purchases
        .iter()
        .filter(|p| p.day <= cutoff)
        .map(|p| (p.customer, p.item))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for (c, i) in pairs {
        match out.last_mut() {
            Some((last, items)) if *last == c => items.push(i),
            _ => out.push((c, vec![i])),
        }
    }
    out
}

/// Splits purchases at `cutoff` with a holdout of `holdout_days` (see the module docs).
pub fn split(purchases: &[Purchase], cutoff: i32, holdout_days: i32, target: Target) -> EvalSet {
    let end = cutoff.saturating_add(holdout_days.max(0));
    // (customer, item, in holdout)
    let mut keyed: Vec<(u32, u32, bool)> = purchases
        .iter()
        .filter(|p| p.day <= end)
        .map(|p| (p.customer, p.item, p.day > cutoff))
        .collect();
    keyed.sort_unstable();
    keyed.dedup();
    let mut set = EvalSet::default();
    let mut at = 0;
    while at < keyed.len() {
        let c = keyed[at].0;
        let mut next = at;
        while next < keyed.len() && keyed[next].0 == c {
            next += 1;
        }
        let (mut history, mut relevant) = (Vec::new(), Vec::new());
        let rows = &keyed[at..next];
        let mut j = 0;
        while j < rows.len() {
            let item = rows[j].1;
            // Sorted: (item, false) before (item, true).
            let before = !rows[j].2;
            let after = rows[j..].iter().take(2).any(|r| r.1 == item && r.2);
            if before {
                history.push(item);
            }
            let wanted = match target {
                Target::NewItems => after && !before,
                Target::Repurchases => after && before,
            };
            if wanted {
                relevant.push(item);
            }
            j += if before && after { 2 } else { 1 };
        }
        if !history.is_empty() && !relevant.is_empty() {
            set.customers.push(c);
            set.history.push(history);
            set.relevant.push(relevant);
        }
        at = next;
    }
    set
}

/// Means of the metrics at k over scored customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Customers scored.
    pub customers: usize,
    /// Share of customers with at least one hit.
    pub hit_rate: f64,
    /// Mean hits / k.
    pub precision: f64,
    /// Mean hits / |relevant|.
    pub recall: f64,
    /// Mean NDCG at k.
    pub ndcg: f64,
}

/// Scores `recs[i]` (only its first `k` items count) against `relevant[i]` (ascending).
/// Customers with an empty relevant set are not counted. `k == 0` or no customers give zeros.
pub fn evaluate(relevant: &[Vec<u32>], recs: &[Vec<u32>], k: usize) -> Metrics {
    let mut m = Metrics {
        customers: 0,
        hit_rate: 0.0,
        precision: 0.0,
        recall: 0.0,
        ndcg: 0.0,
    };
    if k == 0 {
        return m;
    }
    let gain = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    for (rel, list) in relevant.iter().zip(recs) {
        if rel.is_empty() {
            continue;
        }
        m.customers += 1;
        let (mut hits, mut dcg) = (0usize, 0.0);
        for (r, item) in list.iter().take(k).enumerate() {
            if rel.binary_search(item).is_ok() {
                hits += 1;
                dcg += gain(r);
            }
        }
        let idcg: f64 = (0..k.min(rel.len())).map(gain).sum();
        if hits > 0 {
            m.hit_rate += 1.0;
        }
        m.precision += hits as f64 / k as f64;
        m.recall += hits as f64 / rel.len() as f64;
        m.ndcg += dcg / idcg;
    }
    if m.customers > 0 {
        let n = m.customers as f64;
        m.hit_rate /= n;
        m.precision /= n;
        m.recall /= n;
        m.ndcg /= n;
    }
    m
}

/// Items ranked by distinct buyers in `(cutoff − window_days, cutoff]`, most first, ties by
/// item id ascending; items without buyers there are left out.
pub fn popularity(purchases: &[Purchase], cutoff: i32, window_days: i32) -> Vec<u32> {
    let start = cutoff.saturating_sub(window_days);
    let mut pairs: Vec<(u32, u32)> = purchases
        .iter()
        .filter(|p| p.day > start && p.day <= cutoff)
        .map(|p| (p.item, p.customer))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts: Vec<(u32, usize)> = Vec::new();
    for (item, _) in pairs {
        match counts.last_mut() {
            Some((last, n)) if *last == item => *n += 1,
            _ => counts.push((item, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.into_iter().map(|(item, _)| item).collect()
}

/// The first `k` items of `ranked` not in `history` (ascending).
pub fn top_unseen(ranked: &[u32], history: &[u32], k: usize) -> Vec<u32> {
    ranked
        .iter()
        .copied()
        .filter(|i| history.binary_search(i).is_err())
        .take(k)
        .collect()
}

/// Item-to-item cosine similarities over the customers' histories (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CoOccurrence {
    /// The number of histories holding each item.
    buyers: Vec<u64>,
    /// Per item: `(other item, histories holding both)`, by other item ascending. Each list
    /// is allocated at its final length and holds counts, not cosines: at millions of
    /// customers there are tens of millions of pairs, and one list grown by doubling held up
    /// to four times the memory.
    neighbours: Vec<Box<[(u32, u32)]>>,
}

impl CoOccurrence {
    /// Counts co-occurrences over `histories` (each ascending, distinct, items `< n_items`).
    ///
    /// Item by item: the histories holding an item (an inverted index) are walked and their
    /// other items counted in a dense array, so the pairs are never materialised and sorted.
    /// Cost O(Σ |H|²) time, memory O(n_items + Σ |H| + distinct pairs).
    pub fn fit<'a>(histories: impl IntoIterator<Item = &'a [u32]>, n_items: usize) -> Self {
        let histories: Vec<&[u32]> = histories.into_iter().collect();
        let mut buyers = vec![0u64; n_items];
        for h in &histories {
            for &a in *h {
                buyers[a as usize] += 1;
            }
        }
        // holders[starts[a]..starts[a + 1]]: the histories holding item a, in order.
        let mut starts = vec![0usize; n_items + 1];
        for a in 0..n_items {
            starts[a + 1] = starts[a] + buyers[a] as usize;
        }
        let mut fill = starts.clone();
        let mut holders = vec![0u32; starts[n_items]];
        for (i, h) in histories.iter().enumerate() {
            for &a in *h {
                holders[fill[a as usize]] = i as u32;
                fill[a as usize] += 1;
            }
        }
        let mut neighbours = Vec::with_capacity(n_items);
        let mut counts = vec![0u32; n_items];
        let mut touched: Vec<u32> = Vec::new();
        for a in 0..n_items {
            for &i in &holders[starts[a]..starts[a + 1]] {
                for &b in histories[i as usize] {
                    if b as usize != a {
                        if counts[b as usize] == 0 {
                            touched.push(b);
                        }
                        counts[b as usize] += 1;
                    }
                }
            }
            touched.sort_unstable();
            let list: Box<[(u32, u32)]> = touched
                .iter()
                .map(|&b| (b, std::mem::take(&mut counts[b as usize])))
                .collect();
            neighbours.push(list);
            touched.clear();
        }
        CoOccurrence { buyers, neighbours }
    }

    /// The neighbours of `item`: `(other, cosine)` by other ascending.
    pub fn neighbours(&self, item: u32) -> impl Iterator<Item = (u32, f64)> + '_ {
        let a = item as usize;
        let list = self.neighbours.get(a).map_or(&[][..], |l| &l[..]);
        list.iter().map(move |&(b, both)| {
            let cos = f64::from(both) / ((self.buyers[a] * self.buyers[b as usize]) as f64).sqrt();
            (b, cos)
        })
    }

    /// The top `k` items outside `history` (ascending) that pass `allowed`, by summed cosine,
    /// ties by item id. `scores` is scratch space of at least the item count, all zeros (left
    /// all zeros).
    pub fn recommend(
        &self,
        history: &[u32],
        k: usize,
        scores: &mut [f64],
        allowed: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let mut touched: Vec<u32> = Vec::new();
        for &i in history {
            for (j, cos) in self.neighbours(i) {
                if scores[j as usize] == 0.0 {
                    touched.push(j);
                }
                scores[j as usize] += cos;
            }
        }
        let mut ranked: Vec<(u32, f64)> = touched
            .iter()
            .filter(|&&j| history.binary_search(&j).is_err() && allowed(j))
            .map(|&j| (j, scores[j as usize]))
            .collect();
        for &j in &touched {
            scores[j as usize] = 0.0;
        }
        // Best first, ties by item id: a total order, so selecting the top `k` before sorting
        // them gives what a full sort would, in linear time for the thousands of candidates.
        let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k == 0 {
            return Vec::new();
        }
        if ranked.len() > k {
            ranked.select_nth_unstable_by(k - 1, order);
            ranked.truncate(k);
        }
        ranked.sort_unstable_by(order);
        ranked.into_iter().map(|(j, _)| j).collect()
    }
}

#[cfg(test)]
mod tests {
    /// The co-occurrences as first written (every pair listed, then sorted): what the
    /// inverted-index count must equal exactly.
    fn reference_fit(histories: &[Vec<u32>], n_items: usize) -> CoOccurrence {
        let mut buyers = vec![0u64; n_items];
        let mut pairs: Vec<u64> = Vec::new();
        for h in histories {
            for (x, &a) in h.iter().enumerate() {
                buyers[a as usize] += 1;
                for &b in &h[x + 1..] {
                    pairs.push((u64::from(a) << 32) | u64::from(b));
                    pairs.push((u64::from(b) << 32) | u64::from(a));
                }
            }
        }
        pairs.sort_unstable();
        let mut neighbours: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_items];
        let mut at = 0;
        while at < pairs.len() {
            let key = pairs[at];
            let mut next = at + 1;
            while next < pairs.len() && pairs[next] == key {
                next += 1;
            }
            let (a, b) = ((key >> 32) as usize, key as u32);
            neighbours[a].push((b, (next - at) as u32));
            at = next;
        }
        CoOccurrence {
            buyers,
            neighbours: neighbours.into_iter().map(Vec::into_boxed_slice).collect(),
        }
    }

    #[test]
    fn co_occurrences_equal_the_listed_and_sorted_pairs_bit_for_bit() {
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for (customers, items) in [(0, 5), (1, 1), (40, 6), (500, 80), (2000, 300)] {
            let histories: Vec<Vec<u32>> = (0..customers)
                .map(|_| {
                    let mut h: Vec<u32> = (0..next(12)).map(|_| next(items) as u32).collect();
                    h.sort_unstable();
                    h.dedup();
                    h
                })
                .collect();
            let fast = CoOccurrence::fit(histories.iter().map(Vec::as_slice), items as usize);
            let slow = reference_fit(&histories, items as usize);
            // The same buyers and pair counts: the cosines are computed from them alike.
            assert_eq!(fast, slow, "{customers} x {items}");
        }
    }

    use super::*;

    fn p(customer: u32, item: u32, day: i32) -> Purchase {
        Purchase {
            customer,
            item,
            day,
        }
    }

    #[test]
    fn the_split_keeps_customers_with_history_and_a_relevant_item() {
        let buys = [
            p(1, 5, 10),
            p(1, 3, 12),
            p(1, 5, 15), // a repurchase in the holdout
            p(1, 7, 20),
            p(1, 8, 31), // after the holdout
            p(2, 1, 15), // no history
            p(3, 2, 5),  // nothing in the holdout
            p(4, 2, 1),
            p(4, 2, 14),
        ];
        let new = split(&buys, 12, 18, Target::NewItems);
        assert_eq!(new.customers, [1]);
        assert_eq!(new.history, [vec![3, 5]]);
        assert_eq!(new.relevant, [vec![7]]);
        let again = split(&buys, 12, 18, Target::Repurchases);
        assert_eq!(again.customers, [1, 4]);
        assert_eq!(again.relevant, [vec![5], vec![2]]);
        assert_eq!(
            histories(&buys, 12),
            [(1, vec![3, 5]), (3, vec![2]), (4, vec![2])]
        );
    }

    #[test]
    fn metrics_have_their_exact_values_on_hand_made_lists() {
        // Customer a: relevant {1, 2, 3}, list [1, 9, 3, 8]: hits at ranks 1 and 3.
        // Customer b: relevant {4}, list [5, 6]: no hit (a short list still divides by k).
        // Customer c: relevant {}: not scored.
        let relevant = [vec![1, 2, 3], vec![4], vec![]];
        let recs = [vec![1, 9, 3, 8, 2], vec![5, 6], vec![1]];
        let m = evaluate(&relevant, &recs, 4);
        assert_eq!(m.customers, 2);
        assert_eq!(m.hit_rate, 0.5);
        assert_eq!(m.precision, (2.0 / 4.0 + 0.0) / 2.0);
        assert_eq!(m.recall, (2.0 / 3.0 + 0.0) / 2.0);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg - dcg / idcg / 2.0).abs() < 1e-15);
        // A perfect list has NDCG 1; a hit at rank 2 of a single relevant item 1/log2(3).
        let m = evaluate(&[vec![4]], &[vec![4, 1]], 2);
        assert_eq!(
            (m.hit_rate, m.precision, m.recall, m.ndcg),
            (1.0, 0.5, 1.0, 1.0)
        );
        let m = evaluate(&[vec![4]], &[vec![1, 4]], 2);
        assert!((m.ndcg - 1.0 / 3f64.log2()).abs() < 1e-15);
        assert_eq!(evaluate(&[vec![4]], &[vec![4]], 0).customers, 0);
    }

    #[test]
    fn popularity_counts_distinct_buyers_in_the_window_and_breaks_ties_by_id() {
        let buys = [
            p(1, 7, 10),
            p(1, 7, 11), // the same buyer again
            p(2, 3, 10),
            p(3, 3, 9),
            p(4, 5, 10),
            p(5, 9, 2),  // before the window
            p(6, 9, 13), // after the cut-off
            p(7, 7, 8),
        ];
        assert_eq!(popularity(&buys, 12, 5), [3, 7, 5]);
        assert_eq!(top_unseen(&[3, 7, 5], &[3], 2), [7, 5]);
    }

    #[test]
    fn co_occurrence_sums_cosines_and_breaks_ties_by_id() {
        // Items 0..4. 0 and 1 always together; 2 with 0 once; 3 alone.
        let h: Vec<Vec<u32>> = vec![vec![0, 1], vec![0, 1, 2], vec![3], vec![1, 2]];
        let co = CoOccurrence::fit(h.iter().map(|v| v.as_slice()), 4);
        // n0 = 2, n1 = 3, n2 = 2; n01 = 2, n02 = 1, n12 = 2.
        let cos01 = 2.0 / 6f64.sqrt();
        assert_eq!(
            co.neighbours(0).collect::<Vec<_>>(),
            [(1, cos01), (2, 1.0 / 2.0)]
        );
        let mut scratch = vec![0.0; 4];
        // From {0}: 1 (0.816) then 2 (0.5); 3 never co-occurs.
        assert_eq!(co.recommend(&[0], 5, &mut scratch, |_| true), [1, 2]);
        assert!(scratch.iter().all(|&s| s == 0.0));
        // From {2}: cos(2,0) = 0.5, cos(2,1) = 2/sqrt(6): 1 first.
        assert_eq!(co.recommend(&[2], 1, &mut scratch, |_| true), [1]);
        // Equal scores: the lower id first.
        let h: Vec<Vec<u32>> = vec![vec![0, 1], vec![0, 2]];
        let co = CoOccurrence::fit(h.iter().map(|v| v.as_slice()), 3);
        assert_eq!(co.recommend(&[0], 2, &mut [0.0; 3], |_| true), [1, 2]);
        assert_eq!(co.recommend(&[0], 2, &mut [0.0; 3], |j| j != 1), [2]);
    }

    #[test]
    fn the_top_k_are_those_of_a_full_sort() {
        // Many candidates with tied scores (small histories over few items), every k.
        let mut seed = 11u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let items = 60;
        let histories: Vec<Vec<u32>> = (0..300)
            .map(|_| {
                let mut h: Vec<u32> = (0..1 + next(6)).map(|_| next(items) as u32).collect();
                h.sort_unstable();
                h.dedup();
                h
            })
            .collect();
        let co = CoOccurrence::fit(histories.iter().map(Vec::as_slice), items as usize);
        let mut scratch = vec![0.0; items as usize];
        for history in histories.iter().take(50) {
            let mut all: Vec<(u32, f64)> = (0..items as u32)
                .filter(|j| history.binary_search(j).is_err())
                .map(|j| {
                    let score: f64 = history
                        .iter()
                        .flat_map(|&i| co.neighbours(i))
                        .filter(|&(n, _)| n == j)
                        .map(|(_, cos)| cos)
                        .sum();
                    (j, score)
                })
                .filter(|&(_, score)| score > 0.0)
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for k in [0, 1, 2, 3, 5, 10, 100] {
                let expected: Vec<u32> = all.iter().take(k).map(|&(j, _)| j).collect();
                assert_eq!(
                    co.recommend(history, k, &mut scratch, |_| true),
                    expected,
                    "k = {k}"
                );
            }
        }
    }
}
