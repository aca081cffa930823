//! Scores, models and the output table with its metadata.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value as Json;

use super::OUTPUT_COLUMNS;
use super::accumulate::{Accumulated, Favourites};
use super::config::{FrequencyBasis, MetricsConfig};
use super::models::{
    GammaGamma, Models, PatternIndex, Predictions, PreparedBgNbd, fit_gamma_gamma, fit_models,
    predict, prepare_bgnbd, with_model_meta,
};
use crate::segmentation::day_string;
use flow_analytics::rfm::{RfmScore, rfm_scores};
use flow_analytics::summary::TimeUnit;
use flow_engine::data::Output;
use flow_engine::node::NodeError;

/// The models (from what `work` made) and the output table, of `columns` and the RFM scores'
/// columns, with its metadata.
pub(super) fn finish(
    acc: Accumulated<'_>,
    columns: ModelFreeColumns,
    work: ModelWork,
    cfg: &MetricsConfig,
) -> Result<Output, NodeError> {
    let (scored, gg_fit, bg_prepared, patterns) = work.done();
    let scored = scored?;
    let n = acc.names.len();
    let s = &acc.summaries;
    let ModelFreeColumns {
        mut columns,
        middle,
        tail,
    } = columns;
    columns.extend(scored);
    columns.extend(middle);

    let models = if n == 0 {
        Models {
            bgnbd: None,
            gamma_gamma: None,
            bg: None,
            gg: None,
            fallback: vec!["no transactions on or before the analysis date".to_string()],
        }
    } else {
        fit_models(s, cfg, gg_fit, bg_prepared)
    };
    if cfg.require_model && !models.fallback.is_empty() {
        return Err(NodeError::msg(format!(
            "require_model is set but {}",
            models.fallback.join("; ")
        )));
    }
    let predictions = if models.bg.is_some() || models.gg.is_some() {
        predict(s, &acc.names, &models, cfg, patterns)
    } else {
        Predictions {
            p_alive: vec![None; n],
            expected_purchases: vec![None; n],
            p_purchase: vec![None; n],
            expected_avg_spend: vec![None; n],
            clv: vec![None; n],
            ..Default::default()
        }
    };

    columns.extend([
        (
            "p_alive",
            DataType::Float64,
            true,
            opt_f64s(&predictions.p_alive),
        ),
        (
            "expected_purchases",
            DataType::Float64,
            true,
            opt_f64s(&predictions.expected_purchases),
        ),
        (
            "p_purchase",
            DataType::Float64,
            true,
            opt_f64s(&predictions.p_purchase),
        ),
        (
            "expected_avg_spend",
            DataType::Float64,
            true,
            opt_f64s(&predictions.expected_avg_spend),
        ),
        ("clv", DataType::Float64, true, opt_f64s(&predictions.clv)),
    ]);
    columns.extend(tail);
    debug_assert_eq!(
        columns.iter().map(|c| c.0).collect::<Vec<_>>(),
        OUTPUT_COLUMNS.to_vec()
    );
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, dt, nullable, _)| Field::new(*name, dt.clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.3).collect())?;

    let repeat = s.iter().filter(|s| s.frequency > 0).count();
    let out = Output::table(batch)
        .with_meta(
            "analysis_date",
            if n == 0 && cfg.analysis_date.is_none() {
                Json::Null
            } else {
                Json::from(day_string(acc.end))
            },
        )
        .with_meta(
            "time_unit",
            match cfg.unit {
                TimeUnit::Days => "days",
                TimeUnit::Weeks => "weeks",
            },
        )
        .with_meta("customers", n as u64)
        .with_meta("repeat_customers", repeat as u64)
        .with_meta("transactions_used", acc.used)
        .with_meta("transactions_after_analysis_date", acc.after)
        .with_meta("rows_with_missing_values", acc.missing)
        .with_meta("revenue", acc.revenue);
    Ok(with_model_meta(out, &models, &predictions))
}

/// [`finish`] with everything it needs made on this thread.
pub(super) fn finish_alone(
    acc: Accumulated<'_>,
    favourites: Favourites<'_>,
    cfg: &MetricsConfig,
) -> Result<Output, NodeError> {
    let days_since = days_since(&acc);
    let columns = model_free_columns(&acc, &days_since, &favourites);
    let work = ModelWork::default();
    work.take_turns(&acc, &days_since, cfg);
    finish(acc, columns, work, cfg)
}

