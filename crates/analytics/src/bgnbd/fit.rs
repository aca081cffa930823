//! Maximum-likelihood fitting of the BG/NBD model (see the parent module's docs).

use std::cell::RefCell;
use std::sync::mpsc;

use super::super::optimize::fit_log_params;
use super::super::special::{digamma, ln_gamma};
use super::super::{AnalyticsError, AnalyticsResult, ensure_finite};
use super::{BgNbdParams, FitOptions, Observation};

/// A fitted BG/NBD model.
#[derive(Debug, Clone, PartialEq)]
pub struct BgNbdFit {
    /// Maximum-likelihood parameters, with `alpha` in the caller's time unit.
    pub params: BgNbdParams,
    /// Total (summed, unpenalised) log-likelihood at `params`.
    pub log_likelihood: f64,
    /// Optimiser iterations (BFGS plus any fallback).
    pub iterations: usize,
    /// Whether the optimiser met its gradient tolerance.
    pub converged: bool,
    /// Number of customers fitted.
    pub customers: usize,
    /// Number of distinct `(x, t_x, T)` patterns the likelihood was evaluated on.
    pub patterns: usize,
}

/// Fits the BG/NBD model by maximum likelihood (see the module docs).
///
/// Errors: `InvalidInput`/`NonFinite` for invalid observations or options, `NotEnoughData`
/// when fewer than `min_repeat_customers` customers have `frequency > 0` or all `T` are 0, and
/// `NoConvergence` when the optimum runs off to degenerate (zero or infinite) parameters.
/// A fit that ends near an optimum without meeting the tolerance is returned with
/// `converged == false`.
pub fn fit(data: &[Observation], options: &FitOptions) -> AnalyticsResult<BgNbdFit> {
    prepare(data, options)?.fit(options)
}

/// The observations checked and reduced to their distinct patterns: the part of a fit that
/// needs the data, which [`Prepared::fit`] then no longer does (so that it can be done
/// beside other work, on `options.threads` threads).
pub fn prepare(data: &[Observation], options: &FitOptions) -> AnalyticsResult<Prepared> {
    ensure_finite("penalizer", options.penalizer)?;
    if options.penalizer < 0.0 {
        return Err(AnalyticsError::InvalidInput("penalizer < 0".into()));
    }
    let mut repeat = 0;
    let mut max_t: f64 = 0.0;
    for obs in data {
        obs.validate()?;
        repeat += usize::from(obs.frequency > 0);
        max_t = max_t.max(obs.t);
    }
    let needed = options.min_repeat_customers.max(1);
    if repeat < needed {
        return Err(AnalyticsError::NotEnoughData {
            what: "repeat customers",
            needed,
            got: repeat,
        });
    }
    if max_t <= 0.0 {
        return Err(AnalyticsError::NotEnoughData {
            what: "customers observed for T > 0",
            needed: 1,
            got: 0,
        });
    }
    let scale = 10.0 / max_t;
    let original = Patterns::new(data, 1.0, options.threads);
    let scaled = original
        .rescaled(scale)
        .unwrap_or_else(|| Patterns::new(data, scale, options.threads));
    Ok(Prepared {
        original,
        scaled,
        scale,
        customers: data.len(),
    })
}

/// Observations ready to fit (see [`prepare`]).
pub struct Prepared {
    original: Patterns,
    /// The patterns with times scaled to at most 10, which the optimiser works on.
    scaled: Patterns,
    scale: f64,
    customers: usize,
}

impl Prepared {
    /// [`fit`] of the prepared observations; the likelihood's terms on `options.threads`
    /// threads. `options` other than the threads are those the observations were prepared with.
    pub fn fit(mut self, options: &FitOptions) -> AnalyticsResult<BgNbdFit> {
        let threads = options.threads.max(1);
        self.original.threads = threads;
        self.scaled.threads = threads;
        let Prepared {
            original,
            scaled,
            scale,
            customers,
        } = self;
        let (best, iterations) = fit_log_params(
            |theta: &[f64], grad: Option<&mut [f64]>| {
                scaled.negative_mean_ll(theta, grad, options.penalizer)
            },
            &[0.1; 4],
            options,
            "BG/NBD",
        )?;
        let params = BgNbdParams {
            r: best.x[0].exp(),
            alpha: best.x[1].exp() / scale,
            a: best.x[2].exp(),
            b: best.x[3].exp(),
        };
        params.validate()?;
        let theta = [
            params.r.ln(),
            params.alpha.ln(),
            params.a.ln(),
            params.b.ln(),
        ];
        let log_likelihood = -original.negative_mean_ll(&theta, None, 0.0) * original.total_weight;
        ensure_finite("BG/NBD log-likelihood", log_likelihood)?;
        Ok(BgNbdFit {
            params,
            log_likelihood,
            iterations,
            converged: best.converged,
            customers,
            patterns: original.rows.len(),
        })
    }
}

