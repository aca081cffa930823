//! Gamma-Gamma model of average transaction value.
//!
//! Fader, P. S. & Hardie, B. G. S. (2013), "The Gamma-Gamma Model of Monetary Value"
//! (<http://www.brucehardie.com/notes/025/>); earlier Fader, Hardie & Lee (2005), "RFM and CLV:
//! Using Iso-Value Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4).
//!
//! Each transaction value of a customer is `Gamma(p, ν)` with `ν ~ Gamma(q, v)` across customers.
//! For a repeat customer with `x > 0` repeat transactions of mean value `m > 0`, the
//! log-likelihood used here is the one of `lifetimes.GammaGammaFitter` (0.11.3), which drops the
//! terms that do not depend on the parameters:
//!
//! ```text
//! LL = lnΓ(px+q) - lnΓ(px) - lnΓ(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(x m + v)
//! E[M | x, m] = (1 - w) v p / (q - 1) + w m,   w = p x / (p x + q - 1)
//! ```
//!
//! `E[M]` needs `q > 1`. [`fit`] minimises `-mean(LL) + penalizer (p² + q² + v²)` over the
//! log-parameters with BFGS (analytic gradient) from `ln θ = 0.1`, like `lifetimes`.

use super::optimize::fit_log_params;
use super::special::{digamma, ln_gamma};
use super::summary::CustomerSummary;
use super::{AnalyticsError, AnalyticsResult, ensure_finite};

/// Repeat purchases and their mean value for one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendObservation {
    /// Number of repeat purchases `x`.
    pub frequency: u32,
    /// Mean value `m` of the repeat purchases (ignored when `frequency == 0`).
    pub monetary_value: f64,
}

impl From<&CustomerSummary> for SpendObservation {
    fn from(s: &CustomerSummary) -> Self {
        SpendObservation {
            frequency: s.frequency,
            monetary_value: s.monetary_value,
        }
    }
}

/// Gamma-Gamma parameters (all strictly positive and finite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    /// Shape of the per-transaction Gamma distribution.
    pub p: f64,
    /// Shape of the Gamma distribution of the per-customer scale.
    pub q: f64,
    /// Scale of the Gamma distribution of the per-customer scale.
    pub v: f64,
}

impl GammaGammaParams {
    /// Builds parameters, checking that each is finite and strictly positive.
    pub fn new(p: f64, q: f64, v: f64) -> AnalyticsResult<Self> {
        let params = GammaGammaParams { p, q, v };
        params.validate()?;
        Ok(params)
    }

    /// Checks that each parameter is finite and strictly positive.
    pub fn validate(&self) -> AnalyticsResult<()> {
        for (name, val) in [("p", self.p), ("q", self.q), ("v", self.v)] {
            ensure_finite(name, val)?;
            if val <= 0.0 {
                return Err(AnalyticsError::InvalidInput(format!(
                    "Gamma-Gamma {name} = {val} <= 0"
                )));
            }
        }
        Ok(())
    }

    /// Population mean of the average transaction value, `v p / (q - 1)`.
    ///
    /// Errors with `Undefined` when `q <= 1`.
    pub fn population_mean_spend(&self) -> AnalyticsResult<f64> {
        self.validate()?;
        if self.q <= 1.0 {
            return Err(AnalyticsError::Undefined(format!(
                "Gamma-Gamma mean spend needs q > 1, got q = {}",
                self.q
            )));
        }
        Ok(self.v * self.p / (self.q - 1.0))
    }

    /// Expected average transaction value `E[M | x, m]` (the population mean for `x = 0`).
    ///
    /// Errors: `Undefined` when `q <= 1`, `NonFinite` for a non-finite `monetary_value`.
    pub fn expected_average_spend(
        &self,
        frequency: u32,
        monetary_value: f64,
    ) -> AnalyticsResult<f64> {
        ensure_finite("monetary_value", monetary_value)?;
        let population = self.population_mean_spend()?;
        let px = self.p * f64::from(frequency);
        let w = px / (px + self.q - 1.0);
        Ok((1.0 - w) * population + w * monetary_value)
    }

