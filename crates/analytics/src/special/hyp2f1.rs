//! The Gauss hypergeometric function 2F1 for real parameters.
//!
//! `2F1(a, b; c; z)` is needed by the BG/NBD expected-purchases formula (Fader, Hardie & Lee 2005,
//! eq. 10) with `z = t / (alpha + T + t)`, which approaches 1 for long horizons or young customers.
//! [`hyp2f1`] evaluates it for real parameters and `0 <= z < 1`:
//!
//! - when `c - a - b < 0` (the function grows like `(1-z)^(c-a-b)` as `z -> 1`), Euler's
//!   transformation `2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z)` (DLMF 15.8.1) first;
//! - the Maclaurin series (DLMF 15.2.1), summed until a tail bound is below ~1e-16 of the sum,
//!   for `z <= 0.6`, and for larger `z` while it needs at most a few thousand terms
//!   (`z <~ 0.97`, or any `z` when `c` is large);
//! - otherwise the series gives `F` and `F'` at `z0 = 0.5`, then the hypergeometric differential
//!   equation (DLMF 15.10.1) is integrated to `z` by re-expanding its Taylor series in steps of
//!   half the distance to the singular point `z = 1` (analytic continuation). This has no
//!   special cases when `c - a - b` is an integer, unlike the `1 - z` connection formulas;
//! - if that loses accuracy, the long Maclaurin series (up to 200,000 terms).
//!
//! Instead of returning an inaccurate number it returns [`AnalyticsError::NoConvergence`] when a
//! series does not converge within its term budget or loses more than ~5 digits to cancellation,
//! and [`AnalyticsError::Undefined`] when `c` is a non-positive integer.

use super::super::{AnalyticsError, AnalyticsResult};

/// Relative size of the last term (or tail bound) at which series are stopped.
const EPS: f64 = 1e-16;
/// Term budget of a single series.
const MAX_TERMS: usize = 200_000;
/// Largest `z` evaluated by the plain Maclaurin series.
const SERIES_MAX_Z: f64 = 0.6;
/// Expansion point from which the differential equation is continued.
const CONTINUATION_START: f64 = 0.5;
/// Taylor step as a fraction of the convergence radius (distance to the nearest singularity).
const STEP_FRACTION: f64 = 0.5;
/// Largest accepted ratio of the sum of absolute terms to the absolute sum (cancellation).
const MAX_CANCELLATION: f64 = 1e5;
/// Above `SERIES_MAX_Z`, the series is tried first when `z^n < 1e-17` within this many terms.
const SHORT_SERIES_TERMS: usize = 1_500;

/// Gauss hypergeometric function `2F1(a, b; c; z)` for real `a, b, c` and `0 <= z < 1`.
///
/// Accurate to ~1e-12 relative in the parameter range of the BG/NBD model (see the module docs
/// for the method). Errors: `InvalidInput` for `z` outside `[0, 1)`, `NonFinite` for non-finite
/// arguments, `Undefined` when `c` is a non-positive integer, `NoConvergence` when the result
/// cannot be computed accurately (or overflows).
///
/// The models evaluate several `z` at once ([`hyp2f1_many`]); this single-`z` form is the
/// reference the tests check that and the BG/NBD formulas against.
#[cfg(test)]
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> AnalyticsResult<f64> {
    check_hyp2f1_args(a, b, c, &[z])?;
    if z == 0.0 || a == 0.0 || b == 0.0 {
        return Ok(1.0);
    }
    let excess = c - a - b;
    if excess < 0.0 {
        // Euler: 2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z). The right-hand 2F1 stays
        // bounded as z -> 1 and its series decays faster; the power carries the growth.
        let f = hyp2f1_core(c - a, c - b, c, z)?;
        return euler_scale(a, b, c, z, f);
    }
    hyp2f1_core(a, b, c, z)
}

