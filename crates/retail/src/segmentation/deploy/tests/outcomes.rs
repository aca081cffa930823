//! Control groups through deploy: the ledger of sends (recorded once per run, kept per workflow
//! and node whatever the parameters), no message to a control customer, and a known effect
//! recovered from hand-built transactions.

use super::*;
use flow_analytics::holdout::is_control;
use flow_analytics::rng::Rng;

const KEY: &str = "campaign_vip";
const SHARE: f64 = 0.2;

/// A campaign table as `segmentation.campaign` builds it: `n` vip customers `V0000`..,
/// every fifth without consent (not compared), the control group by the shared hash.
pub(super) fn holdout_campaign(n: usize) -> RecordBatch {
    let ids: Vec<String> = (0..n).map(|i| format!("V{i:04}")).collect();
    let consent: Vec<bool> = (0..n).map(|i| i % 5 != 0).collect();
    let control: Vec<bool> = ids.iter().map(|id| is_control(KEY, id, SHARE)).collect();
    let send: Vec<bool> = (0..n).map(|i| consent[i] && !control[i]).collect();
    let text = |v: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let each = |f: &dyn Fn(usize) -> Option<String>| text((0..n).map(f).collect());
    RecordBatch::try_from_iter(vec![
        ("customer_id", each(&|i| Some(ids[i].clone()))),
        ("segment", each(&|_| Some("vip".into()))),
        ("email", each(&|i| Some(format!("{}@example.com", ids[i])))),
        ("customer_name", each(&|i| Some(format!("Customer {i}")))),
        (
            "accepts_marketing",
            Arc::new(BooleanArray::from(consent.clone())) as ArrayRef,
        ),
        (
            "clv",
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ),
        (
            "p_purchase",
            Arc::new(Float64Array::from_iter_values((0..n).map(|_| 0.3))),
        ),
        (
            "recommended_action",
            each(&|i| {
                Some(if control[i] {
                    "Control group: no campaign offer".into()
                } else {
                    "VIP: offer early access".into()
                })
            }),
        ),
        (
            "offer",
            each(&|i| {
                Some(if control[i] {
                    "no offer (control group)".into()
                } else {
                    "early access".into()
                })
            }),
        ),
        (
            "group",
            each(&|i| Some(if control[i] { "control" } else { "treated" }.into())),
        ),
        ("eligible", Arc::new(BooleanArray::from(consent.clone()))),
        ("channel", each(&|_| Some("email".into()))),
        ("send", Arc::new(BooleanArray::from(send.clone()))),
        (
            "skip_reason",
            each(&|i| match (consent[i], control[i]) {
                (false, _) => Some("no marketing consent".into()),
                (true, true) => Some("control group".into()),
                (true, false) => None,
            }),
        ),
        (
            "subject",
            each(&|i| send[i].then(|| "Early access".to_string())),
        ),
        (
            "body_html",
            each(&|i| send[i].then(|| "<p>Hello</p>".to_string())),
        ),
        ("sender", each(&|_| Some("shop@example.com".into()))),
    ])
    .unwrap()
}

/// (customer, order, date, amount)
type Tx = (String, String, String, f64);

fn tx_table(rows: &[Tx]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))) as ArrayRef,
        ),
        (
            "order_id",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        ),
        (
            "date",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.2))),
        ),
        (
            "amount",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
    ])
    .unwrap()
}

fn deploy_inputs(camp: RecordBatch, tx: Option<RecordBatch>) -> Inputs {
    let mut meta = serde_json::Map::new();
    meta.insert("holdout_key".into(), json!(KEY));
    meta.insert("holdout_share".into(), json!(SHARE));
    let mut list = vec![Input {
        from: "campaign_vip".into(),
        case: None,
        role: Some("campaign".into()),
        data: Data::Table(camp),
        meta,
    }];
    if let Some(tx) = tx {
        list.push(Input {
            from: "transactions".into(),
            case: None,
            role: Some("transactions".into()),
            data: Data::Table(tx),
            meta: Default::default(),
        });
    }
    Inputs(list)
}

fn summary_of(dir: &Path) -> Json {
    serde_json::from_str(&read(&dir.join("summary.json"))).unwrap()
}

fn vip_sends(summary: &Json) -> Vec<Json> {
    summary["outcomes"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "vip")
        .map(|s| s["sends"].as_array().unwrap().clone())
        .unwrap_or_default()
}

