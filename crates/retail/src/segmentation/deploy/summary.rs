//! What deploy reports: the per-segment metrics of `summary.json`, the changes since the
//! previous run (from the profiles kept in the node state), and the node's output metadata.

use super::*;

/// Per-segment key metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SegmentStats {
    pub(crate) segment: String,
    /// The readable name: the classify rule's label, else the name humanised.
    pub(crate) label: String,
    /// The campaign's offer (`20% off`, `free shipping`, `no offer`).
    pub(crate) offer: Option<String>,
    /// The campaign's channel (`email`, `none`).
    pub(crate) channel: Option<String>,
    pub(crate) customers: u64,
    /// Customers held out of the campaign (its control group).
    pub(crate) control_group: u64,
    pub(crate) messages_sent: u64,
    pub(crate) recommendations: u64,
    pub(crate) revenue: f64,
    pub(crate) orders: u64,
    pub(crate) avg_order_value: Option<f64>,
    pub(crate) mean_clv: Option<f64>,
    /// Mean P(purchase in the horizon).
    pub(crate) predicted_conversion: Option<f64>,
    #[serde(skip)]
    pub(super) clv: (f64, u64),
    #[serde(skip)]
    pub(super) conversion: (f64, u64),
}

impl SegmentStats {
    pub(super) fn named(segment: &str) -> Self {
        SegmentStats {
            segment: segment.to_string(),
            label: super::super::classify::humanize(segment),
            ..Default::default()
        }
    }

    pub(super) fn add(&mut self, row: &ProfileRow) {
        self.customers += 1;
        self.control_group += u64::from(row.control);
        self.messages_sent += u64::from(row.sent);
        self.revenue += row.spend.unwrap_or(0.0);
        self.orders += row.orders.unwrap_or(0).max(0) as u64;
        if let Some(c) = row.clv {
            self.clv.0 += c;
            self.clv.1 += 1;
        }
        if let Some(p) = row.p_purchase {
            self.conversion.0 += p;
            self.conversion.1 += 1;
        }
    }

    pub(super) fn finish(&mut self) {
        self.avg_order_value = (self.orders > 0).then(|| self.revenue / self.orders as f64);
        self.mean_clv = (self.clv.1 > 0).then(|| self.clv.0 / self.clv.1 as f64);
        self.predicted_conversion =
            (self.conversion.1 > 0).then(|| self.conversion.0 / self.conversion.1 as f64);
    }
}

/// Customers who moved from one segment to another.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Transition {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) customers: u64,
}

/// Total and mean CLV now and in the previous run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClvChange {
    pub(crate) previous_total: f64,
    pub(crate) current_total: f64,
    pub(crate) total_change: f64,
    pub(crate) previous_mean: Option<f64>,
    pub(crate) current_mean: Option<f64>,
    pub(crate) mean_change: Option<f64>,
}

/// A segment's mean CLV in the previous run and now.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SegmentClvChange {
    pub(crate) segment: String,
    pub(crate) previous_customers: u64,
    pub(crate) previous_mean: Option<f64>,
    pub(crate) current_customers: u64,
    pub(crate) current_mean: Option<f64>,
    pub(crate) mean_change: Option<f64>,
}

/// What changed since the previous run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Changes {
    pub(crate) previous_run_id: String,
    pub(crate) previous_run_at: String,
    /// Customers in both runs.
    pub(crate) customers_compared: u64,
    /// Of those, customers whose segment changed.
    pub(crate) moved: u64,
    /// Largest first.
    pub(crate) transitions: Vec<Transition>,
    pub(crate) new_customers: u64,
    /// Customers in the previous run's profiles who are absent from this export (not customers
    /// a branch dropped: those stop deploy with an error).
    pub(crate) customers_gone_since_previous: u64,
    pub(crate) clv: ClvChange,
    /// Mean CLV per segment then and now (each run's own customers of the segment).
    pub(crate) segments_clv: Vec<SegmentClvChange>,
    /// The transitions in words: "12 customers moved from vip to at_risk".
    pub(crate) sentences: Vec<String>,
}