/// `hyp2f1` at several `z` with the same `a, b, c`, sharing the series coefficients (several
/// times faster than separate calls; used for CLV horizons). Same accuracy and errors.
pub fn hyp2f1_many(a: f64, b: f64, c: f64, zs: &[f64]) -> AnalyticsResult<Vec<f64>> {
    check_hyp2f1_args(a, b, c, zs)?;
    if a == 0.0 || b == 0.0 {
        return Ok(vec![1.0; zs.len()]);
    }
    let excess = c - a - b;
    let (ca, cb) = if excess < 0.0 { (c - a, c - b) } else { (a, b) };
    let mut out = vec![f64::NAN; zs.len()];
    // z values the (shared) Maclaurin series handles; the rest go one by one.
    let shared: Vec<usize> = (0..zs.len())
        .filter(|&i| zs[i] <= SERIES_MAX_Z || -39.0 / zs[i].ln() <= SHORT_SERIES_TERMS as f64)
        .collect();
    let budget = if shared.iter().all(|&i| zs[i] <= SERIES_MAX_Z) {
        MAX_TERMS
    } else {
        2 * SHORT_SERIES_TERMS
    };
    let shared_z: Vec<f64> = shared.iter().map(|&i| zs[i]).collect();
    let shared_ok = match maclaurin_many(ca, cb, c, &shared_z, budget) {
        Ok(values) => {
            for (&i, v) in shared.iter().zip(values) {
                out[i] = v;
            }
            true
        }
        Err(_) => false,
    };
    for (i, &z) in zs.iter().enumerate() {
        if !shared_ok || !shared.contains(&i) {
            out[i] = hyp2f1_core(ca, cb, c, z)?;
        }
        if excess < 0.0 {
            out[i] = euler_scale(a, b, c, z, out[i])?;
        }
    }
    Ok(out)
}

fn check_hyp2f1_args(a: f64, b: f64, c: f64, zs: &[f64]) -> AnalyticsResult<()> {
    for (name, v) in [("a", a), ("b", b), ("c", c)] {
        if !v.is_finite() {
            return Err(AnalyticsError::NonFinite(format!(
                "hyp2f1 argument {name} = {v}"
            )));
        }
    }
    for &z in zs {
        if !z.is_finite() {
            return Err(AnalyticsError::NonFinite(format!(
                "hyp2f1 argument z = {z}"
            )));
        }
        if !(0.0..1.0).contains(&z) {
            return Err(AnalyticsError::InvalidInput(format!(
                "hyp2f1 needs 0 <= z < 1, got z = {z}"
            )));
        }
    }
    if c <= 0.0 && c == c.floor() {
        return Err(AnalyticsError::Undefined(format!(
            "hyp2f1 with non-positive integer c = {c}"
        )));
    }
    Ok(())
}

/// `(1-z)^(c-a-b) f`, erroring on overflow.
fn euler_scale(a: f64, b: f64, c: f64, z: f64, f: f64) -> AnalyticsResult<f64> {
    let value = f * ((c - a - b) * (-z).ln_1p()).exp();
    if value.is_finite() {
        Ok(value)
    } else {
        Err(AnalyticsError::NoConvergence(format!(
            "hyp2f1({a}, {b}; {c}; {z}) overflows f64"
        )))
    }
}