/// Per customer, the days from the last purchase to the end of the analysis.
pub(super) fn days_since(acc: &Accumulated<'_>) -> Vec<i64> {
    acc.summaries
        .iter()
        .map(|s| i64::from(acc.end) - i64::from(s.last_day))
        .collect()
}

/// A column of the output: name, type, nullable, values.
pub(super) type Column = (&'static str, DataType, bool, ArrayRef);

/// The work on the customers' figures that needs none of the other columns and that none of
/// the rest of this work needs: the RFM scores' columns, the Gamma-Gamma fit, the BG/NBD
/// fit's preparation and the customers' distinct patterns the predictions are made for.
/// Threads that are free take turns at it ([`ModelWork::take_turns`]).
#[derive(Default)]
pub(super) struct ModelWork {
    next: AtomicUsize,
    scored: Mutex<Option<Result<Vec<Column>, NodeError>>>,
    gg_fit: Mutex<Option<GammaGamma>>,
    bg_prepared: Mutex<Option<Option<PreparedBgNbd>>>,
    patterns: Mutex<Option<Option<PatternIndex>>>,
}

impl ModelWork {
    /// Does the parts no thread has taken yet, one after another, until none is left.
    pub(super) fn take_turns(
        &self,
        acc: &Accumulated<'_>,
        days_since: &[i64],
        cfg: &MetricsConfig,
    ) {
        fn put<T>(slot: &Mutex<Option<T>>, value: T) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        }
        loop {
            match self.next.fetch_add(1, Ordering::AcqRel) {
                0 => put(&self.scored, score_columns(acc, days_since, cfg)),
                1 => put(&self.gg_fit, fit_gamma_gamma(&acc.summaries, cfg)),
                2 => put(&self.bg_prepared, prepare_bgnbd(&acc.summaries, cfg)),
                3 => put(
                    &self.patterns,
                    cfg.fit.then(|| PatternIndex::new(&acc.summaries)),
                ),
                _ => return,
            }
        }
    }

    /// The results, once some thread's [`ModelWork::take_turns`] has returned.
    pub(super) fn done(
        self,
    ) -> (
        Result<Vec<Column>, NodeError>,
        GammaGamma,
        Option<PreparedBgNbd>,
        Option<PatternIndex>,
    ) {
        fn get<T>(slot: Mutex<Option<T>>) -> T {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("made by a thread that took turns to the end")
        }
        (
            get(self.scored),
            get(self.gg_fit),
            get(self.bg_prepared),
            get(self.patterns),
        )
    }
}

/// The RFM scores' columns: `r_score`, `f_score`, `m_score`, `rfm`, `rfm_segment`.
fn score_columns(
    acc: &Accumulated<'_>,
    days_since: &[i64],
    cfg: &MetricsConfig,
) -> Result<Vec<Column>, NodeError> {
    let n = acc.names.len();
    let f_values: Vec<f64> = match cfg.frequency {
        FrequencyBasis::Orders => acc.orders.iter().map(|&o| f64::from(o)).collect(),
        FrequencyBasis::Days => acc
            .summaries
            .iter()
            .map(|s| f64::from(s.frequency) + 1.0)
            .collect(),
    };
    let r_values: Vec<f64> = days_since.iter().map(|&d| d as f64).collect();
    let scores = rfm_scores(&r_values, &f_values, &acc.spend)
        .map_err(|e| NodeError::msg(format!("RFM scores: {e}")))?;
    let mut rfm = StringBuilder::with_capacity(n, 3 * n);
    let mut segment = StringBuilder::with_capacity(n, 12 * n);
    for sc in &scores {
        let digits = [b'0' + sc.recency, b'0' + sc.frequency, b'0' + sc.monetary];
        rfm.append_value(std::str::from_utf8(&digits).expect("ascii digits"));
        segment.append_value(cfg.segments.segment(sc.recency, sc.frequency));
    }
    let score = |of: fn(&RfmScore) -> u8| {
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(of(s))),
        )) as ArrayRef
    };
    Ok(vec![
        ("r_score", DataType::Int64, false, score(|s| s.recency)),
        ("f_score", DataType::Int64, false, score(|s| s.frequency)),
        ("m_score", DataType::Int64, false, score(|s| s.monetary)),
        ("rfm", DataType::Utf8, false, Arc::new(rfm.finish())),
        (
            "rfm_segment",
            DataType::Utf8,
            false,
            Arc::new(segment.finish()),
        ),
    ])
}

