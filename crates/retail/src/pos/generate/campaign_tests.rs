//! Simulated campaigns: the natural purchases do not change, only treated customers get extra
//! orders, and only inside the window.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use flow_analytics::holdout::is_control;

use super::super::csv_mapped::{CsvOptions, parse_with};
use super::super::model::LineItem;
use super::*;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn base() -> GenerateOptions {
    GenerateOptions {
        customers: 2000,
        products: 150,
        days: 365,
        seed: 11,
        ..GenerateOptions::default()
    }
}

fn campaigns() -> Vec<SimulatedCampaign> {
    vec![
        SimulatedCampaign {
            key: "campaign_vip".into(),
            date: date("2023-06-30"),
            holdout_share: 0.2,
            window_days: 14,
            uplift: 0.3,
        },
        SimulatedCampaign {
            key: "campaign_new".into(),
            date: date("2023-11-15"),
            holdout_share: 0.5,
            window_days: 30,
            uplift: 0.5,
        },
    ]
}

fn items(text: &str) -> Vec<LineItem> {
    let mut items = Vec::new();
    parse_with(text.as_bytes(), &CsvOptions::default(), &mut |i, _| {
        items.push(i.clone())
    })
    .unwrap();
    items
}

#[test]
fn natural_purchases_are_the_same_with_and_without_campaigns() {
    let without = generate(&base()).unwrap();
    let with = generate(&GenerateOptions {
        campaigns: campaigns(),
        ..base()
    })
    .unwrap();
    // Every line but the extra orders' is byte-identical, in the same order.
    let natural: Vec<&str> = with
        .transactions
        .lines()
        .filter(|l| !l.starts_with("OX"))
        .collect();
    assert_eq!(natural, without.transactions.lines().collect::<Vec<_>>());
    assert_eq!(with.catalog, without.catalog);
    assert_eq!(with.customers, without.customers);
    let extra_lines = with.transactions.lines().count() - without.transactions.lines().count();
    assert_eq!(with.stats.lines - without.stats.lines, extra_lines as u64);
    assert_eq!(
        with.stats.orders - without.stats.orders,
        with.stats.campaign_orders
    );
    assert!(with.stats.campaign_orders > 100, "{:?}", with.stats);
    assert_eq!(without.stats.campaign_orders, 0);
    assert_eq!(without.stats.campaign_treated, 0);
    // An uplift of 0 changes nothing at all.
    let none = generate(&GenerateOptions {
        campaigns: campaigns()
            .into_iter()
            .map(|c| SimulatedCampaign { uplift: 0.0, ..c })
            .collect(),
        ..base()
    })
    .unwrap();
    assert_eq!(none.transactions, without.transactions);
    assert_eq!(none.stats.campaign_orders, 0);
    assert_eq!(none.stats.campaign_treated, with.stats.campaign_treated);
}

#[test]
fn only_treated_customers_get_extra_orders_and_only_inside_the_window() {
    let opts = GenerateOptions {
        campaigns: campaigns(),
        ..base()
    };
    let data = generate(&opts).unwrap();
    let all = items(&data.transactions);
    // Time order holds with the extra orders in it.
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let mut acquired: HashMap<&str, NaiveDate> = HashMap::new();
    for i in all.iter().filter(|i| !i.order_id.starts_with("OX")) {
        acquired
            .entry(i.customer_id.as_str())
            .or_insert(i.timestamp.date());
    }
    let mut extra: HashMap<usize, HashSet<&str>> = HashMap::new();
    for i in all.iter().filter(|i| i.order_id.starts_with("OX")) {
        let k: usize = i.order_id[2..i.order_id.find('-').unwrap()]
            .parse()
            .unwrap();
        let c = &opts.campaigns[k - 1];
        let id = i.customer_id.as_str();
        assert!(!is_control(&c.key, id, c.holdout_share), "{id} is control");
        assert!(acquired[id] <= c.date, "{id} acquired after the send");
        let day = i.timestamp.date();
        let last = c.date + chrono::Days::new(u64::from(c.window_days));
        assert!(
            day > c.date && day <= last,
            "{id}: {day} outside the window"
        );
        assert!(i.quantity > 0.0);
        extra.entry(k).or_default().insert(id);
    }
    // The counts: every customer acquired by the send date is treated or control; about
    // `uplift` of the treated make an extra order, one at most per campaign.
    let mut treated_total = 0;
    let mut control_total = 0;
    for (k, c) in opts.campaigns.iter().enumerate() {
        let exposed: Vec<&str> = acquired
            .iter()
            .filter(|(_, d)| **d <= c.date)
            .map(|(id, _)| *id)
            .collect();
        let control = exposed
            .iter()
            .filter(|id| is_control(&c.key, id, c.holdout_share))
            .count();
        let treated = exposed.len() - control;
        treated_total += treated;
        control_total += control;
        let got = extra.get(&(k + 1)).map_or(0, HashSet::len) as f64;
        let mean = c.uplift * treated as f64;
        let sd = (mean * (1.0 - c.uplift)).sqrt();
        assert!((got - mean).abs() < 5.0 * sd, "{}: {got} vs {mean}", c.key);
    }
    assert_eq!(data.stats.campaign_treated, treated_total as u64);
    assert_eq!(data.stats.campaign_control, control_total as u64);
    let extra_orders: HashSet<&str> = all
        .iter()
        .filter(|i| i.order_id.starts_with("OX"))
        .map(|i| i.order_id.as_str())
        .collect();
    assert_eq!(extra_orders.len() as u64, data.stats.campaign_orders);
}