#[test]
fn control_customers_get_no_message_and_a_run_records_its_send_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let node = configure(&format!(
        "out_dir: {}\nsent_on: 2024-04-01\n",
        out.display()
    ))
    .unwrap();
    let stores = Stores::new();
    let camp = holdout_campaign(300);
    run(&node, stores.ctx("r1"), deploy_inputs(camp.clone(), None)).unwrap();

    let ids = text(&camp, "customer_id");
    let (mut treated, mut control) = (0, 0);
    for i in 0..camp.num_rows() {
        let id = ids.value(i);
        let eml = out.join(format!("messages/vip/{id}.eml")).exists();
        let held = is_control(KEY, id, SHARE);
        let consent = i % 5 != 0;
        assert_eq!(
            eml,
            consent && !held,
            "{id}: control {held}, consent {consent}"
        );
        if consent {
            if held { control += 1 } else { treated += 1 }
        }
    }
    // segments.csv marks the group.
    let csv = read(&out.join("segments.csv"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let g = header.iter().position(|c| *c == "group").unwrap();
    let marked = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(g) == Some("control"))
        .count();
    assert_eq!(
        marked,
        ids.iter()
            .filter(|id| is_control(KEY, id.unwrap(), SHARE))
            .count()
    );

    let summary = summary_of(&out);
    let vip = &summary["segments"][0];
    assert_eq!(vip["control_group"].as_u64(), Some(marked as u64));
    assert_eq!(
        vip["offer"], "early access",
        "the segment's offer, not the control's"
    );
    let recorded = &summary["outcomes"]["recorded"][0];
    assert_eq!(recorded["campaign"], "campaign_vip");
    assert_eq!(recorded["treated"].as_u64(), Some(treated));
    assert_eq!(recorded["control"].as_u64(), Some(control));
    let sends = vip_sends(&summary);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["status"], "no_transactions");
    assert_eq!(sends[0]["sent_on"], "2024-04-01");

    // A retry or resume of the same run records nothing new; the next run records its own,
    // even under other parameters.
    run(&node, stores.ctx("r1"), deploy_inputs(camp.clone(), None)).unwrap();
    assert_eq!(vip_sends(&summary_of(&out)).len(), 1);
    let other = configure(&format!(
        "out_dir: {}\nsent_on: 2024-04-02\nmessages: none\n",
        out.display()
    ))
    .unwrap();
    let ctx = NodeContext {
        params: [("vip_min_clv".to_string(), json!(800))].into(),
        ..stores.ctx("r2")
    };
    run(&other, ctx, deploy_inputs(camp, None)).unwrap();
    let sends = vip_sends(&summary_of(&out));
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1]["run_id"], "r2");
}

/// Transactions with a known effect on the campaign of 2024-04-01 (window 2024-04-02 to
/// 2024-04-15, data to 2024-04-20): every customer has a purchase in March; a compared
/// customer buys in the window with probability `base`; a treated compared customer who did
/// not also buys with probability `uplift / (1 - base)`. Purchases that must not count are
/// given to treated customers only, so counting them would bias the lift: on the send day,
/// after the window, and every customer without consent buys in the window. Returns the rows
/// and the true lift: the treated conversion with the uplift minus the same customers'
/// conversion without it.
fn known_effect(camp: &RecordBatch, seed: u64, base: f64, uplift: f64) -> (Vec<Tx>, f64) {
    let mut rng = Rng::stream(seed, 0x401d, 0);
    let ids = text(camp, "customer_id");
    let mut rows: Vec<Tx> = Vec::new();
    let (mut treated, mut natural, mut with_uplift) = (0u64, 0u64, 0u64);
    let mut order = 0;
    let mut buy = |rows: &mut Vec<Tx>, id: &str, day: &str, amount: f64| {
        order += 1;
        rows.push((id.into(), format!("o{order}"), day.into(), amount));
    };
    for i in 0..camp.num_rows() {
        let id = ids.value(i);
        let consent = i % 5 != 0;
        let held = is_control(KEY, id, SHARE);
        buy(&mut rows, id, "2024-03-15", 30.0);
        if !consent {
            buy(&mut rows, id, "2024-04-05", 50.0);
            continue;
        }
        let bought = rng.f64() < base;
        let extra = !held && !bought && rng.f64() < uplift / (1.0 - base);
        let day = format!("2024-04-{:02}", 2 + (rng.f64() * 14.0) as u32);
        if bought || extra {
            buy(&mut rows, id, &day, 20.0 + 40.0 * rng.f64());
        }
        if !held {
            treated += 1;
            natural += u64::from(bought);
            with_uplift += u64::from(bought || extra);
            if rng.f64() < 0.3 {
                buy(&mut rows, id, "2024-04-01", 25.0);
                buy(&mut rows, id, "2024-04-16", 25.0);
            }
        }
    }
    buy(&mut rows, "someone else", "2024-04-20", 10.0);
    let truth = (with_uplift as f64 - natural as f64) / treated as f64;
    (rows, truth)
}