    /// Log-likelihood of one repeat customer (the `lifetimes` form above).
    ///
    /// Errors with `InvalidInput` unless `frequency > 0` and `monetary_value > 0`.
    pub fn log_likelihood(&self, obs: &SpendObservation) -> AnalyticsResult<f64> {
        self.validate()?;
        ensure_finite("monetary_value", obs.monetary_value)?;
        if obs.frequency == 0 || obs.monetary_value <= 0.0 {
            return Err(AnalyticsError::InvalidInput(
                "Gamma-Gamma likelihood needs frequency > 0 and monetary_value > 0".into(),
            ));
        }
        let GammaGammaParams { p, q, v } = *self;
        let x = f64::from(obs.frequency);
        let m = obs.monetary_value;
        let px = p * x;
        let ll = ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * v.ln()
            + (px - 1.0) * m.ln()
            + px * x.ln()
            - (px + q) * (x * m + v).ln();
        ensure_finite("Gamma-Gamma log-likelihood", ll)?;
        Ok(ll)
    }
}

pub use super::optimize::FitOptions;

/// A fitted Gamma-Gamma model.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaGammaFit {
    /// Maximum-likelihood parameters (with `q > 1`).
    pub params: GammaGammaParams,
    /// Total (summed, unpenalised) log-likelihood in the `lifetimes` form.
    pub log_likelihood: f64,
    /// Optimiser iterations.
    pub iterations: usize,
    /// Whether the optimiser met its gradient tolerance.
    pub converged: bool,
    /// Number of repeat customers fitted.
    pub customers: usize,
    /// Customers left out: one-time buyers and repeat customers with `monetary_value <= 0`.
    pub skipped: usize,
}

/// Fits the Gamma-Gamma model on the repeat customers (`frequency > 0`, `monetary_value > 0`)
/// of `data`; the others are skipped and counted.
///
/// Errors: `NonFinite` for a non-finite monetary value, `NotEnoughData` when fewer than
/// `min_repeat_customers` usable customers remain, `NoConvergence` when the optimum runs off
/// to degenerate parameters, and `Undefined` when the fitted `q <= 1` (the expected spend would
/// be undefined; the message carries the fitted parameters).
pub fn fit(data: &[SpendObservation], options: &FitOptions) -> AnalyticsResult<GammaGammaFit> {
    ensure_finite("penalizer", options.penalizer)?;
    if options.penalizer < 0.0 {
        return Err(AnalyticsError::InvalidInput("penalizer < 0".into()));
    }
    let mut rows: Vec<(u32, f64)> = Vec::with_capacity(data.len());
    for obs in data {
        ensure_finite("monetary_value", obs.monetary_value)?;
        if obs.frequency > 0 && obs.monetary_value > 0.0 {
            rows.push((obs.frequency, obs.monetary_value));
        }
    }
    let needed = options.min_repeat_customers.max(1);
    if rows.len() < needed {
        return Err(AnalyticsError::NotEnoughData {
            what: "repeat customers with positive spend",
            needed,
            got: rows.len(),
        });
    }
    let data_set = SpendData::new(rows);
    let (best, iterations) = fit_log_params(
        |theta: &[f64], grad: Option<&mut [f64]>| {
            data_set.negative_mean_ll(theta, grad, options.penalizer)
        },
        &[0.1; 3],
        options,
        "Gamma-Gamma",
    )?;
    let params = GammaGammaParams {
        p: best.x[0].exp(),
        q: best.x[1].exp(),
        v: best.x[2].exp(),
    };
    params.validate()?;
    if params.q <= 1.0 {
        return Err(AnalyticsError::Undefined(format!(
            "fitted Gamma-Gamma q = {} <= 1 (p = {}, v = {}): expected spend undefined",
            params.q, params.p, params.v
        )));
    }
    let theta = [params.p.ln(), params.q.ln(), params.v.ln()];
    let n = data_set.n;
    let log_likelihood = -data_set.negative_mean_ll(&theta, None, 0.0) * n;
    Ok(GammaGammaFit {
        params,
        log_likelihood,
        iterations,
        converged: best.converged,
        customers: data_set.rows.len(),
        skipped: data.len() - data_set.rows.len(),
    })
}

