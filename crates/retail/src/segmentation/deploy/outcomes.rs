//! Measured outcomes: the sends of this run (treated and control customers per campaign and
//! segment) go into the ledger, and every send still in it is measured on the transactions.

use super::attribution::{MIN_CUSTOMERS, Purchases, SendOutcome, Status, measure, reads_purchases};
use super::ledger::{Ledger, SendRecord};
use super::*;
use crate::segmentation::campaign::CONTROL_REASON;
use crate::segmentation::day_string;

/// Sends shown per segment.
pub(crate) const SHOWN_SENDS: usize = 12;

pub(crate) const CONVERSION_METHOD: &str =
    "Newcombe's hybrid score interval (from Wilson score intervals), 95%";
pub(crate) const REVENUE_METHOD: &str = "Welch's unequal-variance normal approximation, 95%";

/// One campaign input: the node it came from, its control-group key and share (from the
/// node's output metadata), and how many rows it has.
#[derive(Debug, Clone)]
pub(crate) struct CampaignSource {
    pub(crate) node: String,
    pub(crate) key: Option<String>,
    pub(crate) share: Option<f64>,
    pub(crate) rows: usize,
}

/// The campaign inputs, in the order deploy concatenates them.
pub(crate) fn sources(inputs: &Inputs) -> Vec<CampaignSource> {
    inputs
        .role("campaign")
        .filter_map(|i| {
            let rows = i.data.as_table()?.num_rows();
            Some(CampaignSource {
                node: i.from.clone(),
                key: i
                    .meta
                    .get("holdout_key")
                    .and_then(Json::as_str)
                    .map(str::to_string),
                share: i.meta.get("holdout_share").and_then(Json::as_f64),
                rows,
            })
        })
        .collect()
}

/// This run's sends: per campaign node and segment, the customers compared. A campaign without
/// a control group (share 0, or no control rows when the share is unknown) records nothing.
pub(super) fn sends_of(
    ctx: &NodeContext,
    camp: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    sources: &[CampaignSource],
    sent_on: &str,
    window_days: u32,
) -> Vec<SendRecord> {
    // Row ranges of the sources in the concatenated table.
    let mut owner = Vec::with_capacity(camp.num_rows());
    for (s, src) in sources.iter().enumerate() {
        owner.extend(std::iter::repeat_n(Some(s), src.rows));
    }
    owner.resize(camp.num_rows(), None);
    let (ids, segs) = (text(camp, "customer_id"), text(camp, "segment"));
    let (groups, eligible, send) = (
        text(camp, "group"),
        bools(camp, "eligible"),
        bools(camp, "send"),
    );
    let reason = text(camp, "skip_reason");
    let mut out: Vec<SendRecord> = Vec::new();
    for (i, _) in profiles {
        let i = *i;
        let Some(src) = owner[i].map(|s| &sources[s]) else {
            continue;
        };
        let control = opt_str(groups, i) == Some("control");
        // Without the column (a table from elsewhere): the customers messaged, and the control
        // customers who would have been.
        let compared = if eligible.is_valid(i) {
            eligible.value(i)
        } else if control {
            opt_str(reason, i) == Some(CONTROL_REASON)
        } else {
            send.is_valid(i) && send.value(i)
        };
        if !compared {
            continue;
        }
        let segment = opt_str(segs, i).unwrap_or("");
        let pos = match out
            .iter()
            .position(|s| s.campaign == src.node && s.segment == segment)
        {
            Some(p) => p,
            None => {
                out.push(SendRecord {
                    run_id: ctx.run_id.clone(),
                    sent_on: sent_on.to_string(),
                    campaign: src.node.clone(),
                    holdout_key: src.key.clone().unwrap_or_else(|| src.node.clone()),
                    holdout_share: src.share,
                    segment: segment.to_string(),
                    window_days,
                    treated_customers: 0,
                    control_customers: 0,
                    treated: Vec::new(),
                    control: Vec::new(),
                    measured: None,
                    reached_before: 0,
                });
                out.len() - 1
            }
        };
        let s = &mut out[pos];
        let id = ids.value(i).to_string();
        if control {
            s.control.push(id);
            s.control_customers += 1;
        } else {
            s.treated.push(id);
            s.treated_customers += 1;
        }
    }
    out.retain(|s| match s.holdout_share {
        Some(share) => share > 0.0,
        None => s.control_customers > 0,
    });
    for s in &mut out {
        s.treated.sort();
        s.control.sort();
    }
    out
}

