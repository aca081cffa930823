//! Per-customer frequency / recency / T / monetary value: the input of the CLV models.
//!
//! Equivalent of `lifetimes.utils.summary_data_from_transaction_data(..., freq="D")` (with
//! `freq_multiplier=7` for [`TimeUnit::Weeks`]), the de-facto standard input of the BG/NBD
//! (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader & Hardie 2013) models:
//!
//! - transactions after the observation end day are ignored;
//! - a customer's transactions on the same day are collapsed into one, amounts summed;
//! - `frequency` = number of distinct purchase days - 1 (repeat purchases);
//! - `recency` = last purchase day - first purchase day (0 for one-time buyers) — *not* "days
//!   since the last purchase";
//! - `t` = observation end - first purchase day;
//! - `monetary_value` = mean of the per-day amounts excluding the first day (0 if frequency 0).
//!
//! Times are in days, or in weeks as days / 7.
//!
//! # Input contract
//! Customers are identified by a dense index `0..n_customers` (the caller maps its customer keys
//! to indices). Transactions may come in any order; the function runs in O(n + n_customers)
//! (a two-level counting sort by customer, 16 bytes of scratch per transaction) plus sorting
//! each customer's own purchase days (O(n log k) for k purchases per customer). When the input
//! is already sorted by `(customer, day)` a copy-free single pass is used.

use super::{AnalyticsError, AnalyticsResult};

/// Time unit of recency and T.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Days.
    Days,
    /// Weeks, as days / 7.
    Weeks,
}

impl TimeUnit {
    /// Number of days in one unit.
    pub fn days_per_unit(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }

    /// Number of units in a month, as used by `lifetimes`' CLV (30 days, 4.345 weeks).
    pub fn units_per_month(self) -> f64 {
        match self {
            TimeUnit::Days => 30.0,
            TimeUnit::Weeks => 4.345,
        }
    }
}

/// One purchase (or line) of a customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transaction {
    /// Dense customer index, `< n_customers`.
    pub customer: u32,
    /// Purchase day (e.g. days since the Unix epoch).
    pub day: i32,
    /// Amount spent; any finite value (refunds may be negative).
    pub amount: f64,
}

/// The `lifetimes` summary of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerSummary {
    /// Dense customer index.
    pub customer: u32,
    /// Number of repeat purchase days (distinct purchase days - 1).
    pub frequency: u32,
    /// Time between the first and the last purchase, in the chosen unit.
    pub recency: f64,
    /// Time between the first purchase and the observation end, in the chosen unit.
    pub t: f64,
    /// Mean per-day amount of the repeat purchase days (0 when `frequency == 0`).
    pub monetary_value: f64,
    /// First purchase day.
    pub first_day: i32,
    /// Last purchase day (at or before the observation end).
    pub last_day: i32,
}