/// Distinct `(x, t_x, T)` patterns with weights, grouped by `x`, with times as indices into a
/// table of distinct time values (so each evaluation takes one log per distinct time).
pub(super) struct Patterns {
    /// Distinct time values (recency and T), scaled.
    times: Vec<f64>,
    /// (t_x index, T index, weight), sorted by x.
    pub(super) rows: Vec<(usize, usize, f64)>,
    /// (x, total weight, row range).
    groups: Vec<(f64, f64, std::ops::Range<usize>)>,
    total_weight: f64,
    /// Threads that compute the repeat patterns' terms, and the fewest rows worth a thread.
    threads: usize,
    pub(super) rows_per_thread: usize,
    /// How many rows' terms a thread hands over at a time.
    pub(super) rows_per_block: usize,
    /// Per row of `x > 0`, what it adds to the log-likelihood and subtracts from or adds to
    /// each gradient component (rows of `x = 0` unused): allocated by the first evaluation,
    /// reused by the next.
    terms: RefCell<Vec<[f64; 5]>>,
}

/// Below this many rows the terms are computed on the calling thread alone.
const ROWS_PER_THREAD: usize = 20_000;

/// Terms handed over at a time: small enough that the sum starts on a block soon after it is
/// computed, large enough that handing it over costs nothing next to computing it.
const ROWS_PER_BLOCK: usize = 8_192;

impl Patterns {
    pub(super) fn new(data: &[Observation], scale: f64, threads: usize) -> Self {
        let mut unsorted: Vec<f64> = Vec::with_capacity(2 * data.len());
        for obs in data {
            unsorted.push(obs.recency * scale);
            unsorted.push(obs.t * scale);
        }
        let mut times = sort_on(unsorted, threads, f64::total_cmp);
        times.dedup();
        let index = |v: f64| times.partition_point(|&u| u < v);
        let keyed: Vec<(u32, usize, usize)> = data
            .iter()
            .map(|o| (o.frequency, index(o.recency * scale), index(o.t * scale)))
            .collect();
        let keyed = sort_on(keyed, threads, Ord::cmp);
        let mut rows: Vec<(usize, usize, f64)> = Vec::new();
        let mut groups: Vec<(f64, f64, std::ops::Range<usize>)> = Vec::new();
        let mut last: Option<(u32, usize, usize)> = None;
        for key in keyed {
            if last == Some(key) {
                if let Some(row) = rows.last_mut() {
                    row.2 += 1.0;
                }
            } else {
                let x = f64::from(key.0);
                match groups.last_mut() {
                    Some(g) if last.map(|l| l.0) == Some(key.0) => g.2.end += 1,
                    _ => groups.push((x, 0.0, rows.len()..rows.len() + 1)),
                }
                rows.push((key.1, key.2, 1.0));
                last = Some(key);
            }
            if let Some(g) = groups.last_mut() {
                g.1 += 1.0;
            }
        }
        Patterns {
            times,
            terms: RefCell::new(Vec::new()),
            rows,
            groups,
            total_weight: data.len() as f64,
            threads: threads.max(1),
            rows_per_thread: ROWS_PER_THREAD,
            rows_per_block: ROWS_PER_BLOCK,
        }
    }

    /// These patterns with every time multiplied by `scale`: what `new(data, scale)` builds
    /// from the same data when the scaled times stay distinct (`None` otherwise).
    pub(super) fn rescaled(&self, scale: f64) -> Option<Self> {
        let times: Vec<f64> = self.times.iter().map(|&t| t * scale).collect();
        if !times.windows(2).all(|w| w[0] < w[1]) {
            return None;
        }
        Some(Patterns {
            times,
            rows: self.rows.clone(),
            groups: self.groups.clone(),
            total_weight: self.total_weight,
            threads: self.threads,
            rows_per_thread: self.rows_per_thread,
            rows_per_block: self.rows_per_block,
            terms: RefCell::new(Vec::new()),
        })
    }