/// The columns that depend neither on the RFM scores nor on the models: those before the
/// scores, those between the scores and the predictions, and those after the predictions.
pub(super) struct ModelFreeColumns {
    columns: Vec<Column>,
    middle: Vec<Column>,
    tail: Vec<Column>,
}

pub(super) fn model_free_columns(
    acc: &Accumulated<'_>,
    days_since: &[i64],
    favourites: &Favourites<'_>,
) -> ModelFreeColumns {
    let s = &acc.summaries;
    let f64s = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let i64s = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let strs = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let columns: Vec<Column> = vec![
        (
            "customer_id",
            DataType::Utf8,
            false,
            Arc::new(StringArray::from(acc.names.clone())),
        ),
        ("email", DataType::Utf8, true, strs(&acc.email)),
        ("customer_name", DataType::Utf8, true, strs(&acc.name)),
        (
            "accepts_marketing",
            DataType::Boolean,
            true,
            Arc::new(BooleanArray::from(acc.marketing.clone())),
        ),
        (
            "first_purchase",
            DataType::Date32,
            false,
            Arc::new(Date32Array::from(
                s.iter().map(|s| s.first_day).collect::<Vec<_>>(),
            )),
        ),
        (
            "last_purchase",
            DataType::Date32,
            false,
            Arc::new(Date32Array::from(
                s.iter().map(|s| s.last_day).collect::<Vec<_>>(),
            )),
        ),
        (
            "orders",
            DataType::Int64,
            false,
            i64s(acc.orders.iter().map(|&o| i64::from(o)).collect()),
        ),
        (
            "purchase_days",
            DataType::Int64,
            false,
            i64s(s.iter().map(|s| i64::from(s.frequency) + 1).collect()),
        ),
        (
            "total_spend",
            DataType::Float64,
            false,
            f64s(acc.spend.clone()),
        ),
        (
            "avg_order_value",
            DataType::Float64,
            false,
            f64s(
                acc.spend
                    .iter()
                    .zip(&acc.orders)
                    .map(|(&sp, &o)| sp / f64::from(o))
                    .collect(),
            ),
        ),
        (
            "days_since_last",
            DataType::Int64,
            false,
            i64s(days_since.to_vec()),
        ),
        (
            "favourite_category",
            DataType::Utf8,
            true,
            strs(&favourites.favourite),
        ),
    ];
    let middle: Vec<Column> = vec![
        (
            "frequency",
            DataType::Int64,
            false,
            i64s(s.iter().map(|s| i64::from(s.frequency)).collect()),
        ),
        (
            "recency",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.recency).collect()),
        ),
        (
            "T",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.t).collect()),
        ),
        (
            "monetary_value",
            DataType::Float64,
            false,
            f64s(s.iter().map(|s| s.monetary_value).collect()),
        ),
    ];
    let tail: Vec<Column> = vec![
        (
            "historical_clv",
            DataType::Float64,
            false,
            f64s(acc.spend.clone()),
        ),
        (
            "top_category",
            DataType::Utf8,
            true,
            strs(
                &favourites
                    .top
                    .iter()
                    .map(|t| t.map(|t| t.0))
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "top_category_affinity",
            DataType::Float64,
            true,
            opt_f64s(
                &favourites
                    .top
                    .iter()
                    .map(|t| t.map(|t| t.1))
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    ModelFreeColumns {
        columns,
        middle,
        tail,
    }
}

/// A nullable float column.
fn opt_f64s(v: &[Option<f64>]) -> ArrayRef {
    let mut b = Float64Builder::with_capacity(v.len());
    b.extend(v.iter().copied());
    Arc::new(b.finish())
}
