//! The campaign's control group (`holdout` parameter): which customers get nothing, so that
//! deploy can measure what the campaign changed.
//!
//! A customer is held out by [`flow_analytics::holdout::is_control`] on the group's key and
//! the customer id: the same customers in every run and every resume, whatever the data or the
//! customer's consent. The key defaults to the campaign node's id.

use serde::Deserialize;

use flow_engine::node::{ParamError, Params};

/// What a control customer's `recommended_action` says, so staff do not hand them the offer.
pub(crate) const CONTROL_ACTION: &str = "Control group: no campaign offer";
/// The `skip_reason` of a control customer who would otherwise have been messaged.
pub(crate) const CONTROL_REASON: &str = "control group";
/// The `offer` of a control customer.
pub(crate) const CONTROL_OFFER: &str = "no offer (control group)";

/// The default share held out of a campaign that sends messages.
pub(crate) const DEFAULT_SHARE: f64 = 0.10;
/// The largest share accepted: beyond it the campaign hardly reaches anyone.
const MAX_SHARE: f64 = 0.5;

/// The validated `holdout` parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Holdout {
    /// Share of the customers held out, 0 to 0.5 (0: no control group).
    pub(crate) share: f64,
    /// The key of the assignment (the node id unless set).
    pub(crate) key: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Spec {
    Share(Share),
    Full { share: Share, key: Option<String> },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Share {
    Number(f64),
    Text(String),
}

impl Holdout {
    /// The parameter; without it, [`DEFAULT_SHARE`] for an email campaign and none for
    /// `channel: none` (nothing is sent, so there is nothing to withhold but the staff action).
    pub(crate) fn from_params(
        params: &Params,
        node_id: &str,
        email: bool,
    ) -> Result<Self, ParamError> {
        let bad = |msg: String| {
            ParamError::new(
                "holdout",
                format!(
                    "{msg}; write it as `holdout: 10%`, `holdout: 0.1` or `holdout: {{ share: 10%, key: spring_vip }}`"
                ),
            )
        };
        let default_share = if email { DEFAULT_SHARE } else { 0.0 };
        let spec = params
            .parse::<Spec>("holdout")
            .map_err(|_| bad("not a share".into()))?;
        let (share, key) = match spec {
            None => (Share::Number(default_share), None),
            Some(Spec::Share(s)) => (s, None),
            Some(Spec::Full { share, key }) => (share, key),
        };
        let share = match share {
            Share::Number(v) => v,
            Share::Text(t) => {
                let t = t.trim();
                let parsed = match t.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
                    None => t.parse::<f64>(),
                };
                parsed.map_err(|_| bad(format!("`{t}` is not a share")))?
            }
        };
        if !(0.0..=MAX_SHARE).contains(&share) {
            return Err(bad(format!(
                "the share held out must be between 0 and {}%, got {}%",
                MAX_SHARE * 100.0,
                share * 100.0
            )));
        }
        let key = match key.map(|k| k.trim().to_string()) {
            Some(k) if k.is_empty() => return Err(bad("the key is empty".into())),
            Some(k) => k,
            None => node_id.to_string(),
        };
        Ok(Holdout { share, key })
    }

    /// Whether the customer is in the control group.
    pub(crate) fn is_control(&self, customer_id: &str) -> bool {
        self.share > 0.0 && flow_analytics::holdout::is_control(&self.key, customer_id, self.share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdout(yaml: &str, email: bool) -> Result<Holdout, ParamError> {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        let params = Params::new(value.as_object().cloned().unwrap_or_default(), "/");
        Holdout::from_params(&params, "campaign_vip", email)
    }

    #[test]
    fn forms_and_defaults() {
        let h = |yaml: &str| holdout(yaml, true).unwrap();
        assert_eq!(
            h("{}"),
            Holdout {
                share: 0.1,
                key: "campaign_vip".into()
            }
        );
        assert_eq!(holdout("{}", false).unwrap().share, 0.0);
        assert_eq!(h("holdout: 10%").share, 0.1);
        assert_eq!(h("holdout: 0.25").share, 0.25);
        assert_eq!(h("holdout: '0.05'").share, 0.05);
        assert_eq!(h("holdout: 0").share, 0.0);
        assert_eq!(
            h("holdout: { share: 20%, key: spring }"),
            Holdout {
                share: 0.2,
                key: "spring".into()
            }
        );
        assert_eq!(h("holdout: { share: 0.2 }").key, "campaign_vip");
        for bad in [
            "holdout: 60%",
            "holdout: -0.1",
            "holdout: lots",
            "holdout: { share: 0.1, key: '' }",
            "holdout: { key: x }",
            "holdout: [1]",
        ] {
            let e = holdout(bad, true).unwrap_err();
            assert!(
                e.message.contains("write it as `holdout: 10%`"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn the_group_follows_the_shared_hash_and_none_are_held_at_zero() {
        let h = holdout("holdout: 10%", true).unwrap();
        for i in 0..500 {
            let id = format!("C{i:05}");
            assert_eq!(
                h.is_control(&id),
                flow_analytics::holdout::is_control("campaign_vip", &id, 0.1)
            );
        }
        let none = holdout("holdout: 0", true).unwrap();
        assert!((0..500).all(|i| !none.is_control(&format!("C{i:05}"))));
    }
}