    /// Computes the terms of the rows of `x > 0` into `terms` (see the field) and hands them
    /// to `sum` in row order. Over `self.threads` threads when there are enough rows: this
    /// thread computes the first share (a little smaller than the others) and starts summing
    /// it while the other threads compute theirs and hand them over a block at a time, so the
    /// sum, which stays on one thread and in row order, mostly overlaps their work.
    fn with_terms<R>(
        &self,
        terms: &mut [[f64; 5]],
        at: &TermInputs<'_>,
        sum: impl FnOnce(&mut RowTerms<'_>) -> R,
    ) -> R {
        let threads = self
            .threads
            .min(self.rows.len() / self.rows_per_thread.max(1))
            .max(1);
        if threads == 1 {
            terms_of(&self.rows, &self.groups, terms, 0, at);
            return sum(&mut RowTerms::all(terms));
        }
        let n = terms.len();
        let first = n * 9 / (10 * threads);
        let share = (n - first).div_ceil(threads - 1);
        let (rows, groups, block) = (&self.rows, &self.groups, self.rows_per_block.max(1));
        let (mine, others) = terms.split_at_mut(first);
        std::thread::scope(|scope| {
            let mut handed = Vec::with_capacity(threads - 1);
            for (k, part) in others.chunks_mut(share).enumerate() {
                let (send, receive) = mpsc::channel::<&[[f64; 5]]>();
                handed.push(receive);
                scope.spawn(move || {
                    let mut start = first + k * share;
                    let mut rest = part;
                    while !rest.is_empty() {
                        let (done, later) = rest.split_at_mut(block.min(rest.len()));
                        terms_of(rows, groups, done, start, at);
                        start += done.len();
                        if send.send(done).is_err() {
                            return;
                        }
                        rest = later;
                    }
                });
            }
            terms_of(rows, groups, mine, 0, at);
            sum(&mut RowTerms {
                ready: mine,
                handed: handed.into_iter(),
                current: None,
            })
        })
    }

    /// `-mean(LL) + penalizer * Σ θ_i²` at log-parameters `theta`, with its gradient with
    /// respect to `theta` when `grad` is given. Returns +inf outside the valid domain.
    pub(super) fn negative_mean_ll(
        &self,
        theta: &[f64],
        grad: Option<&mut [f64]>,
        penalizer: f64,
    ) -> f64 {
        let p = [
            theta[0].exp(),
            theta[1].exp(),
            theta[2].exp(),
            theta[3].exp(),
        ];
        if p.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return f64::INFINITY;
        }
        let [r, alpha, a, b] = p;
        let want_grad = grad.is_some();
        let ln_alpha = alpha.ln();
        let ln_a = a.ln();
        let ln_times: Vec<f64> = self.times.iter().map(|&t| (alpha + t).ln()).collect();
        let inv_times: Vec<f64> = if want_grad {
            self.times.iter().map(|&t| 1.0 / (alpha + t)).collect()
        } else {
            vec![]
        };
        let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
        let (dg_r, dg_b, dg_ab) = if want_grad {
            (digamma(r), digamma(b), digamma(a + b))
        } else {
            (0.0, 0.0, 0.0)
        };
        let mut terms = self.terms.borrow_mut();
        terms.resize(self.rows.len(), [0.0; 5]);
        let inputs = TermInputs {
            r,
            a,
            b,
            ln_a,
            ln_times: &ln_times,
            inv_times: &inv_times,
            want_grad,
        };
        let (ll, g) = self.with_terms(&mut terms, &inputs, |row_terms| {
            let mut ll = 0.0;
            let mut g = [0.0; 4]; // d LL / d (r, alpha, a, b)
            for (x, w_x, range) in &self.groups {
                let (x, w_x) = (*x, *w_x);
                let rx = r + x;
                if x == 0.0 {
                    ll += w_x * r * ln_alpha;
                    if want_grad {
                        g[0] += w_x * ln_alpha;
                        g[1] += w_x * r / alpha;
                    }
                    for &(_, i_t, w) in &self.rows[range.clone()] {
                        ll -= w * rx * ln_times[i_t];
                        if want_grad {
                            g[0] -= w * ln_times[i_t];
                            g[1] -= w * rx * inv_times[i_t];
                        }
                    }
                    row_terms.skip(range.len());
                    continue;
                }
                let a1 = ln_gamma(rx) - lg_r + r * ln_alpha;
                let a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
                ll += w_x * (a1 + a2);
                if want_grad {
                    let dg_abx = digamma(a + b + x);
                    g[0] += w_x * (digamma(rx) - dg_r + ln_alpha);
                    g[1] += w_x * r / alpha;
                    g[2] += w_x * (dg_ab - dg_abx);
                    g[3] += w_x * (dg_ab + digamma(b + x) - dg_b - dg_abx);
                }
                // The rows' terms, added in row order.
                for _ in range.clone() {
                    let t = row_terms.next();
                    ll += t[0];
                    if want_grad {
                        g[0] -= t[1];
                        g[1] -= t[2];
                        g[2] += t[3];
                        g[3] -= t[4];
                    }
                }
            }
            (ll, g)
        });
        let n = self.total_weight;
        let value = -ll / n + penalizer * p.iter().map(|v| v * v).sum::<f64>();
        if let Some(grad) = grad {
            for i in 0..4 {
                grad[i] = -g[i] * p[i] / n + 2.0 * penalizer * p[i] * p[i];
            }
        }
        if value.is_finite() {
            value
        } else {
            f64::INFINITY
        }
    }
}

