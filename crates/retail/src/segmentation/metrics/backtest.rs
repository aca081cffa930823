//! The CLV backtest in the metrics output metadata (`clv_backtest`): BG/NBD fitted on the
//! history up to `backtest_days` before the analysis date, its expected purchases in those
//! last days compared with what the customers bought
//! ([`flow_analytics::clv_backtest`]).
//!
//! It runs only when the history can support it: the calibration period (first transaction
//! to the cut-off, inclusive) at least twice the holdout, and at least `min_repeat_customers`
//! repeat customers before the cut-off. Otherwise, or when the fit fails, the metadata holds
//! only a `note` saying why; the backtest never fails the node and never changes a column.

use serde_json::{Value as Json, json};

use super::config::MetricsConfig;
use crate::segmentation::day_string;
use flow_analytics::bgnbd::FitOptions;
use flow_analytics::clv_backtest::{backtest, calibration_and_holdout};
use flow_analytics::summary::Transaction;

/// The calibration period must be at least this many holdouts long.
const CALIBRATION_HOLDOUTS: i64 = 2;

/// The `clv_backtest` metadata, or `None` when the backtest is off.
pub(super) fn clv_backtest(
    transactions: &[Transaction],
    n_customers: usize,
    end: i32,
    cfg: &MetricsConfig,
) -> Option<Json> {
    let holdout = cfg.backtest_days();
    if holdout == 0 {
        return None;
    }
    Some(
        run(transactions, n_customers, end, holdout, cfg)
            .unwrap_or_else(|note| json!({ "note": note })),
    )
}

fn run(
    transactions: &[Transaction],
    n_customers: usize,
    end: i32,
    holdout: u32,
    cfg: &MetricsConfig,
) -> Result<Json, String> {
    if !cfg.fit {
        return Err("model fitting is off (fit: none)".into());
    }
    let Some(first) = transactions
        .iter()
        .map(|t| t.day)
        .filter(|&d| d <= end)
        .min()
    else {
        return Err("no transactions on or before the analysis date".into());
    };
    let holdout_i = i64::from(holdout);
    let history = i64::from(end) - i64::from(first) + 1;
    let needed = (CALIBRATION_HOLDOUTS + 1) * holdout_i;
    if history < needed {
        return Err(format!(
            "{history} days of history, need {needed} for a {holdout}-day holdout"
        ));
    }
    let cutoff = i32::try_from(i64::from(end) - holdout_i).map_err(|e| e.to_string())?;
    let rows = calibration_and_holdout(transactions, n_customers, cutoff, end, cfg.unit)
        .map_err(|e| format!("the calibration/holdout split failed: {e}"))?;
    let repeat = rows.iter().filter(|r| r.frequency_cal > 0).count();
    if repeat < cfg.min_repeat_customers {
        return Err(format!(
            "{} before the cut-off {}, min_repeat_customers is {}",
            flow_engine::plural::plural(repeat as u64, "repeat customer"),
            day_string(cutoff),
            cfg.min_repeat_customers
        ));
    }
    let options = FitOptions {
        min_repeat_customers: cfg.min_repeat_customers,
        ..Default::default()
    };
    let length = f64::from(holdout) / cfg.unit.days_per_unit();
    let bt = backtest(&rows, length, &options)
        .map_err(|e| format!("the calibration fit failed: {e}"))?;
    if !bt.fit.converged {
        return Err(format!(
            "the calibration fit did not converge ({} iterations)",
            bt.fit.iterations
        ));
    }
    let groups: Vec<Json> = bt
        .by_frequency
        .iter()
        .filter(|g| g.customers > 0)
        .map(|g| {
            json!({
                "frequency": g.label(),
                "customers": g.customers,
                "predicted": g.predicted,
                "actual": g.actual,
            })
        })
        .collect();
    let mut out = json!({
        "cutoff": day_string(cutoff),
        "calibration_days": history - holdout_i,
        "holdout_days": holdout,
        "customers": rows.len(),
        "by_frequency": groups,
        "total_predicted": bt.total_predicted,
        "total_actual": bt.total_actual,
        "error_pct": bt.error_pct,
        "mae": bt.mae,
    });
    if bt.error_pct.is_none() {
        out["note"] = Json::from("no purchases in the holdout: the error in % is undefined");
    }
    Ok(out)
}
