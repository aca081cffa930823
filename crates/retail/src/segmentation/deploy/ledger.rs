//! The campaign ledger: every send deploy delivered, with its treated and control customers,
//! kept in the node state so later runs can measure what the campaign changed.
//!
//! It is kept per workflow file and deploy node, not per parameters: a campaign sent under
//! `--param` overrides reached real customers all the same. A send is keyed by the run that
//! delivered it, so a retried or resumed run records it once. Each campaign and segment keeps
//! its last [`KEEP_SENDS`] sends; once a send's window has closed and it was measured on
//! complete data, its final figures stay and its customer lists are dropped.
//!
//! A send is measured on the customers it reaches for the first time. A customer's control
//! group is fixed, but who is in a segment is decided again every run from purchases that
//! earlier sends may have caused, so the customers an earlier send already reached are no
//! longer a random split by the time of a later one; the customers reaching a campaign for
//! the first time are, whatever happened before. The ledger keeps, per campaign (its holdout
//! key), every customer a recorded send reached.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::attribution::Measured;
use flow_engine::node::{NodeContext, NodeError};

/// Sends kept per campaign and segment.
pub(crate) const KEEP_SENDS: usize = 30;

/// One delivery of a campaign to a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SendRecord {
    pub(crate) run_id: String,
    /// `YYYY-MM-DD`: purchases are attributed from the day after.
    pub(crate) sent_on: String,
    /// The campaign node's id.
    pub(crate) campaign: String,
    /// The key of its control-group assignment.
    pub(crate) holdout_key: String,
    /// The share held out, when the campaign node said.
    pub(crate) holdout_share: Option<f64>,
    pub(crate) segment: String,
    /// The attribution window, in days after the send.
    pub(crate) window_days: u32,
    pub(crate) treated_customers: u64,
    pub(crate) control_customers: u64,
    /// The customers compared (empty once `measured` is final).
    pub(crate) treated: Vec<String>,
    pub(crate) control: Vec<String>,
    /// The figures of a closed window measured on complete data.
    pub(crate) measured: Option<Measured>,
    /// Customers of the send an earlier send of the campaign had reached: not measured again.
    #[serde(default)]
    pub(crate) reached_before: u64,
}

impl SendRecord {
    fn same_send(&self, other: &SendRecord) -> bool {
        self.run_id == other.run_id
            && self.campaign == other.campaign
            && self.segment == other.segment
    }
}

/// What the node keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Ledger {
    pub(crate) version: u32,
    pub(crate) sends: Vec<SendRecord>,
    /// Per holdout key: every customer a recorded send of that campaign reached.
    #[serde(default)]
    pub(crate) reached: BTreeMap<String, BTreeSet<String>>,
}

/// The node-state key: workflow file and deploy node, whatever the parameters.
pub(crate) fn state_key(ctx: &NodeContext) -> String {
    format!(
        "campaigns:{}#{}",
        super::lineage::workflow_file(ctx).display(),
        ctx.node_id
    )
}

impl Ledger {
    pub(crate) fn load(ctx: &NodeContext) -> Result<Ledger, NodeError> {
        Ok(match ctx.state.get(&state_key(ctx))? {
            // An unreadable ledger (an older format) starts afresh rather than failing deploy.
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Ledger::default(),
        })
    }

