//! Template checks at validation time: syntax, and variables no customer can have.

use std::collections::BTreeSet;

use super::config::{ACTION, BODY, CampaignConfig, SUBJECT};
use flow_engine::node::{ConfigureCx, ParamError};

/// Template variables besides minijinja's own globals.
const TEMPLATE_ROOTS: [&str; 5] = ["customer", "segment", "offer", "products", "params"];
const BUILTIN_GLOBALS: [&str; 7] = [
    "range",
    "dict",
    "debug",
    "namespace",
    "cycler",
    "joiner",
    "lipsum",
];
const OFFER_FIELDS: [&str; 3] = ["type", "value", "label"];

/// Syntax errors, and variables no customer can have, at validation time.
pub(super) fn check_templates(
    cfg: &CampaignConfig,
    cx: &ConfigureCx<'_>,
    errors: &mut Vec<ParamError>,
) {
    let env = match cfg.environment() {
        Ok(env) => env,
        Err((param, e)) => {
            errors.push(ParamError::new(param, template_error(&e)));
            return;
        }
    };
    let known = cx.known_columns();
    let mut names = Vec::new();
    if cfg.email {
        names.push(("subject", SUBJECT));
        names.push(("body", BODY));
    }
    if cfg.action.is_some() {
        names.push(("action", ACTION));
    }
    for (param, name) in names {
        let Ok(template) = env.get_template(name) else {
            continue;
        };
        let mut problems = BTreeSet::new();
        for var in template.undeclared_variables(true) {
            let mut parts = var.splitn(3, '.');
            let root = parts.next().unwrap_or("");
            let field = parts.next();
            if BUILTIN_GLOBALS.contains(&root) {
                continue;
            }
            if !TEMPLATE_ROOTS.contains(&root) {
                problems.insert(format!(
                    "unknown variable `{root}` (available: {})",
                    TEMPLATE_ROOTS.join(", ")
                ));
                continue;
            }
            match (root, field) {
                ("offer", Some(f)) if !OFFER_FIELDS.contains(&f) => {
                    problems.insert(format!(
                        "`offer` has no field `{f}` (it has {})",
                        OFFER_FIELDS.join(", ")
                    ));
                }
                ("customer", Some(f))
                    if f != "first_name"
                        && known.as_ref().is_some_and(|cols| !cols.contains(&f)) =>
                {
                    problems.insert(format!(
                        "`customer` has no field `{f}`: the input has no such column"
                    ));
                }
                _ => {}
            }
        }
        for p in problems {
            errors.push(ParamError::new(param, p));
        }
    }
}

/// A minijinja error with its location and detail, on one line.
pub(super) fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(detail) = e.detail()
        && !msg.contains(detail)
    {
        msg.push_str(&format!(": {detail}"));
    }
    msg
}
