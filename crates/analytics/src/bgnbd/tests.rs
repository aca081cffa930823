use super::super::special::hyp2f1;
use super::fit::Patterns;
use super::*;
use crate::rng::Rng;

/// The paper's CDNOW estimates (Fader, Hardie & Lee 2005, section 5).
fn cdnow() -> BgNbdParams {
    BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap()
}

#[test]
fn paper_check_value() {
    // "x=2, t_x=30.43, T=38.86 weeks, t=39 weeks gives 1.226" (paper's spreadsheet).
    let obs = Observation {
        frequency: 2,
        recency: 30.43,
        t: 38.86,
    };
    let e = cdnow().expected_purchases(39.0, &obs).unwrap();
    assert!((e - 1.226).abs() < 5e-4, "E[Y(39)] = {e}");
}

#[test]
fn euler_form_equals_direct_form() {
    let p = BgNbdParams::new(0.8, 30.0, 1.7, 3.1).unwrap();
    for &(x, tx, tt, t) in &[
        (0u32, 0.0, 10.0, 30.0),
        (1, 5.0, 50.0, 360.0),
        (7, 200.0, 300.0, 60.0),
        (3, 3.0, 3.0, 900.0),
    ] {
        let obs = Observation {
            frequency: x,
            recency: tx,
            t: tt,
        };
        let got = p.expected_purchases(t, &obs).unwrap();
        let xf = f64::from(x);
        let z = t / (p.alpha + tt + t);
        let f = hyp2f1(p.r + xf, p.b + xf, p.a + p.b + xf - 1.0, z).unwrap();
        let direct = (p.a + p.b + xf - 1.0) / (p.a - 1.0)
            * (1.0 - ((p.alpha + tt) / (p.alpha + tt + t)).powf(p.r + xf) * f)
            * p.probability_alive(&obs).unwrap();
        assert!(((got - direct) / direct).abs() < 1e-10, "{got} vs {direct}");
    }
}

#[test]
fn predictions_behave() {
    let p = cdnow();
    let one_time = Observation {
        frequency: 0,
        recency: 0.0,
        t: 30.0,
    };
    assert_eq!(p.probability_alive(&one_time).unwrap(), 1.0);
    // Someone who bought often but long ago is less likely alive than a recent buyer.
    let stale = Observation {
        frequency: 10,
        recency: 5.0,
        t: 50.0,
    };
    let fresh = Observation {
        frequency: 10,
        recency: 49.0,
        t: 50.0,
    };
    assert!(p.probability_alive(&stale).unwrap() < p.probability_alive(&fresh).unwrap());
    // E[Y(t)] grows with t, is 0 at 0, and the new-customer curve matches x=T=0.
    let mut prev = 0.0;
    for t in [0.0, 1.0, 10.0, 52.0, 520.0, 5200.0] {
        let e = p.expected_purchases(t, &fresh).unwrap();
        assert!(e >= prev);
        prev = e;
    }
    assert_eq!(p.expected_purchases(0.0, &fresh).unwrap(), 0.0);
    let horizons = [0.0, 4.345, 52.0, 13.0, 1000.0];
    let curve = p.expected_purchases_curve(&horizons, &stale).unwrap();
    for (&t, e) in horizons.iter().zip(&curve) {
        let single = p.expected_purchases(t, &stale).unwrap();
        assert!((e - single).abs() <= 1e-14 * single.abs(), "t = {t}");
    }
    let new = p.expected_purchases_new_customer(52.0).unwrap();
    assert!(new > 0.0 && new < 5.0);
    // Very heavy buyers do not overflow.
    let heavy = Observation {
        frequency: 2_000,
        recency: 364.0,
        t: 365.0,
    };
    let e = BgNbdParams::new(0.5, 10.0, 0.7, 3.0)
        .unwrap()
        .expected_purchases(360.0, &heavy);
    assert!(e.unwrap() > 1_000.0);
}

#[test]
fn rejects_bad_input() {
    let p = cdnow();
    let bad = [
        Observation {
            frequency: 1,
            recency: 5.0,
            t: 4.0,
        },
        Observation {
            frequency: 0,
            recency: 1.0,
            t: 4.0,
        },
        Observation {
            frequency: 1,
            recency: -1.0,
            t: 4.0,
        },
        Observation {
            frequency: 1,
            recency: 1.0,
            t: f64::NAN,
        },
    ];
    for obs in bad {
        assert!(p.probability_alive(&obs).is_err());
        assert!(p.expected_purchases(1.0, &obs).is_err());
        assert!(p.log_likelihood(&obs).is_err());
        assert!(fit(&[obs], &FitOptions::default()).is_err());
    }
    let ok = Observation {
        frequency: 1,
        recency: 1.0,
        t: 4.0,
    };
    assert!(p.expected_purchases(-1.0, &ok).is_err());
    assert!(BgNbdParams::new(0.0, 1.0, 1.0, 1.0).is_err());
    assert!(BgNbdParams::new(1.0, f64::INFINITY, 1.0, 1.0).is_err());
    let a_one = BgNbdParams::new(1.0, 1.0, 1.0, 2.0).unwrap();
    assert!(matches!(
        a_one.expected_purchases(1.0, &ok),
        Err(AnalyticsError::Undefined(_))
    ));
    let few = vec![ok; 3];
    assert!(matches!(
        fit(&few, &FitOptions::default()),
        Err(AnalyticsError::NotEnoughData { got: 3, .. })
    ));
    let only_new = vec![
        Observation {
            frequency: 0,
            recency: 0.0,
            t: 5.0
        };
        100
    ];
    assert!(matches!(
        fit(&only_new, &FitOptions::default()),
        Err(AnalyticsError::NotEnoughData { .. })
    ));
}