/// Deploy run 1 on the data up to the send (records it), run 2 on the full data (measures
/// it): the conversion lift run 2 reports for the send, and the true lift.
fn two_runs(camp: &RecordBatch, seed: u64, uplift: f64) -> (Json, f64) {
    let (rows, truth) = known_effect(camp, seed, 0.2, uplift);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let stores = Stores::new();
    let upto: Vec<Tx> = rows
        .iter()
        .filter(|r| r.2.as_str() <= "2024-04-01")
        .cloned()
        .collect();
    let node = |sent_on: &str| {
        configure(&format!(
            "out_dir: {}\nsent_on: {sent_on}\nmessages: none\n",
            out.display()
        ))
        .unwrap()
    };
    let inputs = |tx: &[Tx]| deploy_inputs(camp.clone(), Some(tx_table(tx)));
    run(&node("2024-04-01"), stores.ctx("r1"), inputs(&upto)).unwrap();
    let sends = vip_sends(&summary_of(&out));
    assert_eq!(sends[0]["status"], "not_started", "{:#}", sends[0]);
    run(&node("2024-04-21"), stores.ctx("r2"), inputs(&rows)).unwrap();
    let summary = summary_of(&out);
    let sends = vip_sends(&summary);
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0]["status"], "measured", "{:#}", sends[0]);
    assert_eq!(sends[1]["status"], "not_started");
    let latest = &summary["outcomes"]["segments"][0]["latest_measured"];
    assert_eq!(latest["run_id"], "r1");
    let html = read(&out.join("report.html"));
    assert!(
        html.contains("Measured campaign outcomes"),
        "report section"
    );
    assert!(html.contains("Newcombe"), "the method is named");
    (sends[0]["figures"]["conversion_lift"].clone(), truth)
}

#[test]
fn a_known_effect_is_recovered_and_no_effect_straddles_zero() {
    // Five seeds each: a 95% interval may miss one; a wrong window or group would miss most.
    let camp = holdout_campaign(3000);
    for uplift in [0.08, 0.0] {
        let (mut covered, mut positive) = (0, 0);
        let mut seen = Vec::new();
        for seed in 1..=5u64 {
            let (lift, truth) = two_runs(&camp, seed, uplift);
            let (low, high) = (
                lift["low"].as_f64().unwrap(),
                lift["high"].as_f64().unwrap(),
            );
            covered += usize::from(low <= truth && truth <= high);
            positive += usize::from(low > 0.0);
            if uplift == 0.0 {
                assert_eq!(truth, 0.0);
            }
            seen.push((truth, low, high));
        }
        assert!(covered >= 4, "uplift {uplift}: (truth, low, high) {seen:?}");
        if uplift > 0.0 {
            assert!(positive >= 4, "a clear effect is found: {seen:?}");
        }
    }
}

#[test]
fn the_interval_covers_the_truth_on_most_seeds() {
    // The statistics alone, on 40 seeds: a 95% interval should miss about 2 of them.
    let camp = holdout_campaign(2000);
    let ids = text(&camp, "customer_id");
    let mut send = ledger::SendRecord {
        run_id: "r1".into(),
        sent_on: "2024-04-01".into(),
        campaign: KEY.into(),
        holdout_key: KEY.into(),
        holdout_share: Some(SHARE),
        segment: "vip".into(),
        window_days: 14,
        treated_customers: 0,
        control_customers: 0,
        treated: Vec::new(),
        control: Vec::new(),
        measured: None,
        reached_before: 0,
    };
    for (i, id) in ids.iter().enumerate() {
        let id = id.unwrap().to_string();
        if i % 5 == 0 {
            continue;
        }
        if is_control(KEY, &id, SHARE) {
            send.control.push(id);
        } else {
            send.treated.push(id);
        }
    }
    for uplift in [0.05, 0.0] {
        let mut covered = 0;
        for seed in 0..40 {
            let (rows, truth) = known_effect(&camp, 100 + seed, 0.2, uplift);
            let wanted = || send.treated.iter().chain(&send.control).map(String::as_str);
            let tx = attribution::Purchases::read(&tx_table(&rows), |_| wanted()).unwrap();
            let out = attribution::measure(&send, Some(&tx));
            let lift = out.figures.unwrap().conversion_lift.unwrap();
            covered += usize::from(lift.low <= truth && truth <= lift.high);
        }
        // P(36 or more of 40 | 95% coverage) is about 0.95; a wrong window or a biased
        // interval covers far fewer.
        assert!(covered >= 35, "uplift {uplift}: covered {covered} of 40");
    }
}

