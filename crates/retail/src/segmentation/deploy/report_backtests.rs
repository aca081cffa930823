//! The report's backtest section: how well the CLV model predicted a held-out period, and how
//! each recommendation strategy would have done against the baselines, per segment.

use std::fmt::Write as _;

use super::SegmentStats;
use super::backtests::{Backtests, ClvBacktest, MethodScore, SegmentBacktest};
use super::report::{escape, percent};

/// The section, or nothing when no node reported a backtest.
pub(crate) fn render(backtests: &Backtests, segments: &[SegmentStats]) -> String {
    if backtests.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2>How well the models did on past data</h2>");
    if let Some(clv) = &backtests.clv {
        h.push_str(&clv_section(clv));
    }
    if !backtests.recommendations.is_empty() {
        h.push_str(
            "<h3>Recommendations</h3><p class=\"muted\">Each segment's recommendations made again \
             as of a past date, from the purchases up to it, and scored against what its customers \
             then bought. Hit rate: share of customers who bought at least one recommended \
             product; precision: share of recommended products bought; recall: share of the \
             products bought that were recommended. Baselines: the most popular products of the \
             90 days before that date, and products often bought with the customer's own \
             (item-to-item co-occurrence).</p>",
        );
        for b in &backtests.recommendations {
            h.push_str(&segment_section(b, segments));
        }
    }
    h
}

fn pct(v: f64) -> String {
    percent(Some(v))
}

fn clv_section(b: &ClvBacktest) -> String {
    let mut h = String::from("<h3>Purchase forecast (BG/NBD)</h3>");
    let (Some(cutoff), Some(pred), Some(actual)) = (&b.cutoff, b.total_predicted, b.total_actual)
    else {
        let _ = write!(
            h,
            "<p class=\"muted\">Not backtested: {}</p>",
            escape(b.note.as_deref().unwrap_or("no figures were reported"))
        );
        return h;
    };
    let _ = write!(
        h,
        "<p>Fitted on the {cal} days up to {cutoff}, the model predicted <b>{pred:.0}</b> repeat \
         purchases by {customers} customers in the next {hold} days; they made <b>{actual:.0}</b>{err}.{mae}</p>",
        cal = b.calibration_days.map_or("–".into(), |d| d.to_string()),
        cutoff = escape(cutoff),
        customers = b.customers.map_or("–".into(), |c| c.to_string()),
        hold = b.holdout_days.map_or("–".into(), |d| d.to_string()),
        err = b
            .error_pct
            .map_or(String::new(), |e| format!(" (forecast off by {e:+.1}%)")),
        mae = b.mae.map_or(String::new(), |m| format!(
            " Mean absolute error per customer: {m:.2} purchases."
        )),
    );
    if !b.by_frequency.is_empty() {
        let max = b
            .by_frequency
            .iter()
            .flat_map(|r| [r.predicted, r.actual])
            .fold(0.0_f64, f64::max);
        let width = |v: f64| {
            if max > 0.0 && v > 0.0 {
                v / max * 100.0
            } else {
                0.0
            }
        };
        h.push_str(
            "<table class=\"backtest\"><thead><tr><th>Repeat purchases before</th><th>Customers</th>\
             <th>Predicted after (mean)</th><th>Actual after (mean)</th><th></th></tr></thead><tbody>",
        );
        for r in &b.by_frequency {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td class=\"pair\">\
                 <div class=\"bar\" style=\"width:{:.1}%\" title=\"predicted\"></div>\
                 <div class=\"bar actual\" style=\"width:{:.1}%\" title=\"actual\"></div></td></tr>",
                escape(&r.frequency),
                r.customers,
                r.predicted,
                r.actual,
                width(r.predicted),
                width(r.actual),
            );
        }
        h.push_str("</tbody></table>");
    }
    if let Some(note) = &b.note {
        let _ = write!(h, "<p class=\"muted\">{}</p>", escape(note));
    }
    h
}

