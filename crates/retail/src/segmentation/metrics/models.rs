//! The BG/NBD and Gamma-Gamma fits and the per-customer predictions (p_alive, expected
//! purchases, p_purchase, expected spend, CLV) drawn from them.

use std::collections::HashMap;

use serde_json::json;

use super::config::MetricsConfig;
use crate::segmentation::FastHash;
use flow_analytics::AnalyticsError;
use flow_analytics::bgnbd::{self, BgNbdFit, BgNbdParams, Observation, PurchaseCurveShape};
use flow_analytics::clv::{ClvOptions, discounted_sum};
use flow_analytics::gamma_gamma::{self, GammaGammaFit, GammaGammaParams};
use flow_analytics::summary::CustomerSummary;
use flow_engine::data::Output;

/// Fitted models and why a model is missing.
pub(super) struct Models {
    pub(super) bgnbd: Option<BgNbdFit>,
    pub(super) gamma_gamma: Option<GammaGammaFit>,
    /// Usable for predictions (fitted and converged).
    pub(super) bg: Option<BgNbdParams>,
    pub(super) gg: Option<GammaGammaParams>,
    pub(super) fallback: Vec<String>,
}

/// Why the models are not fitted to `summaries`, if they are not.
fn not_fitted(summaries: &[CustomerSummary], cfg: &MetricsConfig) -> Option<String> {
    if !cfg.fit {
        return Some("model fitting is off (fit: none)".to_string());
    }
    let repeat = summaries.iter().filter(|s| s.frequency > 0).count();
    (repeat < cfg.min_repeat_customers).then(|| {
        format!(
            "too few repeat customers to fit the models: {repeat} of {} bought on more \
             than one day, min_repeat_customers is {}",
            flow_engine::plural::plural(summaries.len() as u64, "customer"),
            cfg.min_repeat_customers
        )
    })
}

/// The Gamma-Gamma fit, or why the models are not fitted.
pub(super) enum GammaGamma {
    NotFitted(String),
    Fitted(Result<GammaGammaFit, AnalyticsError>),
}

/// The Gamma-Gamma fit to `summaries`, when the models are fitted. It is quick and on one
/// thread, and needs nothing the BG/NBD fit does: it may run beside other work.
pub(super) fn fit_gamma_gamma(summaries: &[CustomerSummary], cfg: &MetricsConfig) -> GammaGamma {
    if let Some(why) = not_fitted(summaries, cfg) {
        return GammaGamma::NotFitted(why);
    }
    let spend: Vec<gamma_gamma::SpendObservation> = summaries
        .iter()
        .map(gamma_gamma::SpendObservation::from)
        .collect();
    let options = gamma_gamma::FitOptions {
        min_repeat_customers: cfg.min_repeat_customers,
        ..Default::default()
    };
    GammaGamma::Fitted(gamma_gamma::fit(&spend, &options))
}

/// The BG/NBD fit's observations, checked and reduced to their patterns (see
/// [`bgnbd::prepare`]) on this thread, when the models are fitted.
pub(super) type PreparedBgNbd = Result<bgnbd::Prepared, AnalyticsError>;

/// [`PreparedBgNbd`] of `summaries`; `None` when model fitting is off.
pub(super) fn prepare_bgnbd(
    summaries: &[CustomerSummary],
    cfg: &MetricsConfig,
) -> Option<PreparedBgNbd> {
    cfg.fit.then(|| {
        let obs: Vec<Observation> = summaries.iter().map(Observation::from).collect();
        bgnbd::prepare(&obs, &bg_options(cfg, 1))
    })
}

fn bg_options(cfg: &MetricsConfig, threads: usize) -> bgnbd::FitOptions {
    bgnbd::FitOptions {
        min_repeat_customers: cfg.min_repeat_customers,
        threads,
        ..Default::default()
    }
}

