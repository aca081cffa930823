//! Attribution: the purchases of a send's treated and control customers inside its window,
//! and the lift they show.
//!
//! Transactions carry dates, not times, so the window is whole days: a purchase counts for a
//! send dated D with a window of W days when it is dated D+1 to D+W. The send day itself is
//! left out (a purchase that day may have come before the message), so a purchase before the
//! send is never counted. Amounts are net: a refund (a negative amount) dated in the window
//! subtracts from the revenue; an order counts when its net amount in the window is positive,
//! and a customer converts with at least one such order.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::ledger::SendRecord;
use crate::segmentation::{date_column, day_string, f64_column, parse_iso_day, text_column};
use flow_analytics::AnalyticsError;
use flow_analytics::lift::{GroupFigures, Interval, Outcome, lift};
use flow_engine::node::NodeError;
use flow_engine::plural::plural;

/// Fewer customers than this in either group: no figures, a sentence instead.
pub(crate) const MIN_CUSTOMERS: usize = 30;

/// The purchases of the customers being measured, by customer: (day, order, net amount).
pub(crate) struct Purchases {
    /// Each measured customer's number: its rows are `rows[number]`.
    customers: FxHashMap<Box<str>, u32>,
    rows: Vec<Vec<(i32, String, f64)>>,
    /// The first and last day of the whole table (every customer), when it has dated rows.
    span: Option<(i32, i32)>,
}

impl Purchases {
    /// The rows of the customers `wanted` names once it knows the table's span (the first and
    /// last day over every row): a send whose window the data does not reach needs none of
    /// its customers' rows, and a table without wanted customers is read no further. Rows
    /// without a customer, a date or an amount are left out.
    pub(crate) fn read<'w, I>(
        tx: &RecordBatch,
        wanted: impl FnOnce(Option<(i32, i32)>) -> I,
    ) -> Result<Self, NodeError>
    where
        I: IntoIterator<Item = &'w str>,
    {
        use arrow_array::Array;
        let need =
            |name: &str| crate::segmentation::missing_column(tx, name, "a transactions column");
        let ids = text_column(tx, "customer_id")?.ok_or_else(|| need("customer_id"))?;
        let orders = text_column(tx, "order_id")?.ok_or_else(|| need("order_id"))?;
        let days = date_column(tx, "date")?.ok_or_else(|| need("date"))?;
        let amounts = f64_column(tx, "amount")?.ok_or_else(|| need("amount"))?;
        let span = days
            .iter()
            .flatten()
            .fold(None, |span: Option<(i32, i32)>, day| {
                Some(span.map_or((day, day), |(a, b)| (a.min(day), b.max(day))))
            });
        let mut numbers: FxHashMap<&str, u32> = FxHashMap::default();
        for id in wanted(span) {
            let next = numbers.len() as u32;
            numbers.entry(id).or_insert(next);
        }
        let mut rows = vec![Vec::new(); numbers.len()];
        if !numbers.is_empty() {
            for i in 0..tx.num_rows() {
                if days.is_null(i) || amounts.is_null(i) || !amounts.value(i).is_finite() {
                    continue;
                }
                let Some(&n) = ids.get(i).and_then(|id| numbers.get(id)) else {
                    continue;
                };
                let order = orders.get(i).unwrap_or("").to_string();
                rows[n as usize].push((days.value(i), order, amounts.value(i)));
            }
        }
        let customers = numbers
            .into_iter()
            .map(|(id, n)| (Box::from(id), n))
            .collect();
        Ok(Purchases {
            customers,
            rows,
            span,
        })
    }

    /// The first and last day of the table.
    pub(crate) fn span(&self) -> Option<(i32, i32)> {
        self.span
    }

    /// What `customer` did on days `first..=last`.
    fn outcome(&self, customer: &str, first: i32, last: i32) -> Outcome {
        let Some(&n) = self.customers.get(customer) else {
            return Outcome::default();
        };
        let mut revenue = 0.0;
        let mut per_order: HashMap<&str, f64> = HashMap::new();
        for (day, order, amount) in &self.rows[n as usize] {
            if (first..=last).contains(day) {
                revenue += amount;
                *per_order.entry(order.as_str()).or_default() += amount;
            }
        }
        Outcome {
            orders: per_order.values().filter(|v| **v > 0.0).count() as u64,
            revenue,
        }
    }
}

