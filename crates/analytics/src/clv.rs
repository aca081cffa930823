//! Discounted customer lifetime value, as `lifetimes.GammaGammaFitter.customer_lifetime_value`.
//!
//! Combines the BG/NBD purchase model (Fader, Hardie & Lee 2005) with the Gamma-Gamma spend model
//! (Fader & Hardie 2013):
//!
//! ```text
//! CLV = Σ_{k=1..months} E[M] (E[Y(k f)] - E[Y((k-1) f)]) / (1 + d)^k
//! ```
//!
//! where `E[Y(t)]` is the BG/NBD conditional expected number of purchases in the next `t` time
//! units, `E[M]` the Gamma-Gamma expected average spend (the population mean for one-time
//! buyers, as in `lifetimes`), `d` the monthly discount rate and `f` the number of model time
//! units per month (30 for days, 4.345 for weeks).

use super::bgnbd::{BgNbdParams, Observation};
use super::gamma_gamma::GammaGammaParams;
use super::summary::TimeUnit;
use super::{AnalyticsError, AnalyticsResult, ensure_finite};

/// Horizon and discounting of a CLV computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvOptions {
    /// Number of months to sum over (`lifetimes`' `time`, default 12).
    pub months: u32,
    /// Monthly discount rate `d` (default 0.01).
    pub monthly_discount_rate: f64,
    /// Model time units per month `f` (30 for days, 4.345 for weeks).
    pub time_units_per_month: f64,
}

impl ClvOptions {
    /// Options for models fitted in `unit`, with `lifetimes`' defaults (12 months, 1%).
    pub fn for_unit(unit: TimeUnit) -> Self {
        ClvOptions {
            months: 12,
            monthly_discount_rate: 0.01,
            time_units_per_month: unit.units_per_month(),
        }
    }

    /// The end of each month summed, in model time units.
    pub fn horizons(&self) -> Vec<f64> {
        let f = self.time_units_per_month;
        (1..=self.months).map(|k| f64::from(k) * f).collect()
    }

    /// Checks that the discount rate is above -1 and a month has a positive length.
    pub fn validate(&self) -> AnalyticsResult<()> {
        ensure_finite("monthly_discount_rate", self.monthly_discount_rate)?;
        ensure_finite("time_units_per_month", self.time_units_per_month)?;
        if self.monthly_discount_rate <= -1.0 || self.time_units_per_month <= 0.0 {
            return Err(AnalyticsError::InvalidInput(format!(
                "CLV needs discount rate > -1 and time units per month > 0, got {} and {}",
                self.monthly_discount_rate, self.time_units_per_month
            )));
        }
        Ok(())
    }
}

impl Default for ClvOptions {
    fn default() -> Self {
        ClvOptions::for_unit(TimeUnit::Days)
    }
}

/// Discounted CLV of one customer with history `obs` and observed mean repeat spend
/// `monetary_value` (ignored for one-time buyers).
///
/// Errors: those of [`BgNbdParams::expected_purchases`] and
/// [`GammaGammaParams::expected_average_spend`] (notably `Undefined` when `q <= 1`), and
/// `InvalidInput` for bad options.
pub fn customer_lifetime_value(
    purchases: &BgNbdParams,
    spend: &GammaGammaParams,
    obs: &Observation,
    monetary_value: f64,
    options: &ClvOptions,
) -> AnalyticsResult<f64> {
    let expected_spend = spend.expected_average_spend(obs.frequency, monetary_value)?;
    discounted_value(purchases, obs, expected_spend, options)
}

/// Discounted CLV given an already computed expected average spend per purchase.
pub fn discounted_value(
    purchases: &BgNbdParams,
    obs: &Observation,
    expected_spend: f64,
    options: &ClvOptions,
) -> AnalyticsResult<f64> {
    options.validate()?;
    ensure_finite("expected_spend", expected_spend)?;
    let cumulative = purchases.expected_purchases_curve(&options.horizons(), obs)?;
    discounted_sum(&cumulative, expected_spend, options)
}

