//! Incremental lift of a campaign: treated against control customers, with 95% intervals.
//!
//! - Conversion (the share of customers with at least one order): the difference of two
//!   independent proportions with Newcombe's hybrid score interval (method 10 of Newcombe 1998),
//!   built from the Wilson score interval of each proportion (Wilson 1927). Unlike the simple
//!   Wald interval it stays inside [-1, 1] and keeps its coverage for small or extreme
//!   proportions, such as conversions of a few percent.
//! - Revenue per customer: the difference of two means with Welch's unequal-variance normal
//!   approximation, `d ± z·sqrt(s₁²/n₁ + s₂²/n₂)` with the sample variances; fair once both
//!   groups have a few dozen customers (the callers require at least 30).
//!
//! References:
//! - Wilson, E. B. (1927). "Probable inference, the law of succession, and statistical
//!   inference." *JASA* 22(158), 209-212.
//! - Newcombe, R. G. (1998). "Interval estimation for the difference between independent
//!   proportions: comparison of eleven methods." *Statistics in Medicine* 17, 873-890.
//! - Welch, B. L. (1947). "The generalization of 'Student's' problem when several different
//!   population variances are involved." *Biometrika* 34, 28-35.

use crate::{AnalyticsError, AnalyticsResult};

/// The standard normal quantile of 0.975: two-sided 95% intervals.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// An estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether `value` lies inside the interval (bounds included).
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// What one customer did in the attribution window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Orders placed in the window.
    pub orders: u64,
    /// Net revenue in the window (refunds subtract).
    pub revenue: f64,
}

/// The figures of one group (treated or control).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupFigures {
    pub customers: u64,
    /// Customers with at least one order.
    pub converted: u64,
    pub orders: u64,
    /// Net revenue of the group.
    pub revenue: f64,
    /// `converted / customers`; `None` without customers.
    pub conversion: Option<f64>,
    /// `revenue / customers`; `None` without customers.
    pub revenue_per_customer: Option<f64>,
    /// `revenue / orders`; `None` without orders.
    pub avg_order_value: Option<f64>,
}

impl GroupFigures {
    pub fn of(outcomes: &[Outcome]) -> Self {
        let customers = outcomes.len() as u64;
        let converted = outcomes.iter().filter(|o| o.orders > 0).count() as u64;
        let orders = outcomes.iter().map(|o| o.orders).sum::<u64>();
        let revenue = outcomes.iter().map(|o| o.revenue).sum::<f64>();
        GroupFigures {
            customers,
            converted,
            orders,
            revenue,
            conversion: (customers > 0).then(|| converted as f64 / customers as f64),
            revenue_per_customer: (customers > 0).then(|| revenue / customers as f64),
            avg_order_value: (orders > 0).then(|| revenue / orders as f64),
        }
    }
}

/// Treated against control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    pub treated: GroupFigures,
    pub control: GroupFigures,
    /// Treated minus control conversion (Newcombe hybrid score interval).
    pub conversion: Interval,
    /// Treated minus control revenue per customer (Welch normal approximation).
    pub revenue_per_customer: Interval,
}

/// The lift of `treated` over `control`, or `NotEnoughData` when either group has fewer than
/// `min_customers` customers (and always at least 2, for a variance).
pub fn lift(
    treated: &[Outcome],
    control: &[Outcome],
    min_customers: usize,
) -> AnalyticsResult<Lift> {
    let needed = min_customers.max(2);
    let got = treated.len().min(control.len());
    if got < needed {
        return Err(AnalyticsError::NotEnoughData {
            what: "customers in each group",
            needed,
            got,
        });
    }
    for o in treated.iter().chain(control) {
        crate::ensure_finite("revenue", o.revenue)?;
    }
    let (t, c) = (GroupFigures::of(treated), GroupFigures::of(control));
    let conversion = newcombe_difference(t.converted, t.customers, c.converted, c.customers, Z_95)?;
    let revenue = |o: &[Outcome]| o.iter().map(|o| o.revenue).collect::<Vec<_>>();
    let revenue_per_customer = welch_difference(&revenue(treated), &revenue(control), Z_95)?;
    Ok(Lift {
        treated: t,
        control: c,
        conversion,
        revenue_per_customer,
    })
}