/// `v` sorted by `cmp`: for a large `v` and two threads or more, its halves are sorted side
/// by side and merged. Elements `cmp` finds equal must be alike in every bit, so that any
/// sort gives the same result.
fn sort_on<T: Copy + Send>(
    mut v: Vec<T>,
    threads: usize,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Sync,
) -> Vec<T> {
    if threads < 2 || v.len() < 2 * ROWS_PER_THREAD {
        v.sort_unstable_by(&cmp);
        return v;
    }
    let n = v.len();
    let (left, right) = v.split_at_mut(n / 2);
    std::thread::scope(|scope| {
        scope.spawn(|| left.sort_unstable_by(&cmp));
        right.sort_unstable_by(&cmp);
    });
    let mut merged = Vec::with_capacity(n);
    let (mut l, mut r) = (0, 0);
    while l < left.len() && r < right.len() {
        if cmp(&right[r], &left[l]).is_lt() {
            merged.push(right[r]);
            r += 1;
        } else {
            merged.push(left[l]);
            l += 1;
        }
    }
    merged.extend_from_slice(&left[l..]);
    merged.extend_from_slice(&right[r..]);
    merged
}

/// [`Patterns::fill_terms`] for the rows from `start` on, one per element of `out`.
fn terms_of(
    rows: &[(usize, usize, f64)],
    groups: &[(f64, f64, std::ops::Range<usize>)],
    out: &mut [[f64; 5]],
    start: usize,
    at: &TermInputs<'_>,
) {
    let end = start + out.len();
    let TermInputs { r, a, b, .. } = *at;
    for (x, _, range) in groups {
        let (lo, hi) = (range.start.max(start), range.end.min(end));
        if *x == 0.0 || lo >= hi {
            continue;
        }
        let rx = r + x;
        let bx1 = b + x - 1.0;
        let ln_a_bx1 = at.ln_a - bx1.ln();
        for (&(i_tx, i_t, w), out) in rows[lo..hi].iter().zip(&mut out[lo - start..hi - start]) {
            let l3 = -rx * at.ln_times[i_t];
            let l4 = ln_a_bx1 - rx * at.ln_times[i_tx];
            let (m, d) = if l3 >= l4 {
                (l3, l4 - l3)
            } else {
                (l4, l3 - l4)
            };
            let e = d.exp();
            out[0] = w * (m + e.ln_1p());
            if at.want_grad {
                // Posterior weights of the two terms: w3 + w4 = 1.
                let small = e / (1.0 + e);
                let (w3, w4) = if l3 >= l4 {
                    (1.0 - small, small)
                } else {
                    (small, 1.0 - small)
                };
                out[1] = w * (w3 * at.ln_times[i_t] + w4 * at.ln_times[i_tx]);
                out[2] = w * rx * (w3 * at.inv_times[i_t] + w4 * at.inv_times[i_tx]);
                out[3] = w * w4 / a;
                out[4] = w * w4 / bx1;
            }
        }
    }
}

/// The rows' terms in row order: those of this thread's share, then each other thread's as
/// it hands them over, a block at a time.
struct RowTerms<'a> {
    ready: &'a [[f64; 5]],
    handed: std::vec::IntoIter<mpsc::Receiver<&'a [[f64; 5]]>>,
    current: Option<mpsc::Receiver<&'a [[f64; 5]]>>,
}

impl<'a> RowTerms<'a> {
    /// Every row's terms, already computed.
    fn all(terms: &'a [[f64; 5]]) -> Self {
        RowTerms {
            ready: terms,
            handed: Vec::new().into_iter(),
            current: None,
        }
    }

    /// The next row's terms, waiting for them when another thread is still computing them.
    fn next(&mut self) -> &'a [f64; 5] {
        while self.ready.is_empty() {
            self.ready = self.receive();
        }
        let (t, rest) = self.ready.split_first().expect("not empty");
        self.ready = rest;
        t
    }

    /// Passes over `n` rows.
    fn skip(&mut self, mut n: usize) {
        while n > 0 {
            while self.ready.is_empty() {
                self.ready = self.receive();
            }
            let k = n.min(self.ready.len());
            self.ready = &self.ready[k..];
            n -= k;
        }
    }

    /// The next block handed over. A thread hands over every block of its share before it
    /// ends, and the threads' shares follow one another in row order.
    fn receive(&mut self) -> &'a [[f64; 5]] {
        loop {
            if let Some(block) = self.current.as_ref().and_then(|r| r.recv().ok()) {
                return block;
            }
            self.current = Some(
                self.handed
                    .next()
                    .expect("the rows' terms from the threads that compute them"),
            );
        }
    }
}

/// The parameters and per-time values the terms of one evaluation are computed from.
struct TermInputs<'a> {
    r: f64,
    a: f64,
    b: f64,
    ln_a: f64,
    ln_times: &'a [f64],
    inv_times: &'a [f64],
    want_grad: bool,
}
