//! Calibration/holdout backtest of the BG/NBD purchase model.
//!
//! The test of Fader, Hardie & Lee (2005, section 4): fit the model on the purchases up to a
//! cut-off (the calibration period), predict each customer's purchases in the following
//! holdout period with the conditional expectation `E[Y(t) | x, t_x, T]`, and compare with
//! what they actually bought, per number of calibration repeat purchases (0, 1, ..., 6, 7+:
//! the paper's Figure 4) and in total.
//!
//! [`calibration_and_holdout`] is `lifetimes.utils.calibration_and_holdout_data(...,
//! freq="D")` (`freq_multiplier=7` for [`TimeUnit::Weeks`]):
//! - only customers whose first purchase is on or before the cut-off take part;
//! - `frequency_cal`, `recency_cal`, `T_cal` are the [`summary`](crate::summary) columns as
//!   of the cut-off (repeat purchase *days*; a purchase on the cut-off day is calibration);
//! - `frequency_holdout` counts the distinct purchase days after the cut-off and on or
//!   before the observation end (every one of them is a repeat purchase).
//!
//! [`backtest`] fits BG/NBD on the calibration columns ([`bgnbd::fit`]) and compares.

use std::collections::HashMap;

use super::bgnbd::{self, BgNbdFit, FitOptions, Observation};
use super::summary::{TimeUnit, Transaction, summarize};
use super::{AnalyticsError, AnalyticsResult};

/// One customer's calibration summary and holdout count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldoutRow {
    /// Dense customer index.
    pub customer: u32,
    /// Repeat purchase days up to and including the cut-off.
    pub frequency_cal: u32,
    /// Last minus first purchase day in the calibration period, in the chosen unit.
    pub recency_cal: f64,
    /// Cut-off minus first purchase day, in the chosen unit.
    pub t_cal: f64,
    /// Distinct purchase days after the cut-off, up to and including the observation end.
    pub frequency_holdout: u32,
}

impl HoldoutRow {
    /// The calibration history in model form.
    pub fn calibration(&self) -> Observation {
        Observation {
            frequency: self.frequency_cal,
            recency: self.recency_cal,
            t: self.t_cal,
        }
    }
}

/// Splits transactions at `cutoff` (inclusive, calibration) and `observation_end` (inclusive,
/// holdout); rows sorted by customer index. Transactions after `observation_end` are ignored.
///
/// Errors: as [`summarize`], and `InvalidInput` when `observation_end < cutoff`.
pub fn calibration_and_holdout(
    transactions: &[Transaction],
    n_customers: usize,
    cutoff: i32,
    observation_end: i32,
    unit: TimeUnit,
) -> AnalyticsResult<Vec<HoldoutRow>> {
    if observation_end < cutoff {
        return Err(AnalyticsError::InvalidInput(format!(
            "observation end {observation_end} is before the cut-off {cutoff}"
        )));
    }
    let calibration = summarize(transactions, n_customers, cutoff, unit)?;
    let mut holdout_days: Vec<(u32, i32)> = transactions
        .iter()
        .filter(|tx| tx.day > cutoff && tx.day <= observation_end)
        .map(|tx| (tx.customer, tx.day))
        .collect();
    holdout_days.sort_unstable();
    holdout_days.dedup();
    let mut counts = vec![0u32; n_customers];
    for (c, _) in holdout_days {
        counts[c as usize] += 1;
    }
    Ok(calibration
        .iter()
        .map(|s| HoldoutRow {
            customer: s.customer,
            frequency_cal: s.frequency,
            recency_cal: s.recency,
            t_cal: s.t,
            frequency_holdout: counts[s.customer as usize],
        })
        .collect())
}

/// Customers with `frequency` calibration repeat purchases (or more, for the last, open group).
#[derive(Debug, Clone, PartialEq)]
pub struct FrequencyGroup {
    /// Calibration repeat purchases of the group (its lower bound when `open`).
    pub frequency: u32,
    /// Whether the group is "`frequency` or more".
    pub open: bool,
    /// Customers in the group.
    pub customers: usize,
    /// Mean predicted holdout purchases (0 for an empty group).
    pub predicted: f64,
    /// Mean actual holdout purchases (0 for an empty group).
    pub actual: f64,
}