/// A send recorded by this run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recorded {
    pub(crate) campaign: String,
    pub(crate) holdout_key: String,
    pub(crate) segment: String,
    pub(crate) treated: u64,
    pub(crate) control: u64,
}

/// A segment's sends, oldest first.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SegmentOutcomes {
    pub(crate) segment: String,
    pub(crate) label: String,
    /// The model's mean P(purchase) of the segment in this run (over its own horizon).
    pub(crate) predicted_conversion: Option<f64>,
    /// The last sends (at most [`SHOWN_SENDS`]).
    pub(crate) sends: Vec<SendOutcome>,
    /// The latest send with final figures, if any.
    pub(crate) latest_measured: Option<SendOutcome>,
    /// Every final send of the segment together, when there are two or more.
    pub(crate) pooled: Option<super::pooled::Pooled>,
}

/// The measured-outcomes part of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcomes {
    /// The date this run's sends are recorded under.
    pub(crate) sent_on: String,
    pub(crate) attribution_days: u32,
    pub(crate) min_customers: usize,
    pub(crate) conversion_interval: &'static str,
    pub(crate) revenue_interval: &'static str,
    /// The first and last date of the transactions, when deploy has them.
    pub(crate) transactions_from: Option<String>,
    pub(crate) transactions_to: Option<String>,
    /// This run's sends.
    pub(crate) recorded: Vec<Recorded>,
    pub(crate) segments: Vec<SegmentOutcomes>,
}

/// Records this run's sends in `ledger`, measures every send on `transactions`, and returns
/// what to report. The caller saves the ledger once the files are written.
pub(super) fn update(
    ledger: &mut Ledger,
    sends: Vec<SendRecord>,
    transactions: Option<&RecordBatch>,
    stats: &[SegmentStats],
    sent_on: &str,
    window_days: u32,
) -> Result<Outcomes, NodeError> {
    let recorded: Vec<Recorded> = sends
        .iter()
        .map(|s| Recorded {
            campaign: s.campaign.clone(),
            holdout_key: s.holdout_key.clone(),
            segment: s.segment.clone(),
            treated: s.treated_customers,
            control: s.control_customers,
        })
        .collect();
    ledger.record(sends);
    ledger.prune();
    let purchases = match transactions {
        Some(tx) => Some(Purchases::read(tx, |span| {
            ledger
                .sends
                .iter()
                .filter(move |s| reads_purchases(s, span))
                .flat_map(|s| s.treated.iter().chain(&s.control))
                .map(String::as_str)
        })?),
        None => None,
    };
    let mut measured: Vec<SendOutcome> = Vec::with_capacity(ledger.sends.len());
    for s in &mut ledger.sends {
        let o = measure(s, purchases.as_ref());
        if o.status == Status::Measured && s.measured.is_none() {
            s.measured = o.figures.clone();
        }
        measured.push(o);
    }
    // Final sends no longer need their customers.
    ledger.prune();
    let span = purchases.as_ref().and_then(Purchases::span);

    let mut order: Vec<String> = stats.iter().map(|s| s.segment.clone()).collect();
    for o in &measured {
        if !order.contains(&o.segment) {
            order.push(o.segment.clone());
        }
    }
    let segments = order
        .into_iter()
        .filter_map(|segment| {
            let mut sends: Vec<SendOutcome> = measured
                .iter()
                .filter(|o| o.segment == segment)
                .cloned()
                .collect();
            if sends.is_empty() {
                return None;
            }
            sends.sort_by(|a, b| a.sent_on.cmp(&b.sent_on));
            let latest_measured = sends
                .iter()
                .rev()
                .find(|o| o.status == Status::Measured)
                .cloned();
            let pooled = super::pooled::pool(&sends);
            let keep = sends.len().saturating_sub(SHOWN_SENDS);
            sends.drain(..keep);
            let stat = stats.iter().find(|s| s.segment == segment);
            Some(SegmentOutcomes {
                label: stat.map_or_else(
                    || crate::segmentation::classify::humanize(&segment),
                    |s| s.label.clone(),
                ),
                predicted_conversion: stat.and_then(|s| s.predicted_conversion),
                segment,
                sends,
                latest_measured,
                pooled,
            })
        })
        .collect();
    Ok(Outcomes {
        sent_on: sent_on.to_string(),
        attribution_days: window_days,
        min_customers: MIN_CUSTOMERS,
        conversion_interval: CONVERSION_METHOD,
        revenue_interval: REVENUE_METHOD,
        transactions_from: span.map(|(a, _)| day_string(a)),
        transactions_to: span.map(|(_, b)| day_string(b)),
        recorded,
        segments,
    })
}