/// The discounted CLV from the expected cumulative purchases at [`ClvOptions::horizons`], as
/// [`discounted_value`] sums them.
pub fn discounted_sum(
    cumulative: &[f64],
    expected_spend: f64,
    options: &ClvOptions,
) -> AnalyticsResult<f64> {
    let mut clv = 0.0;
    let mut previous = 0.0;
    let mut discount = 1.0;
    for &e in cumulative {
        discount *= 1.0 + options.monthly_discount_rate;
        clv += expected_spend * (e - previous) / discount;
        previous = e;
    }
    ensure_finite("CLV", clv)?;
    Ok(clv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undiscounted_clv_telescopes() {
        let bg = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap();
        let gg = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        let obs = Observation {
            frequency: 2,
            recency: 30.43,
            t: 38.86,
        };
        let opts = ClvOptions {
            months: 9,
            monthly_discount_rate: 0.0,
            ..ClvOptions::for_unit(TimeUnit::Weeks)
        };
        let clv = customer_lifetime_value(&bg, &gg, &obs, 40.0, &opts).unwrap();
        let want = gg.expected_average_spend(2, 40.0).unwrap()
            * bg.expected_purchases(9.0 * 4.345, &obs).unwrap();
        assert!(((clv - want) / want).abs() < 1e-12);
        // Discounting lowers the value; zero months is zero.
        let discounted = customer_lifetime_value(
            &bg,
            &gg,
            &obs,
            40.0,
            &ClvOptions {
                monthly_discount_rate: 0.05,
                ..opts
            },
        )
        .unwrap();
        assert!(discounted < clv && discounted > 0.0);
        assert_eq!(
            discounted_value(&bg, &obs, 10.0, &ClvOptions { months: 0, ..opts }).unwrap(),
            0.0
        );
    }

    #[test]
    fn errors() {
        let bg = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap();
        let gg_bad = GammaGammaParams::new(1.0, 0.5, 1.0).unwrap();
        let obs = Observation {
            frequency: 1,
            recency: 1.0,
            t: 2.0,
        };
        let opts = ClvOptions::default();
        assert!(matches!(
            customer_lifetime_value(&bg, &gg_bad, &obs, 5.0, &opts),
            Err(AnalyticsError::Undefined(_))
        ));
        let neg = ClvOptions {
            time_units_per_month: 0.0,
            ..opts
        };
        assert!(discounted_value(&bg, &obs, 1.0, &neg).is_err());
        assert!(discounted_value(&bg, &obs, f64::NAN, &opts).is_err());
    }

    /// End to end on 100k simulated customers (~1M transactions): summary, both fits, CLV for
    /// everyone. Run with `cargo test --release -- --ignored --nocapture pipeline_100k_timing`.
    #[test]
    #[ignore]
    fn pipeline_100k_timing() {
        use super::super::bgnbd::{self, FitOptions};
        use super::super::gamma_gamma;
        use super::super::summary::{Transaction, summarize};
        let mut rng = crate::rng::Rng::new(2025);
        // In (0, 1]: the logarithms below stay finite.
        let mut uniform = || 1.0 - rng.f64();
        // Heterogeneous purchase rates (exponential mixing), geometric dropout, lognormal-ish
        // spend with a per-customer level.
        let mut txs = Vec::new();
        for c in 0..100_000u32 {
            let rate = -uniform().ln() / 25.0;
            let drop = 0.05 + 0.4 * uniform();
            let level = 20.0 + 200.0 * uniform();
            let mut day = (uniform() * 365.0) as i32;
            loop {
                txs.push(Transaction {
                    customer: c,
                    day,
                    amount: level * (0.5 + uniform()),
                });
                if uniform() < drop {
                    break;
                }
                day += 1 + (-uniform().ln() / rate) as i32;
                if day > 365 {
                    break;
                }
            }
        }
        let t0 = std::time::Instant::now();
        let summary = summarize(&txs, 100_000, 365, TimeUnit::Days).unwrap();
        let t1 = t0.elapsed();
        let obs: Vec<Observation> = summary.iter().map(Observation::from).collect();
        let bg = bgnbd::fit(&obs, &FitOptions::default()).unwrap();
        let t2 = t0.elapsed();
        let spend: Vec<_> = summary
            .iter()
            .map(gamma_gamma::SpendObservation::from)
            .collect();
        let gg = gamma_gamma::fit(&spend, &gamma_gamma::FitOptions::default()).unwrap();
        let t3 = t0.elapsed();
        let options = ClvOptions::default();
        let total: f64 = summary
            .iter()
            .zip(&obs)
            .map(|(s, o)| {
                customer_lifetime_value(&bg.params, &gg.params, o, s.monetary_value, &options)
                    .unwrap()
            })
            .sum();
        let t4 = t0.elapsed();
        println!(
            "pipeline on {} transactions / {} customers: summary {t1:?}, BG/NBD fit {:?} ({} \
             patterns, converged {}), Gamma-Gamma fit {:?} ({} customers, converged {}), CLV for \
             all {:?}; total CLV {total:.0}",
            txs.len(),
            summary.len(),
            t2 - t1,
            bg.patterns,
            bg.converged,
            t3 - t2,
            gg.customers,
            gg.converged,
            t4 - t3
        );
    }
}