/// The Wilson score interval of the proportion `successes / n`.
pub fn wilson(successes: u64, n: u64, z: f64) -> AnalyticsResult<Interval> {
    if n == 0 || successes > n {
        return Err(AnalyticsError::InvalidInput(format!(
            "a proportion of {successes} in {n}"
        )));
    }
    if !(z.is_finite() && z > 0.0) {
        return Err(AnalyticsError::InvalidInput(format!("z = {z}")));
    }
    let (x, n) = (successes as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let centre = (x + z2 / 2.0) / (n + z2);
    let half = z * n.sqrt() / (n + z2) * (p * (1.0 - p) + z2 / (4.0 * n)).sqrt();
    Ok(Interval {
        estimate: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Newcombe's hybrid score interval for `x1/n1 - x2/n2` (Newcombe 1998, method 10).
pub fn newcombe_difference(
    x1: u64,
    n1: u64,
    x2: u64,
    n2: u64,
    z: f64,
) -> AnalyticsResult<Interval> {
    let a = wilson(x1, n1, z)?;
    let b = wilson(x2, n2, z)?;
    let d = a.estimate - b.estimate;
    let low = d - ((a.estimate - a.low).powi(2) + (b.high - b.estimate).powi(2)).sqrt();
    let high = d + ((a.high - a.estimate).powi(2) + (b.estimate - b.low).powi(2)).sqrt();
    Ok(Interval {
        estimate: d,
        low,
        high,
    })
}

/// The difference of the means of `a` and `b` with Welch's normal approximation.
pub fn welch_difference(a: &[f64], b: &[f64], z: f64) -> AnalyticsResult<Interval> {
    let (ma, va) = mean_and_variance(a)?;
    let (mb, vb) = mean_and_variance(b)?;
    let d = ma - mb;
    let se = (va / a.len() as f64 + vb / b.len() as f64).sqrt();
    Ok(Interval {
        estimate: d,
        low: d - z * se,
        high: d + z * se,
    })
}

/// The mean and the sample variance (divisor n - 1).
fn mean_and_variance(x: &[f64]) -> AnalyticsResult<(f64, f64)> {
    if x.len() < 2 {
        return Err(AnalyticsError::NotEnoughData {
            what: "values for a variance",
            needed: 2,
            got: x.len(),
        });
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    crate::ensure_finite("mean", mean)?;
    crate::ensure_finite("variance", var)?;
    Ok((mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_newcombes_single_proportion_examples() {
        // Newcombe (1998, "Two-sided confidence intervals for the single proportion", Table I,
        // method 3), to four decimals.
        for (x, n, low, high) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let w = wilson(x, n, Z_95).unwrap();
            assert!(close(w.low, low) && close(w.high, high), "{x}/{n}: {w:?}");
        }
    }

    #[test]
    fn newcombe_matches_the_papers_worked_examples() {
        // Newcombe (1998), Table II, method 10 (hybrid score, no continuity correction).
        for (x1, n1, x2, n2, low, high) in [
            (56, 70, 48, 80, 0.0524, 0.3339),
            (9, 10, 3, 10, 0.1705, 0.8090),
            (6, 7, 2, 7, 0.0582, 0.8062),
            (5, 56, 0, 29, -0.0381, 0.1926),
            (0, 10, 0, 20, -0.1611, 0.2775),
            (10, 10, 0, 20, 0.6791, 1.0),
        ] {
            let i = newcombe_difference(x1, n1, x2, n2, Z_95).unwrap();
            assert!(
                close(i.low, low) && close(i.high, high),
                "{x1}/{n1} - {x2}/{n2}: {i:?}, want [{low}, {high}]"
            );
            assert!(close(
                i.estimate,
                x1 as f64 / n1 as f64 - x2 as f64 / n2 as f64
            ));
        }
        assert!(wilson(3, 2, Z_95).is_err());
        assert!(wilson(0, 0, Z_95).is_err());
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // a: mean 3, variance 2.5; b: mean 1, variance 1; se = sqrt(2.5/5 + 1/3).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [0.0, 1.0, 2.0];
        let i = welch_difference(&a, &b, Z_95).unwrap();
        let se = (0.5f64 + 1.0 / 3.0).sqrt();
        assert!((i.estimate - 2.0).abs() < 1e-12);
        assert!((i.low - (2.0 - Z_95 * se)).abs() < 1e-12, "{i:?}");
        assert!((i.high - (2.0 + Z_95 * se)).abs() < 1e-12, "{i:?}");
        assert!(welch_difference(&[1.0], &b, Z_95).is_err());
    }

    #[test]
    fn group_figures_count_net_revenue_and_refunds() {
        let outcomes = [
            Outcome {
                orders: 2,
                revenue: 50.0,
            },
            // Only a refund in the window: no order, negative revenue.
            Outcome {
                orders: 0,
                revenue: -20.0,
            },
            Outcome::default(),
            Outcome {
                orders: 1,
                revenue: 10.0,
            },
        ];
        let g = GroupFigures::of(&outcomes);
        assert_eq!((g.customers, g.converted, g.orders), (4, 2, 3));
        assert_eq!(g.revenue, 40.0);
        assert_eq!(g.conversion, Some(0.5));
        assert_eq!(g.revenue_per_customer, Some(10.0));
        assert!((g.avg_order_value.unwrap() - 40.0 / 3.0).abs() < 1e-12);
        let empty = GroupFigures::of(&[]);
        assert_eq!(
            (
                empty.conversion,
                empty.revenue_per_customer,
                empty.avg_order_value
            ),
            (None, None, None)
        );
    }

    #[test]
    fn too_few_customers_is_an_error_not_a_number() {
        let many = vec![Outcome::default(); 40];
        let few = vec![Outcome::default(); 29];
        match lift(&many, &few, 30) {
            Err(AnalyticsError::NotEnoughData { needed, got, .. }) => {
                assert_eq!((needed, got), (30, 29))
            }
            other => panic!("{other:?}"),
        }
        assert!(lift(&many, &[], 30).is_err());
        let l = lift(&many, &many[..30], 30).unwrap();
        assert_eq!(l.conversion.estimate, 0.0);
        assert!(l.conversion.contains(0.0));
        assert_eq!(l.revenue_per_customer.low, 0.0);
    }

    #[test]
    fn a_clear_effect_is_found_and_no_effect_straddles_zero() {
        let group = |converted: usize, n: usize| -> Vec<Outcome> {
            (0..n)
                .map(|i| Outcome {
                    orders: u64::from(i < converted),
                    revenue: if i < converted { 40.0 } else { 0.0 },
                })
                .collect()
        };
        let l = lift(&group(300, 1000), &group(20, 100), 30).unwrap();
        assert!((l.conversion.estimate - 0.1).abs() < 1e-12);
        assert!(l.conversion.low > 0.0, "{:?}", l.conversion);
        assert!(
            l.revenue_per_customer.low > 0.0,
            "{:?}",
            l.revenue_per_customer
        );
        let l = lift(&group(200, 1000), &group(20, 100), 30).unwrap();
        assert!(l.conversion.contains(0.0) && l.revenue_per_customer.contains(0.0));
    }
}
