//! Attribution on hand-built transactions: the window's boundary days, refunds, empty and
//! small groups.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, StringArray};

use super::*;

/// (customer, order, date, amount)
fn transactions(rows: &[(&str, &str, &str, f64)]) -> RecordBatch {
    let text = |k: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(
            |r| match k {
                0 => r.0,
                1 => r.1,
                _ => r.2,
            },
        )))
    };
    RecordBatch::try_from_iter(vec![
        ("customer_id", text(0)),
        ("order_id", text(1)),
        ("date", text(2)),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn send(treated: &[&str], control: &[&str]) -> SendRecord {
    SendRecord {
        run_id: "r1".into(),
        sent_on: "2024-04-10".into(),
        campaign: "campaign_vip".into(),
        holdout_key: "campaign_vip".into(),
        holdout_share: Some(0.1),
        segment: "vip".into(),
        window_days: 14,
        treated_customers: treated.len() as u64,
        control_customers: control.len() as u64,
        treated: treated.iter().map(|s| s.to_string()).collect(),
        control: control.iter().map(|s| s.to_string()).collect(),
        measured: None,
        reached_before: 0,
    }
}

fn purchases(tx: &RecordBatch, s: &SendRecord) -> Purchases {
    Purchases::read(tx, |_| {
        s.treated.iter().chain(&s.control).map(String::as_str)
    })
    .unwrap()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

#[test]
fn only_purchases_after_the_send_day_and_up_to_the_window_end_count() {
    // Sent 2024-04-10 with a 14-day window: 2024-04-11 to 2024-04-24.
    let tx = transactions(&[
        ("A", "o1", "2024-04-09", 10.0), // before the send
        ("A", "o2", "2024-04-10", 20.0), // the send day: excluded
        ("A", "o3", "2024-04-11", 30.0), // first day of the window
        ("A", "o4", "2024-04-24", 40.0), // last day
        ("A", "o5", "2024-04-25", 50.0), // the day after
        ("B", "o6", "2024-04-10 23:59:00", 60.0),
        ("C", "o7", "2024-04-25", 70.0),
        ("Z", "o8", "2024-03-01", 1.0), // another customer: the data starts early
    ]);
    let s = send(&["A", "B", "C"], &[]);
    let p = purchases(&tx, &s);
    let first = parse_iso_day("2024-04-11").unwrap();
    let last = parse_iso_day("2024-04-24").unwrap();
    assert_eq!(
        p.outcome("A", first, last),
        Outcome {
            orders: 2,
            revenue: 70.0
        }
    );
    assert_eq!(p.outcome("B", first, last), Outcome::default());
    assert_eq!(p.outcome("C", first, last), Outcome::default());
    assert_eq!(p.outcome("nobody", first, last), Outcome::default());

    // The same through `measure`: the data ends after the window, so it is final.
    let out = measure(&s, Some(&p));
    assert_eq!(out.status, Status::Measured);
    assert_eq!(out.window_end, "2024-04-24");
    let m = out.figures.unwrap();
    assert_eq!(m.days_observed, 14);
    assert_eq!(m.treated.customers, 3);
    assert_eq!(
        m.too_few.as_deref(),
        Some("too few customers (3 treated, 0 control; need 30)")
    );
    assert_eq!(m.treated.conversion, None, "no number when too few");
    assert!(m.conversion_lift.is_none());
}

#[test]
fn refunds_subtract_and_a_refund_alone_is_no_order() {
    let tx = transactions(&[
        ("A", "o1", "2024-04-12", 100.0),
        ("A", "o1", "2024-04-12", -30.0), // a returned line of the same order
        ("B", "o0", "2024-04-12", -25.0), // refund of an order bought before the send
        ("C", "o2", "2024-04-13", 40.0),
        ("C", "o2", "2024-04-14", -40.0), // fully refunded
        ("Z", "x", "2024-04-01", 1.0),
    ]);
    let s = send(&["A", "B", "C"], &[]);
    let p = purchases(&tx, &s);
    let (first, last) = (
        parse_iso_day("2024-04-11").unwrap(),
        parse_iso_day("2024-04-24").unwrap(),
    );
    assert_eq!(
        p.outcome("A", first, last),
        Outcome {
            orders: 1,
            revenue: 70.0
        }
    );
    assert_eq!(
        p.outcome("B", first, last),
        Outcome {
            orders: 0,
            revenue: -25.0
        }
    );
    assert_eq!(
        p.outcome("C", first, last),
        Outcome {
            orders: 0,
            revenue: 0.0
        }
    );
}

#[test]
fn an_open_window_says_how_many_days_were_observed() {
    let (treated, control) = (ids("T", 40), ids("K", 35));
    let mut rows: Vec<(String, String, String, f64)> =
        vec![("Z".into(), "z".into(), "2024-01-01".into(), 5.0)];
    for (i, id) in treated.iter().enumerate().take(10) {
        rows.push((id.clone(), format!("t{i}"), "2024-04-12".into(), 20.0));
    }
    rows.push((control[0].clone(), "k0".into(), "2024-04-15".into(), 20.0));
    let borrowed: Vec<(&str, &str, &str, f64)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3))
        .collect();
    let tx = transactions(&borrowed);
    let t: Vec<&str> = treated.iter().map(String::as_str).collect();
    let c: Vec<&str> = control.iter().map(String::as_str).collect();
    let s = send(&t, &c);
    let p = purchases(&tx, &s);
    let out = measure(&s, Some(&p));
    // The data ends on 2024-04-15: 5 of the 14 days.
    assert_eq!(out.status, Status::Open);
    assert_eq!(out.note, "window open: 5 of 14 days observed");
    let m = out.figures.unwrap();
    assert_eq!(m.days_observed, 5);
    assert_eq!(m.treated.conversion, Some(0.25));
    assert_eq!(m.control.conversion, Some(1.0 / 35.0));
    let lift = m.conversion_lift.unwrap();
    assert!((lift.estimate - (0.25 - 1.0 / 35.0)).abs() < 1e-12);
    assert!(lift.low < lift.estimate && lift.estimate < lift.high);

    // Data that ends on the send day: nothing observed yet.
    let early = transactions(&[
        ("Z", "z", "2024-01-01", 5.0),
        ("T000", "a", "2024-04-10", 9.0),
    ]);
    let out = measure(&s, Some(&purchases(&early, &s)));
    assert_eq!(out.status, Status::NotStarted);
    assert!(out.figures.is_none());
    assert_eq!(
        out.note,
        "window opens 2024-04-11: the transactions end on 2024-04-10"
    );

    // Data that starts inside the window cannot say who bought before it started.
    let late = transactions(&[
        ("T000", "a", "2024-04-13", 9.0),
        ("Z", "z", "2024-05-30", 1.0),
    ]);
    let out = measure(&s, Some(&purchases(&late, &s)));
    assert_eq!(out.status, Status::IncompleteData);
    assert!(out.figures.is_none());

    assert_eq!(measure(&s, None).status, Status::NoTransactions);
}

#[test]
fn empty_groups_and_the_minimum_are_reported_not_computed() {
    let tx = transactions(&[("Z", "z", "2024-01-01", 5.0), ("Z", "y", "2024-06-01", 5.0)]);
    let (treated, control) = (ids("T", 30), ids("K", 29));
    let t: Vec<&str> = treated.iter().map(String::as_str).collect();
    let c: Vec<&str> = control.iter().map(String::as_str).collect();
    for (s, note) in [
        (
            send(&t, &c),
            "too few customers (30 treated, 29 control; need 30)",
        ),
        (
            send(&[], &c),
            "too few customers (0 treated, 29 control; need 30)",
        ),
        (
            send(&[], &[]),
            "too few customers (0 treated, 0 control; need 30)",
        ),
    ] {
        let out = measure(&s, Some(&purchases(&tx, &s)));
        assert_eq!(out.status, Status::Measured);
        assert_eq!(out.note, note);
        let m = out.figures.unwrap();
        assert!(m.conversion_lift.is_none() && m.revenue_per_customer_lift.is_none());
        assert!(m.treated.conversion.is_none() && m.control.revenue_per_customer.is_none());
    }
    // 30 in each: figures.
    let control = ids("K", 30);
    let c: Vec<&str> = control.iter().map(String::as_str).collect();
    let s = send(&t, &c);
    let out = measure(&s, Some(&purchases(&tx, &s)));
    let m = out.figures.unwrap();
    assert_eq!(m.too_few, None);
    assert_eq!(m.conversion_lift.unwrap().estimate, 0.0);
    assert_eq!(out.note, "measured over the 14 days after the send");
}

#[test]
fn a_final_send_keeps_its_figures_without_transactions() {
    let mut s = send(&[], &[]);
    s.measured = Some(Measured {
        days_observed: 14,
        ..Measured::default()
    });
    let out = measure(&s, None);
    assert_eq!(out.status, Status::Measured);
    assert_eq!(out.figures.unwrap().days_observed, 14);
}

#[test]
fn only_the_customers_of_sends_the_data_reaches_are_read_and_every_outcome_stays_the_same() {
    // 40 treated and 40 control customers per send, buying on days around the data's span
    // (2024-04-01 to 2024-04-30); sends dated before, inside, on the edges of and after it.
    let treated = ids("T", 40);
    let control = ids("C", 40);
    let mut rows = Vec::new();
    for (i, id) in treated.iter().chain(&control).enumerate() {
        for d in [1, 5 + i % 7, 12, 19 + i % 5, 30] {
            let order = format!("o{i}-{d}");
            let amount = if i % 9 == 0 { -5.0 } else { 10.0 + i as f64 };
            rows.push((id.clone(), order, format!("2024-04-{d:02}"), amount));
        }
    }
    let rows: Vec<(&str, &str, &str, f64)> = rows
        .iter()
        .map(|(c, o, d, a)| (c.as_str(), o.as_str(), d.as_str(), *a))
        .collect();
    let tx = transactions(&rows);
    let every: Vec<&str> = treated.iter().chain(&control).map(String::as_str).collect();
    let all = Purchases::read(&tx, |_| every.iter().copied()).unwrap();
    let t: Vec<&str> = treated.iter().map(String::as_str).collect();
    let c: Vec<&str> = control.iter().map(String::as_str).collect();
    // (sent on, whether the data reaches its window)
    let cases = [
        ("2024-03-20", false), // the window opens before the data starts
        ("2024-03-31", true),  // opens on the data's first day
        ("2024-04-10", true),  // final: the data covers the whole window
        ("2024-04-25", true),  // open: the data ends inside the window
        ("2024-04-29", true),  // opens on the data's last day
        ("2024-04-30", false), // opens the day after the data ends
        ("2024-06-01", false),
    ];
    for (sent_on, reached) in cases {
        let mut s = send(&t, &c);
        s.sent_on = sent_on.into();
        assert_eq!(reads_purchases(&s, all.span()), reached, "{sent_on}");
        let read = Purchases::read(&tx, |span| {
            let wanted = if reads_purchases(&s, span) {
                every.clone()
            } else {
                Vec::new()
            };
            wanted.into_iter()
        })
        .unwrap();
        assert_eq!(read.span(), all.span());
        assert_eq!(
            read.rows.iter().any(|r| !r.is_empty()),
            reached,
            "{sent_on}"
        );
        let (a, b) = (measure(&s, Some(&all)), measure(&s, Some(&read)));
        assert_eq!(
            (&a.status, &a.figures, &a.note),
            (&b.status, &b.figures, &b.note)
        );
        if reached {
            assert!(b.figures.is_some(), "{sent_on}");
        }
        // A send measured before keeps its figures and needs no rows.
        s.measured = a.figures.clone().or_else(|| Some(Measured::default()));
        assert!(!reads_purchases(&s, all.span()), "{sent_on}");
    }
}