/// The files written.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Files {
    pub(crate) out_dir: String,
    pub(crate) segments: String,
    pub(crate) recommendations: String,
    pub(crate) summary: String,
    pub(crate) report: String,
    pub(crate) messages: Option<String>,
    pub(crate) message_files: u64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) run_id: String,
    pub(crate) generated_at: String,
    /// ISO 4217 code of every amount, when the workflow states it.
    pub(crate) currency: Option<String>,
    /// The dates the data covers.
    pub(crate) period: Option<overview::Period>,
    pub(crate) totals: SegmentStats,
    pub(crate) segments: Vec<SegmentStats>,
    pub(crate) messages_skipped: BTreeMap<String, u64>,
    pub(crate) changes: Option<Changes>,
    /// Earlier campaigns measured against their control groups.
    pub(crate) outcomes: Option<outcomes::Outcomes>,
    pub(crate) files: Files,
    pub(crate) pos: Option<Json>,
    /// The models' backtests, as the metrics and recommend nodes reported them.
    #[serde(skip_serializing_if = "backtests::Backtests::is_empty")]
    pub(crate) backtests: backtests::Backtests,
}

/// A profile as the next run sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub(super) run_id: String,
    pub(super) at: String,
    /// customer_id -> (segment, clv)
    pub(super) profiles: BTreeMap<String, (String, Option<f64>)>,
}

/// What the node keeps in its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) version: u32,
    pub(super) current: Snapshot,
    /// The run `current` was compared with (kept so a resumed run compares with it again).
    pub(super) baseline: Option<Snapshot>,
}

/// One customer's profile fields deploy computes with.
pub(super) struct ProfileRow {
    pub(super) segment: usize,
    pub(super) sent: bool,
    /// In the campaign's control group.
    pub(super) control: bool,
    pub(super) spend: Option<f64>,
    pub(super) orders: Option<i64>,
    pub(super) clv: Option<f64>,
    pub(super) p_purchase: Option<f64>,
}

pub(super) struct Written {
    pub(super) summary: Summary,
    pub(super) batches: Vec<Vec<u8>>,
    /// The messages to send over SMTP (with an `email:` block).
    pub(super) emails: Vec<outgoing::Outgoing>,
    /// The day the campaigns are sent on (`YYYY-MM-DD`).
    pub(super) sent_on: String,
}

pub(super) fn compare(before: &Snapshot, now: &Snapshot) -> Changes {
    let mut moves: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let (mut compared, mut moved, mut new_customers) = (0u64, 0u64, 0u64);
    for (id, (segment, _)) in &now.profiles {
        match before.profiles.get(id) {
            Some((old, _)) => {
                compared += 1;
                if old != segment {
                    moved += 1;
                    *moves.entry((old.as_str(), segment.as_str())).or_default() += 1;
                }
            }
            None => new_customers += 1,
        }
    }
    let lost = before
        .profiles
        .keys()
        .filter(|id| !now.profiles.contains_key(*id))
        .count() as u64;
    let mut transitions: Vec<Transition> = moves
        .into_iter()
        .map(|((from, to), customers)| Transition {
            from: from.to_string(),
            to: to.to_string(),
            customers,
        })
        .collect();
    transitions.sort_by_key(|t| std::cmp::Reverse(t.customers));
    let clv_stats = |s: &Snapshot| {
        let values: Vec<f64> = s.profiles.values().filter_map(|(_, c)| *c).collect();
        let total: f64 = values.iter().sum();
        (
            total,
            (!values.is_empty()).then(|| total / values.len() as f64),
        )
    };
    let segments_clv = segment_clv(before, now);
    let (previous_total, previous_mean) = clv_stats(before);
    let (current_total, current_mean) = clv_stats(now);
    let sentences = transitions
        .iter()
        .map(|t| {
            format!(
                "{} customer{} moved from {} to {}",
                t.customers,
                if t.customers == 1 { "" } else { "s" },
                t.from,
                t.to
            )
        })
        .collect();
    Changes {
        previous_run_id: before.run_id.clone(),
        previous_run_at: before.at.clone(),
        customers_compared: compared,
        moved,
        transitions,
        new_customers,
        customers_gone_since_previous: lost,
        clv: ClvChange {
            previous_total,
            current_total,
            total_change: current_total - previous_total,
            previous_mean,
            current_mean,
            mean_change: current_mean.zip(previous_mean).map(|(c, p)| c - p),
        },
        segments_clv,
        sentences,
    }
}

