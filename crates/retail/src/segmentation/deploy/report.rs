//! `report.html`: one self-contained page (inline CSS, no scripts, no external assets) with the
//! key metrics per segment (under the segments' labels, with their offers), CSS bar charts, and
//! the changes since the previous run of the same workflow with the same parameters. It names
//! the currency and the period the data covers.

use std::fmt::Write as _;

use flow_engine::plural::plural;

use super::overview::label_of;
use super::{SegmentStats, Summary};

pub(crate) use flow_engine::html::escape;

/// `1,234,567.89`
pub(crate) fn money(v: f64) -> String {
    let negative = v < 0.0;
    let cents = (v.abs() * 100.0).round() as u64;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{frac:02}", if negative { "-" } else { "" })
}

fn opt_money(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), money)
}

/// `12.3%`, or `–` without a value.
pub(crate) fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |p| format!("{:.1}%", p * 100.0))
}

fn signed_money(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", money(v))
    } else {
        money(v)
    }
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2933;
       margin: 0; background: #f5f7fa; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.muted { color: #66788a; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px;
         margin-top: 16px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px #0001; }
.card .v { font-size: 20px; font-weight: 600; } .card .k { color: #66788a; font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; border-radius: 8px;
        overflow: hidden; box-shadow: 0 1px 2px #0001; }
th, td { padding: 8px 10px; text-align: right; border-bottom: 1px solid #e4e7eb; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef2f7; font-weight: 600; font-size: 12px; text-transform: uppercase;
     letter-spacing: .03em; color: #52606d; }
tfoot td { font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.chart { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px #0001; }
.chart h3 { font-size: 13px; margin: 0 0 8px; color: #52606d; }
.row { display: grid; grid-template-columns: 110px 1fr 90px; gap: 8px; align-items: center;
       margin: 4px 0; font-size: 12px; }
.row .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.track { background: #eef2f7; border-radius: 4px; height: 14px; }
.bar { background: #3e7bfa; border-radius: 4px; height: 14px; min-width: 1px; }
.row .num { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #1b7f3b; } .down { color: #b42318; }
ul { margin: 6px 0; }
.code { display: block; color: #66788a; font-size: 11px; }
.segments th:nth-child(2), .segments td:nth-child(2) { text-align: left; }
h3 { font-size: 15px; margin: 18px 0 8px; } h4 { font-size: 14px; margin: 14px 0 6px; }
.backtest { margin-bottom: 8px; } .backtest tr.best td { background: #f0f7f2; }
.pair { width: 30%; } .pair .bar { height: 7px; margin: 1px 0; } .bar.actual { background: #f59e0b; }
";

/// An RFC 3339 time as `2026-12-01 06:00`; other text as it is.
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// What a segment is offered: the campaign's offer, and whether a message goes out at all.
fn offer_text(s: &SegmentStats) -> String {
    let offer = s.offer.as_deref().unwrap_or("–");
    match s.channel.as_deref() {
        Some("none") => format!("{offer} (no message)"),
        _ => offer.to_string(),
    }
}

/// A horizontal bar chart of one metric over the segments.
fn chart(
    title: &str,
    segments: &[SegmentStats],
    value: impl Fn(&SegmentStats) -> Option<f64>,
    label: impl Fn(f64) -> String,
) -> String {
    let max = segments.iter().filter_map(&value).fold(0.0_f64, f64::max);
    let mut html = format!("<div class=\"chart\"><h3>{}</h3>", escape(title));
    for s in segments {
        let v = value(s);
        let width = match v {
            Some(v) if max > 0.0 && v > 0.0 => v / max * 100.0,
            _ => 0.0,
        };
        let _ = write!(
            html,
            "<div class=\"row\"><span class=\"label\" title=\"{seg}\">{seg}</span>\
             <div class=\"track\"><div class=\"bar\" style=\"width:{width:.1}%\"></div></div>\
             <span class=\"num\">{num}</span></div>",
            seg = escape(&s.label),
            num = v.map_or_else(|| "–".to_string(), &label),
        );
    }
    html.push_str("</div>");
    html
}

/// The whole page.
pub(crate) fn render(summary: &Summary) -> String {
    let t = &summary.totals;
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Customer segments – {date}</title><style>{STYLE}{outcome_style}</style></head><body><main>\
         <h1>Customer segments and campaigns</h1>\
         <div class=\"muted\">Run {run} · {date} · {currency}</div>",
        run = escape(&summary.run_id),
        outcome_style = super::report_outcomes::STYLE,
        date = escape(&when(&summary.generated_at)),
        currency = match &summary.currency {
            Some(c) => format!("amounts in {}", escape(c)),
            None => "currency not stated (set <code>currency</code> on the deploy node)".into(),
        },
    );
    if let Some(p) = &summary.period {
        let _ = write!(
            h,
            "<div class=\"muted\">Transactions from {} to {} · analysis date {}</div>",
            escape(&p.first_transaction),
            escape(&p.last_transaction),
            escape(&p.analysis_date),
        );
    }
    // `Revenue (USD)` when the currency is known.
    let amount = |k: &str| match &summary.currency {
        Some(c) => format!("{k} ({c})"),
        None => k.to_string(),
    };

    // Key figures.
    h.push_str("<div class=\"cards\">");
    let cards = [
        ("Customers".to_string(), t.customers.to_string()),
        (amount("Revenue"), money(t.revenue)),
        (amount("Average order value"), opt_money(t.avg_order_value)),
        (amount("Mean CLV"), opt_money(t.mean_clv)),
        (
            "Predicted conversion".to_string(),
            percent(t.predicted_conversion),
        ),
        ("Messages to send".to_string(), t.messages_sent.to_string()),
        ("Recommendations".to_string(), t.recommendations.to_string()),
    ];
    for (k, v) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
            escape(&v),
            escape(&k)
        );
    }
    h.push_str("</div>");

    // Per segment.
    let _ = write!(
        h,
        "<h2>Segments</h2><table class=\"segments\"><thead><tr><th>Segment</th><th>Offer</th><th>Customers</th>\
         <th>Share</th><th>{}</th><th>{}</th><th>{}</th><th>Predicted conversion</th>\
         <th>Messages</th><th>Recommendations</th></tr></thead><tbody>",
        escape(&amount("Revenue")),
        escape(&amount("Avg order value")),
        escape(&amount("Mean CLV")),
    );
    let share = |n: u64| {
        if t.customers > 0 {
            Some(n as f64 / t.customers as f64)
        } else {
            None
        }
    };
    let row = |s: &SegmentStats, name: &str, offer: &str| {
        format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(offer),
            s.customers,
            percent(share(s.customers)),
            money(s.revenue),
            opt_money(s.avg_order_value),
            opt_money(s.mean_clv),
            percent(s.predicted_conversion),
            s.messages_sent,
            s.recommendations,
        )
    };
    for s in &summary.segments {
        // The label, with the segment's name as the files (segments.csv) spell it.
        let name = format!(
            "{}<span class=\"code\">{}</span>",
            escape(&s.label),
            escape(&s.segment)
        );
        h.push_str(&row(s, &name, &offer_text(s)));
    }
    h.push_str("</tbody><tfoot>");
    h.push_str(&row(t, "All customers", ""));
    h.push_str("</tfoot></table>");

    // Charts.
    let segs = &summary.segments;
    h.push_str("<h2>By segment</h2><div class=\"charts\">");
    h.push_str(&chart(
        "Customers",
        segs,
        |s| Some(s.customers as f64),
        |v| format!("{v:.0}"),
    ));
    h.push_str(&chart(&amount("Revenue"), segs, |s| Some(s.revenue), money));
    h.push_str(&chart(&amount("Mean CLV"), segs, |s| s.mean_clv, money));
    h.push_str(&chart(
        "Predicted conversion",
        segs,
        |s| s.predicted_conversion,
        |v| percent(Some(v)),
    ));
    h.push_str(&chart(
        &amount("Average order value"),
        segs,
        |s| s.avg_order_value,
        money,
    ));
    h.push_str("</div>");

    // Changes.
    h.push_str("<h2>Changes since the previous run</h2>");
    match &summary.changes {
        None => h.push_str(
            "<p class=\"muted\">This is the first run of this workflow with these parameters: \
             nothing to compare with yet.</p>",
        ),
        Some(c) => {
            let _ = write!(
                h,
                "<p class=\"muted\">Compared with run {} of {}, the previous run of this workflow \
                 with the same parameters: {} in both runs, {} new, {} no longer present.</p>",
                escape(&c.previous_run_id),
                escape(&when(&c.previous_run_at)),
                plural(c.customers_compared, "customer"),
                c.new_customers,
                c.customers_gone_since_previous
            );
            let class = |v: f64| {
                if v > 0.0 {
                    "up"
                } else if v < 0.0 {
                    "down"
                } else {
                    ""
                }
            };
            let _ = write!(
                h,
                "<table><thead><tr><th>{}</th><th>Previous</th><th>Now</th><th>Change</th></tr></thead><tbody>\
                 <tr><td>Total</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\
                 <tr><td>Mean per customer</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr></tbody></table>",
                escape(&amount("CLV")),
                money(c.clv.previous_total),
                money(c.clv.current_total),
                class(c.clv.total_change),
                signed_money(c.clv.total_change),
                opt_money(c.clv.previous_mean),
                opt_money(c.clv.current_mean),
                class(c.clv.mean_change.unwrap_or(0.0)),
                c.clv
                    .mean_change
                    .map_or_else(|| "–".to_string(), signed_money),
            );
            h.push_str(&super::report_outcomes::segment_clv(
                c,
                &summary.segments,
                &amount,
            ));
            if c.transitions.is_empty() {
                h.push_str("<p>No customer changed segment.</p>");
            } else {
                let _ = write!(
                    h,
                    "<p>{} changed segment:</p><ul>",
                    plural(c.moved, "customer")
                );
                let label = |segment: &str| label_of(&summary.segments, segment);
                for t in &c.transitions {
                    let _ = write!(
                        h,
                        "<li>{} moved from {} to {}</li>",
                        plural(t.customers, "customer"),
                        escape(&label(&t.from)),
                        escape(&label(&t.to))
                    );
                }
                h.push_str("</ul>");
            }
        }
    }

    h.push_str(&super::report_outcomes::section(
        summary.outcomes.as_ref(),
        &amount,
    ));

    // Skipped messages and files.
    if !summary.messages_skipped.is_empty() {
        h.push_str("<h2>Customers without a message</h2><ul>");
        for (reason, n) in &summary.messages_skipped {
            let _ = write!(h, "<li>{}: {n}</li>", escape(reason));
        }
        h.push_str("</ul>");
    }
    let f = &summary.files;
    h.push_str(&super::report_backtests::render(
        &summary.backtests,
        &summary.segments,
    ));
    h.push_str("<h2>Files</h2><ul>");
    for (k, v) in [
        ("Profiles", Some(&f.segments)),
        ("Recommendations", Some(&f.recommendations)),
        ("Summary", Some(&f.summary)),
        ("Messages", f.messages.as_ref()),
    ] {
        if let Some(v) = v {
            let _ = write!(h, "<li>{}: <code>{}</code></li>", escape(k), escape(v));
        }
    }
    h.push_str("</ul></main></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::super::overview::Period;
    use super::super::{Changes, ClvChange, Files, Transition};
    use super::*;

    fn segment(
        name: &str,
        label: &str,
        offer: &str,
        channel: &str,
        customers: u64,
    ) -> SegmentStats {
        SegmentStats {
            label: label.into(),
            offer: Some(offer.into()),
            channel: Some(channel.into()),
            customers,
            revenue: 100.0 * customers as f64,
            ..SegmentStats::named(name)
        }
    }

    fn summary(changes: Option<Changes>) -> Summary {
        let segments = vec![
            segment("vip", "VIP", "early access", "email", 3),
            segment("at_risk", "At risk", "20% off", "email", 1),
            segment("regular", "Regular", "no offer", "none", 1),
        ];
        Summary {
            run_id: "r2".into(),
            generated_at: "2026-12-01T06:00:00+00:00".into(),
            currency: Some("USD".into()),
            period: Some(Period {
                first_transaction: "2024-11-01".into(),
                last_transaction: "2026-10-31".into(),
                analysis_date: "2026-10-31".into(),
            }),
            totals: segment("all", "All customers", "", "", 5),
            segments,
            messages_skipped: Default::default(),
            changes,
            outcomes: None,
            files: Files {
                out_dir: "out".into(),
                segments: "out/segments.csv".into(),
                recommendations: "out/recommendations.csv".into(),
                summary: "out/summary.json".into(),
                report: "out/report.html".into(),
                messages: None,
                message_files: 0,
            },
            pos: None,
            backtests: Default::default(),
        }
    }

    fn changes() -> Changes {
        Changes {
            previous_run_id: "r1".into(),
            previous_run_at: "2026-11-30T06:00:00+00:00".into(),
            customers_compared: 5,
            moved: 3,
            transitions: vec![
                Transition {
                    from: "vip".into(),
                    to: "at_risk".into(),
                    customers: 2,
                },
                Transition {
                    from: "gone_segment".into(),
                    to: "vip".into(),
                    customers: 1,
                },
            ],
            new_customers: 0,
            customers_gone_since_previous: 0,
            clv: ClvChange {
                previous_total: 10.0,
                current_total: 12.0,
                total_change: 2.0,
                previous_mean: Some(2.0),
                current_mean: Some(2.4),
                mean_change: Some(0.4),
            },
            segments_clv: Vec::new(),
            sentences: Vec::new(),
        }
    }

    #[test]
    fn names_currency_period_labels_and_offers() {
        let html = render(&summary(None));
        for needle in [
            "amounts in USD",
            "Transactions from 2024-11-01 to 2026-10-31 · analysis date 2026-10-31",
            "<th>Revenue (USD)</th>",
            "<td>VIP<span class=\"code\">vip</span></td><td>early access</td>",
            "<td>At risk<span class=\"code\">at_risk</span></td><td>20% off</td>",
            "<td>no offer (no message)</td>",
            "title=\"At risk\">At risk</span>",
            "Run r2 · 2026-12-01 06:00",
            "This is the first run of this workflow with these parameters",
        ] {
            assert!(html.contains(needle), "no {needle:?} in\n{html}");
        }
        let mut unknown = summary(None);
        unknown.currency = None;
        unknown.period = None;
        let html = render(&unknown);
        assert!(html.contains("currency not stated"), "{html}");
        assert!(html.contains("<th>Revenue</th>"), "{html}");
        assert!(!html.contains("Transactions from"), "{html}");
    }

    #[test]
    fn changes_name_the_baseline_and_use_labels() {
        let html = render(&summary(Some(changes())));
        for needle in [
            "Compared with run r1 of 2026-11-30 06:00, the previous run of this workflow with the same parameters: 5 customers in both runs",
            "<p>3 customers changed segment:</p>",
            "<li>2 customers moved from VIP to At risk</li>",
            // A segment this run no longer has: its name humanised.
            "<li>1 customer moved from Gone segment to VIP</li>",
        ] {
            assert!(html.contains(needle), "no {needle:?} in\n{html}");
        }
    }

    #[test]
    fn formats_and_escapes() {
        assert_eq!(money(1234567.891), "1,234,567.89");
        assert_eq!(money(-5.0), "-5.00");
        assert_eq!(money(999.999), "1,000.00");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
