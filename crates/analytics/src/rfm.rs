//! RFM (recency, frequency, monetary) quintile scores 1-5.
//!
//! # Rule
//! For `n` values, a value `v` scores
//!
//! ```text
//! score(v) = 1 + floor(5 * below(v) / n)
//! ```
//!
//! where `below(v)` is the number of values strictly smaller than `v`, i.e. the 0-based rank of
//! the first occurrence of `v` in the sorted values (the "min" tie method). Consequences:
//! - deterministic and independent of the input order;
//! - equal values always get equal scores, so bins can be uneven (as in the R `rfm` package);
//! - the smallest value always scores 1; when all values are equal everyone scores 1;
//! - with `n < 5` some scores are skipped (two distinct values score 1 and 3).
//!
//! Recency (days since the last purchase) is scored in reverse, so that fewer days score higher:
//! it uses `above(v)`, the number of values strictly greater than `v`, in place of `below(v)`.
//! Frequency and monetary value score higher for larger values.
//!
//! Cost: one sort, O(n log n).

use super::{AnalyticsError, AnalyticsResult};

/// The three RFM scores of one customer, each 1-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RfmScore {
    /// Recency score (5 = most recent).
    pub recency: u8,
    /// Frequency score (5 = most frequent).
    pub frequency: u8,
    /// Monetary score (5 = highest spend).
    pub monetary: u8,
}

/// Quintile scores (1-5) where larger values score higher; see the module docs for the rule.
///
/// Errors with `NonFinite` if any value is NaN or infinite.
pub(crate) fn quintile_scores(values: &[f64]) -> AnalyticsResult<Vec<u8>> {
    scores(values, false)
}

/// Quintile scores (1-5) where smaller values score higher (used for recency).
///
/// Errors with `NonFinite` if any value is NaN or infinite.
pub(crate) fn reversed_quintile_scores(values: &[f64]) -> AnalyticsResult<Vec<u8>> {
    scores(values, true)
}

/// RFM scores for parallel slices of days since the last purchase, frequency and monetary value.
///
/// Errors: `InvalidInput` if the slices differ in length, `NonFinite` for NaN or infinite values.
pub fn rfm_scores(
    days_since_last_purchase: &[f64],
    frequency: &[f64],
    monetary: &[f64],
) -> AnalyticsResult<Vec<RfmScore>> {
    let n = days_since_last_purchase.len();
    if frequency.len() != n || monetary.len() != n {
        return Err(AnalyticsError::InvalidInput(format!(
            "rfm_scores slices differ in length: {n}, {}, {}",
            frequency.len(),
            monetary.len()
        )));
    }
    let r = reversed_quintile_scores(days_since_last_purchase)?;
    let f = quintile_scores(frequency)?;
    let m = quintile_scores(monetary)?;
    Ok((0..n)
        .map(|i| RfmScore {
            recency: r[i],
            frequency: f[i],
            monetary: m[i],
        })
        .collect())
}

fn scores(values: &[f64], reverse: bool) -> AnalyticsResult<Vec<u8>> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(AnalyticsError::NonFinite(format!("RFM value #{i} = {v}")));
    }
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Sort so that "better" values come last; -0.0 and 0.0 compare equal.
    let key = |i: usize| {
        let v = if reverse { -values[i] } else { values[i] };
        v + 0.0
    };
    order.sort_unstable_by(|&i, &j| key(i).total_cmp(&key(j)));
    let mut out = vec![0u8; n];
    let mut rank_of_first = 0usize;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && key(order[pos - 1]) != key(i) {
            rank_of_first = pos;
        }
        // 5 * rank / n < 5 because rank < n, so the score is within 1..=5.
        out[i] = (1 + 5 * rank_of_first / n) as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_values_give_two_per_quintile() {
        let v: Vec<f64> = (0..10).map(|i| f64::from(i) * 1.5).collect();
        assert_eq!(
            quintile_scores(&v).unwrap(),
            vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        assert_eq!(
            reversed_quintile_scores(&v).unwrap(),
            vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
        );
    }

    #[test]
    fn ties_get_equal_scores_and_order_does_not_matter() {
        // Sorted: 1 1 1 1 2 3 3 3 9 9 -> first ranks 0,0,0,0,4,5,5,5,8,8.
        let v = [3.0, 1.0, 9.0, 1.0, 2.0, 3.0, 1.0, 9.0, 3.0, 1.0];
        let s = quintile_scores(&v).unwrap();
        assert_eq!(s, vec![3, 1, 5, 1, 3, 3, 1, 5, 3, 1]);
        for i in 0..v.len() {
            for j in 0..v.len() {
                if v[i] == v[j] {
                    assert_eq!(s[i], s[j]);
                }
                if v[i] < v[j] {
                    assert!(s[i] <= s[j]);
                }
            }
        }
        // Recency: larger = worse. Values strictly greater: 9 -> 0, 3 -> 2, 2 -> 5, 1 -> 6.
        let r = reversed_quintile_scores(&v).unwrap();
        assert_eq!(r, vec![2, 4, 1, 4, 3, 2, 4, 1, 2, 4]);
    }

    #[test]
    fn degenerate_sizes() {
        assert_eq!(quintile_scores(&[]).unwrap(), Vec::<u8>::new());
        assert_eq!(quintile_scores(&[7.0]).unwrap(), vec![1]);
        assert_eq!(quintile_scores(&[7.0, 2.0]).unwrap(), vec![3, 1]);
        assert_eq!(quintile_scores(&[1.0, 2.0, 3.0]).unwrap(), vec![1, 2, 4]);
        assert_eq!(quintile_scores(&[4.0; 6]).unwrap(), vec![1; 6]);
        assert_eq!(reversed_quintile_scores(&[4.0; 6]).unwrap(), vec![1; 6]);
        assert_eq!(quintile_scores(&[0.0, -0.0]).unwrap(), vec![1, 1]);
    }

    #[test]
    fn rfm_combines_and_validates() {
        let s = rfm_scores(&[1.0, 100.0], &[10.0, 0.0], &[5.0, 50.0]).unwrap();
        assert_eq!(
            s[0],
            RfmScore {
                recency: 3,
                frequency: 3,
                monetary: 1
            }
        );
        assert_eq!(
            s[1],
            RfmScore {
                recency: 1,
                frequency: 1,
                monetary: 3
            }
        );
        assert!(matches!(
            rfm_scores(&[1.0], &[], &[]),
            Err(AnalyticsError::InvalidInput(_))
        ));
        assert!(matches!(
            quintile_scores(&[1.0, f64::NAN]),
            Err(AnalyticsError::NonFinite(_))
        ));
    }

    #[test]
    fn large_input_is_balanced() {
        let v: Vec<f64> = (0..1000).map(|i| f64::from((i * 7919) % 1000)).collect();
        let s = quintile_scores(&v).unwrap();
        for q in 1..=5u8 {
            assert_eq!(s.iter().filter(|&&x| x == q).count(), 200);
        }
    }
}