/// The models fitted to `summaries`: the Gamma-Gamma fit `gg` (what [`fit_gamma_gamma`]
/// gave), and BG/NBD from `bg` (what [`prepare_bgnbd`] gave, prepared here when `None`),
/// whose likelihood's terms get every core free by then.
pub(super) fn fit_models(
    summaries: &[CustomerSummary],
    cfg: &MetricsConfig,
    gg: GammaGamma,
    bg: Option<PreparedBgNbd>,
) -> Models {
    let mut m = Models {
        bgnbd: None,
        gamma_gamma: None,
        bg: None,
        gg: None,
        fallback: Vec::new(),
    };
    let gg_fit = match gg {
        GammaGamma::NotFitted(why) => {
            m.fallback.push(why);
            return m;
        }
        GammaGamma::Fitted(fit) => fit,
    };
    let cores = super::step_cores();
    let options = bg_options(cfg, cores.threads());
    let bg_fit = match bg {
        Some(prepared) => prepared,
        None => {
            let obs: Vec<Observation> = summaries.iter().map(Observation::from).collect();
            bgnbd::prepare(&obs, &options)
        }
    }
    .and_then(|prepared| prepared.fit(&options));
    drop(cores);
    match bg_fit {
        Ok(fit) => {
            if fit.converged {
                m.bg = Some(fit.params);
            } else {
                m.fallback.push(format!(
                    "the BG/NBD fit did not converge ({} iterations)",
                    fit.iterations
                ));
            }
            m.bgnbd = Some(fit);
        }
        Err(e) => m
            .fallback
            .push(format!("the BG/NBD model cannot be fitted: {e}")),
    }
    match gg_fit {
        Ok(fit) => {
            if fit.converged {
                m.gg = Some(fit.params);
            } else {
                m.fallback.push(format!(
                    "the Gamma-Gamma fit did not converge ({} iterations)",
                    fit.iterations
                ));
            }
            m.gamma_gamma = Some(fit);
        }
        Err(e) => m
            .fallback
            .push(format!("the Gamma-Gamma model cannot be fitted: {e}")),
    }
    m
}

/// Per-customer model predictions (null where a model is missing or a value fails).
#[derive(Default)]
pub(super) struct Predictions {
    pub(super) p_alive: Vec<Option<f64>>,
    pub(super) expected_purchases: Vec<Option<f64>>,
    pub(super) p_purchase: Vec<Option<f64>>,
    pub(super) expected_avg_spend: Vec<Option<f64>>,
    pub(super) clv: Vec<Option<f64>>,
    pub(super) errors: usize,
    pub(super) first_error: Option<String>,
}

/// The BG/NBD predictions shared by every customer with the same `(x, t_x, T)`.
#[derive(Default)]
struct PatternValues {
    p_alive: Option<f64>,
    expected_purchases: Option<f64>,
    p_purchase: Option<f64>,
    /// Discounted CLV per unit of expected spend (CLV is linear in the spend).
    clv_per_spend: Option<f64>,
    error: Option<String>,
}

