//! The campaign ledger: every send deploy delivered, with its treated and control customers,
//! kept in the node state so later runs can measure what the campaign changed.
//!
//! It is kept per workflow file and deploy node, not per parameters: a campaign sent under
//! `--param` overrides reached real customers all the same. A send is keyed by the run that
//! delivered it, so a retried or resumed run records it once. Each campaign and segment keeps
//! its last [`KEEP_SENDS`] sends; once a send's window has closed and it was measured on
//! complete data, its final figures stay and its customer lists are dropped.

use std::collections::BTreeMap;

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
}

/// The node-state key: workflow file and deploy node, whatever the parameters.
pub(crate) fn state_key(ctx: &NodeContext) -> String {
    let file = ctx
        .workflow_path
        .file_name()
        .map(|f| ctx.workflow_dir.join(f))
        .unwrap_or_else(|| ctx.workflow_dir.clone());
    format!("campaigns:{}#{}", file.display(), ctx.node_id)
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

    /// Records the sends of this run; a send already recorded by an earlier attempt of the
    /// same run is kept as it was. Returns how many were new.
    pub(crate) fn record(&mut self, sends: Vec<SendRecord>) -> usize {
        let mut added = 0;
        for send in sends {
            if !self.sends.iter().any(|s| s.same_send(&send)) {
                self.sends.push(send);
                added += 1;
            }
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
        }
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
        for day in 1..=40 {
            ledger.record(vec![
                send(
                    &format!("r{day}"),
                    &format!("2024-05-{day:02}"),
                    "campaign_vip",
                ),
                send(
                    &format!("r{day}"),
                    &format!("2024-05-{day:02}"),
                    "campaign_new",
                ),
            ]);
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