impl FrequencyGroup {
    /// `"3"`, or `"7+"` for the open group.
    pub fn label(&self) -> String {
        if self.open {
            format!("{}+", self.frequency)
        } else {
            self.frequency.to_string()
        }
    }
}

/// The paper's groups: 0, 1, ..., 6 and 7+.
pub const OPEN_GROUP_FROM: u32 = 7;

/// Predicted against actual holdout purchases.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    /// The calibration fit.
    pub fit: BgNbdFit,
    /// Holdout length in the chosen unit.
    pub holdout_length: f64,
    /// Expected holdout purchases per row, in the order of the rows.
    pub predicted: Vec<f64>,
    /// Groups 0..=6 and 7+, always all eight.
    pub by_frequency: Vec<FrequencyGroup>,
    /// Sum of the predictions.
    pub total_predicted: f64,
    /// Sum of the actual holdout purchases.
    pub total_actual: f64,
    /// `100 × (total_predicted - total_actual) / total_actual`; `None` when nobody bought.
    pub error_pct: Option<f64>,
    /// Mean absolute error per customer.
    pub mae: f64,
    /// Root mean squared error per customer.
    pub rmse: f64,
}

/// Fits BG/NBD on the calibration columns of `rows` and predicts `holdout_length` (in the
/// unit of the rows) ahead for each.
///
/// Errors: those of [`bgnbd::fit`] (e.g. `NotEnoughData`), `InvalidInput` for a negative or
/// non-finite holdout length, and the prediction's errors.
pub fn backtest(
    rows: &[HoldoutRow],
    holdout_length: f64,
    options: &FitOptions,
) -> AnalyticsResult<Backtest> {
    if !holdout_length.is_finite() || holdout_length < 0.0 {
        return Err(AnalyticsError::InvalidInput(format!(
            "holdout length {holdout_length}"
        )));
    }
    let obs: Vec<Observation> = rows.iter().map(HoldoutRow::calibration).collect();
    let fit = bgnbd::fit(&obs, options)?;
    // Daily data repeats the same (x, t_x, T) often: predict each pattern once.
    let mut cache: HashMap<(u32, u64, u64), f64> = HashMap::new();
    let mut predicted = Vec::with_capacity(rows.len());
    for o in &obs {
        let key = (o.frequency, o.recency.to_bits(), o.t.to_bits());
        let value = match cache.get(&key) {
            Some(&v) => v,
            None => {
                let v = fit.params.expected_purchases(holdout_length, o)?;
                cache.insert(key, v);
                v
            }
        };
        predicted.push(value);
    }
    let mut sums = [(0usize, 0.0f64, 0.0f64); OPEN_GROUP_FROM as usize + 1];
    let (mut abs, mut sq) = (0.0, 0.0);
    for (row, &p) in rows.iter().zip(&predicted) {
        let g = row.frequency_cal.min(OPEN_GROUP_FROM) as usize;
        let actual = f64::from(row.frequency_holdout);
        sums[g].0 += 1;
        sums[g].1 += p;
        sums[g].2 += actual;
        abs += (p - actual).abs();
        sq += (p - actual) * (p - actual);
    }
    let by_frequency = sums
        .iter()
        .enumerate()
        .map(|(g, &(n, p, a))| FrequencyGroup {
            frequency: g as u32,
            open: g as u32 == OPEN_GROUP_FROM,
            customers: n,
            predicted: if n > 0 { p / n as f64 } else { 0.0 },
            actual: if n > 0 { a / n as f64 } else { 0.0 },
        })
        .collect();
    let total_predicted: f64 = predicted.iter().sum();
    let total_actual: f64 = rows.iter().map(|r| f64::from(r.frequency_holdout)).sum();
    let n = rows.len().max(1) as f64;
    Ok(Backtest {
        fit,
        holdout_length,
        predicted,
        by_frequency,
        total_predicted,
        total_actual,
        error_pct: (total_actual > 0.0)
            .then(|| 100.0 * (total_predicted - total_actual) / total_actual),
        mae: abs / n,
        rmse: (sq / n).sqrt(),
    })
}

#[cfg(test)]
mod tests;