pub(super) fn predict(
    summaries: &[CustomerSummary],
    names: &[&str],
    models: &Models,
    cfg: &MetricsConfig,
    index: Option<PatternIndex>,
) -> Predictions {
    let n = summaries.len();
    let mut out = Predictions {
        p_alive: Vec::with_capacity(n),
        expected_purchases: Vec::with_capacity(n),
        p_purchase: Vec::with_capacity(n),
        expected_avg_spend: Vec::with_capacity(n),
        clv: Vec::with_capacity(n),
        ..Default::default()
    };
    let PatternIndex {
        patterns,
        pattern_of,
    } = index.unwrap_or_else(|| PatternIndex::new(summaries));
    let values = match &models.bg {
        Some(bg) => {
            let horizon = f64::from(cfg.horizon_days) / cfg.unit.days_per_unit();
            let clv_options = ClvOptions {
                months: cfg.clv_months,
                monthly_discount_rate: cfg.discount_rate,
                time_units_per_month: cfg.unit.units_per_month(),
            };
            let with_clv = models.gg.is_some();
            let curves = CurveHorizons {
                horizon: [horizon],
                clv: clv_options.horizons(),
            };
            // The 2F1 series of each distinct frequency and age once, then each pattern's
            // values from its shapes; both split over the cores.
            let mut shape_index: HashMap<(u32, u64), u32, FastHash> = HashMap::default();
            let mut shape_of_pattern = Vec::with_capacity(patterns.len());
            let mut ages: Vec<&Observation> = Vec::new();
            for obs in &patterns {
                let key = (obs.frequency, obs.t.to_bits());
                shape_of_pattern.push(*shape_index.entry(key).or_insert_with(|| {
                    ages.push(obs);
                    (ages.len() - 1) as u32
                }));
            }
            drop(shape_index);
            let shapes = split_over_cores(&ages, |obs| Shapes::new(bg, obs, &curves, with_clv));
            let numbered: Vec<(&Observation, u32)> =
                patterns.iter().zip(shape_of_pattern).collect();
            split_over_cores(&numbered, |&(obs, shape)| {
                pattern_values(bg, obs, &shapes[shape as usize], horizon, &clv_options)
            })
        }
        None => Vec::new(),
    };
    for ((s, name), &pattern) in summaries.iter().zip(names).zip(&pattern_of) {
        let v = values.get(pattern as usize);
        let mut error = v.and_then(|v| v.error.clone());
        let spend = match &models.gg {
            Some(gg) => match gg.expected_average_spend(s.frequency, s.monetary_value) {
                Ok(spend) => Some(spend),
                Err(e) => {
                    error.get_or_insert_with(|| e.to_string());
                    None
                }
            },
            None => None,
        };
        let clv = match (v.and_then(|v| v.clv_per_spend), spend) {
            (Some(unit), Some(spend)) => Some(unit * spend),
            _ => None,
        };
        if let Some(e) = error {
            out.errors += 1;
            out.first_error
                .get_or_insert_with(|| format!("customer `{name}`: {e}"));
        }
        out.p_alive.push(v.and_then(|v| v.p_alive));
        out.expected_purchases
            .push(v.and_then(|v| v.expected_purchases));
        out.p_purchase.push(v.and_then(|v| v.p_purchase));
        out.expected_avg_spend.push(spend);
        out.clv.push(clv);
    }
    out
}

/// The customers' distinct history patterns: customers with the same pattern get the same
/// BG/NBD predictions, each computed once (one-time buyers differ only by T, so there are far
/// fewer patterns than customers).
pub(super) struct PatternIndex {
    patterns: Vec<Observation>,
    /// Per customer, the index of its pattern in `patterns`.
    pattern_of: Vec<u32>,
}

impl PatternIndex {
    pub(super) fn new(summaries: &[CustomerSummary]) -> Self {
        let mut index: HashMap<(u32, u64, u64), u32, FastHash> =
            HashMap::with_capacity_and_hasher(summaries.len() / 2, FastHash);
        let mut patterns: Vec<Observation> = Vec::new();
        let pattern_of: Vec<u32> = summaries
            .iter()
            .map(|s| {
                let key = (s.frequency, s.recency.to_bits(), s.t.to_bits());
                *index.entry(key).or_insert_with(|| {
                    patterns.push(Observation::from(s));
                    (patterns.len() - 1) as u32
                })
            })
            .collect();
        PatternIndex {
            patterns,
            pattern_of,
        }
    }
}

/// `f` of each item, in order, the items split over the cores in runs of at least 1,024.
fn split_over_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = super::step_cores();
    let chunk = items.len().div_ceil(cores.threads()).max(1024);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The horizons of the expected purchases: the prediction horizon and the CLV's months.
struct CurveHorizons {
    horizon: [f64; 1],
    clv: Vec<f64>,
}

/// The 2F1 series of the expected-purchases curves of one frequency and age `T`, shared by
/// every pattern with both (far fewer than the patterns, and the costly part of a prediction).
struct Shapes {
    horizon: Result<PurchaseCurveShape, AnalyticsError>,
    clv: Option<Result<PurchaseCurveShape, AnalyticsError>>,
}

