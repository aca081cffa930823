//! Small unconstrained minimisers for the model fits (a handful of parameters).
//!
//! - [`bfgs`]: quasi-Newton BFGS with an inverse-Hessian update and a strong-Wolfe line search
//!   (Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, algorithms 6.1, 3.5 and 3.6).
//!   This is what `scipy.optimize.minimize` runs by default when given a gradient, i.e. what the
//!   `lifetimes` fitters use. Near the optimum, where the objective changes by less than its
//!   rounding noise and line searches stall, BFGS hands over to a few Newton steps on the
//!   (analytic) gradient with a finite-difference Hessian, so tight gradient tolerances are
//!   reachable.
//! - [`nelder_mead`]: the downhill simplex with adaptive coefficients (Gao & Han 2012), used as a
//!   derivative-free fallback.
//!
//! Objective functions return `f64`; a non-finite value is treated as "infinitely bad" (the line
//! search backs off), so objectives need not guard against overflow far from the optimum.

/// Outcome of a minimisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub x: Vec<f64>,
    /// The objective at `x`.
    pub value: f64,
    /// Iterations performed.
    pub iterations: usize,
    /// Objective evaluations performed.
    pub evaluations: usize,
    /// Whether the convergence criterion was met (as opposed to stalling or the iteration cap).
    pub converged: bool,
}

/// Options of [`bfgs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BfgsOptions {
    /// Stop when the largest absolute gradient component is at most this.
    pub gradient_tolerance: f64,
    /// Iteration cap.
    pub max_iterations: usize,
}

impl Default for BfgsOptions {
    fn default() -> Self {
        Self {
            gradient_tolerance: 1e-9,
            max_iterations: 500,
        }
    }
}

/// Options of the maximum-likelihood fits (`bgnbd::fit`, `gamma_gamma::fit`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 penalty on the parameters, as `lifetimes`' `penalizer_coef` (default 0).
    pub penalizer: f64,
    /// Minimum number of usable repeat customers (default 10).
    pub min_repeat_customers: usize,
    /// BFGS stopping tolerance on the largest gradient component of the mean objective.
    pub gradient_tolerance: f64,
    /// BFGS iteration cap.
    pub max_iterations: usize,
    /// Threads that may evaluate the likelihood's terms side by side (default 1). The terms
    /// are still summed in one order, so the fit is the same whatever the number.
    pub threads: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            penalizer: 0.0,
            min_repeat_customers: 10,
            gradient_tolerance: 1e-9,
            max_iterations: 500,
            threads: 1,
        }
    }
}

/// Minimises a penalised mean negative log-likelihood over log-parameters, as both model fits
/// do: BFGS from `x0`; if it does not converge, Nelder-Mead from where it stopped, then BFGS
/// again from the better of the two. `objective(theta, Some(grad))` also fills the gradient.
/// Returns the best minimum and the iterations of all stages; a point that ran off to
/// non-finite or huge log-parameters is an error naming `model`.
pub fn fit_log_params<F>(
    objective: F,
    x0: &[f64],
    options: &FitOptions,
    model: &str,
) -> Result<(Minimum, usize), super::AnalyticsError>
where
    F: Fn(&[f64], Option<&mut [f64]>) -> f64,
{
    let with_gradient = |theta: &[f64], grad: &mut [f64]| objective(theta, Some(grad));
    let bfgs_options = BfgsOptions {
        gradient_tolerance: options.gradient_tolerance,
        max_iterations: options.max_iterations,
    };
    let mut best = bfgs(with_gradient, x0, &bfgs_options);
    let mut iterations = best.iterations;
    if !best.converged {
        let simplex = nelder_mead(
            |theta: &[f64]| objective(theta, None),
            &best.x,
            &NelderMeadOptions::default(),
        );
        iterations += simplex.iterations;
        let start = if simplex.value < best.value {
            simplex.x
        } else {
            best.x.clone()
        };
        let polished = bfgs(with_gradient, &start, &bfgs_options);
        iterations += polished.iterations;
        if polished.value <= best.value || polished.converged {
            best = polished;
        }
    }
    if !best.value.is_finite() || best.x.iter().any(|v| !v.is_finite() || v.abs() > 60.0) {
        return Err(super::AnalyticsError::NoConvergence(format!(
            "{model} fit ran off to degenerate parameters (log-parameters {:?})",
            best.x
        )));
    }
    Ok((best, iterations))
}