#[test]
fn mean_clv_per_segment_between_runs() {
    let snapshot = |rows: &[(&str, &str, Option<f64>)]| Snapshot {
        run_id: "r".into(),
        at: "2024-04-01T06:00:00+00:00".into(),
        profiles: rows
            .iter()
            .map(|(id, seg, clv)| (id.to_string(), (seg.to_string(), *clv)))
            .collect(),
    };
    let before = snapshot(&[
        ("A", "vip", Some(100.0)),
        ("B", "vip", Some(300.0)),
        ("C", "lapsed", Some(10.0)),
    ]);
    let now = snapshot(&[
        ("A", "vip", Some(150.0)),
        ("B", "at_risk", Some(50.0)),
        ("C", "lapsed", None),
        ("D", "at_risk", Some(70.0)),
    ]);
    let c = compare(&before, &now);
    let by: BTreeMap<&str, &SegmentClvChange> = c
        .segments_clv
        .iter()
        .map(|s| (s.segment.as_str(), s))
        .collect();
    assert_eq!(by.len(), 3);
    let vip = by["vip"];
    assert_eq!((vip.previous_customers, vip.current_customers), (2, 1));
    assert_eq!(
        (vip.previous_mean, vip.current_mean),
        (Some(200.0), Some(150.0))
    );
    assert_eq!(vip.mean_change, Some(-50.0));
    let at_risk = by["at_risk"];
    assert_eq!(
        (at_risk.previous_mean, at_risk.current_mean),
        (None, Some(60.0))
    );
    assert_eq!(at_risk.mean_change, None);
    let lapsed = by["lapsed"];
    assert_eq!((lapsed.current_customers, lapsed.current_mean), (1, None));
}

#[test]
fn the_report_section_escapes_and_says_too_few() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let node = configure(&format!(
        "out_dir: {}\nmessages: none\nsent_on: 2024-04-01\n",
        out.display()
    ))
    .unwrap();
    let stores = Stores::new();
    // A hostile campaign id and a small segment.
    let camp = holdout_campaign(60);
    let mut inputs = deploy_inputs(camp, None);
    inputs.0[0].from = "<script>x</script>".into();
    run(&node, stores.ctx("r1"), inputs).unwrap();
    let tx = tx_table(&[
        ("Z".into(), "z".into(), "2024-03-01".into(), 1.0),
        ("Z".into(), "y".into(), "2024-05-01".into(), 1.0),
    ]);
    let mut inputs = deploy_inputs(holdout_campaign(60), Some(tx));
    inputs.0[0].from = "<script>x</script>".into();
    run(&node, stores.ctx("r2"), inputs).unwrap();
    let html = read(&out.join("report.html"));
    assert!(!html.contains("<script>"), "escaped");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("too few customers ("), "{html}");
    assert!(html.contains("Welch"), "the revenue method is named");
}

#[test]
fn an_unusable_address_leaves_either_group_out_of_the_comparison() {
    // V0001 and V0002: one treated, one control (by the hash), both with a broken address.
    let camp = holdout_campaign(400);
    let ids = text(&camp, "customer_id");
    let pick = |control: bool| {
        (0..camp.num_rows())
            .find(|&i| i % 5 != 0 && is_control(KEY, ids.value(i), SHARE) == control)
            .unwrap()
    };
    let (t, c) = (pick(false), pick(true));
    let emails: Vec<Option<String>> = (0..camp.num_rows())
        .map(|i| {
            Some(if i == t || i == c {
                "two@x.com, addresses@y.com".to_string()
            } else {
                format!("{}@example.com", ids.value(i))
            })
        })
        .collect();
    let schema = camp.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(camp.columns())
        .map(|(f, col)| {
            if f.name() == "email" {
                Arc::new(StringArray::from(emails.clone())) as ArrayRef
            } else {
                col.clone()
            }
        })
        .collect();
    let camp = RecordBatch::try_new(schema, columns).unwrap();
    let checked =
        recipients::unsendable_to_skipped(&normalize(&[camp], &CAMPAIGN_COLUMNS).unwrap()).unwrap();
    let eligible = bools(&checked, "eligible");
    let reason = text(&checked, "skip_reason");
    for i in [t, c] {
        assert!(!eligible.value(i), "row {i}");
        assert_eq!(reason.value(i), "invalid email address");
    }
    assert!(eligible.value(pick_other(t, c)));
}

/// A compared row that is neither of two.
fn pick_other(a: usize, b: usize) -> usize {
    (1..).find(|i| i % 5 != 0 && *i != a && *i != b).unwrap()
}
