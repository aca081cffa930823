//! The validated parameters of `segmentation.metrics`.

use serde_json::Value as Json;

use super::segment_map::SegmentMap;
use crate::segmentation::date_param;
use flow_analytics::summary::TimeUnit;
use flow_engine::node::{ParamError, Params};
use flow_engine::source::Seg;

/// Which count the F score uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrequencyBasis {
    Orders,
    Days,
}

/// The validated parameters.
#[derive(Debug, Clone)]
pub(super) struct MetricsConfig {
    pub(super) analysis_date: Option<i32>,
    pub(super) unit: TimeUnit,
    pub(super) frequency: FrequencyBasis,
    pub(super) horizon_days: u32,
    /// Holdout of the CLV backtest in days; `None` = `horizon_days`, 0 = off.
    pub(super) backtest_days: Option<u32>,
    pub(super) clv_months: u32,
    pub(super) discount_rate: f64,
    pub(super) fit: bool,
    pub(super) min_repeat_customers: usize,
    pub(super) require_model: bool,
    pub(super) segments: SegmentMap,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            analysis_date: None,
            unit: TimeUnit::Days,
            frequency: FrequencyBasis::Orders,
            horizon_days: 90,
            backtest_days: None,
            clv_months: 12,
            discount_rate: 0.01,
            fit: true,
            min_repeat_customers: 20,
            require_model: false,
            segments: SegmentMap::default_map(),
        }
    }
}

impl MetricsConfig {
    /// The CLV backtest's holdout in days (0: off).
    pub(super) fn backtest_days(&self) -> u32 {
        self.backtest_days.unwrap_or(self.horizon_days)
    }

    pub(super) fn from_params(params: &Params) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let mut cfg = MetricsConfig::default();
        let mut take = |r: Result<(), ParamError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        take(date_param(params, "analysis_date").map(|d| cfg.analysis_date = d));
        take(
            params
                .str_or("time_unit", "days")
                .and_then(|s| match s {
                    "days" => Ok(TimeUnit::Days),
                    "weeks" => Ok(TimeUnit::Weeks),
                    other => Err(ParamError::new(
                        "time_unit",
                        format!("`{other}` is not a time unit; use days or weeks"),
                    )),
                })
                .map(|u| cfg.unit = u),
        );
        take(
            params
                .str_or("frequency", "orders")
                .and_then(|s| match s {
                    "orders" => Ok(FrequencyBasis::Orders),
                    "days" => Ok(FrequencyBasis::Days),
                    other => Err(ParamError::new(
                        "frequency",
                        format!("`{other}` is not a frequency basis; use orders or days"),
                    )),
                })
                .map(|f| cfg.frequency = f),
        );
        let count = |name: &str, default: u64, min: u64, max: u64| {
            params.u64_or(name, default).and_then(|v| {
                if (min..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(ParamError::new(
                        name,
                        format!("must be between {min} and {max}, got {v}"),
                    ))
                }
            })
        };
        take(count("horizon_days", 90, 1, 36_500).map(|v| cfg.horizon_days = v as u32));
        take(count("clv_months", 12, 1, 1_200).map(|v| cfg.clv_months = v as u32));
        if params.get("backtest_days").is_some_and(|v| !v.is_null()) {
            take(count("backtest_days", 0, 0, 36_500).map(|v| cfg.backtest_days = Some(v as u32)));
        }
        take(
            count("min_repeat_customers", 20, 1, 1_000_000_000)
                .map(|v| cfg.min_repeat_customers = v as usize),
        );
        take(
            params
                .f64_or("discount_rate", 0.01)
                .and_then(|d| {
                    if d.is_finite() && (0.0..1.0).contains(&d) {
                        Ok(d)
                    } else {
                        Err(ParamError::new(
                            "discount_rate",
                            format!(
                                "is a monthly rate and must be at least 0 and below 1, got {d}"
                            ),
                        ))
                    }
                })
                .map(|d| cfg.discount_rate = d),
        );
        take(
            params
                .str_or("fit", "bgnbd")
                .and_then(|s| match s {
                    "bgnbd" => Ok(true),
                    "none" => Ok(false),
                    other => Err(ParamError::new(
                        "fit",
                        format!("`{other}` is not a model; use bgnbd or none"),
                    )),
                })
                .map(|f| cfg.fit = f),
        );
        take(
            params
                .bool_or("require_model", false)
                .map(|b| cfg.require_model = b),
        );
        if cfg.require_model && !cfg.fit {
            errors.push(ParamError::new(
                "require_model",
                "cannot be true with `fit: none` (no model is fitted)",
            ));
        }
        if let Some(value) = params.get("rfm_segments") {
            match parse_segment_defs(value) {
                Ok(defs) => match SegmentMap::build(&defs) {
                    Ok(map) => cfg.segments = map,
                    Err(errs) => {
                        for (name, message) in errs {
                            let mut path = vec![Seg::key("rfm_segments")];
                            if !name.is_empty() {
                                path.push(Seg::key(name));
                            }
                            errors.push(ParamError::at(path, message));
                        }
                    }
                },
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }
}

/// `rfm_segments: { NAME: PATTERN | [PATTERN, ...], ... }`.
fn parse_segment_defs(value: &Json) -> Result<Vec<(String, Vec<String>)>, ParamError> {
    let shape = "is a mapping of segment name to R×F cell patterns, e.g. \
                 { Champions: \"5[4-5]\", Loyal: [\"[3-4][4-5]\"] }";
    let Json::Object(map) = value else {
        return Err(ParamError::new("rfm_segments", shape));
    };
    let mut defs = Vec::new();
    for (name, v) in map {
        let patterns = match v {
            Json::String(s) => vec![s.clone()],
            Json::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ParamError::at(
                        vec![Seg::key("rfm_segments"), Seg::key(name.clone())],
                        "cell patterns must be strings like \"5[4-5]\"",
                    )
                })?,
            _ => {
                return Err(ParamError::at(
                    vec![Seg::key("rfm_segments"), Seg::key(name.clone())],
                    "cell patterns must be a string or a list of strings like \"5[4-5]\"",
                ));
            }
        };
        defs.push((name.clone(), patterns));
    }
    Ok(defs)
}