/// Simulates BG/NBD customers with integer-day purchase times (as real summaries have).
fn simulate(n: usize, truth: BgNbdParams, seed: u64) -> Vec<Observation> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let lambda = rng.gamma(truth.r, 1.0 / truth.alpha);
            let p = rng.beta(truth.a, truth.b);
            let big_t = (1.0 + (rng.f64() * 364.0).floor()).min(364.0);
            let (mut now, mut x, mut tx) = (0.0, 0u32, 0.0);
            loop {
                now += rng.exp(lambda);
                let day = now.floor();
                if day > big_t {
                    break;
                }
                if day > tx {
                    x += 1;
                    tx = day;
                }
                if rng.chance(p) {
                    break;
                }
            }
            Observation {
                frequency: x,
                recency: tx,
                t: big_t,
            }
        })
        .collect()
}

#[test]
fn gradient_matches_finite_differences() {
    let data = simulate(500, BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap(), 7);
    let pat = Patterns::new(&data, 10.0 / 364.0, 1);
    for theta in [
        [0.1, 0.1, 0.1, 0.1],
        [-0.7, 0.3, -0.2, 1.0],
        [0.5, -1.0, 0.9, -0.3],
    ] {
        crate::optimize::assert_gradient_matches(|t, g| pat.negative_mean_ll(t, g, 0.01), &theta);
    }
}

#[test]
fn the_likelihood_and_its_gradient_have_the_same_bits_on_any_number_of_threads() {
    let data = simulate(3_000, BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap(), 5);
    let evaluate = |threads: usize| {
        let mut pat = Patterns::new(&data, 10.0 / 364.0, threads);
        pat.rows_per_thread = 1;
        // Handed over in many blocks, some shares ending mid-block.
        pat.rows_per_block = 7;
        [[0.1, 0.1, 0.1, 0.1], [-0.7, 0.3, -0.2, 1.0]].map(|theta| {
            let mut grad = [0.0; 4];
            let value = pat.negative_mean_ll(&theta, Some(&mut grad), 0.01);
            let plain = pat.negative_mean_ll(&theta, None, 0.01);
            [value, plain, grad[0], grad[1], grad[2], grad[3]].map(f64::to_bits)
        })
    };
    let one = evaluate(1);
    for threads in [2, 3, 7] {
        assert_eq!(evaluate(threads), one, "{threads} threads");
    }
}

#[test]
fn the_patterns_are_the_same_sorted_on_one_thread_or_on_two() {
    // Enough customers for the sorts to split across threads, many with the same times.
    let data = simulate(60_000, BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap(), 11);
    let one = Patterns::new(&data, 10.0 / 364.0, 1);
    let two = Patterns::new(&data, 10.0 / 364.0, 2);
    assert!(one.rows.len() > 1000);
    assert_eq!(one.rows, two.rows);
    let theta = [-0.7, 0.3, -0.2, 1.0];
    assert_eq!(
        one.negative_mean_ll(&theta, None, 0.0).to_bits(),
        two.negative_mean_ll(&theta, None, 0.0).to_bits()
    );
}

#[test]
fn rescaled_patterns_are_the_patterns_of_the_scaled_data() {
    let data = simulate(2_000, BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap(), 9);
    let scale = 10.0 / 364.0;
    let rescaled = Patterns::new(&data, 1.0, 1).rescaled(scale).unwrap();
    let direct = Patterns::new(&data, scale, 1);
    assert_eq!(rescaled.rows, direct.rows);
    let theta = [-0.7, 0.3, -0.2, 1.0];
    assert_eq!(
        rescaled.negative_mean_ll(&theta, None, 0.0).to_bits(),
        direct.negative_mean_ll(&theta, None, 0.0).to_bits()
    );
    // Times a scale cannot keep apart: no rescaled patterns.
    assert!(Patterns::new(&data, 1.0, 1).rescaled(0.0).is_none());
}