fn segment_section(b: &SegmentBacktest, segments: &[SegmentStats]) -> String {
    let names: Vec<String> = b
        .segments
        .iter()
        .map(|s| {
            segments
                .iter()
                .find(|st| &st.segment == s)
                .map_or_else(|| s.clone(), |st| st.label.clone())
        })
        .collect();
    let title = if names.is_empty() {
        b.node.clone()
    } else {
        names.join(", ")
    };
    let t = &b.backtest;
    let mut h = format!(
        "<h4>{} <span class=\"code\">{}</span></h4>",
        escape(&title),
        escape(&b.node)
    );
    if t.methods.is_empty() {
        let _ = write!(
            h,
            "<p class=\"muted\">Not backtested: {}</p>",
            escape(t.note.as_deref().unwrap_or("no figures were reported"))
        );
        return h;
    }
    let k = t.k.map_or("k".into(), |k| k.to_string());
    let _ = write!(
        h,
        "<p class=\"muted\">As of {}, the next {} days: {} of the segment's {} customers bought \
         something new then and are scored.</p>",
        escape(t.cutoff.as_deref().unwrap_or("–")),
        t.holdout_days.map_or("–".into(), |d| d.to_string()),
        t.customers.map_or("–".into(), |c| c.to_string()),
        t.segment_customers.map_or("–".into(), |c| c.to_string()),
    );
    let _ = write!(
        h,
        "<table class=\"backtest\"><thead><tr><th>Method</th><th>Hit rate at {k}</th>\
         <th>Precision at {k}</th><th>Recall at {k}</th><th>NDCG at {k}</th><th>Customers</th></tr>\
         </thead><tbody>"
    );
    // Methods scored on repeat purchases are compared among themselves only.
    let best = |repeat: bool| {
        t.methods
            .iter()
            .filter(|m| scored_on_repeats(m) == repeat)
            .map(|m| m.hit_rate)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let (best_new, best_repeat) = (best(false), best(true));
    for m in &t.methods {
        let name = m.label.as_deref().unwrap_or(&m.method);
        let mut cell = escape(name);
        if m.kind == "baseline" {
            cell = format!("<i>{cell}</i> (baseline)");
        }
        if m.configured {
            cell = format!("<b>{cell}</b> (in use)");
        }
        let _ = write!(
            h,
            "<tr{}><td>{cell}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
            if m.hit_rate
                == if scored_on_repeats(m) {
                    best_repeat
                } else {
                    best_new
                }
            {
                " class=\"best\""
            } else {
                ""
            },
            pct(m.hit_rate),
            pct(m.precision),
            pct(m.recall),
            m.ndcg,
            m.customers,
        );
    }
    h.push_str("</tbody></table>");
    if let Some(verdict) = verdict(&t.methods) {
        let _ = write!(h, "<p>{}</p>", escape(&verdict));
    }
    if let Some(note) = &t.note {
        let _ = write!(h, "<p class=\"muted\">{}</p>", escape(note));
    }
    h
}

/// Whether the method recommends items bought before, and so is scored on repeat purchases.
fn scored_on_repeats(m: &MethodScore) -> bool {
    matches!(m.method.as_str(), "replenishment" | "own_most_bought")
}

/// How the strategy in use compares with its baseline, in words: the most popular items, or
/// for a strategy scored on repeat purchases the customer's own most bought items.
fn verdict(methods: &[MethodScore]) -> Option<String> {
    let used = methods.iter().find(|m| m.configured)?;
    let (baseline, words) = if scored_on_repeats(used) {
        (
            "own_most_bought",
            "recommending each customer's own most bought items",
        )
    } else {
        ("popularity", "recommending the most popular products")
    };
    let base = methods
        .iter()
        .find(|m| m.kind == "baseline" && m.method == baseline)?;
    let name = used.label.as_deref().unwrap_or(&used.method);
    Some(if used.hit_rate >= base.hit_rate {
        format!(
            "The strategy in use ({name}) hit {} of customers; {words} hit {}.",
            pct(used.hit_rate),
            pct(base.hit_rate)
        )
    } else {
        format!(
            "Warning: the strategy in use ({name}) hit {} of customers, fewer than simply \
             {words} ({}).",
            pct(used.hit_rate),
            pct(base.hit_rate)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::backtests::{FrequencyRow, RecBacktest};
    use super::*;

    fn method(name: &str, kind: &str, configured: bool, hit: f64) -> MethodScore {
        MethodScore {
            method: name.into(),
            kind: kind.into(),
            configured,
            label: None,
            customers: 40,
            hit_rate: hit,
            precision: hit / 4.0,
            recall: hit / 2.0,
            ndcg: hit / 3.0,
        }
    }

    #[test]
    fn nothing_without_backtests() {
        assert_eq!(render(&Backtests::default(), &[]), "");
    }

    #[test]
    fn segments_by_label_methods_and_a_warning_when_a_baseline_wins() {
        let mut vip = SegmentStats::named("vip");
        vip.label = "VIP <best>".into();
        let b = Backtests {
            clv: Some(ClvBacktest {
                cutoff: Some("2024-10-01".into()),
                calibration_days: Some(600),
                holdout_days: Some(90),
                customers: Some(1000),
                by_frequency: vec![FrequencyRow {
                    frequency: "7+".into(),
                    customers: 12,
                    predicted: 3.5,
                    actual: 3.25,
                }],
                total_predicted: Some(812.4),
                total_actual: Some(790.0),
                error_pct: Some(2.8),
                mae: Some(0.61),
                note: None,
            }),
            recommendations: vec![SegmentBacktest {
                node: "recommend_vip".into(),
                segments: vec!["vip".into()],
                backtest: RecBacktest {
                    cutoff: Some("2024-11-01".into()),
                    holdout_days: Some(60),
                    k: Some(4),
                    segment_customers: Some(90),
                    customers: Some(40),
                    methods: vec![
                        method("seasonal", "strategy", true, 0.10),
                        method("popularity", "baseline", false, 0.20),
                        method("own_most_bought", "baseline", false, 0.70),
                        method("replenishment", "strategy", false, 0.80),
                    ],
                    note: None,
                },
            }],
        };
        let html = render(&b, &[vip]);
        assert!(html.contains("predicted <b>812</b> repeat purchases by 1000 customers in the next 90 days; they made <b>790</b> (forecast off by +2.8%)"), "{html}");
        assert!(html.contains("VIP &lt;best&gt;"), "{html}");
        assert!(html.contains("Hit rate at 4"));
        assert!(html.contains("<b>seasonal</b> (in use)"));
        assert!(html.contains("Warning: the strategy in use (seasonal) hit 10.0% of customers, fewer than simply recommending the most popular products (20.0%)."), "{html}");
        // The best of the methods scored on new items, and of those scored on repeats.
        assert!(
            html.contains("<tr class=\"best\"><td><i>popularity</i> (baseline)"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"best\"><td>replenishment"),
            "{html}"
        );
        assert_eq!(html.matches("class=\"best\"").count(), 2, "{html}");
    }

    #[test]
    fn a_note_instead_of_figures() {
        let b = Backtests {
            clv: Some(ClvBacktest {
                note: Some("120 days of history, need 180".into()),
                ..Default::default()
            }),
            recommendations: vec![SegmentBacktest {
                node: "recommend_new".into(),
                segments: vec![],
                backtest: RecBacktest {
                    note: Some("only 3 customers <scored>".into()),
                    ..Default::default()
                },
            }],
        };
        let html = render(&b, &[]);
        assert!(html.contains("Not backtested: 120 days of history, need 180"));
        assert!(html.contains("Not backtested: only 3 customers &lt;scored&gt;"));
        assert!(!html.contains("Hit rate at"));
    }
}
