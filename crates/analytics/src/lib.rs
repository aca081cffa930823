//! Pure analytics math for retail customer segmentation.
//!
//! Everything here is synchronous, allocation-light and free of I/O: the workflow nodes feed it
//! plain slices and get plain values back. Errors are values ([`AnalyticsError`]), never panics.
//!
//! What it offers:
//!
//! | module | what | reference |
//! | --- | --- | --- |
//! | [`summary`] | frequency / recency / T / monetary value per customer | the `lifetimes` package's `summary_data_from_transaction_data` |
//! | [`rfm`] | RFM quintile scores 1-5 | (conventional) |
//! | [`bgnbd`] | BG/NBD purchase model: fit, P(alive), expected purchases | Fader, Hardie & Lee (2005) |
//! | [`gamma_gamma`] | Gamma-Gamma spend model: fit, expected average spend | Fader & Hardie (2013) |
//! | [`clv`] | discounted customer lifetime value | as in `lifetimes` |
//! | [`clv_backtest`] | calibration/holdout split and backtest of BG/NBD: predicted vs actual holdout purchases | Fader, Hardie & Lee (2005) section 4; `lifetimes`' `calibration_and_holdout_data` |
//! | [`affinity`] | category affinity index, item-to-item co-purchase | Linden, Smith & York (2003) |
//! | [`recs_eval`] | offline top-k evaluation by a time split: hit rate, precision, recall, NDCG; popularity and item-to-item baselines | Järvelin & Kekäläinen (2002); Linden, Smith & York (2003) |
//! | [`holdout`] | stable control-group assignment of a customer to a campaign | FNV-1a + SplitMix64 |
//! | [`lift`] | treated vs control conversion and revenue with 95% intervals | Newcombe (1998), Welch (1947) |
//! | [`rng`] | the seeded random-number generator for sampling, generated data and tests | Steele, Lea & Flood (2014) |
//!
//! Inside, serving the models: `special` (ln Gamma, digamma, Gauss hypergeometric 2F1; DLMF
//! ch. 5 and 15) and `optimize` (the BFGS and Nelder-Mead minimisers of the fits; Nocedal &
//! Wright 2006). Their options reach callers only as [`bgnbd::FitOptions`].
//!
//! References:
//! - Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers the Easy Way:
//!   An Alternative to the Pareto/NBD Model." *Marketing Science* 24(2), 275-284.
//! - Fader, P. S. & Hardie, B. G. S. (2013). "The Gamma-Gamma Model of Monetary Value."
//!   <http://www.brucehardie.com/notes/025/>.
//! - Linden, G., Smith, B. & York, J. (2003). "Amazon.com Recommendations: Item-to-Item
//!   Collaborative Filtering." *IEEE Internet Computing* 7(1), 76-80.
//!
//! The models are cross-checked against the Python `lifetimes` package (0.11.3); the script that
//! produced the reference numbers is `reference/lifetimes_reference.py` next to this file.

pub mod affinity;
pub mod bgnbd;
pub mod clv;
pub mod clv_backtest;
pub mod gamma_gamma;
pub mod holdout;
pub mod lift;
mod optimize;
pub mod recs_eval;
pub mod rfm;
pub mod rng;
mod special;
pub mod summary;

#[cfg(test)]
mod lifetimes_backtest_reference_tests;
#[cfg(test)]
mod lifetimes_reference_tests;

use std::fmt;

/// Error returned by every fallible function of the analytics modules.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsError {
    /// An input is outside its domain (negative time, recency > T, index out of range, ...).
    InvalidInput(String),
    /// A value that must be finite is NaN or infinite.
    NonFinite(String),
    /// Too little data to fit a model.
    NotEnoughData {
        /// What was being counted (e.g. "repeat customers").
        what: &'static str,
        /// The minimum required.
        needed: usize,
        /// How many there were.
        got: usize,
    },
    /// An iterative computation (series, optimiser) did not converge.
    NoConvergence(String),
    /// The requested quantity is mathematically undefined for these parameters.
    Undefined(String),
}

impl fmt::Display for AnalyticsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnalyticsError::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            AnalyticsError::NonFinite(msg) => write!(f, "non-finite value: {msg}"),
            AnalyticsError::NotEnoughData { what, needed, got } => {
                write!(
                    f,
                    "not enough data: need at least {needed} {what}, got {got}"
                )
            }
            AnalyticsError::NoConvergence(msg) => write!(f, "did not converge: {msg}"),
            AnalyticsError::Undefined(msg) => write!(f, "undefined: {msg}"),
        }
    }
}

impl std::error::Error for AnalyticsError {}

/// Result alias used throughout the analytics modules.
pub type AnalyticsResult<T> = Result<T, AnalyticsError>;

/// Returns `Err(NonFinite)` naming `what` unless `value` is finite.
fn ensure_finite(what: &str, value: f64) -> AnalyticsResult<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(AnalyticsError::NonFinite(format!("{what} = {value}")))
    }
}
