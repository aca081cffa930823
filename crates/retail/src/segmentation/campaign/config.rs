//! The validated configuration and the template environment it builds.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::holdout::Holdout;
use super::offer::Offer;
use flow_engine::template_limits::checked_template;

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct CampaignConfig {
    pub(crate) offer: Offer,
    pub(crate) email: bool,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) action: Option<String>,
    pub(crate) sender: String,
    pub(crate) holdout: Holdout,
}

pub(super) const SUBJECT: &str = "subject.txt";
pub(super) const BODY: &str = "body.html";
pub(super) const ACTION: &str = "action.txt";

impl CampaignConfig {
    /// The template environment: strict undefined, HTML escaping for the body, nulls print
    /// as nothing.
    pub(super) fn environment(&self) -> Result<Environment<'_>, (&'static str, minijinja::Error)> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.set_keep_trailing_newline(true);
        if self.email {
            checked_template(&self.subject)
                .and_then(|t| env.add_template(SUBJECT, t))
                .map_err(|e| ("subject", e))?;
            checked_template(&self.body)
                .and_then(|t| env.add_template(BODY, t))
                .map_err(|e| ("body", e))?;
        }
        if let Some(action) = &self.action {
            checked_template(action)
                .and_then(|t| env.add_template(ACTION, t))
                .map_err(|e| ("action", e))?;
        }
        Ok(env)
    }
}

#[cfg(test)]
impl CampaignConfig {
    /// An email campaign with a 10% discount.
    pub(crate) fn for_tests(subject: &str, body: &str, action: Option<&str>) -> Self {
        CampaignConfig {
            offer: Offer {
                kind: "discount".into(),
                value: Some(10.0),
                label: "10% off".into(),
            },
            email: true,
            subject: subject.into(),
            body: body.into(),
            action: action.map(str::to_string),
            sender: "shop@example.com".into(),
            holdout: Holdout {
                share: 0.0,
                key: "campaign".into(),
            },
        }
    }
}