/// Repeat customers sorted by `x`, with the sums the likelihood needs precomputed.
struct SpendData {
    /// (x, x * m), sorted by x.
    rows: Vec<(f64, f64)>,
    /// (x, count, ln x) per distinct x.
    groups: Vec<(f64, f64, f64)>,
    n: f64,
    sum_ln_m: f64,
    sum_x_ln_m: f64,
}

impl SpendData {
    fn new(mut raw: Vec<(u32, f64)>) -> Self {
        raw.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut groups: Vec<(f64, f64, f64)> = Vec::new();
        let (mut sum_ln_m, mut sum_x_ln_m) = (0.0, 0.0);
        let mut rows = Vec::with_capacity(raw.len());
        for &(x, m) in &raw {
            let xf = f64::from(x);
            match groups.last_mut() {
                Some(g) if g.0 == xf => g.1 += 1.0,
                _ => groups.push((xf, 1.0, xf.ln())),
            }
            sum_ln_m += m.ln();
            sum_x_ln_m += xf * m.ln();
            rows.push((xf, xf * m));
        }
        SpendData {
            n: rows.len() as f64,
            rows,
            groups,
            sum_ln_m,
            sum_x_ln_m,
        }
    }

    /// `-mean(LL) + penalizer Σ θ_i²` at log-parameters, with the gradient when asked.
    fn negative_mean_ll(&self, theta: &[f64], grad: Option<&mut [f64]>, penalizer: f64) -> f64 {
        let par = [theta[0].exp(), theta[1].exp(), theta[2].exp()];
        if par.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return f64::INFINITY;
        }
        let [p, q, v] = par;
        let want_grad = grad.is_some();
        let ln_v = v.ln();
        let (lg_q, dg_q) = (ln_gamma(q), if want_grad { digamma(q) } else { 0.0 });
        let mut ll = self.n * q * ln_v + p * self.sum_x_ln_m - self.sum_ln_m;
        let mut g = [self.sum_x_ln_m, self.n * ln_v, self.n * q / v];
        for &(x, count, ln_x) in &self.groups {
            let px = p * x;
            ll += count * (ln_gamma(px + q) - ln_gamma(px) - lg_q + px * ln_x);
            if want_grad {
                let dg_pxq = digamma(px + q);
                g[0] += count * x * (dg_pxq - digamma(px) + ln_x);
                g[1] += count * (dg_pxq - dg_q);
            }
        }
        for &(x, xm) in &self.rows {
            let px_q = p * x + q;
            let ln_xmv = (xm + v).ln();
            ll -= px_q * ln_xmv;
            if want_grad {
                g[0] -= x * ln_xmv;
                g[1] -= ln_xmv;
                g[2] -= px_q / (xm + v);
            }
        }
        let value = -ll / self.n + penalizer * par.iter().map(|t| t * t).sum::<f64>();
        if let Some(grad) = grad {
            for i in 0..3 {
                grad[i] = -g[i] * par[i] / self.n + 2.0 * penalizer * par[i] * par[i];
            }
        }
        if value.is_finite() {
            value
        } else {
            f64::INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn simulate(n: usize, truth: GammaGammaParams, seed: u64) -> Vec<SpendObservation> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let nu = rng.gamma(truth.q, 1.0 / truth.v);
                let x = 1 + (i % 7) as u32;
                let total: f64 = (0..x).map(|_| rng.gamma(truth.p, 1.0 / nu)).sum();
                SpendObservation {
                    frequency: x,
                    monetary_value: total / f64::from(x),
                }
            })
            .collect()
    }

    #[test]
    fn expected_spend_formula() {
        let g = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        // v p / (q - 1) with the CDNOW estimates of Fader & Hardie (2013).
        assert!((g.population_mean_spend().unwrap() - 15.44 * 6.25 / 2.74).abs() < 1e-12);
        let w = 6.25 * 2.0 / (6.25 * 2.0 + 3.74 - 1.0);
        let want = (1.0 - w) * g.population_mean_spend().unwrap() + w * 50.0;
        assert!((g.expected_average_spend(2, 50.0).unwrap() - want).abs() < 1e-12);
        assert_eq!(
            g.expected_average_spend(0, 0.0).unwrap(),
            g.population_mean_spend().unwrap()
        );
        let bad = GammaGammaParams::new(1.0, 0.9, 1.0).unwrap();
        assert!(matches!(
            bad.expected_average_spend(1, 1.0),
            Err(AnalyticsError::Undefined(_))
        ));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = simulate(400, GammaGammaParams::new(3.0, 4.0, 50.0).unwrap(), 3);
        let rows = data
            .iter()
            .map(|o| (o.frequency, o.monetary_value))
            .collect();
        let set = SpendData::new(rows);
        for theta in [[0.1, 0.1, 0.1], [1.0, 1.5, 4.0], [-0.5, 0.3, 2.0]] {
            crate::optimize::assert_gradient_matches(
                |t, g| set.negative_mean_ll(t, g, 0.001),
                &theta,
            );
        }
    }

    #[test]
    fn fit_recovers_simulated_parameters() {
        let truth = GammaGammaParams::new(3.0, 4.0, 50.0).unwrap();
        let mut data = simulate(20_000, truth, 5);
        data.push(SpendObservation {
            frequency: 0,
            monetary_value: 0.0,
        });
        data.push(SpendObservation {
            frequency: 2,
            monetary_value: -5.0,
        });
        let fitted = fit(&data, &FitOptions::default()).unwrap();
        assert!(fitted.converged, "{fitted:?}");
        assert_eq!((fitted.customers, fitted.skipped), (20_000, 2));
        let p = fitted.params;
        assert!((p.p / truth.p - 1.0).abs() < 0.1, "{p:?}");
        assert!((p.q / truth.q - 1.0).abs() < 0.15, "{p:?}");
        assert!((p.v / truth.v - 1.0).abs() < 0.25, "{p:?}");
        let direct: f64 = data
            .iter()
            .filter(|o| o.frequency > 0 && o.monetary_value > 0.0)
            .map(|o| p.log_likelihood(o).unwrap())
            .sum();
        assert!((direct - fitted.log_likelihood).abs() < 1e-8 * direct.abs());
        let ll = |q: GammaGammaParams| {
            data.iter()
                .filter(|o| o.frequency > 0 && o.monetary_value > 0.0)
                .map(|o| q.log_likelihood(o).unwrap())
                .sum::<f64>()
        };
        for bump in [1.001, 0.999] {
            assert!(fitted.log_likelihood > ll(GammaGammaParams { p: p.p * bump, ..p }));
            assert!(fitted.log_likelihood > ll(GammaGammaParams { q: p.q * bump, ..p }));
            assert!(fitted.log_likelihood > ll(GammaGammaParams { v: p.v * bump, ..p }));
        }
    }

    #[test]
    fn errors() {
        let few = vec![
            SpendObservation {
                frequency: 2,
                monetary_value: 10.0
            };
            5
        ];
        assert!(matches!(
            fit(&few, &FitOptions::default()),
            Err(AnalyticsError::NotEnoughData { got: 5, .. })
        ));
        let nan = [SpendObservation {
            frequency: 2,
            monetary_value: f64::NAN,
        }];
        assert!(matches!(
            fit(&nan, &FitOptions::default()),
            Err(AnalyticsError::NonFinite(_))
        ));
        // Identical spend for everyone: no spread between customers, the optimum is degenerate
        // (q and v run off to infinity); this must be an error, not numbers.
        let same: Vec<SpendObservation> = (0..50)
            .map(|i| SpendObservation {
                frequency: 1 + i % 3,
                monetary_value: 20.0,
            })
            .collect();
        assert!(fit(&same, &FitOptions::default()).is_err());
        assert!(GammaGammaParams::new(-1.0, 2.0, 3.0).is_err());
        let g = GammaGammaParams::new(1.0, 2.0, 3.0).unwrap();
        let one_time = SpendObservation {
            frequency: 0,
            monetary_value: 3.0,
        };
        assert!(g.log_likelihood(&one_time).is_err());
    }
}
