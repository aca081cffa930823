//! The report's measured outcomes: per segment, the last sends of its campaigns as treated
//! against control conversion (CSS bars) with the lift and its interval, the latest final
//! figures next to the model's predicted conversion, and the mean CLV per segment between runs.
//! Everything from the data is escaped.

use std::fmt::Write as _;

use super::attribution::{Group, Range, SendOutcome, Status};
use super::outcomes::{Outcomes, SegmentOutcomes};
use super::overview::label_of;
use super::report::{escape, money, percent};
use super::{Changes, SegmentStats};

/// The section's styles, added to the page's.
pub(crate) const STYLE: &str = "
.sends { display: grid; grid-template-columns: 92px 1fr 130px 190px; gap: 4px 8px;
         align-items: center; font-size: 12px; margin: 8px 0 4px; }
.sends .bars .bar { height: 7px; margin: 1px 0; } .sends .bars .bar.ctl { background: #9aa5b1; }
.ci { position: relative; height: 12px; background: #eef2f7; border-radius: 3px; }
.ci .zero { position: absolute; top: 0; bottom: 0; width: 1px; background: #52606d; }
.ci .span { position: absolute; top: 3px; height: 6px; background: #3e7bfa88; border-radius: 3px; }
.ci .est { position: absolute; top: 1px; width: 2px; height: 10px; background: #1f2933; }
.legend .sw { display: inline-block; width: 10px; height: 8px; border-radius: 2px;
              background: #3e7bfa; margin: 0 4px 0 10px; } .legend .sw.ctl { background: #9aa5b1; }
";

/// `+3.2 pts (95% CI −0.4 to +6.8)`
fn points(r: &Range) -> String {
    let p = |v: f64| format!("{:+.1}", v * 100.0);
    format!(
        "{} pts (95% CI {} to {})",
        p(r.estimate),
        p(r.low),
        p(r.high)
    )
}

fn money_range(r: &Range) -> String {
    let m = |v: f64| {
        if v > 0.0 {
            format!("+{}", money(v))
        } else {
            money(v)
        }
    };
    format!("{} (95% CI {} to {})", m(r.estimate), m(r.low), m(r.high))
}

/// The interval drawn on a track spanning `-scale..scale`.
fn interval_bar(r: &Range, scale: f64) -> String {
    let at = |v: f64| ((v / scale).clamp(-1.0, 1.0) + 1.0) * 50.0;
    format!(
        "<div class=\"ci\" title=\"{}\"><div class=\"zero\" style=\"left:50%\"></div>\
         <div class=\"span\" style=\"left:{:.1}%;width:{:.1}%\"></div>\
         <div class=\"est\" style=\"left:{:.1}%\"></div></div>",
        escape(&points(r)),
        at(r.low),
        (at(r.high) - at(r.low)).max(0.5),
        at(r.estimate),
    )
}

fn group_cell(g: &Group, f: impl Fn(&Group) -> String) -> String {
    format!(
        "{} <span class=\"muted\">(n = {})</span>",
        f(g),
        g.customers
    )
}

/// The segment's final sends together, in one line.
fn pooled_line(p: &super::pooled::Pooled) -> String {
    let rate = |x: u64, n: u64| percent((n > 0).then(|| x as f64 / n as f64));
    let figures = match (&p.conversion_lift, &p.too_few) {
        (Some(r), _) => format!(
            "conversion {} of {} treated vs {} of {} control, lift {}",
            rate(p.treated_converted, p.treated_customers),
            p.treated_customers,
            rate(p.control_converted, p.control_customers),
            p.control_customers,
            points(r)
        ),
        (None, Some(reason)) => reason.clone(),
        (None, None) => "no figures".into(),
    };
    format!(
        "<p>All {} measured sends from {} to {} together (each customer counted once, in the \
         first send that reached them): {}.</p>",
        p.sends,
        escape(&p.first_sent_on),
        escape(&p.last_sent_on),
        escape(&figures)
    )
}

/// The latest final figures of a segment beside its predicted conversion, and all its final
/// sends together.
fn latest(s: &SegmentOutcomes, currency: &dyn Fn(&str) -> String) -> String {
    let mut h = latest_send(s, currency);
    if let Some(p) = &s.pooled {
        h.push_str(&pooled_line(p));
    }
    h
}

/// The latest final figures of a segment beside its predicted conversion.
fn latest_send(s: &SegmentOutcomes, currency: &dyn Fn(&str) -> String) -> String {
    let mut h = String::new();
    let predicted = percent(s.predicted_conversion);
    let Some(o) = &s.latest_measured else {
        let _ = write!(
            h,
            "<p>Predicted conversion (model): {predicted}. No send has been measured over a \
             closed window yet.</p>"
        );
        return h;
    };
    let Some(m) = &o.figures else { return h };
    let _ = write!(
        h,
        "<p>Latest measured send: {} ({}), {} days after it.</p>",
        escape(&o.sent_on),
        escape(&o.campaign),
        m.days_observed
    );
    if let Some(reason) = &m.too_few {
        let _ = write!(
            h,
            "<p>Predicted conversion (model): {predicted}. Measured: {}.</p>",
            escape(reason)
        );
        return h;
    }
    let row = |k: &str, t: String, c: String, lift: String| {
        format!(
            "<tr><td>{}</td><td>{t}</td><td>{c}</td><td>{lift}</td></tr>",
            escape(k)
        )
    };
    let _ = write!(
        h,
        "<table><thead><tr><th>Figure</th><th>Treated</th><th>Control</th><th>Lift</th></tr>\
         </thead><tbody>"
    );
    h.push_str(&row(
        "Predicted conversion (model)",
        predicted,
        String::new(),
        String::new(),
    ));
    h.push_str(&row(
        "Measured conversion",
        group_cell(&m.treated, |g| percent(g.conversion)),
        group_cell(&m.control, |g| percent(g.conversion)),
        m.conversion_lift.as_ref().map_or_else(String::new, points),
    ));
    let opt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), money);
    h.push_str(&row(
        &currency("Revenue per customer"),
        group_cell(&m.treated, |g| opt(g.revenue_per_customer)),
        group_cell(&m.control, |g| opt(g.revenue_per_customer)),
        m.revenue_per_customer_lift
            .as_ref()
            .map_or_else(String::new, money_range),
    ));
    h.push_str(&row(
        &currency("Average order value"),
        format!(
            "{} ({} orders)",
            opt(m.treated.avg_order_value),
            m.treated.orders
        ),
        format!(
            "{} ({} orders)",
            opt(m.control.avg_order_value),
            m.control.orders
        ),
        String::new(),
    ));
    h.push_str("</tbody></table>");
    h
}

/// One send as a chart row.
fn send_row(o: &SendOutcome, max_conversion: f64, scale: f64) -> String {
    let mut h = format!(
        "<span class=\"label\" title=\"{c}\">{d}</span>",
        c = escape(&o.campaign),
        d = escape(&o.sent_on)
    );
    let figures = o.figures.as_ref().filter(|m| m.too_few.is_none());
    match figures {
        Some(m) => {
            let w = |v: Option<f64>| match v {
                Some(v) if max_conversion > 0.0 => v / max_conversion * 100.0,
                _ => 0.0,
            };
            let _ = write!(
                h,
                "<div class=\"bars\"><div class=\"bar\" style=\"width:{:.1}%\"></div>\
                 <div class=\"bar ctl\" style=\"width:{:.1}%\"></div></div>\
                 <span class=\"num\">{} vs {}</span>",
                w(m.treated.conversion),
                w(m.control.conversion),
                percent(m.treated.conversion),
                percent(m.control.conversion),
            );
            let open = if o.status == Status::Open {
                format!(" <span class=\"muted\">{}</span>", escape(&o.note))
            } else {
                String::new()
            };
            match &m.conversion_lift {
                Some(r) => {
                    let _ = write!(
                        h,
                        "<div>{}<span class=\"num\">{}</span>{open}</div>",
                        interval_bar(r, scale),
                        escape(&points(r))
                    );
                }
                None => h.push_str("<span></span>"),
            }
        }
        None => {
            let _ = write!(
                h,
                "<span class=\"muted\" style=\"grid-column: span 3\">{}</span>",
                escape(&o.note)
            );
        }
    }
    h
}

/// The section.
pub(crate) fn section(outcomes: Option<&Outcomes>, currency: &dyn Fn(&str) -> String) -> String {
    let mut h = String::from("<h2>Measured campaign outcomes</h2>");
    let Some(o) = outcomes else {
        h.push_str("<p class=\"muted\">Not measured.</p>");
        return h;
    };
    let _ = write!(
        h,
        "<p class=\"muted\">Each campaign holds out a control group that gets no message and no \
         offer. Purchases dated from the 1st to the {days}th day after a send count for it (the \
         send day itself does not, since transactions carry dates, not times); treated customers \
         are compared with the control group among the customers the campaign would reach \
         (for email: marketing consent and a usable address). Conversion is the share with at \
         least one order; revenue is net of refunds. Intervals: conversion lift by {conv}; \
         revenue per customer by {rev}. A send is measured on the customers it reaches for the \
         first time: who is in a segment changes with what earlier sends made customers do, so \
         customers already reached are no longer a random split. Fewer than {min} customers in \
         either group: no figures. \
         This run's sends count as sent on {sent}.</p>",
        days = o.attribution_days,
        conv = escape(o.conversion_interval),
        rev = escape(o.revenue_interval),
        min = o.min_customers,
        sent = escape(&o.sent_on),
    );
    match (&o.transactions_from, &o.transactions_to) {
        (Some(a), Some(b)) => {
            let _ = write!(
                h,
                "<p class=\"muted\">Transactions from {} to {}.</p>",
                escape(a),
                escape(b)
            );
        }
        _ => h.push_str(
            "<p class=\"muted\">Deploy has no transactions input: sends are recorded but not \
             measured (add the transactions node to deploy's <code>needs</code>).</p>",
        ),
    }
    if o.recorded.is_empty() {
        h.push_str("<p>This run recorded no send with a control group.</p>");
    } else {
        h.push_str("<p>Recorded by this run:</p><ul>");
        for r in &o.recorded {
            let _ = write!(
                h,
                "<li>{} to {}: {} treated, {} in the control group</li>",
                escape(&r.campaign),
                escape(&r.segment),
                r.treated,
                r.control
            );
        }
        h.push_str("</ul>");
    }
    for s in &o.segments {
        let _ = write!(
            h,
            "<div class=\"chart\" style=\"margin-top:12px\"><h3>{}<span class=\"code\">{}</span></h3>",
            escape(&s.label),
            escape(&s.segment)
        );
        h.push_str(&latest(s, currency));
        let shown: Vec<&SendOutcome> = s.sends.iter().collect();
        let max_conversion = shown
            .iter()
            .filter_map(|o| o.figures.as_ref())
            .flat_map(|m| [m.treated.conversion, m.control.conversion])
            .flatten()
            .fold(0.0_f64, f64::max);
        let scale = shown
            .iter()
            .filter_map(|o| o.figures.as_ref()?.conversion_lift)
            .map(|r| r.low.abs().max(r.high.abs()))
            .fold(0.01_f64, f64::max);
        let _ = write!(
            h,
            "<div class=\"legend muted\">Last {} sends: conversion<span class=\"sw\"></span>treated\
             <span class=\"sw ctl\"></span>control; lift with its 95% interval (line: zero)</div>\
             <div class=\"sends\">",
            shown.len()
        );
        for send in shown {
            h.push_str(&send_row(send, max_conversion, scale));
        }
        h.push_str("</div></div>");
    }
    h
}

/// Mean CLV per segment in the previous run and now, for "Changes since the previous run".
pub(crate) fn segment_clv(
    c: &Changes,
    segments: &[SegmentStats],
    currency: &dyn Fn(&str) -> String,
) -> String {
    if c.segments_clv.is_empty() {
        return String::new();
    }
    let opt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), money);
    let mut h = format!(
        "<table style=\"margin-top:12px\"><thead><tr><th>Segment</th><th>Customers before</th>\
         <th>{}</th><th>Customers now</th><th>{}</th><th>Change</th></tr></thead><tbody>",
        escape(&currency("Mean CLV before")),
        escape(&currency("Mean CLV now"))
    );
    for s in &c.segments_clv {
        let (class, change) = match s.mean_change {
            Some(v) if v > 0.0 => ("up", format!("+{}", money(v))),
            Some(v) if v < 0.0 => ("down", money(v)),
            Some(v) => ("", money(v)),
            None => ("", "–".to_string()),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{change}</td></tr>",
            escape(&label_of(segments, &s.segment)),
            s.previous_customers,
            opt(s.previous_mean),
            s.current_customers,
            opt(s.current_mean),
        );
    }
    h.push_str("</tbody></table>");
    h
}

#[cfg(test)]
mod tests {
    use super::super::pooled::Pooled;
    use super::super::{ClvChange, SegmentClvChange};
    use super::*;

    #[test]
    fn the_pooled_sends_in_one_line() {
        let mut p = Pooled {
            sends: 3,
            first_sent_on: "2024-04-01".into(),
            last_sent_on: "2024-04-03".into(),
            treated_customers: 200,
            treated_converted: 50,
            control_customers: 40,
            control_converted: 6,
            conversion_lift: Some(Range {
                estimate: 0.1,
                low: -0.02,
                high: 0.19,
            }),
            too_few: None,
        };
        assert_eq!(
            pooled_line(&p),
            "<p>All 3 measured sends from 2024-04-01 to 2024-04-03 together (each customer \
             counted once, in the first send that reached them): conversion 25.0% of 200 treated \
             vs 15.0% of 40 control, lift +10.0 pts (95% CI -2.0 to +19.0).</p>"
        );
        p.conversion_lift = None;
        p.too_few = Some("too few customers (200 treated, 20 control; need 30)".into());
        assert!(pooled_line(&p).ends_with(
            "together (each customer counted once, in the first send that reached them): too few \
             customers (200 treated, 20 control; need 30).</p>"
        ));
    }

    #[test]
    fn mean_clv_per_segment_is_shown_escaped_with_its_change() {
        let changes = Changes {
            previous_run_id: "r1".into(),
            previous_run_at: "2026-11-30T06:00:00+00:00".into(),
            customers_compared: 3,
            moved: 0,
            transitions: Vec::new(),
            new_customers: 0,
            customers_gone_since_previous: 0,
            clv: ClvChange {
                previous_total: 0.0,
                current_total: 0.0,
                total_change: 0.0,
                previous_mean: None,
                current_mean: None,
                mean_change: None,
            },
            segments_clv: vec![
                SegmentClvChange {
                    segment: "<b>vip</b>".into(),
                    previous_customers: 2,
                    previous_mean: Some(200.0),
                    current_customers: 1,
                    current_mean: Some(150.0),
                    mean_change: Some(-50.0),
                },
                SegmentClvChange {
                    segment: "new".into(),
                    previous_customers: 0,
                    previous_mean: None,
                    current_customers: 4,
                    current_mean: Some(20.0),
                    mean_change: None,
                },
            ],
            sentences: Vec::new(),
        };
        let html = segment_clv(&changes, &[], &|k: &str| format!("{k} (USD)"));
        assert!(html.contains("<th>Mean CLV before (USD)</th>"), "{html}");
        assert!(
            html.contains(
                "<td>&lt;b&gt;vip&lt;/b&gt;</td><td>2</td><td>200.00</td><td>1</td><td>150.00</td>\
                 <td class=\"down\">-50.00</td>"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "<td>New</td><td>0</td><td>–</td><td>4</td><td>20.00</td><td class=\"\">–</td>"
            ),
            "{html}"
        );
        assert!(!html.contains("<b>"));
    }
}
