//! The parameters of `segmentation.recommend`, validated.

use flow_engine::node::{ParamError, Params};

use super::super::date_param;

pub(super) const STRATEGIES: [&str; 5] = [
    "cross_sell",
    "upsell",
    "seasonal",
    "bestsellers",
    "replenishment",
];

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    CrossSell,
    Upsell,
    Seasonal,
    Bestsellers,
    Replenishment,
}

impl Strategy {
    pub(crate) const ALL: [Strategy; 5] = [
        Strategy::CrossSell,
        Strategy::Upsell,
        Strategy::Seasonal,
        Strategy::Bestsellers,
        Strategy::Replenishment,
    ];

    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cross_sell" => Strategy::CrossSell,
            "upsell" => Strategy::Upsell,
            "seasonal" => Strategy::Seasonal,
            "bestsellers" => Strategy::Bestsellers,
            "replenishment" => Strategy::Replenishment,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Strategy::CrossSell => "cross_sell",
            Strategy::Upsell => "upsell",
            Strategy::Seasonal => "seasonal",
            Strategy::Bestsellers => "bestsellers",
            Strategy::Replenishment => "replenishment",
        }
    }
}

/// The validated parameters.
#[derive(Debug, Clone)]
pub(crate) struct RecommendConfig {
    pub(crate) strategy: Strategy,
    pub(crate) top_k: usize,
    pub(crate) include_purchased: bool,
    pub(crate) min_lift: f64,
    pub(crate) recent_days: i32,
    pub(crate) analysis_date: Option<i32>,
    pub(crate) fallback_bestsellers: bool,
    /// Days of purchases the backtest hides (0: no backtest).
    pub(crate) backtest_days: i32,
}

impl RecommendConfig {
    pub(crate) fn new(strategy: Strategy) -> Self {
        RecommendConfig {
            strategy,
            top_k: 5,
            include_purchased: false,
            min_lift: 1.0,
            recent_days: 28,
            analysis_date: None,
            fallback_bestsellers: false,
            backtest_days: 60,
        }
    }

    pub(super) fn from_params(params: &Params) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let strategy = match params.str("strategy") {
            Ok(s) => Strategy::parse(s).or_else(|| {
                errors.push(ParamError::new(
                    "strategy",
                    format!("must be one of {}, got `{s}`", STRATEGIES.join(", ")),
                ));
                None
            }),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let mut cfg = RecommendConfig::new(strategy.unwrap_or(Strategy::Bestsellers));
        match params.u64_or("top_k", 5) {
            Ok(k) if (1..=1000).contains(&k) => cfg.top_k = k as usize,
            Ok(k) => errors.push(ParamError::new(
                "top_k",
                format!("must be between 1 and 1000, got {k}"),
            )),
            Err(e) => errors.push(e),
        }
        match params.bool_or("include_purchased", false) {
            Ok(b) => cfg.include_purchased = b,
            Err(e) => errors.push(e),
        }
        match params.f64_or("min_lift", 1.0) {
            Ok(v) if v.is_finite() && v >= 0.0 => cfg.min_lift = v,
            Ok(v) => errors.push(ParamError::new(
                "min_lift",
                format!("must be a number >= 0, got {v}"),
            )),
            Err(e) => errors.push(e),
        }
        match params.u64_or("recent_days", 28) {
            Ok(d) if (1..=3660).contains(&d) => cfg.recent_days = d as i32,
            Ok(d) => errors.push(ParamError::new(
                "recent_days",
                format!("must be between 1 and 3660, got {d}"),
            )),
            Err(e) => errors.push(e),
        }
        match date_param(params, "analysis_date") {
            Ok(d) => cfg.analysis_date = d,
            Err(e) => errors.push(e),
        }
        match params.str_or("fallback", "none") {
            Ok("none") => {}
            Ok("bestsellers") => cfg.fallback_bestsellers = true,
            Ok(other) => errors.push(ParamError::new(
                "fallback",
                format!("must be `none` or `bestsellers`, got `{other}`"),
            )),
            Err(e) => errors.push(e),
        }
        match params.u64_or("backtest_days", 60) {
            Ok(d) if d <= 3660 => cfg.backtest_days = d as i32,
            Ok(d) => errors.push(ParamError::new(
                "backtest_days",
                format!("must be between 0 and 3660, got {d}"),
            )),
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }
}