/// A gradient this small, where `f` no longer changes beyond rounding, is a minimum to machine
/// precision (see the end of [`bfgs`]).
const STATIONARY_GRADIENT: f64 = 1e-6;

/// Minimises `f` with BFGS. `f(x, grad)` returns the objective and writes its gradient.
///
/// Starts from `x0` with the identity as inverse Hessian. Returns the best point found even when
/// not converged (`converged == false`): the caller decides what to do with it.
pub fn bfgs<F>(mut f: F, x0: &[f64], options: &BfgsOptions) -> Minimum
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut evaluations = 1;
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Minimum {
            x,
            value: fx,
            iterations: 0,
            evaluations,
            converged: false,
        };
    }
    let mut h_inv = identity(n);
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut dir = vec![0.0; n];
    let mut iterations = 0;
    let mut converged = max_abs(&g) <= options.gradient_tolerance;
    let mut resets = 0;
    let mut flat = 0;
    while !converged && iterations < options.max_iterations {
        iterations += 1;
        // dir = -H g
        for i in 0..n {
            dir[i] = -(0..n).map(|j| h_inv[i][j] * g[j]).sum::<f64>();
        }
        let mut slope = dot(&dir, &g);
        if slope >= 0.0 || !slope.is_finite() {
            // Not a descent direction: restart from steepest descent.
            h_inv = identity(n);
            for i in 0..n {
                dir[i] = -g[i];
            }
            slope = dot(&dir, &g);
        }
        let step = line_search(
            &mut f,
            &x,
            fx,
            slope,
            &dir,
            &mut x_new,
            &mut g_new,
            &mut evaluations,
        );
        let Some(f_new) = step else {
            // Line search failed: retry once from steepest descent, else give up.
            if resets < 2 {
                resets += 1;
                h_inv = identity(n);
                continue;
            }
            break;
        };
        let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
        let f_old = fx;
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        fx = f_new;
        if max_abs(&g) <= options.gradient_tolerance {
            converged = true;
            break;
        }
        let sy = dot(&s, &y);
        if sy > 1e-300 {
            if is_identity(&h_inv) {
                // Scale the initial inverse Hessian (N&W eq. 6.20).
                let yy = dot(&y, &y);
                if yy > 0.0 {
                    let scale = sy / yy;
                    h_inv = identity(n);
                    for (i, row) in h_inv.iter_mut().enumerate() {
                        row[i] = scale;
                    }
                }
            }
            bfgs_update(&mut h_inv, &s, &y, sy);
        }
        // Near the optimum, f changes by less than its rounding noise and line searches can no
        // longer see progress: hand over to the gradient-only Newton polish below.
        if f_old - fx <= 1e-14 * fx.abs().max(1e-300) {
            flat += 1;
            if flat >= 3 {
                break;
            }
        } else {
            flat = 0;
        }
    }
    if !converged {
        converged = newton_polish(
            &mut f,
            &mut x,
            &mut g,
            &mut fx,
            options,
            &mut evaluations,
            &mut iterations,
        );
    }
    // With many observations the objective's rounding noise can exceed what a step towards a
    // 1e-9 gradient would gain: line searches stop finding decreases while the gradient is still
    // ~1e-8. That point is a minimum to machine precision (the objectives here are mean
    // log-likelihoods of order 1); calling it unconverged sent large fits into a slow
    // Nelder-Mead fallback and reported `converged: false` for a correct answer.
    if !converged && max_abs(&g) <= STATIONARY_GRADIENT {
        converged = true;
    }
    Minimum {
        x,
        value: fx,
        iterations,
        evaluations,
        converged,
    }
}