/// Where a send's window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// The window has closed and the data covers it: final figures.
    Measured,
    /// The data ends inside the window: figures so far.
    Open,
    /// The data ends on or before the send day.
    NotStarted,
    /// The data starts after the window opened: purchases may be missing.
    IncompleteData,
    /// Deploy got no transactions table.
    NoTransactions,
}

/// One group's figures, as reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) customers: u64,
    pub(crate) converted: u64,
    pub(crate) orders: u64,
    pub(crate) revenue: f64,
    pub(crate) conversion: Option<f64>,
    pub(crate) revenue_per_customer: Option<f64>,
    pub(crate) avg_order_value: Option<f64>,
}

impl From<GroupFigures> for Group {
    fn from(g: GroupFigures) -> Self {
        Group {
            customers: g.customers,
            converted: g.converted,
            orders: g.orders,
            revenue: g.revenue,
            conversion: g.conversion,
            revenue_per_customer: g.revenue_per_customer,
            avg_order_value: g.avg_order_value,
        }
    }
}

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Range {
    pub(crate) estimate: f64,
    pub(crate) low: f64,
    pub(crate) high: f64,
}

impl From<Interval> for Range {
    fn from(i: Interval) -> Self {
        Range {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
        }
    }
}

/// The figures of a send over the days observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Measured {
    pub(crate) days_observed: u32,
    pub(crate) treated: Group,
    pub(crate) control: Group,
    /// Treated minus control conversion; `None` with too few customers.
    pub(crate) conversion_lift: Option<Range>,
    /// Treated minus control revenue per customer; `None` with too few customers.
    pub(crate) revenue_per_customer_lift: Option<Range>,
    /// "too few customers (12 treated, 3 control; need 30)" instead of figures.
    pub(crate) too_few: Option<String>,
}

/// A send and what is known of it, as `summary.json` reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SendOutcome {
    pub(crate) run_id: String,
    pub(crate) sent_on: String,
    pub(crate) campaign: String,
    pub(crate) holdout_key: String,
    /// The share the campaign held out.
    pub(crate) holdout_share: Option<f64>,
    pub(crate) segment: String,
    pub(crate) window_days: u32,
    /// The last day of the window.
    pub(crate) window_end: String,
    pub(crate) status: Status,
    pub(crate) treated_customers: u64,
    pub(crate) control_customers: u64,
    /// Customers an earlier send of the campaign had reached: not measured again.
    pub(crate) reached_before: u64,
    /// Figures over the days observed (none before the window opens).
    pub(crate) figures: Option<Measured>,
    /// The status in words.
    pub(crate) note: String,
}

/// The figures of `send` on days `first..=last`.
pub(crate) fn figures(send: &SendRecord, tx: &Purchases, first: i32, last: i32) -> Measured {
    let outcomes = |ids: &[String]| -> Vec<Outcome> {
        ids.iter().map(|id| tx.outcome(id, first, last)).collect()
    };
    let (treated, control) = (outcomes(&send.treated), outcomes(&send.control));
    let days_observed = (last - first + 1).max(0) as u32;
    match lift(&treated, &control, MIN_CUSTOMERS) {
        Ok(l) => Measured {
            days_observed,
            treated: l.treated.into(),
            control: l.control.into(),
            conversion_lift: Some(l.conversion.into()),
            revenue_per_customer_lift: Some(l.revenue_per_customer.into()),
            too_few: None,
        },
        Err(e) => {
            let counts = |g: &[Outcome]| Group {
                customers: g.len() as u64,
                ..Group::default()
            };
            let reason = match e {
                AnalyticsError::NotEnoughData { .. } => format!(
                    "too few customers ({} treated, {} control; need {MIN_CUSTOMERS})",
                    treated.len(),
                    control.len()
                ),
                other => format!("not measured: {other}"),
            };
            Measured {
                days_observed,
                treated: counts(&treated),
                control: counts(&control),
                conversion_lift: None,
                revenue_per_customer_lift: None,
                too_few: Some(reason),
            }
        }
    }
}