#[test]
fn patterns_total_matches_per_customer_ll() {
    let truth = BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap();
    let data = simulate(300, truth, 11);
    let pat = Patterns::new(&data, 1.0, 1);
    assert!(pat.rows.len() < data.len());
    let theta = [truth.r.ln(), truth.alpha.ln(), truth.a.ln(), truth.b.ln()];
    let grouped = -pat.negative_mean_ll(&theta, None, 0.0) * data.len() as f64;
    let direct: f64 = data.iter().map(|o| truth.log_likelihood(o).unwrap()).sum();
    assert!(
        (grouped - direct).abs() < 1e-9 * direct.abs(),
        "{grouped} vs {direct}"
    );
}

#[test]
fn fit_recovers_simulated_parameters() {
    let truth = BgNbdParams::new(0.6, 25.0, 0.9, 3.0).unwrap();
    let data = simulate(20_000, truth, 2024);
    let fitted = fit(&data, &FitOptions::default()).unwrap();
    assert!(fitted.converged, "{fitted:?}");
    let p = fitted.params;
    // Sampling error with 20k customers is a few percent; a and b are the least precise.
    assert!((p.r / truth.r - 1.0).abs() < 0.1, "{p:?}");
    assert!((p.alpha / truth.alpha - 1.0).abs() < 0.15, "{p:?}");
    assert!((p.a / truth.a - 1.0).abs() < 0.3, "{p:?}");
    assert!((p.b / truth.b - 1.0).abs() < 0.35, "{p:?}");
    // The optimum beats the truth and nearby points.
    let ll = |q: BgNbdParams| {
        data.iter()
            .map(|o| q.log_likelihood(o).unwrap())
            .sum::<f64>()
    };
    assert!(fitted.log_likelihood >= ll(truth));
    assert!((fitted.log_likelihood - ll(p)).abs() < 1e-6 * fitted.log_likelihood.abs());
    for bump in [1.01, 0.99] {
        assert!(fitted.log_likelihood > ll(BgNbdParams { r: p.r * bump, ..p }));
        assert!(fitted.log_likelihood > ll(BgNbdParams { b: p.b * bump, ..p }));
    }
    // Weeks are days / 7: same r, a, b; alpha / 7.
    let weeks: Vec<Observation> = data
        .iter()
        .map(|o| Observation {
            frequency: o.frequency,
            recency: o.recency / 7.0,
            t: o.t / 7.0,
        })
        .collect();
    let w = fit(&weeks, &FitOptions::default()).unwrap().params;
    assert!((w.r / p.r - 1.0).abs() < 1e-6 && (w.alpha * 7.0 / p.alpha - 1.0).abs() < 1e-6);
    assert!((w.a / p.a - 1.0).abs() < 1e-6 && (w.b / p.b - 1.0).abs() < 1e-6);
}

/// Timing of a 100k-customer fit; run with
/// `cargo test --release -- --ignored --nocapture fit_100k_timing`.
#[test]
#[ignore]
fn fit_100k_timing() {
    let truth = BgNbdParams::new(0.6, 25.0, 0.9, 3.0).unwrap();
    let data = simulate(100_000, truth, 99);
    let start = std::time::Instant::now();
    let fitted = fit(&data, &FitOptions::default()).unwrap();
    let elapsed = start.elapsed();
    println!(
        "BG/NBD fit of {} customers ({} patterns): {:?}, {} iterations, converged {}, {:?}",
        fitted.customers,
        fitted.patterns,
        elapsed,
        fitted.iterations,
        fitted.converged,
        fitted.params
    );
    assert!(fitted.converged);
}

#[test]
fn a_shared_curve_shape_gives_each_history_the_bits_of_its_own_curve() {
    let bg = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap();
    let horizons = [30.0, 60.0, 0.0, 365.0];
    for (x, big_t) in [(0, 40.0), (1, 40.0), (3, 200.5), (40, 700.0)] {
        let shape = bg.purchase_curve_shape(&horizons, x, big_t).unwrap();
        for tx in [0.0, 1.5, 20.0, 39.0, 40.0] {
            let obs = Observation {
                frequency: x,
                recency: if x == 0 { 0.0 } else { tx },
                t: big_t,
            };
            let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            assert_eq!(
                bits(bg.expected_purchases_on(&shape, &obs).unwrap()),
                bits(bg.expected_purchases_curve(&horizons, &obs).unwrap()),
                "x {x}, t_x {tx}, T {big_t}"
            );
        }
    }
    // A shape is only for its own frequency and age.
    let shape = bg.purchase_curve_shape(&horizons, 2, 50.0).unwrap();
    for (frequency, t) in [(3, 50.0), (2, 51.0)] {
        let obs = Observation {
            frequency,
            recency: 10.0,
            t,
        };
        assert!(matches!(
            bg.expected_purchases_on(&shape, &obs),
            Err(AnalyticsError::InvalidInput(_))
        ));
    }
    // All horizons zero: zeros, as the curve gives.
    let zero = bg.purchase_curve_shape(&[0.0, 0.0], 2, 50.0).unwrap();
    let obs = Observation {
        frequency: 2,
        recency: 10.0,
        t: 50.0,
    };
    assert_eq!(bg.expected_purchases_on(&zero, &obs).unwrap(), [0.0, 0.0]);
}
