//! Shopify's cost-based rate limit: a leaky bucket per app and shop.
//!
//! Every GraphQL response reports the bucket in `extensions.cost.throttleStatus`
//! (`maximumAvailable`, `currentlyAvailable`, `restoreRate` points per second). The client keeps
//! the last report and, before a query, estimates how full the bucket is now; a query whose
//! cost exceeds that waits until the restore rate has refilled the difference. A query that is
//! refused anyway comes back with a `THROTTLED` error and the same status, from which the wait
//! before the retry is computed.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The bucket as last reported, and when.
#[derive(Debug, Clone)]
pub struct Bucket {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    at: Instant,
}

/// One `throttleStatus` object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

impl ThrottleStatus {
    /// Reads `extensions.cost.throttleStatus` of a response; `None` when absent or incomplete.
    pub fn from_response(body: &Json) -> Option<ThrottleStatus> {
        let s = body.pointer("/extensions/cost/throttleStatus")?;
        Some(ThrottleStatus {
            maximum_available: s.get("maximumAvailable")?.as_f64()?,
            currently_available: s.get("currentlyAvailable")?.as_f64()?,
            restore_rate: s.get("restoreRate")?.as_f64()?,
        })
    }
}

/// `extensions.cost.requestedQueryCost` of a response.
pub fn requested_cost(body: &Json) -> Option<f64> {
    body.pointer("/extensions/cost/requestedQueryCost")?
        .as_f64()
}

impl Default for Bucket {
    /// Shopify's standard plan bucket until the first response says otherwise.
    fn default() -> Self {
        Bucket {
            maximum: 2000.0,
            available: 2000.0,
            restore_rate: 100.0,
            at: Instant::now(),
        }
    }
}

impl Bucket {
    /// Records a reported status.
    pub fn update(&mut self, status: ThrottleStatus) {
        self.maximum = status.maximum_available.max(1.0);
        self.available = status.currently_available.max(0.0);
        self.restore_rate = status.restore_rate.max(0.1);
        self.at = Instant::now();
    }

    /// The points available now, by the restore rate since the last report.
    fn estimate(&self, now: Instant) -> f64 {
        let refilled = now.duration_since(self.at).as_secs_f64() * self.restore_rate;
        (self.available + refilled).min(self.maximum)
    }

    /// How long to wait before sending a query of `cost` points (capped at the bucket's size:
    /// a bigger query is Shopify's to refuse, not ours to wait forever for).
    pub fn wait_for(&self, cost: f64) -> Duration {
        let cost = cost.min(self.maximum);
        let missing = cost - self.estimate(Instant::now());
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.restore_rate)
        }
    }

    /// Takes `cost` points out of the estimate once a query was sent, so concurrent or quick
    /// successive queries do not all count on the same points.
    pub fn spend(&mut self, cost: f64) {
        let now = Instant::now();
        self.available = (self.estimate(now) - cost).max(0.0);
        self.at = now;
    }
}

/// The wait before retrying a query refused with `THROTTLED`: the time the restore rate needs
/// to refill what the query requested beyond what is available; at least 100 ms.
pub fn throttled_wait(requested: f64, status: Option<ThrottleStatus>) -> Duration {
    let wait = match status {
        Some(s) => {
            (requested.min(s.maximum_available) - s.currently_available).max(0.0)
                / s.restore_rate.max(0.1)
        }
        None => 1.0,
    };
    Duration::from_secs_f64(wait.clamp(0.1, 60.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_query_waits_for_the_restore_rate_to_refill_the_missing_points() {
        let mut b = Bucket::default();
        b.update(ThrottleStatus {
            maximum_available: 1000.0,
            currently_available: 100.0,
            restore_rate: 50.0,
        });
        assert_eq!(b.wait_for(50.0), Duration::ZERO);
        let w = b.wait_for(300.0).as_secs_f64();
        assert!((3.9..=4.0).contains(&w), "{w}");
        // Never more than a full bucket's worth.
        assert!(b.wait_for(5000.0).as_secs_f64() <= 18.0);
        b.spend(100.0);
        assert!(b.wait_for(50.0) > Duration::ZERO);
    }

    #[test]
    fn throttled_retries_wait_by_the_status_in_the_response() {
        let body = json!({"extensions": {"cost": {"requestedQueryCost": 152,
            "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 2, "restoreRate": 50.0}}}});
        let status = ThrottleStatus::from_response(&body);
        assert_eq!(status.unwrap().currently_available, 2.0);
        let w = throttled_wait(requested_cost(&body).unwrap(), status);
        assert!((w.as_secs_f64() - 3.0).abs() < 1e-9, "{w:?}");
        assert_eq!(throttled_wait(10.0, status), Duration::from_millis(160));
        assert_eq!(ThrottleStatus::from_response(&json!({"data": {}})), None);
    }
}