/// Mean CLV per segment in both snapshots: the segments of the current run first (by name),
/// then those only the previous run had.
fn segment_clv(before: &Snapshot, now: &Snapshot) -> Vec<SegmentClvChange> {
    // segment -> (customers, customers with a CLV, CLV sum)
    let per = |s: &Snapshot| {
        let mut m: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
        for (segment, clv) in s.profiles.values() {
            let e = m.entry(segment.clone()).or_default();
            e.0 += 1;
            if let Some(c) = clv {
                e.1 += 1;
                e.2 += c;
            }
        }
        m
    };
    let (old, new) = (per(before), per(now));
    let mean = |e: Option<&(u64, u64, f64)>| e.filter(|e| e.1 > 0).map(|e| e.2 / e.1 as f64);
    let mut names: Vec<&String> = new.keys().collect();
    names.extend(old.keys().filter(|k| !new.contains_key(*k)));
    names
        .into_iter()
        .map(|segment| {
            let (p, c) = (old.get(segment), new.get(segment));
            let (previous_mean, current_mean) = (mean(p), mean(c));
            SegmentClvChange {
                segment: segment.clone(),
                previous_customers: p.map_or(0, |e| e.0),
                previous_mean,
                current_customers: c.map_or(0, |e| e.0),
                current_mean,
                mean_change: current_mean.zip(previous_mean).map(|(c, p)| c - p),
            }
        })
        .collect()
}

/// The node's output: the summary as JSON, and the key metrics as metadata.
pub(super) fn output(
    summary: &Summary,
    pos: Option<&PosReport>,
    email: Option<&smtp_send::EmailReport>,
) -> Output {
    let t = &summary.totals;
    let mut value = json!({
        "out_dir": summary.files.out_dir,
        "files": summary.files,
        "customers": t.customers,
        "recommendations": t.recommendations,
        "messages_sent": t.messages_sent,
        "messages_skipped": summary.messages_skipped,
        "segments": summary.segments.iter().map(|s| json!({
            "segment": s.segment, "customers": s.customers, "messages_sent": s.messages_sent,
        })).collect::<Vec<_>>(),
        "changes": summary.changes,
    });
    if let Some(p) = pos {
        value["pos"] = json!(p);
    }
    if let Some(e) = email {
        value["email"] = json!(e);
    }
    let mut out = Output::json(value)
        .with_meta("customers", t.customers)
        .with_meta("segments", summary.segments.len() as u64)
        .with_meta("recommendations", t.recommendations)
        .with_meta("messages_sent", t.messages_sent)
        .with_meta("revenue", round2(t.revenue))
        .with_meta("out_dir", summary.files.out_dir.clone());
    if let Some(e) = email {
        out = out
            .with_meta("emails_sent", (e.sent + e.already_sent) as u64)
            .with_meta("emails_bounced", e.bounced as u64);
    }
    if let Some(v) = t.avg_order_value {
        out = out.with_meta("avg_order_value", round2(v));
    }
    if let Some(v) = t.mean_clv {
        out = out.with_meta("mean_clv", round2(v));
    }
    if let Some(v) = t.predicted_conversion {
        out = out.with_meta("predicted_conversion", (v * 10_000.0).round() / 10_000.0);
    }
    match &summary.changes {
        Some(c) => {
            out = out
                .with_meta("previous_run", c.previous_run_id.clone())
                .with_meta("customers_moved", c.moved)
                .with_meta("transitions", c.sentences.clone())
                .with_meta("new_customers", c.new_customers)
                .with_meta(
                    "customers_gone_since_previous",
                    c.customers_gone_since_previous,
                )
                .with_meta("clv_total_change", round2(c.clv.total_change));
            if let Some(m) = c.clv.mean_change {
                out = out.with_meta("clv_mean_change", round2(m));
            }
        }
        None => out = out.with_meta("previous_run", Json::Null),
    }
    if let Some(p) = pos {
        out = out
            .with_meta("pos_batches", p.batches as u64)
            .with_meta("pos_batches_sent", p.sent as u64)
            .with_meta("pos_batches_already_sent", p.already_sent as u64);
    }
    out
}

pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
