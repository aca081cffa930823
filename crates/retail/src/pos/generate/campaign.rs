//! Simulated campaigns with a known effect: who is treated, who is held out, and the extra
//! orders the campaign causes.
//!
//! The extra orders come from their own random stream per customer and campaign, so the
//! customers' natural purchases are the same with and without the campaign and a test can
//! measure the true effect exactly.

use std::str::FromStr;

use chrono::NaiveDate;
use flow_analytics::holdout::is_control;
use flow_analytics::rng::Rng;

/// A campaign sent on one day, whose treated customers make one extra order with a known
/// probability inside its attribution window.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedCampaign {
    /// The key the control group is hashed with ([`flow_analytics::holdout::is_control`]):
    /// flow's campaign node uses its node id by default, e.g. `campaign_vip`.
    pub key: String,
    /// The send date.
    pub date: NaiveDate,
    /// Share of the customers held out (0 to 1).
    pub holdout_share: f64,
    /// Length of the window after the send date in which the extra order falls.
    pub window_days: u32,
    /// Probability (0 to 1) that a treated customer makes one extra order in the window.
    pub uplift: f64,
}

impl SimulatedCampaign {
    /// Default holdout share of [`FromStr`] when the text gives none.
    pub const DEFAULT_HOLDOUT: f64 = 0.1;
    /// Default window of [`FromStr`] when the text gives none.
    pub const DEFAULT_WINDOW_DAYS: u32 = 14;

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() {
            return Err("a campaign needs a key".into());
        }
        if !(0.0..=1.0).contains(&self.holdout_share) {
            return Err(format!(
                "campaign {}: the holdout share must be 0 to 1, not {}",
                self.key, self.holdout_share
            ));
        }
        if !(0.0..=1.0).contains(&self.uplift) {
            return Err(format!(
                "campaign {}: the uplift must be a probability 0 to 1, not {}",
                self.key, self.uplift
            ));
        }
        if self.window_days == 0 || self.window_days > 3660 {
            return Err(format!(
                "campaign {}: the window must be 1 to 3660 days, not {}",
                self.key, self.window_days
            ));
        }
        Ok(())
    }
}

/// `KEY:DATE:UPLIFT[:HOLDOUT[:WINDOW]]`, e.g. `campaign_vip:2026-09-01:0.05:0.1:14`.
impl FromStr for SimulatedCampaign {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if !(3..=5).contains(&parts.len()) {
            return Err(format!(
                "expected KEY:DATE:UPLIFT[:HOLDOUT[:WINDOW]], e.g. campaign_vip:2026-09-01:0.05, not {s:?}"
            ));
        }
        let date = NaiveDate::parse_from_str(parts[1], "%Y-%m-%d")
            .map_err(|e| format!("bad campaign date {:?} (YYYY-MM-DD): {e}", parts[1]))?;
        let number = |what: &str, text: &str| -> Result<f64, String> {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("bad campaign {what} {text:?}: expected a number 0 to 1"))
        };
        let campaign = SimulatedCampaign {
            key: parts[0].to_string(),
            date,
            uplift: number("uplift", parts[2])?,
            holdout_share: match parts.get(3) {
                Some(t) => number("holdout share", t)?,
                None => Self::DEFAULT_HOLDOUT,
            },
            window_days: match parts.get(4) {
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("bad campaign window {t:?}: expected whole days"))?,
                None => Self::DEFAULT_WINDOW_DAYS,
            },
        };
        campaign.validate()?;
        Ok(campaign)
    }
}

/// One extra order due: when, whose, which campaign, and the stream its basket comes from.
pub(super) struct ExtraOrder {
    pub(super) customer: u32,
    pub(super) campaign: u32,
    pub(super) rng: Rng,
}

/// The outcome of one campaign for one customer.
pub(super) enum Exposure {
    /// Acquired after the send date: not part of the campaign.
    Absent,
    Control,
    /// Treated; `Some((seconds from the start, stream))` if they make the extra order.
    Treated(Option<(u64, Rng)>),
}

/// Decides a customer's exposure to campaign `c` given their index, their id as written in
/// the CSV and their acquisition day. `send_day` is the send date in days from the start of
/// the period (negative: before it).
pub(super) fn expose(
    seed: u64,
    c: &SimulatedCampaign,
    send_day: i64,
    customer: u64,
    customer_id: &str,
    acquired_day: u64,
    hours_cum: &[f64],
) -> Exposure {
    if i64::try_from(acquired_day).unwrap_or(i64::MAX) > send_day {
        return Exposure::Absent;
    }
    if is_control(&c.key, customer_id, c.holdout_share) {
        return Exposure::Control;
    }
    let mut rng = Rng::stream(seed, CAMPAIGN_PURPOSE ^ key_hash(&c.key), customer);
    if !rng.chance(c.uplift) {
        return Exposure::Treated(None);
    }
    // A day in (send, send + window], strictly after the send date.
    // (send_day >= acquired_day >= 0 here.)
    let day = send_day.unsigned_abs() + 1 + rng.below(u64::from(c.window_days));
    let tod = super::customers::time_of_day(&mut rng, hours_cum);
    Exposure::Treated(Some((day * 86_400 + tod, rng)))
}

/// Purpose tag of the campaign streams (customers use 1 and 2, the catalog 100).
const CAMPAIGN_PURPOSE: u64 = 0xca4a_0000_0000_0000;

/// 64-bit FNV-1a of the campaign key: each campaign gets its own streams.
fn key_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