/// Maclaurin series at several `z` at once; same stopping rule as [`maclaurin`] for each.
fn maclaurin_many(
    a: f64,
    b: f64,
    c: f64,
    zs: &[f64],
    max_terms: usize,
) -> AnalyticsResult<Vec<f64>> {
    let m = zs.len();
    let mut sums = vec![1.0_f64; m];
    let mut abs_sums = vec![1.0_f64; m];
    let mut powers = vec![1.0_f64; m];
    let mut quiet = vec![0u8; m];
    let mut done: Vec<bool> = zs.iter().map(|&z| z == 0.0).collect();
    let mut open = done.iter().filter(|d| !**d).count();
    let settled = [a, b, c, 1.0]
        .iter()
        .map(|v| (-v).max(0.0).ceil())
        .fold(0.0_f64, f64::max);
    let mut coef = 1.0_f64;
    for n in 0..max_terms {
        if open == 0 {
            break;
        }
        let nf = n as f64;
        coef *= (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0));
        if coef == 0.0 {
            open = 0;
            break;
        }
        let n1 = nf + 1.0;
        let mut next_ratio = f64::NAN;
        for k in 0..m {
            if done[k] {
                continue;
            }
            powers[k] *= zs[k];
            let term = coef * powers[k];
            sums[k] += term;
            abs_sums[k] += term.abs();
            if !sums[k].is_finite() || !abs_sums[k].is_finite() {
                return Err(AnalyticsError::NoConvergence(format!(
                    "hyp2f1({a}, {b}; {c}; {}) series overflowed",
                    zs[k]
                )));
            }
            if n1 > settled && term.abs() <= EPS * sums[k].abs() {
                if next_ratio.is_nan() {
                    next_ratio = ((a + n1) * (b + n1) / ((c + n1) * (n1 + 1.0))).abs();
                }
                let rho = (next_ratio * zs[k]).max(zs[k]);
                if rho < 1.0 && term.abs() * rho <= EPS * sums[k].abs() * (1.0 - rho) {
                    quiet[k] += 1;
                    if quiet[k] >= 2 {
                        done[k] = true;
                        open -= 1;
                    }
                    continue;
                }
            }
            quiet[k] = 0;
        }
    }
    if open > 0 {
        return Err(AnalyticsError::NoConvergence(format!(
            "hyp2f1({a}, {b}; {c}; z) series did not converge in {max_terms} terms"
        )));
    }
    (0..m)
        .map(|k| check_cancellation(a, b, c, zs[k], sums[k], abs_sums[k]))
        .collect()
}

/// 2F1 without the Euler transformation (arguments already checked).
fn hyp2f1_core(a: f64, b: f64, c: f64, z: f64) -> AnalyticsResult<f64> {
    if z == 0.0 || a == 0.0 || b == 0.0 {
        return Ok(1.0);
    }
    if z <= SERIES_MAX_Z {
        return maclaurin(a, b, c, z, MAX_TERMS);
    }
    // Terms decay like n^(a+b-c-1) z^n: when z^n alone reaches 1e-17 within a modest number of
    // terms the series is the cheapest and most accurate route (notably for large c, where the
    // continuation is ill-conditioned: the second solution z^(1-c) has huge Taylor terms).
    let short_series = -39.0 / z.ln();
    if short_series <= SHORT_SERIES_TERMS as f64
        && let Ok(v) = maclaurin(a, b, c, z, 2 * SHORT_SERIES_TERMS)
    {
        return Ok(v);
    }
    let z0 = CONTINUATION_START;
    let f0 = maclaurin(a, b, c, z0, MAX_TERMS)?;
    let df0 = a * b / c * maclaurin(a + 1.0, b + 1.0, c + 1.0, z0, MAX_TERMS)?;
    match continue_ode(a, b, c, z0, f0, df0, z) {
        Ok(v) => Ok(v),
        // Last resort: the long series (slow, but converges for every z < 1).
        Err(e) => maclaurin(a, b, c, z, MAX_TERMS).map_err(|_| e),
    }
}

