//! The known-effect test: data from `flow sample-data --campaign` (treated customers of
//! `campaign_vip` make an extra order with a known probability; natural purchases identical
//! with and without it), run 1 of the shipped workflow on the data up to the send date records
//! the send, run 2 on the full data measures it. The true effect is the treated customers'
//! conversion in the window with the uplift minus the same customers' conversion in the data
//! generated with uplift 0; the reported interval must contain it (and zero when there is no
//! uplift) on most seeds.

use std::collections::{BTreeMap, BTreeSet};

use super::{WF, out_dir, profiles, read_json};
use crate::shipped::{replace_once, shipped_yaml};
use crate::support::Workspace;

const SEND: &str = "2026-10-01";
/// The window: the 14 days after the send.
const FIRST: &str = "2026-10-02";
const LAST: &str = "2026-10-15";

/// The shipped workflow with half of every VIP held out (enough control customers in a small
/// sample), and the send date from `--param sent_on`.
fn yaml() -> String {
    let y = replace_once(&shipped_yaml(), "      holdout: 10%", "      holdout: 50%");
    let y = replace_once(&y, "  currency: USD", "  currency: USD\n  sent_on: \"\"");
    replace_once(
        &y,
        "      attribution_days: 14\n",
        "      attribution_days: 14\n      sent_on: \"{{ params.sent_on }}\"\n",
    )
}

/// Customers with an order of positive net amount dated in the window, in a generated
/// `transactions.csv`.
fn converted(transactions: &str) -> BTreeSet<String> {
    let mut net: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in transactions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let day = &f[2][..10];
        if (FIRST..=LAST).contains(&day) {
            *net.entry((f[1].to_string(), f[0].to_string())).or_default() +=
                f[f.len() - 1].parse::<f64>().expect("amount");
        }
    }
    net.into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|((c, _), _)| c)
        .collect()
}

/// Generates the sample with `uplift`, runs the workflow twice and returns the reported
/// conversion lift (low, high) and the treated customers run 1 recorded.
fn measure(ws: &Workspace, seed: u64, uplift: f64) -> ((f64, f64), BTreeSet<String>, String) {
    let dir = format!("gen_{seed}_{uplift}");
    ws.flow()
        .args([
            "sample-data",
            "--out",
            &dir,
            "--customers",
            "2000",
            "--days",
            "400",
        ])
        .args(["--end", "2026-10-31", "--malformed-rows", "0", "--seed"])
        .arg(seed.to_string())
        .args([
            "--campaign",
            &format!("campaign_vip:{SEND}:{uplift}:0.5:14"),
        ])
        .run();
    for f in ["catalog.csv", "customers.csv"] {
        ws.write(&format!("data/{f}"), ws.read(&format!("{dir}/{f}")));
    }
    let all = ws.read(&format!("{dir}/transactions.csv"));
    let upto: String = all
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || &l.split(',').nth(2).unwrap_or("")[..10] <= SEND)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    ws.write("data/transactions.csv", upto);
    let first = ws
        .flow()
        .args(["run", WF])
        .param("sent_on", SEND)
        .param("vip_min_clv", "0")
        .run()
        .run_id();
    let treated: BTreeSet<String> = profiles(&out_dir(ws, &first))
        .into_values()
        .filter(|p| p["segment"] == "vip" && p["message_sent"] == "true")
        .map(|p| p["customer_id"].clone())
        .collect();
    ws.write("data/transactions.csv", &all);
    let second = ws
        .flow()
        .args(["run", WF])
        .param("sent_on", "2026-10-31")
        .param("vip_min_clv", "0")
        .run()
        .run_id();
    let summary = read_json(&out_dir(ws, &second).join("summary.json"));
    let send = summary["outcomes"]["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .flat_map(|s| s["sends"].as_array().expect("sends").iter())
        .find(|s| s["run_id"] == first.as_str() && s["campaign"] == "campaign_vip")
        .unwrap_or_else(|| panic!("run 1's send is not reported: {summary:#}"))
        .clone();
    assert_eq!(send["status"], "measured", "{send:#}");
    assert_eq!(send["sent_on"], SEND);
    assert_eq!(
        send["treated_customers"].as_u64(),
        Some(treated.len() as u64),
        "the treated customers are the VIPs messaged"
    );
    let lift = &send["figures"]["conversion_lift"];
    let bound = |k: &str| {
        lift[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no conversion lift: {send:#}"))
    };
    ((bound("low"), bound("high")), treated, all)
}

#[test]
fn the_measured_lift_recovers_a_simulated_campaigns_known_effect() {
    // A workspace (and so a campaign ledger) per data set: a ledger that had already reached
    // the VIPs would rightly not measure them again.
    let fresh = || {
        let ws = Workspace::new();
        ws.write(WF, yaml());
        ws
    };
    let (mut covered, mut found, mut zero_covered) = (0, 0, 0);
    let mut seen = Vec::new();
    const SEEDS: [u64; 3] = [11, 12, 13];
    for seed in SEEDS {
        let ((low, high), treated, with) = measure(&fresh(), seed, 0.3);
        let ((low0, high0), treated0, without) = measure(&fresh(), seed, 0.0);
        // Same natural data, so the same segments and the same treated customers.
        assert_eq!(treated, treated0, "seed {seed}");
        let share = |set: &BTreeSet<String>| {
            treated.intersection(set).count() as f64 / treated.len() as f64
        };
        let truth = share(&converted(&with)) - share(&converted(&without));
        assert!(
            truth > 0.1,
            "seed {seed}: the campaign had an effect ({truth})"
        );
        covered += usize::from(low <= truth && truth <= high);
        found += usize::from(low > 0.0);
        zero_covered += usize::from(low0 <= 0.0 && 0.0 <= high0);
        seen.push((seed, truth, low, high, low0, high0));
    }
    // A 95% interval misses now and then: most seeds, not all.
    let most = SEEDS.len() - 1;
    assert!(covered >= most, "truth outside the interval: {seen:?}");
    assert!(found >= most, "the effect was not found: {seen:?}");
    assert!(
        zero_covered >= most,
        "no effect, yet zero outside: {seen:?}"
    );
}
