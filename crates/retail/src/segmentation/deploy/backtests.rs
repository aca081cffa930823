//! The model backtests deploy reports: the CLV backtest in the metrics node's output metadata
//! (`clv_backtest`) and each recommend node's backtest (`backtest`), read as the nodes wrote
//! them. A figure deploy cannot read is reported as such, never guessed.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use flow_engine::node::Inputs;

/// One method's scores on the recommendation backtest.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub(crate) struct MethodScore {
    pub(crate) method: String,
    /// `strategy` or `baseline`.
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) configured: bool,
    #[serde(default)]
    pub(crate) label: Option<String>,
    pub(crate) customers: u64,
    pub(crate) hit_rate: f64,
    pub(crate) precision: f64,
    pub(crate) recall: f64,
    pub(crate) ndcg: f64,
}

/// A recommend node's backtest of its own segment.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
pub(crate) struct RecBacktest {
    #[serde(default)]
    pub(crate) cutoff: Option<String>,
    #[serde(default)]
    pub(crate) holdout_days: Option<u32>,
    #[serde(default)]
    pub(crate) k: Option<u32>,
    #[serde(default)]
    pub(crate) segment_customers: Option<u64>,
    #[serde(default)]
    pub(crate) customers: Option<u64>,
    #[serde(default)]
    pub(crate) methods: Vec<MethodScore>,
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// The backtest of the recommend node serving one segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct SegmentBacktest {
    /// The recommend node.
    pub(crate) node: String,
    /// The segments its recommendations are for (from its rows), when it had any.
    pub(crate) segments: Vec<String>,
    pub(crate) backtest: RecBacktest,
}

/// Predicted and actual repeat purchases of the customers with one calibration frequency.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub(crate) struct FrequencyRow {
    pub(crate) frequency: String,
    pub(crate) customers: u64,
    pub(crate) predicted: f64,
    pub(crate) actual: f64,
}

/// The metrics node's calibration/holdout backtest of BG/NBD.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
pub(crate) struct ClvBacktest {
    #[serde(default)]
    pub(crate) cutoff: Option<String>,
    #[serde(default)]
    pub(crate) calibration_days: Option<u64>,
    #[serde(default)]
    pub(crate) holdout_days: Option<u64>,
    #[serde(default)]
    pub(crate) customers: Option<u64>,
    #[serde(default)]
    pub(crate) by_frequency: Vec<FrequencyRow>,
    #[serde(default)]
    pub(crate) total_predicted: Option<f64>,
    #[serde(default)]
    pub(crate) total_actual: Option<f64>,
    #[serde(default)]
    pub(crate) error_pct: Option<f64>,
    #[serde(default)]
    pub(crate) mae: Option<f64>,
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// Every backtest that reached deploy.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub(crate) struct Backtests {
    pub(crate) clv: Option<ClvBacktest>,
    pub(crate) recommendations: Vec<SegmentBacktest>,
}

impl Backtests {
    pub(crate) fn is_empty(&self) -> bool {
        self.clv.is_none() && self.recommendations.is_empty()
    }
}

/// Reads the backtests from the `metrics` and `recommendations` inputs' metadata.
pub(crate) fn collect(inputs: &Inputs) -> Backtests {
    let clv = inputs
        .role("metrics")
        .find_map(|input| input.meta.get("clv_backtest"))
        .map(|meta| read::<ClvBacktest>(meta, "the CLV backtest"));
    let recommendations = inputs
        .role("recommendations")
        .filter_map(|input| {
            let meta = input.meta.get("backtest")?;
            Some(SegmentBacktest {
                node: input.from.clone(),
                segments: segments_of(input),
                backtest: read::<RecBacktest>(meta, "the recommendation backtest"),
            })
        })
        .collect();
    Backtests {
        clv,
        recommendations,
    }
}

/// The value, or one that only carries a note saying it could not be read.
fn read<T: serde::de::DeserializeOwned + Default + WithNote>(meta: &Json, what: &str) -> T {
    serde_json::from_value(meta.clone()).unwrap_or_else(|e| {
        let mut t = T::default();
        t.set_note(format!("{what} could not be read: {e}"));
        t
    })
}

trait WithNote {
    fn set_note(&mut self, note: String);
}

impl WithNote for ClvBacktest {
    fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }
}

impl WithNote for RecBacktest {
    fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }
}

/// The distinct values of the input's `segment` column, in order of appearance.
fn segments_of(input: &flow_engine::node::Input) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(table) = input.data.as_table() else {
        return out;
    };
    let Ok(Some(column)) = super::super::text_column(table, "segment") else {
        return out;
    };
    for i in 0..table.num_rows() {
        if let Some(s) = column.get(i)
            && !out.iter().any(|o| o == s)
        {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unreadable_figures_become_a_note_not_numbers() {
        let bad: RecBacktest = read(&json!({"methods": "many"}), "the recommendation backtest");
        assert!(bad.methods.is_empty());
        assert!(
            bad.note
                .as_deref()
                .is_some_and(|n| n.starts_with("the recommendation backtest could not be read")),
            "{bad:?}"
        );
        let good: ClvBacktest = read(
            &json!({"cutoff": "2024-10-01", "by_frequency": [{"frequency": "0", "customers": 3, "predicted": 0.5, "actual": 0.25}], "total_predicted": 1.5, "total_actual": 0.75}),
            "the CLV backtest",
        );
        assert_eq!(good.by_frequency.len(), 1);
        assert_eq!(good.note, None);
    }
}