#[test]
fn the_true_effect_is_measurable_exactly() {
    // Treated conversion in the window with the campaign minus the same without it: the
    // share of treated customers whose only window purchase is the extra order.
    let c = SimulatedCampaign {
        key: "campaign_vip".into(),
        date: date("2023-09-01"),
        holdout_share: 0.1,
        window_days: 14,
        uplift: 0.2,
    };
    let without = items(&generate(&base()).unwrap().transactions);
    let with = items(
        &generate(&GenerateOptions {
            campaigns: vec![c.clone()],
            ..base()
        })
        .unwrap()
        .transactions,
    );
    let last = c.date + chrono::Days::new(14);
    let converted = |items: &[LineItem]| -> HashSet<String> {
        items
            .iter()
            .filter(|i| i.timestamp.date() > c.date && i.timestamp.date() <= last)
            .map(|i| i.customer_id.clone())
            .collect()
    };
    let (before, after) = (converted(&without), converted(&with));
    let acquired: HashSet<&str> = without
        .iter()
        .filter(|i| i.timestamp.date() <= c.date)
        .map(|i| i.customer_id.as_str())
        .collect();
    let treated: Vec<&str> = acquired
        .iter()
        .copied()
        .filter(|id| !is_control(&c.key, id, c.holdout_share))
        .collect();
    let rate = |set: &HashSet<String>, who: &[&str]| {
        who.iter().filter(|id| set.contains(**id)).count() as f64 / who.len() as f64
    };
    let effect = rate(&after, &treated) - rate(&before, &treated);
    let base_rate = rate(&before, &treated);
    // Expected: uplift x (1 - the natural conversion), within binomial noise.
    let expected = c.uplift * (1.0 - base_rate);
    let sd = (expected * (1.0 - expected) / treated.len() as f64).sqrt();
    assert!(
        (effect - expected).abs() < 5.0 * sd,
        "{effect} vs {expected} on {} treated",
        treated.len()
    );
    // Control customers convert exactly as without the campaign.
    let control: Vec<&str> = acquired
        .iter()
        .copied()
        .filter(|id| is_control(&c.key, id, c.holdout_share))
        .collect();
    assert!(!control.is_empty());
    assert_eq!(rate(&after, &control), rate(&before, &control));
}

#[test]
fn campaigns_parse_from_text_with_clear_errors() {
    let c: SimulatedCampaign = "campaign_vip:2026-09-01:0.05".parse().unwrap();
    assert_eq!(
        c,
        SimulatedCampaign {
            key: "campaign_vip".into(),
            date: date("2026-09-01"),
            holdout_share: 0.1,
            window_days: 14,
            uplift: 0.05,
        }
    );
    let c: SimulatedCampaign = "x:2026-01-31:1:0.25:30".parse().unwrap();
    assert_eq!((c.uplift, c.holdout_share, c.window_days), (1.0, 0.25, 30));
    for (text, needle) in [
        ("campaign_vip", "KEY:DATE:UPLIFT"),
        ("a:2026-09-01:0.1:0.1:14:9", "KEY:DATE:UPLIFT"),
        (":2026-09-01:0.1", "needs a key"),
        ("a:2026-02-30:0.1", "bad campaign date"),
        ("a:2026-09-01:lots", "bad campaign uplift"),
        ("a:2026-09-01:1.5", "probability 0 to 1"),
        ("a:2026-09-01:0.1:-0.1", "holdout share must be 0 to 1"),
        ("a:2026-09-01:0.1:0.1:0", "window must be 1 to 3660"),
        ("a:2026-09-01:0.1:0.1:two", "bad campaign window"),
        ("a:2026-09-01:NaN", "bad campaign uplift"),
    ] {
        let err = text.parse::<SimulatedCampaign>().unwrap_err();
        assert!(err.contains(needle), "{text}: {err}");
    }
    // Options carrying a bad campaign are refused, not panicked on.
    let opts = GenerateOptions {
        campaigns: vec![SimulatedCampaign {
            uplift: 2.0,
            ..campaigns()[0].clone()
        }],
        ..base()
    };
    assert!(generate(&opts).is_err());
}
