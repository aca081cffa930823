//! BG/NBD ("beta-geometric / negative binomial distribution") model of repeat purchasing.
//!
//! Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "Counting Your Customers the Easy Way:
//! An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284; P(alive) from
//! Fader, Hardie & Lee, "Computing P(alive) Using the BG/NBD Model" (brucehardie.com note 021).
//!
//! While alive, a customer buys as a Poisson process with rate `λ ~ Gamma(r, α)`; after each
//! purchase they drop out with probability `p ~ Beta(a, b)`. For a customer with `x` repeat
//! purchases, the last at `t_x`, observed for `T` time units since the first purchase:
//!
//! ```text
//! ln A1 = lnΓ(r+x) - lnΓ(r) + r ln α
//! ln A2 = lnΓ(a+b) + lnΓ(b+x) - lnΓ(b) - lnΓ(a+b+x)
//! ln A3 = -(r+x) ln(α+T)
//! ln A4 = ln a - ln(b+x-1) - (r+x) ln(α+t_x)        (x > 0 only)
//! LL    = ln A1 + ln A2 + ln(exp(ln A3) + [x>0] exp(ln A4))      (log-sum-exp)
//! P(alive) = 1 / (1 + [x>0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x))
//! E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1)
//!     * (1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))) * P(alive)
//! ```
//!
//! [`BgNbdParams::expected_purchases`] evaluates the last line through Euler's transformation
//! `2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)`, which turns the bracket into
//! `1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)`: the same number, without the huge
//! intermediate values that heavy buyers (large `x`) produce in the original form.
//!
//! # Fitting
//! [`fit`] maximises the mean log-likelihood exactly like `lifetimes.BetaGeoFitter` (0.11.3):
//! the objective is `-mean(LL) + penalizer * (r² + α² + a² + b²)`, minimised over the
//! log-parameters with BFGS and an analytic gradient, starting at `ln θ = 0.1`, with time
//! rescaled so that the largest `T` is 10 (so `α` and the penalizer act on the same scale as in
//! `lifetimes`). Identical `(x, t_x, T)` patterns are merged with weights, and the terms that
//! depend on `x` only are computed once per distinct `x`, so 100k customers fit in well under a
//! second. If BFGS fails to converge, Nelder-Mead restarts polish the point and BFGS runs again.

mod fit;

#[cfg(test)]
mod tests;

use super::special::{hyp2f1_many, ln_gamma};
use super::summary::CustomerSummary;
use super::{AnalyticsError, AnalyticsResult, ensure_finite};

pub use super::optimize::FitOptions;
pub use fit::{BgNbdFit, Prepared, fit, prepare};

/// One customer's purchase history in model form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Number of repeat purchases `x`.
    pub frequency: u32,
    /// Time of the last purchase since the first, `t_x` (0 when `frequency == 0`).
    pub recency: f64,
    /// Time since the first purchase until the end of observation, `T >= recency`.
    pub t: f64,
}

impl Observation {
    /// Checks the domain: finite, `0 <= recency <= t`, and `recency == 0` when `frequency == 0`.
    pub fn validate(&self) -> AnalyticsResult<()> {
        ensure_finite("recency", self.recency)?;
        ensure_finite("T", self.t)?;
        if self.recency < 0.0 || self.recency > self.t {
            return Err(AnalyticsError::InvalidInput(format!(
                "need 0 <= recency <= T, got recency {} and T {}",
                self.recency, self.t
            )));
        }
        if self.frequency == 0 && self.recency != 0.0 {
            return Err(AnalyticsError::InvalidInput(format!(
                "recency {} must be 0 when frequency is 0",
                self.recency
            )));
        }
        Ok(())
    }
}

impl From<&CustomerSummary> for Observation {
    fn from(s: &CustomerSummary) -> Self {
        Observation {
            frequency: s.frequency,
            recency: s.recency,
            t: s.t,
        }
    }
}

/// BG/NBD parameters (all strictly positive and finite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    /// Shape of the Gamma distribution of purchase rates.
    pub r: f64,
    /// Scale (in time units) of the Gamma distribution of purchase rates.
    pub alpha: f64,
    /// First shape of the Beta distribution of dropout probabilities.
    pub a: f64,
    /// Second shape of the Beta distribution of dropout probabilities.
    pub b: f64,
}