/// Newton iterations on the gradient with a central-difference Hessian of the (analytic)
/// gradient, within the iteration cap. Accepts a step when it lowers the largest gradient component without raising `f`
/// beyond rounding noise, and only while the Hessian is positive definite (so it cannot walk to
/// a saddle). Returns whether the gradient tolerance was met.
#[allow(clippy::too_many_arguments)]
fn newton_polish<F>(
    f: &mut F,
    x: &mut [f64],
    g: &mut [f64],
    fx: &mut f64,
    options: &BfgsOptions,
    evaluations: &mut usize,
    iterations: &mut usize,
) -> bool
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x.len();
    let mut xp = x.to_vec();
    let mut gp = vec![0.0; n];
    let mut gm = vec![0.0; n];
    let mut gn = vec![0.0; n];
    let gradient_tolerance = options.gradient_tolerance;
    for _ in 0..20 {
        let g_norm = max_abs(g);
        if g_norm <= gradient_tolerance {
            return true;
        }
        if *iterations >= options.max_iterations {
            break;
        }
        let mut hess = vec![vec![0.0; n]; n];
        for j in 0..n {
            let step = 1e-5 * (1.0 + x[j].abs());
            xp[j] = x[j] + step;
            let fp = f(&xp, &mut gp);
            xp[j] = x[j] - step;
            let fm = f(&xp, &mut gm);
            xp[j] = x[j];
            *evaluations += 2;
            if !fp.is_finite() || !fm.is_finite() {
                return false;
            }
            for i in 0..n {
                hess[i][j] = (gp[i] - gm[i]) / (2.0 * step);
            }
        }
        let hess: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| 0.5 * (hess[i][j] + hess[j][i])).collect())
            .collect();
        let minus_g: Vec<f64> = g.iter().map(|v| -v).collect();
        let Some(dir) = cholesky_solve(&hess, &minus_g) else {
            return false;
        };
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..10 {
            for i in 0..n {
                xp[i] = x[i] + t * dir[i];
            }
            let f_new = f(&xp, &mut gn);
            *evaluations += 1;
            let noise = 1e-12 * fx.abs().max(1.0);
            if f_new.is_finite() && max_abs(&gn) < g_norm && f_new <= *fx + noise {
                x.copy_from_slice(&xp);
                g.copy_from_slice(&gn);
                *fx = f_new;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        xp.copy_from_slice(x);
        if !accepted {
            break;
        }
        *iterations += 1;
    }
    max_abs(g) <= gradient_tolerance
}