/// Computes the summary of every customer with at least one transaction on or before
/// `observation_end`, sorted by customer index.
///
/// Errors: `InvalidInput` when a customer index is `>= n_customers`, `NonFinite` when an
/// amount is not finite (for any transaction, including ignored ones).
pub fn summarize(
    transactions: &[Transaction],
    n_customers: usize,
    observation_end: i32,
    unit: TimeUnit,
) -> AnalyticsResult<Vec<CustomerSummary>> {
    let mut sorted = true;
    let mut prev: Option<(u32, i32)> = None;
    for tx in transactions {
        if tx.customer as usize >= n_customers {
            return Err(AnalyticsError::InvalidInput(format!(
                "customer index {} >= n_customers {n_customers}",
                tx.customer
            )));
        }
        if !tx.amount.is_finite() {
            return Err(AnalyticsError::NonFinite(format!(
                "amount {} of customer {} on day {}",
                tx.amount, tx.customer, tx.day
            )));
        }
        let key = (tx.customer, tx.day);
        if let Some(p) = prev {
            sorted &= p <= key;
        }
        prev = Some(key);
    }
    let per_unit = unit.days_per_unit();
    let mut out = Vec::new();
    if sorted {
        let kept = transactions.iter().filter(|tx| tx.day <= observation_end);
        let mut run: Vec<(i32, f64)> = Vec::new();
        let mut current: Option<u32> = None;
        for tx in kept {
            if current != Some(tx.customer) {
                if let Some(c) = current {
                    out.push(summarize_sorted(c, &run, observation_end, per_unit));
                }
                current = Some(tx.customer);
                run.clear();
            }
            run.push((tx.day, tx.amount));
        }
        if let Some(c) = current {
            out.push(summarize_sorted(c, &run, observation_end, per_unit));
        }
        return Ok(out);
    }
    // Two-level counting sort by customer: first by the high bits of the index into at most
    // 1024 buckets (few, sequential write streams: cache friendly even for 10M rows), then each
    // bucket by the low bits in a small scratch buffer; finally each customer's purchases by day.
    let kept = || transactions.iter().filter(|tx| tx.day <= observation_end);
    let bits = usize::BITS - (n_customers.max(1) - 1).leading_zeros();
    let shift = bits.saturating_sub(10);
    let n_buckets = ((n_customers.max(1) - 1) >> shift) + 1;
    let mut start = vec![0usize; n_buckets + 1];
    for tx in kept() {
        start[(tx.customer as usize >> shift) + 1] += 1;
    }
    for i in 0..n_buckets {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut buf = vec![(0u32, 0i32, 0.0f64); start[n_buckets]];
    for tx in kept() {
        let slot = &mut fill[tx.customer as usize >> shift];
        buf[*slot] = (tx.customer, tx.day, tx.amount);
        *slot += 1;
    }
    drop(fill);
    let width = 1usize << shift;
    let mut local_start = vec![0usize; width + 1];
    let mut scratch: Vec<(i32, f64)> = Vec::new();
    for bucket in 0..n_buckets {
        let rows = &buf[start[bucket]..start[bucket + 1]];
        if rows.is_empty() {
            continue;
        }
        let base = bucket << shift;
        local_start.fill(0);
        for row in rows {
            local_start[row.0 as usize - base + 1] += 1;
        }
        for i in 0..width {
            local_start[i + 1] += local_start[i];
        }
        scratch.clear();
        scratch.resize(rows.len(), (0, 0.0));
        let mut local_fill = local_start.clone();
        for row in rows {
            let slot = &mut local_fill[row.0 as usize - base];
            scratch[*slot] = (row.1, row.2);
            *slot += 1;
        }
        for local in 0..width {
            let run = &mut scratch[local_start[local]..local_start[local + 1]];
            if run.is_empty() {
                continue;
            }
            // Stable sort keeps input order within a day, so amounts sum in input order.
            if !run.is_sorted_by_key(|p| p.0) {
                run.sort_by_key(|p| p.0);
            }
            out.push(summarize_sorted(
                (base + local) as u32,
                run,
                observation_end,
                per_unit,
            ));
        }
    }
    Ok(out)
}

/// Summary of one customer from its non-empty purchases sorted by day.
fn summarize_sorted(
    customer: u32,
    run: &[(i32, f64)],
    observation_end: i32,
    per_unit: f64,
) -> CustomerSummary {
    let first_day = run[0].0;
    let mut last_day = first_day;
    let mut repeat_days = 0u32;
    let mut repeat_total = 0.0;
    for &(day, amount) in run {
        if day != last_day {
            repeat_days += 1;
            last_day = day;
        }
        if day != first_day {
            repeat_total += amount;
        }
    }
    let monetary_value = if repeat_days > 0 {
        repeat_total / f64::from(repeat_days)
    } else {
        0.0
    };
    CustomerSummary {
        customer,
        frequency: repeat_days,
        recency: f64::from(last_day - first_day) / per_unit,
        t: (f64::from(observation_end) - f64::from(first_day)) / per_unit,
        monetary_value,
        first_day,
        last_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(customer: u32, day: i32, amount: f64) -> Transaction {
        Transaction {
            customer,
            day,
            amount,
        }
    }

    #[test]
    fn collapses_same_day_and_ignores_late_transactions() {
        let txs = [
            tx(0, 10, 5.0),
            tx(0, 10, 7.0), // same day as the first purchase: excluded from monetary
            tx(0, 12, 3.0),
            tx(0, 12, 1.0), // same day: 4.0 for day 12
            tx(0, 20, 10.0),
            tx(0, 40, 99.0), // after the end: ignored
            tx(2, 30, 8.0),  // one-time buyer
            tx(3, 35, 8.0),  // only after the end: absent
        ];
        let s = summarize(&txs, 4, 30, TimeUnit::Days).unwrap();
        assert_eq!(s.len(), 2);
        let a = s[0];
        assert_eq!(
            (a.customer, a.frequency, a.first_day, a.last_day),
            (0, 2, 10, 20)
        );
        assert_eq!((a.recency, a.t), (10.0, 20.0));
        assert!((a.monetary_value - 7.0).abs() < 1e-12); // (4 + 10) / 2
        let b = s[1];
        assert_eq!(
            (b.customer, b.frequency, b.recency, b.t, b.monetary_value),
            (2, 0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn weeks_are_days_over_seven() {
        let txs = [tx(0, 0, 1.0), tx(0, 10, 2.0)];
        let s = summarize(&txs, 1, 21, TimeUnit::Weeks).unwrap();
        assert!((s[0].recency - 10.0 / 7.0).abs() < 1e-15);
        assert!((s[0].t - 3.0).abs() < 1e-15);
    }

    /// Straightforward reference: a BTreeMap of per-day totals per customer.
    fn naive(txs: &[Transaction], end: i32) -> Vec<(u32, u32, f64, f64, f64)> {
        use std::collections::BTreeMap;
        let mut days: BTreeMap<u32, BTreeMap<i32, f64>> = BTreeMap::new();
        for t in txs.iter().filter(|t| t.day <= end) {
            *days
                .entry(t.customer)
                .or_default()
                .entry(t.day)
                .or_default() += t.amount;
        }
        days.into_iter()
            .map(|(c, d)| {
                let first = *d.keys().next().unwrap();
                let last = *d.keys().next_back().unwrap();
                let repeat: Vec<f64> = d.values().skip(1).copied().collect();
                let m = if repeat.is_empty() {
                    0.0
                } else {
                    repeat.iter().sum::<f64>() / repeat.len() as f64
                };
                (
                    c,
                    repeat.len() as u32,
                    f64::from(last - first),
                    f64::from(end - first),
                    m,
                )
            })
            .collect()
    }

    #[test]
    fn matches_naive_reference_in_any_order() {
        // Deterministic pseudo-random transactions; customer counts below and above the
        // 1024-bucket threshold of the counting sort.
        let mut rng = crate::rng::Rng::new(42);
        let mut next = || rng.next_u64();
        for (n_customers, n_tx, span) in [(300usize, 5_000, 400u64), (70_001, 60_000, 40)] {
            let mut txs: Vec<Transaction> = (0..n_tx)
                .map(|_| {
                    let r = next();
                    tx(
                        (r % n_customers as u64) as u32,
                        ((r >> 20) % span) as i32,
                        ((r >> 40) % 10_000) as f64 / 100.0,
                    )
                })
                .collect();
            let end = (span as i32 * 7) / 8;
            let want = naive(&txs, end);
            let shuffled = summarize(&txs, n_customers, end, TimeUnit::Days).unwrap();
            txs.sort_by_key(|t| (t.customer, t.day));
            let sorted = summarize(&txs, n_customers, end, TimeUnit::Days).unwrap();
            assert_eq!(shuffled.len(), want.len());
            assert_eq!(sorted.len(), want.len());
            for ((a, b), w) in shuffled.iter().zip(&sorted).zip(&want) {
                for got in [a, b] {
                    assert_eq!(
                        (got.customer, got.frequency, got.recency, got.t),
                        (w.0, w.1, w.2, w.3)
                    );
                    assert!((got.monetary_value - w.4).abs() <= 1e-9 * w.4.abs());
                }
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            summarize(&[tx(5, 0, 1.0)], 5, 10, TimeUnit::Days),
            Err(AnalyticsError::InvalidInput(_))
        ));
        assert!(matches!(
            summarize(&[tx(0, 0, f64::NAN)], 1, 10, TimeUnit::Days),
            Err(AnalyticsError::NonFinite(_))
        ));
        assert_eq!(summarize(&[], 0, 10, TimeUnit::Days).unwrap(), vec![]);
    }

    /// 10M shuffled transactions over 1M customers; run with
    /// `cargo test --release -- --ignored --nocapture summarize_10m_timing`.
    #[test]
    #[ignore]
    fn summarize_10m_timing() {
        let mut rng = crate::rng::Rng::new(7);
        let mut next = || rng.next_u64();
        let txs: Vec<Transaction> = (0..10_000_000)
            .map(|_| {
                let r = next();
                let day = 19_000 + ((r >> 20) % 730) as i32;
                tx(
                    (r % 1_000_000) as u32,
                    day,
                    ((r >> 40) % 20_000) as f64 / 100.0,
                )
            })
            .collect();
        let start = std::time::Instant::now();
        let s = summarize(&txs, 1_000_000, 19_700, TimeUnit::Days).unwrap();
        let unsorted = start.elapsed();
        let mut sorted_txs = txs;
        sorted_txs.sort_unstable_by_key(|t| (t.customer, t.day));
        let start = std::time::Instant::now();
        let s2 = summarize(&sorted_txs, 1_000_000, 19_700, TimeUnit::Days).unwrap();
        let sorted = start.elapsed();
        assert_eq!(s.len(), s2.len());
        println!("summarize 10M transactions: unsorted {unsorted:?}, pre-sorted {sorted:?}");
    }
}