impl BgNbdParams {
    /// Builds parameters, checking that each is finite and strictly positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> AnalyticsResult<Self> {
        let p = BgNbdParams { r, alpha, a, b };
        p.validate()?;
        Ok(p)
    }

    /// Checks that each parameter is finite and strictly positive.
    pub fn validate(&self) -> AnalyticsResult<()> {
        for (name, v) in [
            ("r", self.r),
            ("alpha", self.alpha),
            ("a", self.a),
            ("b", self.b),
        ] {
            ensure_finite(name, v)?;
            if v <= 0.0 {
                return Err(AnalyticsError::InvalidInput(format!(
                    "BG/NBD {name} = {v} <= 0"
                )));
            }
        }
        Ok(())
    }

    /// Log-likelihood of one customer's history (the formula in the module docs).
    pub fn log_likelihood(&self, obs: &Observation) -> AnalyticsResult<f64> {
        self.validate()?;
        obs.validate()?;
        let BgNbdParams { r, alpha, a, b } = *self;
        let x = f64::from(obs.frequency);
        let ln_a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let ln_a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let ln_a3 = -(r + x) * (alpha + obs.t).ln();
        let tail = if obs.frequency > 0 {
            let ln_a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + obs.recency).ln();
            log_add_exp(ln_a3, ln_a4)
        } else {
            ln_a3
        };
        let ll = ln_a1 + ln_a2 + tail;
        ensure_finite("BG/NBD log-likelihood", ll)?;
        Ok(ll)
    }

    /// Probability that the customer is still alive at the end of observation.
    pub fn probability_alive(&self, obs: &Observation) -> AnalyticsResult<f64> {
        self.validate()?;
        obs.validate()?;
        Ok(self.p_alive_unchecked(obs))
    }

    fn p_alive_unchecked(&self, obs: &Observation) -> f64 {
        if obs.frequency == 0 {
            return 1.0;
        }
        let x = f64::from(obs.frequency);
        let log_div = (self.r + x) * ((self.alpha + obs.t) / (self.alpha + obs.recency)).ln()
            + (self.a / (self.b + x - 1.0)).ln();
        // 1 / (1 + e^d); e^d = inf gives 0, never NaN.
        1.0 / (1.0 + log_div.exp())
    }

    /// Expected number of purchases in the next `t` time units given the history `obs`
    /// (Fader, Hardie & Lee 2005, eq. 10).
    ///
    /// Errors: `InvalidInput` for negative `t`, `Undefined` when `a == 1` exactly (the
    /// closed form divides by `a - 1`), `NoConvergence` if 2F1 cannot be evaluated accurately.
    pub fn expected_purchases(&self, t: f64, obs: &Observation) -> AnalyticsResult<f64> {
        Ok(self.expected_purchases_curve(&[t], obs)?[0])
    }

    /// [`Self::expected_purchases`] at several horizons at once (cumulative counts, one per
    /// horizon, in the given order); shares the 2F1 series work between horizons.
    pub fn expected_purchases_curve(
        &self,
        horizons: &[f64],
        obs: &Observation,
    ) -> AnalyticsResult<Vec<f64>> {
        self.validate()?;
        obs.validate()?;
        let shape = self.purchase_curve_shape(horizons, obs.frequency, obs.t)?;
        self.expected_purchases_on(&shape, obs)
    }

    /// The part of [`Self::expected_purchases_curve`] at `horizons` that depends on the history
    /// only through its frequency `x` and age `T`: the 2F1 series, the costly part. Customers
    /// who share `x` and `T` share it; [`Self::expected_purchases_on`] finishes each one's curve
    /// with the same result as `expected_purchases_curve`.
    ///
    /// Errors: those of `expected_purchases_curve` that do not depend on the recency.
    pub fn purchase_curve_shape(
        &self,
        horizons: &[f64],
        frequency: u32,
        t: f64,
    ) -> AnalyticsResult<PurchaseCurveShape> {
        self.validate()?;
        for &h in horizons {
            ensure_finite("horizon t", h)?;
            if h < 0.0 {
                return Err(AnalyticsError::InvalidInput(format!("horizon t = {h} < 0")));
            }
        }
        let mut shape = PurchaseCurveShape {
            frequency,
            t,
            horizons: horizons.to_vec(),
            zs: Vec::new(),
            fs: Vec::new(),
            exponent: 0.0,
            c: 0.0,
        };
        if horizons.iter().all(|&h| h == 0.0) {
            return Ok(shape);
        }
        let BgNbdParams { r, alpha, a, b } = *self;
        if a == 1.0 {
            return Err(AnalyticsError::Undefined(
                "BG/NBD expected purchases with a = 1 (division by a - 1)".into(),
            ));
        }
        let x = f64::from(frequency);
        let c = a + b + x - 1.0;
        let zs: Vec<f64> = horizons.iter().map(|&h| h / (alpha + t + h)).collect();
        // Bracket 1 - (1-z)^(r+x) 2F1(r+x, b+x; c; z), preferably via Euler's transform.
        let (fs, exponent) = match hyp2f1_many(a + b - 1.0 - r, a - 1.0, c, &zs) {
            Ok(fs) => (fs, a - 1.0),
            Err(first) => match hyp2f1_many(r + x, b + x, c, &zs) {
                Ok(fs) => (fs, r + x),
                Err(_) => return Err(first),
            },
        };
        shape.zs = zs;
        shape.fs = fs;
        shape.exponent = exponent;
        shape.c = c;
        Ok(shape)
    }

    /// The expected-purchases curve of the history `obs` from the shape of its `x` and `T`
    /// (see [`Self::purchase_curve_shape`]; `obs` is not validated again).
    ///
    /// Errors: `InvalidInput` when the shape is of another `x` or `T`, `NoConvergence` when a
    /// value overflows.
    pub fn expected_purchases_on(
        &self,
        shape: &PurchaseCurveShape,
        obs: &Observation,
    ) -> AnalyticsResult<Vec<f64>> {
        if shape.frequency != obs.frequency || shape.t.to_bits() != obs.t.to_bits() {
            return Err(AnalyticsError::InvalidInput(format!(
                "a purchase curve shape of x = {}, T = {} used for x = {}, T = {}",
                shape.frequency, shape.t, obs.frequency, obs.t
            )));
        }
        if shape.fs.is_empty() {
            return Ok(vec![0.0; shape.horizons.len()]);
        }
        let x = f64::from(obs.frequency);
        let scale = shape.c / (self.a - 1.0) * self.p_alive_unchecked(obs);
        let mut out = Vec::with_capacity(shape.horizons.len());
        for ((&t, &f), &z) in shape.horizons.iter().zip(&shape.fs).zip(&shape.zs) {
            if t == 0.0 {
                out.push(0.0);
                continue;
            }
            let value = scale * one_minus_scaled(f, shape.exponent * (-z).ln_1p());
            if !value.is_finite() {
                return Err(AnalyticsError::NoConvergence(format!(
                    "BG/NBD expected purchases overflowed for x = {x}, t = {t}"
                )));
            }
            out.push(value);
        }
        Ok(out)
    }

    /// Expected number of repeat purchases of a new customer in their first `t` time units
    /// (eq. 9 of the paper; equals [`Self::expected_purchases`] with `x = t_x = T = 0`).
    pub fn expected_purchases_new_customer(&self, t: f64) -> AnalyticsResult<f64> {
        self.expected_purchases(
            t,
            &Observation {
                frequency: 0,
                recency: 0.0,
                t: 0.0,
            },
        )
    }
}

/// The 2F1 values of an expected-purchases curve for one frequency and age (see
/// [`BgNbdParams::purchase_curve_shape`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseCurveShape {
    frequency: u32,
    t: f64,
    horizons: Vec<f64>,
    zs: Vec<f64>,
    /// Empty when every horizon is 0.
    fs: Vec<f64>,
    exponent: f64,
    c: f64,
}

/// `1 - f * exp(ln_scale)` computed without needless cancellation.
fn one_minus_scaled(f: f64, ln_scale: f64) -> f64 {
    if f > 0.0 {
        -(f.ln() + ln_scale).exp_m1()
    } else {
        1.0 - f * ln_scale.exp()
    }
}

fn log_add_exp(u: f64, v: f64) -> f64 {
    let m = u.max(v);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + (-(u - v).abs()).exp().ln_1p()
}