/// Solves `A x = b` for symmetric positive definite `A`; `None` if `A` is not.
fn cholesky_solve(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

fn identity(n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect()
}

fn is_identity(m: &[Vec<f64>]) -> bool {
    m.iter().enumerate().all(|(i, row)| {
        row.iter()
            .enumerate()
            .all(|(j, &v)| v == if i == j { 1.0 } else { 0.0 })
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0_f64, |m, x| m.max(x.abs()))
}

/// H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T, rho = 1 / (y^T s).
fn bfgs_update(h: &mut [Vec<f64>], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n).map(|i| dot(&h[i], y)).collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i][j] += -rho * (s[i] * hy[j] + hy[i] * s[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

/// Strong-Wolfe line search (N&W algorithm 3.5 with zoom 3.6, cubic/bisection interpolation).
/// On success writes the accepted point and gradient into `x_new`/`g_new` and returns f there.
#[allow(clippy::too_many_arguments)]
fn line_search<F>(
    f: &mut F,
    x: &[f64],
    f0: f64,
    slope0: f64,
    dir: &[f64],
    x_new: &mut [f64],
    g_new: &mut [f64],
    evaluations: &mut usize,
) -> Option<f64>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const MAX_EVALS: usize = 60;
    let mut eval = |alpha: f64, xn: &mut [f64], gn: &mut [f64], count: &mut usize| -> (f64, f64) {
        for i in 0..x.len() {
            xn[i] = x[i] + alpha * dir[i];
        }
        *count += 1;
        let v = f(xn, gn);
        if !v.is_finite() || gn.iter().any(|g| !g.is_finite()) {
            (f64::INFINITY, f64::NAN)
        } else {
            (v, dot(gn, dir))
        }
    };
    let mut used = 0;
    let mut alpha_prev = 0.0;
    let mut f_prev = f0;
    let mut d_prev = slope0;
    let mut alpha = 1.0;
    let mut lo_hi: Option<(f64, f64, f64, f64, f64, f64)> = None; // (a_lo, f_lo, d_lo, a_hi, f_hi, d_hi)
    while used < MAX_EVALS {
        let (fa, da) = eval(alpha, x_new, g_new, evaluations);
        used += 1;
        if !fa.is_finite() {
            // Overshot into an invalid region: shrink.
            if alpha_prev == 0.0 && alpha < 1e-20 {
                return None;
            }
            alpha = alpha_prev + 0.25 * (alpha - alpha_prev);
            continue;
        }
        if fa > f0 + C1 * alpha * slope0 || (alpha_prev > 0.0 && fa >= f_prev) {
            lo_hi = Some((alpha_prev, f_prev, d_prev, alpha, fa, da));
            break;
        }
        if da.abs() <= -C2 * slope0 {
            return Some(fa);
        }
        if da >= 0.0 {
            lo_hi = Some((alpha, fa, da, alpha_prev, f_prev, d_prev));
            break;
        }
        alpha_prev = alpha;
        f_prev = fa;
        d_prev = da;
        alpha *= 2.0;
    }
    let (mut a_lo, mut f_lo, mut d_lo, mut a_hi, mut f_hi, mut d_hi) = lo_hi?;
    // Objective values this close to `f0` are rounding noise (the objectives are sums over many
    // observations): once both ends of the bracket are there, interpolating on them cannot find a
    // real decrease, and zooming on would only spend evaluations (up to `MAX_EVALS` per failed
    // search, several per fit on large data). Stop and let the caller hand over to the
    // gradient-only Newton polish.
    let noise = 1e-14 * f0.abs().max(1e-300);
    while used < MAX_EVALS {
        let width = a_hi - a_lo;
        if width.abs() < 1e-16 * a_lo.abs().max(1e-300) {
            break;
        }
        if (f_lo - f0).abs() <= noise && (f_hi - f0).abs() <= noise {
            break;
        }
        let mut trial = cubic_min(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi);
        let (lo, hi) = if a_lo < a_hi {
            (a_lo, a_hi)
        } else {
            (a_hi, a_lo)
        };
        let margin = 0.1 * (hi - lo);
        if !trial.is_finite() || trial < lo + margin || trial > hi - margin {
            trial = 0.5 * (a_lo + a_hi);
        }
        let (ft, dt) = eval(trial, x_new, g_new, evaluations);
        used += 1;
        if !ft.is_finite() || ft > f0 + C1 * trial * slope0 || ft >= f_lo {
            a_hi = trial;
            f_hi = ft;
            d_hi = dt;
        } else {
            if dt.abs() <= -C2 * slope0 {
                return Some(ft);
            }
            if dt * (a_hi - a_lo) >= 0.0 {
                a_hi = a_lo;
                f_hi = f_lo;
                d_hi = d_lo;
            }
            a_lo = trial;
            f_lo = ft;
            d_lo = dt;
        }
    }
    // Fall back to the best sufficient-decrease point found, if any.
    if a_lo > 0.0 && f_lo < f0 {
        let (fl, _) = eval(a_lo, x_new, g_new, evaluations);
        if fl.is_finite() && fl < f0 {
            return Some(fl);
        }
    }
    None
}

/// Minimiser of the cubic interpolating (a, fa, da) and (b, fb, db); NaN when there is none.
fn cubic_min(a: f64, fa: f64, da: f64, b: f64, fb: f64, db: f64) -> f64 {
    if !fb.is_finite() || !db.is_finite() {
        return f64::NAN;
    }
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    if disc < 0.0 {
        return f64::NAN;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
}

/// Options of [`nelder_mead`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NelderMeadOptions {
    /// Edge length of the initial simplex around the start point.
    pub initial_step: f64,
    /// Stop when both the spread of simplex values and the simplex diameter are below this.
    pub tolerance: f64,
    /// Iteration cap (per restart).
    pub max_iterations: usize,
    /// Number of restarts from the best point with a fresh simplex.
    pub restarts: usize,
}

impl Default for NelderMeadOptions {
    fn default() -> Self {
        Self {
            initial_step: 0.5,
            tolerance: 1e-10,
            max_iterations: 5_000,
            restarts: 3,
        }
    }
}

/// Minimises `f` with the adaptive Nelder-Mead simplex, restarting from the best vertex.
///
/// `converged` is true when the last restart met the tolerance without moving the optimum
/// noticeably.
pub fn nelder_mead<F>(mut f: F, x0: &[f64], options: &NelderMeadOptions) -> Minimum
where
    F: FnMut(&[f64]) -> f64,
{
    let n = x0.len();
    if n == 0 {
        let value = f(x0);
        return Minimum {
            x: Vec::new(),
            value,
            iterations: 0,
            evaluations: 1,
            converged: true,
        };
    }
    let nf = n as f64;
    let (alpha, gamma, rho, sigma) = (1.0, 1.0 + 2.0 / nf, 0.75 - 0.5 / nf, 1.0 - 1.0 / nf);
    let mut eval_count = 0;
    let mut eval = |x: &[f64], count: &mut usize| -> f64 {
        *count += 1;
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut best = x0.to_vec();
    let mut best_value = eval(&best, &mut eval_count);
    let mut iterations = 0;
    let mut converged = false;
    for _ in 0..=options.restarts {
        let mut simplex: Vec<Vec<f64>> = vec![best.clone()];
        for i in 0..n {
            let mut v = best.clone();
            v[i] += options.initial_step;
            simplex.push(v);
        }
        let mut values: Vec<f64> = simplex.iter().map(|v| eval(v, &mut eval_count)).collect();
        let start_value = best_value;
        let mut met = false;
        for _ in 0..options.max_iterations {
            iterations += 1;
            let mut order: Vec<usize> = (0..=n).collect();
            order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
            simplex = order.iter().map(|&i| simplex[i].clone()).collect();
            values = order.iter().map(|&i| values[i]).collect();
            let spread = values[n] - values[0];
            let diameter = simplex[1..]
                .iter()
                .map(|v| {
                    v.iter()
                        .zip(&simplex[0])
                        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()))
                })
                .fold(0.0_f64, f64::max);
            if spread.abs() <= options.tolerance && diameter <= options.tolerance {
                met = true;
                break;
            }
            let centroid: Vec<f64> = (0..n)
                .map(|j| simplex[..n].iter().map(|v| v[j]).sum::<f64>() / nf)
                .collect();
            let along = |t: f64| -> Vec<f64> {
                (0..n)
                    .map(|j| centroid[j] + t * (simplex[n][j] - centroid[j]))
                    .collect()
            };
            let xr = along(-alpha);
            let fr = eval(&xr, &mut eval_count);
            if fr < values[0] {
                let xe = along(-alpha * gamma);
                let fe = eval(&xe, &mut eval_count);
                if fe < fr {
                    simplex[n] = xe;
                    values[n] = fe;
                } else {
                    simplex[n] = xr;
                    values[n] = fr;
                }
                continue;
            }
            if fr < values[n - 1] {
                simplex[n] = xr;
                values[n] = fr;
                continue;
            }
            let (xc, fc) = if fr < values[n] {
                let xc = along(-alpha * rho);
                let fc = eval(&xc, &mut eval_count);
                (xc, fc)
            } else {
                let xc = along(rho);
                let fc = eval(&xc, &mut eval_count);
                (xc, fc)
            };
            if fc < values[n].min(fr) {
                simplex[n] = xc;
                values[n] = fc;
                continue;
            }
            // Shrink towards the best vertex.
            let (first, rest) = simplex.split_at_mut(1);
            for (vertex, value) in rest.iter_mut().zip(values.iter_mut().skip(1)) {
                for (v, b) in vertex.iter_mut().zip(&first[0]) {
                    *v = b + sigma * (*v - b);
                }
                *value = eval(vertex, &mut eval_count);
            }
        }
        let (i_best, &v_best) = values
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &best_value));
        if v_best <= best_value {
            best = simplex[i_best].clone();
            best_value = v_best;
        }
        converged = met && (start_value - best_value).abs() <= options.tolerance.max(1e-12);
        if converged {
            break;
        }
    }
    Minimum {
        x: best,
        value: best_value,
        iterations,
        evaluations: eval_count,
        converged,
    }
}

