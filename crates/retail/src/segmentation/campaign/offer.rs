//! The campaign's offer (`offer` parameter) and its label.

use minijinja::{Value, context};
use serde::Deserialize;

use flow_engine::node::{ParamError, Params};

/// The offer of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Offer {
    pub(crate) kind: String,
    pub(crate) value: Option<f64>,
    pub(crate) label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferSpec {
    #[serde(rename = "type")]
    kind: String,
    value: Option<f64>,
    label: Option<String>,
}

impl Offer {
    pub(super) fn none() -> Self {
        Offer {
            kind: "none".into(),
            value: None,
            label: "no offer".into(),
        }
    }

    pub(super) fn from_params(params: &Params) -> Result<Self, ParamError> {
        let Some(spec) = params.parse::<OfferSpec>("offer").map_err(|e| {
            ParamError::new(
                "offer",
                format!(
                    "{}; write it as {{ type: discount|free_shipping|early_access|none, value: 10 }}",
                    e.message
                ),
            )
        })?
        else {
            return Ok(Offer::none());
        };
        let bad = |msg: String| ParamError::new("offer", msg);
        let default_label = match (spec.kind.as_str(), spec.value) {
            ("discount", Some(v)) if v > 0.0 && v <= 100.0 => format!("{}% off", number(v)),
            ("discount", Some(v)) => {
                return Err(bad(format!(
                    "a discount `value` is a percentage above 0 and at most 100, got {v}"
                )));
            }
            ("discount", None) => {
                return Err(bad(
                    "a discount needs a `value`, the percentage off (e.g. value: 10)".into(),
                ));
            }
            ("free_shipping" | "early_access" | "none", Some(_)) => {
                return Err(bad(format!(
                    "`value` applies to discounts only, not to `{}`",
                    spec.kind
                )));
            }
            ("free_shipping", None) => "free shipping".to_string(),
            ("early_access", None) => "early access".to_string(),
            ("none", None) => "no offer".to_string(),
            (other, _) => {
                return Err(bad(format!(
                    "`type` must be discount, free_shipping, early_access or none, got `{other}`"
                )));
            }
        };
        Ok(Offer {
            label: spec.label.unwrap_or(default_label),
            kind: spec.kind,
            value: spec.value,
        })
    }

    pub(super) fn to_value(&self) -> Value {
        context! { type => self.kind, value => self.value, label => self.label }
    }
}

/// `10` for 10.0, `12.5` otherwise.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