/// Maclaurin series of 2F1 with a tail bound and a cancellation check.
fn maclaurin(a: f64, b: f64, c: f64, z: f64, max_terms: usize) -> AnalyticsResult<f64> {
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let mut abs_sum = 1.0_f64;
    // Past this index all of (a+n), (b+n), (c+n) are positive, so term signs are fixed and the
    // term ratio tends monotonically to z.
    let settled = [a, b, c, 1.0]
        .iter()
        .map(|v| (-v).max(0.0).ceil())
        .fold(0.0_f64, f64::max);
    let mut quiet = 0;
    for n in 0..max_terms {
        let nf = n as f64;
        let ratio = (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        term *= ratio;
        sum += term;
        abs_sum += term.abs();
        if !sum.is_finite() || !abs_sum.is_finite() {
            return Err(AnalyticsError::NoConvergence(format!(
                "hyp2f1({a}, {b}; {c}; {z}) series overflowed"
            )));
        }
        if term == 0.0 {
            // Terminating (polynomial) case: a or b is a non-positive integer.
            return check_cancellation(a, b, c, z, sum, abs_sum);
        }
        let n1 = nf + 1.0;
        // Cheap necessary test first; the tail bound (with a division) only near the end.
        if n1 > settled && term.abs() <= EPS * sum.abs() {
            let next_ratio = ((a + n1) * (b + n1) / ((c + n1) * (n1 + 1.0)) * z).abs();
            let rho = next_ratio.max(z);
            if rho < 1.0 && term.abs() * rho <= EPS * sum.abs() * (1.0 - rho) {
                quiet += 1;
                if quiet >= 2 {
                    return check_cancellation(a, b, c, z, sum, abs_sum);
                }
                continue;
            }
        }
        quiet = 0;
    }
    Err(AnalyticsError::NoConvergence(format!(
        "hyp2f1({a}, {b}; {c}; {z}) series did not converge in {max_terms} terms"
    )))
}

fn check_cancellation(
    a: f64,
    b: f64,
    c: f64,
    z: f64,
    sum: f64,
    abs_sum: f64,
) -> AnalyticsResult<f64> {
    if abs_sum > MAX_CANCELLATION * sum.abs() {
        Err(AnalyticsError::NoConvergence(format!(
            "hyp2f1({a}, {b}; {c}; {z}) series lost too many digits to cancellation"
        )))
    } else {
        Ok(sum)
    }
}

/// Integrates `z(1-z) w'' + [c - (a+b+1) z] w' - a b w = 0` from `(z0, f, df)` to `z_end` by
/// successive Taylor expansions, each within half of its convergence radius `1 - z0`.
fn continue_ode(
    a: f64,
    b: f64,
    c: f64,
    mut z0: f64,
    mut f: f64,
    mut df: f64,
    z_end: f64,
) -> AnalyticsResult<f64> {
    let apb1 = a + b + 1.0;
    let mut steps = 0;
    while z0 < z_end {
        steps += 1;
        if steps > 2_000 {
            return Err(AnalyticsError::NoConvergence(format!(
                "hyp2f1({a}, {b}; {c}; {z_end}) continuation took too many steps"
            )));
        }
        let radius = (1.0 - z0).min(z0);
        let remaining = z_end - z0;
        let h = remaining.min(STEP_FRACTION * radius);
        let p0 = z0 * (1.0 - z0);
        let p1 = 1.0 - 2.0 * z0;
        let q0 = c - apb1 * z0;
        // Taylor coefficients c_n of w(z0 + h): c_0 = f, c_1 = f'.
        let mut c_prev = f;
        let mut c_cur = df;
        let mut val = f + df * h;
        let mut dval = df;
        let mut abs_val = f.abs() + (df * h).abs();
        let mut h_pow = h; // h^(n+1)
        let mut quiet = 0;
        let mut done = false;
        for n in 0..MAX_TERMS {
            let nf = n as f64;
            let c_next = ((nf + a) * (nf + b) * c_prev - (p1 * nf + q0) * (nf + 1.0) * c_cur)
                / (p0 * (nf + 2.0) * (nf + 1.0));
            let d_term = (nf + 2.0) * c_next * h_pow;
            h_pow *= h;
            let term = c_next * h_pow;
            val += term;
            dval += d_term;
            abs_val += term.abs();
            if !val.is_finite() || !dval.is_finite() {
                return Err(AnalyticsError::NoConvergence(format!(
                    "hyp2f1({a}, {b}; {c}; {z_end}) continuation overflowed"
                )));
            }
            let small = |t: f64, s: f64| t.abs() <= EPS * s.abs() || t == 0.0;
            if nf > a.abs() + b.abs() + c.abs() + 4.0 && small(term, val) && small(d_term, dval) {
                quiet += 1;
                if quiet >= 3 {
                    done = true;
                    break;
                }
            } else {
                quiet = 0;
            }
            c_prev = c_cur;
            c_cur = c_next;
        }
        if !done {
            return Err(AnalyticsError::NoConvergence(format!(
                "hyp2f1({a}, {b}; {c}; {z_end}) continuation series did not converge"
            )));
        }
        if abs_val > MAX_CANCELLATION * val.abs() {
            return Err(AnalyticsError::NoConvergence(format!(
                "hyp2f1({a}, {b}; {c}; {z_end}) continuation lost too many digits"
            )));
        }
        f = val;
        df = dval;
        z0 = if h == remaining { z_end } else { z0 + h };
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