/// Asserts that the analytic gradient `f` writes matches central finite differences at `theta`
/// (for the likelihoods the fits minimise).
#[cfg(test)]
pub(crate) fn assert_gradient_matches(
    f: impl Fn(&[f64], Option<&mut [f64]>) -> f64,
    theta: &[f64],
) {
    let mut g = vec![0.0; theta.len()];
    assert!(f(theta, Some(&mut g)).is_finite());
    for i in 0..theta.len() {
        let h = 1e-6;
        let (mut up, mut dn) = (theta.to_vec(), theta.to_vec());
        up[i] += h;
        dn[i] -= h;
        let fd = (f(&up, None) - f(&dn, None)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-6 * (1.0 + g[i].abs()),
            "i={i}: {fd} vs {}",
            g[i]
        );
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_minimum_hidden_by_rounding_noise_counts_as_converged() {
        // Like a mean log-likelihood over many customers: f sits at 5.0, where its rounding
        // step (~9e-16) exceeds what any step towards the 1e-9 gradient tolerance could gain,
        // and the summed gradient carries noise of ~1e-8 that no Newton step can remove.
        let f = |x: &[f64], g: &mut [f64]| {
            let noise = (x[0].to_bits().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64
                / (1u64 << 24) as f64;
            g[0] = 2e-3 * (x[0] - 1.0) + 2e-8 * (noise - 0.5);
            5.0 + 1e-3 * (x[0] - 1.0) * (x[0] - 1.0)
        };
        let m = bfgs(
            f,
            &[1.0 + 1e-6],
            &BfgsOptions {
                gradient_tolerance: 1e-12,
                max_iterations: 50,
            },
        );
        assert!(m.converged, "{m:?}");
        assert!((m.x[0] - 1.0).abs() < 1e-4, "{m:?}");
    }
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        let (a, b) = (x[0], x[1]);
        g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        g[1] = 200.0 * (b - a * a);
        (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
    }

    #[test]
    fn bfgs_solves_rosenbrock() {
        let m = bfgs(rosenbrock, &[-1.2, 1.0], &BfgsOptions::default());
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8,
            "{m:?}"
        );
        assert!(m.iterations < 100);
    }

    #[test]
    fn bfgs_quadratic_4d_and_invalid_region() {
        // Minimum at (1, 2, 3, 4); infinite outside |x_i| < 10 (exercises the back-off).
        let f = |x: &[f64], g: &mut [f64]| {
            if x.iter().any(|v| v.abs() >= 10.0) {
                return f64::INFINITY;
            }
            let mut s = 0.0;
            for i in 0..4 {
                let w = (i + 1) as f64;
                let d = x[i] - w;
                s += w * d * d;
                g[i] = 2.0 * w * d;
            }
            s
        };
        let m = bfgs(f, &[9.0, -9.0, 0.0, 0.0], &BfgsOptions::default());
        assert!(m.converged);
        for (i, v) in m.x.iter().enumerate() {
            assert!((v - (i + 1) as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn bfgs_reports_non_convergence() {
        let m = bfgs(
            rosenbrock,
            &[-1.2, 1.0],
            &BfgsOptions {
                max_iterations: 3,
                ..Default::default()
            },
        );
        assert!(!m.converged);
        assert_eq!(m.iterations, 3);
        let nan = bfgs(
            |_x: &[f64], _g: &mut [f64]| f64::NAN,
            &[0.0],
            &BfgsOptions::default(),
        );
        assert!(!nan.converged);
    }

    #[test]
    fn nelder_mead_solves_rosenbrock() {
        let f = |x: &[f64]| {
            let mut g = [0.0; 2];
            rosenbrock(x, &mut g)
        };
        let m = nelder_mead(f, &[-1.2, 1.0], &NelderMeadOptions::default());
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
        let empty = nelder_mead(|_x: &[f64]| 1.0, &[], &NelderMeadOptions::default());
        assert!(empty.converged && empty.x.is_empty());
    }
}
