//! Volume calibration: the purchase-rate scale that gives about `target_lines` lines.

/// Expected transactions of one customer: the first purchase plus the BG/NBD expected repeat
/// purchases `(1 - exp(-λ p T)) / p` over `t_days`.
fn expected_orders(lambda: f64, p: f64, t_days: f64) -> f64 {
    1.0 + (1.0 - (-lambda * p * t_days).exp()) / p
}

/// Expected lines of an order with basket mean `mu`: `min(6, 1 + Poisson(mu - 1))`.
pub(super) fn expected_lines(mu: f64) -> f64 {
    let m = (mu - 1.0).max(0.0);
    let mut pj = (-m).exp();
    let mut e = 0.0;
    let mut below = 0.0;
    for j in 0..5 {
        e += (1.0 + j as f64) * pj;
        below += pj;
        pj *= m / (j as f64 + 1.0);
    }
    e + 6.0 * (1.0 - below).max(0.0)
}

/// The rate scale giving about `target` lines.
pub(super) fn calibrate(target: f64, params: &[(f64, f64, f64, f64)]) -> f64 {
    // At most one purchase a day is simulated, so a daily rate λ acts like 1 - exp(-λ).
    let total = |s: f64| -> f64 {
        params
            .iter()
            .map(|&(l, p, t, e)| {
                e * expected_orders(1.0 - (-(l * s).min(2.0)).exp(), scaled_dropout(p, s), t)
            })
            .sum()
    };
    let (mut lo, mut hi) = (-12.0f64, 8.0f64);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if total(mid.exp()) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// Dropout probability under a rate scale: scaling up also makes customers stay longer (else
/// the expected number of purchases is bounded by `1 + 1/p` whatever the rate).
pub(super) fn scaled_dropout(p: f64, scale: f64) -> f64 {
    if scale > 1.0 {
        (p / scale.sqrt()).max(0.0005)
    } else {
        p
    }
}