/// The first and last day of `send`'s window.
fn window(send: &SendRecord) -> (i32, i32) {
    let sent = parse_iso_day(&send.sent_on).unwrap_or(0);
    let window = i32::try_from(send.window_days).unwrap_or(i32::MAX / 2);
    (sent + 1, sent + window)
}

/// Whether [`measure`] reads the purchases of `send`'s customers from transactions spanning
/// `span`: only for a send not yet final whose window the data covers from its first day.
pub(crate) fn reads_purchases(send: &SendRecord, span: Option<(i32, i32)>) -> bool {
    let (first, _) = window(send);
    send.measured.is_none()
        && span.is_some_and(|(data_first, data_last)| data_first <= first && first <= data_last)
}

/// Measures `send` on the transactions (if any). A send measured before keeps its final
/// figures.
pub(crate) fn measure(send: &SendRecord, tx: Option<&Purchases>) -> SendOutcome {
    let (first, end) = window(send);
    let (status, figures, note) = match (&send.measured, tx) {
        (Some(m), _) => (Status::Measured, Some(m.clone()), measured_note(m, send)),
        (None, None) => (
            Status::NoTransactions,
            None,
            "not measured: deploy has no transactions input".to_string(),
        ),
        (None, Some(tx)) => match tx.span {
            None => (
                Status::NotStarted,
                None,
                "no dated transactions yet".to_string(),
            ),
            Some((data_first, _)) if data_first > first => (
                Status::IncompleteData,
                None,
                format!(
                    "not measured: the transactions start on {}, after the window opened on {}",
                    day_string(data_first),
                    day_string(first)
                ),
            ),
            Some((_, data_last)) if data_last < first => (
                Status::NotStarted,
                None,
                format!(
                    "window opens {}: the transactions end on {}",
                    day_string(first),
                    day_string(data_last)
                ),
            ),
            Some((_, data_last)) => {
                let last = data_last.min(end);
                let m = figures(send, tx, first, last);
                if data_last >= end {
                    let note = measured_note(&m, send);
                    (Status::Measured, Some(m), note)
                } else {
                    let note = format!(
                        "window open: {} of {} days observed{}",
                        m.days_observed,
                        send.window_days,
                        m.too_few
                            .as_ref()
                            .map_or(String::new(), |t| format!("; {t}"))
                    );
                    (Status::Open, Some(m), note)
                }
            }
        },
    };
    SendOutcome {
        run_id: send.run_id.clone(),
        sent_on: send.sent_on.clone(),
        campaign: send.campaign.clone(),
        holdout_key: send.holdout_key.clone(),
        holdout_share: send.holdout_share,
        segment: send.segment.clone(),
        window_days: send.window_days,
        window_end: day_string(end),
        status,
        treated_customers: send.treated_customers,
        control_customers: send.control_customers,
        reached_before: send.reached_before,
        figures,
        note: match send.reached_before {
            0 => note,
            n => format!(
                "{note}; {} already reached by an earlier send, not counted again",
                plural(n, "customer")
            ),
        },
    }
}

fn measured_note(m: &Measured, send: &SendRecord) -> String {
    match &m.too_few {
        Some(t) => t.clone(),
        None => format!("measured over the {} days after the send", send.window_days),
    }
}

#[cfg(test)]
#[path = "attribution_tests.rs"]
mod tests;
