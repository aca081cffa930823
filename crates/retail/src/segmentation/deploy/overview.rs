//! What the report says around the numbers: the period the data covers, each segment's
//! readable label and offer, and the currency amounts are in.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use serde::Serialize;

use super::SegmentStats;
use crate::segmentation::classify::humanize;
use crate::segmentation::day_string;

/// The dates of the data the segments come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Period {
    /// The earliest purchase of any delivered customer.
    pub(crate) first_transaction: String,
    /// The latest purchase used (on or before the analysis date).
    pub(crate) last_transaction: String,
    /// The date recency and the predictions are measured from.
    pub(crate) analysis_date: String,
}

/// The period over campaign `rows` (`first_purchase`, `last_purchase`, `days_since_last`);
/// `None` when no row has its dates (profiles built without the metrics' columns).
pub(super) fn period(camp: &RecordBatch, rows: impl Iterator<Item = usize>) -> Option<Period> {
    let first = camp
        .column_by_name("first_purchase")?
        .as_primitive_opt::<Date32Type>()?;
    let last = camp
        .column_by_name("last_purchase")?
        .as_primitive_opt::<Date32Type>()?;
    let since = camp
        .column_by_name("days_since_last")?
        .as_primitive_opt::<Int64Type>()?;
    let (mut lo, mut hi, mut analysis) = (None::<i32>, None::<i32>, None::<i32>);
    for i in rows {
        if first.is_valid(i) {
            let d = first.value(i);
            lo = Some(lo.map_or(d, |x| x.min(d)));
        }
        if last.is_valid(i) {
            let d = last.value(i);
            hi = Some(hi.map_or(d, |x| x.max(d)));
            // Days since the last purchase are counted to the analysis date.
            if since.is_valid(i) {
                let a = d.saturating_add(i32::try_from(since.value(i)).unwrap_or(0));
                analysis = Some(analysis.map_or(a, |x| x.max(a)));
            }
        }
    }
    Some(Period {
        first_transaction: day_string(lo?),
        last_transaction: day_string(hi?),
        analysis_date: day_string(analysis.or(hi)?),
    })
}

/// Fills each segment's label and offer from the first campaign row of the segment that has
/// them (`rows`: campaign row, segment index); a segment without one keeps its humanised name.
pub(super) fn label_and_offer(
    stats: &mut [SegmentStats],
    camp: &RecordBatch,
    rows: impl Iterator<Item = (usize, usize)>,
) {
    let text = |name: &str| {
        camp.column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let (labels, offers, channels) = (text("segment_label"), text("offer"), text("channel"));
    // A control customer's offer is "no offer (control group)", not the segment's.
    let groups = text("group");
    let value = |a: Option<&arrow_array::StringArray>, i: usize| {
        a.filter(|a| a.is_valid(i))
            .map(|a| a.value(i).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut labelled = vec![false; stats.len()];
    for (i, s) in rows {
        let stat = &mut stats[s];
        if !labelled[s]
            && let Some(l) = value(labels, i)
        {
            stat.label = l;
            labelled[s] = true;
        }
        if stat.offer.is_none() && value(groups, i).as_deref() != Some("control") {
            stat.offer = value(offers, i);
        }
        if stat.channel.is_none() {
            stat.channel = value(channels, i);
        }
    }
}

/// The label of a segment by its name, for segments this run no longer has.
pub(crate) fn label_of(stats: &[SegmentStats], segment: &str) -> String {
    stats
        .iter()
        .find(|s| s.segment == segment)
        .map_or_else(|| humanize(segment), |s| s.label.clone())
}

/// An ISO 4217 code (`usd` -> `USD`); `None` for an empty value (a param left empty).
pub(super) fn currency(code: &str) -> Result<Option<String>, String> {
    let code = code.trim();
    if code.is_empty() {
        return Ok(None);
    }
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(Some(code.to_ascii_uppercase()))
    } else {
        Err(format!(
            "must be a 3-letter ISO 4217 currency code such as USD, EUR or GBP, got `{code}`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Date32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use crate::segmentation::day_number;

    fn day(s: &str) -> i32 {
        day_number(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn table() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "first_purchase",
                Arc::new(Date32Array::from(vec![
                    Some(day("2024-03-05")),
                    Some(day("2023-11-01")),
                    None,
                ])),
            ),
            (
                "last_purchase",
                Arc::new(Date32Array::from(vec![
                    Some(day("2024-09-30")),
                    Some(day("2024-06-01")),
                    None,
                ])),
            ),
            (
                "days_since_last",
                Arc::new(Int64Array::from(vec![Some(1), Some(122), None])),
            ),
            (
                "segment_label",
                Arc::new(StringArray::from(vec![Some("VIP"), None, Some("At risk")])),
            ),
            (
                "offer",
                Arc::new(StringArray::from(vec![
                    Some("early access"),
                    Some("20% off"),
                    Some("20% off"),
                ])),
            ),
            (
                "channel",
                Arc::new(StringArray::from(vec!["email", "email", "email"])),
            ),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_period_spans_the_rows_and_ends_at_the_analysis_date() {
        let p = period(&table(), 0..3).unwrap();
        assert_eq!(p.first_transaction, "2023-11-01");
        assert_eq!(p.last_transaction, "2024-09-30");
        assert_eq!(p.analysis_date, "2024-10-01");
        // Only the rows asked for.
        let p = period(&table(), 1..2).unwrap();
        assert_eq!(p.first_transaction, "2023-11-01");
        assert_eq!(p.analysis_date, "2024-10-01");
        assert_eq!(period(&table(), 2..3), None);
    }

    #[test]
    fn segments_take_their_label_and_offer_from_their_rows() {
        let mut stats = vec![SegmentStats::named("vip"), SegmentStats::named("at_risk")];
        label_and_offer(&mut stats, &table(), [(0, 0), (1, 1), (2, 1)].into_iter());
        assert_eq!(stats[0].label, "VIP");
        assert_eq!(stats[0].offer.as_deref(), Some("early access"));
        assert_eq!(stats[1].label, "At risk");
        assert_eq!(stats[1].offer.as_deref(), Some("20% off"));
        assert_eq!(label_of(&stats, "vip"), "VIP");
        assert_eq!(label_of(&stats, "high_value"), "High value");
    }

    #[test]
    fn currency_codes() {
        assert_eq!(currency("usd"), Ok(Some("USD".into())));
        assert_eq!(currency(" "), Ok(None));
        assert!(currency("US$").unwrap_err().contains("ISO 4217"));
    }
}