    pub(crate) fn save(&self, ctx: &NodeContext) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| NodeError::msg(format!("campaign ledger: {e}")))?;
        ctx.state.put(&state_key(ctx), &bytes)?;
        Ok(())
    }

    /// Records the sends of this run, each with only the customers the campaign reaches for
    /// the first time; a send already recorded by an earlier attempt of the same run is kept
    /// as it was. Returns how many were new.
    pub(crate) fn record(&mut self, sends: Vec<SendRecord>) -> usize {
        let mut added = 0;
        for mut send in sends {
            if self.sends.iter().any(|s| s.same_send(&send)) {
                continue;
            }
            let reached = self.reached.entry(send.holdout_key.clone()).or_default();
            let before = send.treated.len() + send.control.len();
            let first_time = |ids: &mut Vec<String>| {
                ids.retain(|id| !reached.contains(id));
                ids.len() as u64
            };
            send.treated_customers = first_time(&mut send.treated);
            send.control_customers = first_time(&mut send.control);
            send.reached_before = before as u64 - send.treated_customers - send.control_customers;
            reached.extend(send.treated.iter().chain(&send.control).cloned());
            self.sends.push(send);
            added += 1;
        }
        self.version = 1;
        added
    }

    /// Keeps the last [`KEEP_SENDS`] sends of each campaign and segment (by send date, then
    /// the order they were recorded in) and drops the customer lists of final sends.
    pub(crate) fn prune(&mut self) {
        let mut per: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, s) in self.sends.iter().enumerate() {
            per.entry((s.campaign.clone(), s.segment.clone()))
                .or_default()
                .push(i);
        }
        let mut keep = vec![true; self.sends.len()];
        for list in per.values_mut() {
            // Stable: equal dates keep their recording order.
            list.sort_by(|a, b| self.sends[*a].sent_on.cmp(&self.sends[*b].sent_on));
            let drop = list.len().saturating_sub(KEEP_SENDS);
            for i in &list[..drop] {
                keep[*i] = false;
            }
        }
        let mut i = 0;
        self.sends.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        for s in &mut self.sends {
            if s.measured.is_some() {
                s.treated = Vec::new();
                s.control = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn send(run: &str, day: &str, campaign: &str) -> SendRecord {
        SendRecord {
            run_id: run.into(),
            sent_on: day.into(),
            campaign: campaign.into(),
            holdout_key: campaign.into(),
            holdout_share: Some(0.1),
            segment: "vip".into(),
            window_days: 14,
            treated_customers: 2,
            control_customers: 1,
            treated: vec!["C1".into(), "C2".into()],
            control: vec!["C3".into()],
            measured: None,
            reached_before: 0,
        }
    }

    #[test]
    fn a_send_measures_only_the_customers_it_reaches_first() {
        let mut ledger = Ledger::default();
        ledger.record(vec![send("r1", "2024-04-01", "campaign_vip")]);
        // The next day: C1 (treated) and C3 (control) again, C4 and C5 new.
        let mut next = send("r2", "2024-04-02", "campaign_vip");
        next.treated = vec!["C1".into(), "C4".into()];
        next.control = vec!["C3".into(), "C5".into()];
        ledger.record(vec![next.clone()]);
        let s = &ledger.sends[1];
        assert_eq!(s.treated, ["C4"]);
        assert_eq!(s.control, ["C5"]);
        assert_eq!(
            (s.treated_customers, s.control_customers, s.reached_before),
            (1, 1, 2)
        );
        // A resume of r2 changes nothing, although its customers are all reached by now.
        ledger.record(vec![next]);
        assert_eq!(ledger.sends.len(), 2);
        assert_eq!(ledger.sends[1].treated, ["C4"]);
        // Another campaign has reached nobody yet.
        let mut other = send("r2", "2024-04-02", "campaign_new");
        other.holdout_key = "campaign_new".into();
        ledger.record(vec![other]);
        assert_eq!(ledger.sends[2].treated, ["C1", "C2"]);
        assert_eq!(ledger.sends[2].reached_before, 0);
    }

    #[test]
    fn a_run_records_its_send_once() {
        let mut ledger = Ledger::default();
        assert_eq!(
            ledger.record(vec![send("r1", "2024-04-01", "campaign_vip")]),
            1
        );
        // A retry or resume of r1 (its lists could differ only if the data did).
        let mut again = send("r1", "2024-04-01", "campaign_vip");
        again.treated.push("C9".into());
        assert_eq!(ledger.record(vec![again]), 0);
        assert_eq!(ledger.sends.len(), 1);
        assert_eq!(ledger.sends[0].treated.len(), 2);
        assert_eq!(
            ledger.record(vec![send("r2", "2024-04-02", "campaign_vip")]),
            1
        );
        assert_eq!(ledger.sends.len(), 2);
    }

    #[test]
    fn pruning_keeps_the_last_sends_per_campaign_and_drops_measured_lists() {
        let mut ledger = Ledger::default();
        // Every day reaches new customers (a send keeps only those it reaches first).
        let fresh = |day: u32, campaign: &str| {
            let mut s = send(&format!("r{day}"), &format!("2024-05-{day:02}"), campaign);
            s.treated = vec![format!("T{day}a"), format!("T{day}b")];
            s.control = vec![format!("K{day}")];
            s
        };
        for day in 1..=40 {
            ledger.record(vec![fresh(day, "campaign_vip"), fresh(day, "campaign_new")]);
        }
        let last = ledger.sends.len() - 1;
        ledger.sends[last].measured = Some(Measured::default());
        ledger.prune();
        for campaign in ["campaign_vip", "campaign_new"] {
            let days: Vec<&str> = ledger
                .sends
                .iter()
                .filter(|s| s.campaign == campaign)
                .map(|s| s.sent_on.as_str())
                .collect();
            assert_eq!(days.len(), KEEP_SENDS, "{campaign}");
            assert_eq!(days[0], "2024-05-11", "{campaign}: the oldest are dropped");
        }
        let last = ledger.sends.last().unwrap();
        assert!(last.treated.is_empty() && last.control.is_empty());
        assert_eq!((last.treated_customers, last.control_customers), (2, 1));
        assert!(
            ledger.sends[0].treated.len() == 2,
            "open sends keep their lists"
        );
    }

    #[test]
    fn the_key_is_the_workflow_and_node_not_the_parameters() {
        let ctx = |params: serde_json::Value| {
            let mut c = flow_engine::testing::context()
                .with_workflow_dir("/shop")
                .with_workflow_path("seg.yaml")
                .with_node_id("deploy");
            for (k, v) in params.as_object().unwrap() {
                c = c.with_param(k, v.clone());
            }
            c
        };
        let a = state_key(&ctx(serde_json::json!({ "vip_min_clv": 300 })));
        let b = state_key(&ctx(serde_json::json!({ "vip_min_clv": 800 })));
        assert_eq!(a, b);
        assert_eq!(a, "campaigns:/shop/seg.yaml#deploy");
    }
}