impl Shapes {
    fn new(bg: &BgNbdParams, obs: &Observation, curves: &CurveHorizons, with_clv: bool) -> Self {
        Shapes {
            horizon: bg.purchase_curve_shape(&curves.horizon, obs.frequency, obs.t),
            clv: with_clv.then(|| bg.purchase_curve_shape(&curves.clv, obs.frequency, obs.t)),
        }
    }
}

/// [`BgNbdParams::expected_purchases_curve`] of `obs`, from the shape of its frequency and age.
fn curve(
    bg: &BgNbdParams,
    shape: &Result<PurchaseCurveShape, AnalyticsError>,
    obs: &Observation,
) -> Result<Vec<f64>, AnalyticsError> {
    bg.validate()?;
    obs.validate()?;
    bg.expected_purchases_on(shape.as_ref().map_err(Clone::clone)?, obs)
}

fn pattern_values(
    bg: &BgNbdParams,
    obs: &Observation,
    shapes: &Shapes,
    horizon: f64,
    clv_options: &ClvOptions,
) -> PatternValues {
    let mut v = PatternValues::default();
    let mut note = |r: Result<f64, AnalyticsError>| match r {
        Ok(x) => Some(x),
        Err(e) => {
            v.error.get_or_insert_with(|| e.to_string());
            None
        }
    };
    let p_alive = note(bg.probability_alive(obs));
    let expected_purchases = note(curve(bg, &shapes.horizon, obs).map(|c| c[0]));
    // As `discounted_value(bg, obs, 1.0, clv_options)`, with the shared shape.
    let clv_per_spend = shapes.clv.as_ref().and_then(|shape| {
        note(
            clv_options
                .validate()
                .and_then(|()| curve(bg, shape, obs))
                .and_then(|c| discounted_sum(&c, 1.0, clv_options)),
        )
    });
    v.p_alive = p_alive;
    v.expected_purchases = expected_purchases;
    v.p_purchase = p_alive.map(|p| p * purchase_given_alive(bg, obs, horizon));
    v.clv_per_spend = clv_per_spend;
    v
}

/// `1 − ((α+T)/(α+T+t))^(r+x)`: the probability of at least one purchase within `t` for a
/// customer who is alive (see the module docs).
fn purchase_given_alive(bg: &BgNbdParams, obs: &Observation, t: f64) -> f64 {
    let rx = bg.r + f64::from(obs.frequency);
    -(-rx * (t / (bg.alpha + obs.t)).ln_1p()).exp_m1()
}

/// The fits, why a model is missing, and how many customers' predictions failed, as output
/// metadata.
pub(super) fn with_model_meta(
    mut out: Output,
    models: &Models,
    predictions: &Predictions,
) -> Output {
    if let Some(fit) = &models.bgnbd {
        out = out.with_meta(
            "bgnbd",
            json!({
                "r": fit.params.r,
                "alpha": fit.params.alpha,
                "a": fit.params.a,
                "b": fit.params.b,
                "log_likelihood": fit.log_likelihood,
                "iterations": fit.iterations,
                "converged": fit.converged,
            }),
        );
    }
    if let Some(fit) = &models.gamma_gamma {
        out = out.with_meta(
            "gamma_gamma",
            json!({
                "p": fit.params.p,
                "q": fit.params.q,
                "v": fit.params.v,
                "log_likelihood": fit.log_likelihood,
                "customers_used": fit.customers,
                "iterations": fit.iterations,
                "converged": fit.converged,
            }),
        );
    }
    if !models.fallback.is_empty() {
        out = out.with_meta("model_fallback", models.fallback.join("; "));
    }
    if predictions.errors > 0 {
        out = out.with_meta(
            "prediction_errors",
            json!({
                "customers": predictions.errors,
                "first": predictions.first_error,
            }),
        );
    }
    out
}
