//! `report.html`: one self-contained page (inline CSS, no scripts, no external assets) with the
//! key metrics per segment, CSS bar charts, and the changes since the previous run.

use std::fmt::Write as _;

use super::{SegmentStats, Summary};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn percent(v: Option<f64>) -> String {
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
";

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
            seg = escape(&s.segment),
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
         <title>Customer segments – {date}</title><style>{STYLE}</style></head><body><main>\
         <h1>Customer segments and campaigns</h1>\
         <div class=\"muted\">Run {run} · {date}</div>",
        run = escape(&summary.run_id),
        date = escape(&summary.generated_at),
    );

    // Key figures.
    h.push_str("<div class=\"cards\">");
    let cards = [
        ("Customers", t.customers.to_string()),
        ("Revenue", money(t.revenue)),
        ("Average order value", opt_money(t.avg_order_value)),
        ("Mean CLV", opt_money(t.mean_clv)),
        ("Predicted conversion", percent(t.predicted_conversion)),
        ("Messages to send", t.messages_sent.to_string()),
        ("Recommendations", t.recommendations.to_string()),
    ];
    for (k, v) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
            escape(&v),
            escape(k)
        );
    }
    h.push_str("</div>");

    // Per segment.
    h.push_str(
        "<h2>Segments</h2><table><thead><tr><th>Segment</th><th>Customers</th><th>Share</th>\
         <th>Revenue</th><th>Avg order value</th><th>Mean CLV</th><th>Predicted conversion</th>\
         <th>Messages</th><th>Recommendations</th></tr></thead><tbody>",
    );
    let share = |n: u64| {
        if t.customers > 0 {
            Some(n as f64 / t.customers as f64)
        } else {
            None
        }
    };
    let row = |s: &SegmentStats, tag: &str| {
        format!(
            "<tr><{tag}>{}</{tag}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.segment),
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
        h.push_str(&row(s, "td"));
    }
    h.push_str("</tbody><tfoot>");
    let all = SegmentStats {
        segment: "All customers".to_string(),
        ..t.clone()
    };
    h.push_str(&row(&all, "td"));
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
    h.push_str(&chart("Revenue", segs, |s| Some(s.revenue), money));
    h.push_str(&chart("Mean CLV", segs, |s| s.mean_clv, money));
    h.push_str(&chart(
        "Predicted conversion",
        segs,
        |s| s.predicted_conversion,
        |v| percent(Some(v)),
    ));
    h.push_str(&chart(
        "Average order value",
        segs,
        |s| s.avg_order_value,
        money,
    ));
    h.push_str("</div>");

    // Changes.
    h.push_str("<h2>Changes since the previous run</h2>");
    match &summary.changes {
        None => {
            h.push_str("<p class=\"muted\">This is the first run: nothing to compare with yet.</p>")
        }
        Some(c) => {
            let _ = write!(
                h,
                "<p class=\"muted\">Compared with run {} ({}): {} customers in both runs, {} new, {} no longer present.</p>",
                escape(&c.previous_run_id),
                escape(&c.previous_run_at),
                c.customers_compared,
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
                "<table><thead><tr><th>CLV</th><th>Previous</th><th>Now</th><th>Change</th></tr></thead><tbody>\
                 <tr><td>Total</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\
                 <tr><td>Mean per customer</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr></tbody></table>",
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
            if c.transitions.is_empty() {
                h.push_str("<p>No customer changed segment.</p>");
            } else {
                let _ = write!(
                    h,
                    "<p>{} customer{} changed segment:</p><ul>",
                    c.moved,
                    if c.moved == 1 { "" } else { "s" }
                );
                for s in &c.sentences {
                    let _ = write!(h, "<li>{}</li>", escape(s));
                }
                h.push_str("</ul>");
            }
        }
    }

    // Skipped messages and files.
    if !summary.messages_skipped.is_empty() {
        h.push_str("<h2>Customers without a message</h2><ul>");
        for (reason, n) in &summary.messages_skipped {
            let _ = write!(h, "<li>{}: {n}</li>", escape(reason));
        }
        h.push_str("</ul>");
    }
    let f = &summary.files;
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
    use super::*;

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
