use super::*;
use crate::rng::Rng;

fn tx(customer: u32, day: i32) -> Transaction {
    Transaction {
        customer,
        day,
        amount: 10.0,
    }
}

#[test]
fn the_split_follows_the_lifetimes_conventions() {
    let txs = [
        // 0: repeat in calibration; a purchase exactly on the cut-off is calibration; two
        // lines on one holdout day count once.
        tx(0, 10),
        tx(0, 20),
        tx(0, 25),
        tx(0, 25),
        tx(0, 30),
        // 1: first seen after the cut-off: not in the backtest.
        tx(1, 21),
        tx(1, 30),
        // 2: only on the cut-off day; a purchase after the observation end is ignored.
        tx(2, 20),
        tx(2, 50),
        // 3: one calibration purchase, one holdout purchase on the observation end day.
        tx(3, 5),
        tx(3, 40),
        tx(3, 41),
    ];
    let rows = calibration_and_holdout(&txs, 5, 20, 40, TimeUnit::Days).unwrap();
    let got: Vec<(u32, u32, f64, f64, u32)> = rows
        .iter()
        .map(|r| {
            (
                r.customer,
                r.frequency_cal,
                r.recency_cal,
                r.t_cal,
                r.frequency_holdout,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, 10.0, 10.0, 2),
            (2, 0, 0.0, 0.0, 0),
            (3, 0, 0.0, 15.0, 1),
        ]
    );
    // Weeks scale recency and T only; the counts stay purchase days.
    let weeks = calibration_and_holdout(&txs, 5, 20, 40, TimeUnit::Weeks).unwrap();
    assert_eq!(weeks[0].recency_cal, 10.0 / 7.0);
    assert_eq!(weeks[2].t_cal, 15.0 / 7.0);
    assert_eq!(weeks[0].frequency_holdout, 2);
    // The input order does not matter.
    let mut reversed = txs.to_vec();
    reversed.reverse();
    assert_eq!(
        calibration_and_holdout(&reversed, 5, 20, 40, TimeUnit::Days).unwrap(),
        rows
    );
    assert!(calibration_and_holdout(&txs, 5, 20, 19, TimeUnit::Days).is_err());
    assert!(calibration_and_holdout(&txs, 3, 20, 40, TimeUnit::Days).is_err());
}

/// BG/NBD purchases of `n` customers acquired over the first `acquire` days, observed to
/// `end` (days 0..=end).
fn simulated(n: u32, acquire: u32, end: i32, seed: u64) -> Vec<Transaction> {
    let mut out = Vec::new();
    for c in 0..n {
        let mut rng = Rng::stream(seed, 7, u64::from(c));
        let lambda = rng.gamma(0.8, 1.0 / 25.0);
        let p = rng.beta(1.0, 3.0);
        let mut t = rng.below(u64::from(acquire)) as f64;
        out.push(tx(c, t as i32));
        loop {
            t += rng.exp(lambda);
            if t > f64::from(end) {
                break;
            }
            out.push(tx(c, t as i32));
            if rng.chance(p) {
                break;
            }
        }
    }
    out
}

#[test]
fn the_backtest_groups_and_errors_are_consistent_and_reproducible() {
    let txs = simulated(3000, 200, 539, 5);
    let rows = calibration_and_holdout(&txs, 3000, 359, 539, TimeUnit::Days).unwrap();
    assert!(rows.len() <= 3000 && rows.len() > 2500);
    let bt = backtest(&rows, 180.0, &FitOptions::default()).unwrap();
    assert!(bt.fit.converged);
    assert_eq!(bt.by_frequency.len(), 8);
    let labels: Vec<String> = bt.by_frequency.iter().map(FrequencyGroup::label).collect();
    assert_eq!(labels, ["0", "1", "2", "3", "4", "5", "6", "7+"]);
    assert_eq!(
        bt.by_frequency.iter().map(|g| g.customers).sum::<usize>(),
        rows.len()
    );
    // The group means add back up to the totals.
    let (p, a) = bt.by_frequency.iter().fold((0.0, 0.0), |(p, a), g| {
        (
            p + g.predicted * g.customers as f64,
            a + g.actual * g.customers as f64,
        )
    });
    assert!((p - bt.total_predicted).abs() < 1e-6 * bt.total_predicted);
    assert!((a - bt.total_actual).abs() < 1e-9);
    let mae = rows
        .iter()
        .zip(&bt.predicted)
        .map(|(r, p)| (p - f64::from(r.frequency_holdout)).abs())
        .sum::<f64>()
        / rows.len() as f64;
    assert!((mae - bt.mae).abs() < 1e-12);
    assert!(bt.rmse >= bt.mae);
    let err = 100.0 * (bt.total_predicted - bt.total_actual) / bt.total_actual;
    assert_eq!(bt.error_pct, Some(err));
    // The heaviest buyers are expected to buy the most (not a monotone curve in general:
    // one-time buyers acquired just before the cut-off are still presumed alive).
    let means: Vec<f64> = bt.by_frequency.iter().map(|g| g.predicted).collect();
    assert!(means[..7].iter().all(|&m| m < means[7]), "{means:?}");
    println!(
        "simulated backtest: {} customers, error {err:.2}%, groups {means:?}",
        rows.len()
    );
    // Data drawn from the model itself: the aggregate is close.
    assert!(err.abs() < 10.0, "{err}% on {rows:?}", rows = rows.len());
    // Reproducible to the bit.
    let again = backtest(&rows, 180.0, &FitOptions::default()).unwrap();
    assert_eq!(again, bt);
    // No fit, no backtest.
    let few = &rows[..5];
    assert!(matches!(
        backtest(few, 180.0, &FitOptions::default()),
        Err(AnalyticsError::NotEnoughData { .. })
    ));
    assert!(backtest(&rows, -1.0, &FitOptions::default()).is_err());
}
