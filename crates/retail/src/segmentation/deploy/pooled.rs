//! Every measured send of a segment together. Each send is measured on the customers it reached
//! for the first time, so the sends' customers are disjoint, and each send's split into treated
//! and control is random: with the same holdout share they add up to one randomised comparison,
//! large enough for figures where the daily sends after the first are each too small.

use serde::Serialize;

use super::attribution::{MIN_CUSTOMERS, Range, SendOutcome, Status};
use flow_analytics::lift::{Z_95, newcombe_difference};

/// The pooled conversion of a segment's measured sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Pooled {
    /// How many sends were pooled (those with the latest measured send's holdout share).
    pub(crate) sends: usize,
    pub(crate) first_sent_on: String,
    pub(crate) last_sent_on: String,
    pub(crate) treated_customers: u64,
    pub(crate) treated_converted: u64,
    pub(crate) control_customers: u64,
    pub(crate) control_converted: u64,
    /// Treated minus control conversion (Newcombe's hybrid score interval); `None` when
    /// either group has too few customers.
    pub(crate) conversion_lift: Option<Range>,
    pub(crate) too_few: Option<String>,
}

/// The pooled figures of `sends` (one segment's, any order), when two or more are final. Only
/// sends with the holdout share of the latest one are pooled: groups split in other proportions
/// would weigh the sends differently in the two groups.
pub(crate) fn pool(sends: &[SendOutcome]) -> Option<Pooled> {
    let mut done: Vec<&SendOutcome> = sends
        .iter()
        .filter(|s| s.status == Status::Measured && s.figures.is_some())
        .collect();
    done.sort_by(|a, b| a.sent_on.cmp(&b.sent_on));
    let share = done.last()?.holdout_share;
    done.retain(|s| s.holdout_share == share);
    if done.len() < 2 {
        return None;
    }
    let (mut tn, mut tx, mut cn, mut cx) = (0, 0, 0, 0);
    for s in &done {
        let m = s.figures.as_ref()?;
        tn += m.treated.customers;
        tx += m.treated.converted;
        cn += m.control.customers;
        cx += m.control.converted;
    }
    let enough = tn >= MIN_CUSTOMERS as u64 && cn >= MIN_CUSTOMERS as u64;
    let conversion_lift = if enough {
        newcombe_difference(tx, tn, cx, cn, Z_95)
            .ok()
            .map(Range::from)
    } else {
        None
    };
    Some(Pooled {
        sends: done.len(),
        first_sent_on: done[0].sent_on.clone(),
        last_sent_on: done[done.len() - 1].sent_on.clone(),
        treated_customers: tn,
        treated_converted: tx,
        control_customers: cn,
        control_converted: cx,
        too_few: conversion_lift.is_none().then(|| {
            format!("too few customers ({tn} treated, {cn} control; need {MIN_CUSTOMERS})")
        }),
        conversion_lift,
    })
}

#[cfg(test)]
mod tests {
    use super::super::attribution::{Group, Measured};
    use super::*;

    fn send(day: &str, share: f64, treated: (u64, u64), control: (u64, u64)) -> SendOutcome {
        let group = |(customers, converted): (u64, u64)| Group {
            customers,
            converted,
            ..Default::default()
        };
        SendOutcome {
            run_id: format!("r{day}"),
            sent_on: day.into(),
            campaign: "campaign_vip".into(),
            holdout_key: "campaign_vip".into(),
            holdout_share: Some(share),
            segment: "vip".into(),
            window_days: 14,
            window_end: day.into(),
            status: Status::Measured,
            treated_customers: treated.0,
            control_customers: control.0,
            reached_before: 0,
            figures: Some(Measured {
                treated: group(treated),
                control: group(control),
                ..Default::default()
            }),
            note: String::new(),
        }
    }

    #[test]
    fn sends_with_the_latest_share_add_up_to_one_comparison() {
        let sends = [
            send("2024-04-01", 0.1, (200, 60), (25, 5)),
            send("2024-04-02", 0.1, (20, 6), (3, 1)),
            send("2024-04-03", 0.1, (25, 10), (4, 0)),
            // An earlier share is left out.
            send("2024-03-01", 0.2, (100, 90), (30, 1)),
        ];
        let p = pool(&sends).expect("pooled");
        assert_eq!(p.sends, 3);
        assert_eq!(
            (p.first_sent_on.as_str(), p.last_sent_on.as_str()),
            ("2024-04-01", "2024-04-03")
        );
        assert_eq!(
            (
                p.treated_customers,
                p.treated_converted,
                p.control_customers,
                p.control_converted
            ),
            (245, 76, 32, 6)
        );
        let lift = p.conversion_lift.expect("enough customers");
        let expected = newcombe_difference(76, 245, 6, 32, Z_95).unwrap();
        assert_eq!(
            (lift.estimate, lift.low, lift.high),
            (expected.estimate, expected.low, expected.high)
        );
        assert_eq!(p.too_few, None);
    }

    #[test]
    fn too_few_or_a_single_send_give_no_pooled_figures() {
        assert_eq!(pool(&[send("2024-04-01", 0.1, (200, 60), (25, 5))]), None);
        let mut open = send("2024-04-02", 0.1, (20, 6), (3, 1));
        open.status = Status::Open;
        assert_eq!(
            pool(&[send("2024-04-01", 0.1, (200, 60), (25, 5)), open]),
            None
        );
        let p = pool(&[
            send("2024-04-01", 0.1, (200, 60), (20, 5)),
            send("2024-04-02", 0.1, (20, 6), (3, 1)),
        ])
        .expect("pooled");
        assert_eq!(p.conversion_lift, None);
        assert_eq!(
            p.too_few.as_deref(),
            Some("too few customers (220 treated, 23 control; need 30)")
        );
    }
}
