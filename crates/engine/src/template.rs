//! `{{ ... }}` templates in node parameters.
//!
//! Parameters are rendered with minijinja against the run's parameters (`params.NAME`) and the
//! run context (`run.id`, `run.date`, `run.trigger_time`, `run.fired_by`, `run.workflow_dir`).
//! A string that is exactly one `{{ expression }}` keeps the expression's type, so
//! `threshold: "{{ params.min_clv }}"` stays a number.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value as Json;

use crate::source::Seg;

/// The run context templates can refer to.
#[derive(Debug, Clone, Serialize)]
pub struct RunVars {
    pub id: String,
    /// The trigger time as RFC 3339 (UTC); for a scheduled run, the time it was scheduled for.
    pub trigger_time: String,
    /// That time's date (YYYY-MM-DD, UTC).
    pub date: String,
    pub fired_by: String,
    pub workflow_dir: String,
}

impl RunVars {
    /// The context a run's templates see. A scheduled run is about its scheduled time, also
    /// when it runs late (a catch-up).
    pub(crate) fn for_run(run: &crate::store::RunRecord, workflow_dir: &std::path::Path) -> Self {
        let logical_time = run.trigger.scheduled_for.unwrap_or(run.trigger.time);
        RunVars {
            id: run.id.clone(),
            trigger_time: logical_time.to_rfc3339(),
            date: logical_time.format("%Y-%m-%d").to_string(),
            fired_by: run.trigger.fired_by.clone(),
            workflow_dir: workflow_dir.display().to_string(),
        }
    }
}

#[derive(Serialize)]
struct Vars<'a> {
    params: &'a BTreeMap<String, Json>,
    run: &'a RunVars,
}

/// Renders templates in parameter values.
pub struct Renderer {
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// A template problem, located by its path under `with:`.
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub path: Vec<Seg>,
    pub message: String,
}

const ROOTS: [&str; 2] = ["params", "run"];
const RUN_FIELDS: [&str; 5] = ["id", "trigger_time", "date", "fired_by", "workflow_dir"];

impl Renderer {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // An unknown name is a mistake in a workflow, never an empty string.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Renderer { env }
    }

    /// Renders every string in `value` that contains a template. Collects all errors.
    #[cfg(test)]
    pub fn render(
        &self,
        value: &serde_json::Map<String, Json>,
        params: &BTreeMap<String, Json>,
        run: &RunVars,
    ) -> Result<serde_json::Map<String, Json>, Vec<TemplateError>> {
        self.render_except(value, params, run, &[])
    }

    /// Renders every string in `value` that contains a template (collecting all errors),
    /// leaving the top-level keys in `raw` as written: they are templates the node renders
    /// itself, per item (campaign message bodies, say).
    pub fn render_except(
        &self,
        value: &serde_json::Map<String, Json>,
        params: &BTreeMap<String, Json>,
        run: &RunVars,
        raw: &[&str],
    ) -> Result<serde_json::Map<String, Json>, Vec<TemplateError>> {
        let vars = Vars { params, run };
        let mut errors = Vec::new();
        let mut path = Vec::new();
        let mut out = serde_json::Map::new();
        for (k, v) in value {
            if raw.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
                continue;
            }
            path.push(Seg::key(k.clone()));
            out.insert(
                k.clone(),
                self.render_value(v, &vars, &mut path, &mut errors),
            );
            path.pop();
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn render_value(
        &self,
        value: &Json,
        vars: &Vars<'_>,
        path: &mut Vec<Seg>,
        errors: &mut Vec<TemplateError>,
    ) -> Json {
        match value {
            Json::String(s) if is_template(s) => match self.render_str(s, vars) {
                Ok(v) => v,
                Err(message) => {
                    errors.push(TemplateError {
                        path: path.clone(),
                        message,
                    });
                    Json::Null
                }
            },
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        path.push(Seg::Index(i));
                        let v = self.render_value(item, vars, path, errors);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, item)| {
                        path.push(Seg::key(k.clone()));
                        let v = self.render_value(item, vars, path, errors);
                        path.pop();
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn render_str(&self, text: &str, vars: &Vars<'_>) -> Result<Json, String> {
        crate::template_limits::check_template(text)?;
        let template = self.env.template_from_str(text).map_err(|e| describe(&e))?;
        check_names(template.undeclared_variables(true), vars.params)?;
        if let Some(expr) = single_expression(text) {
            let expr = self
                .env
                .compile_expression(expr)
                .map_err(|e| describe(&e))?;
            let value = expr.eval(vars).map_err(|e| describe(&e))?;
            return serde_json::to_value(&value).map_err(|e| e.to_string());
        }
        template
            .render(vars)
            .map(Json::String)
            .map_err(|e| describe(&e))
    }
}

/// Whether a string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// The params a template names as `params.NAME`, sorted; `None` when it does not parse (the
/// node that renders it reports that).
pub fn param_names(text: &str) -> Option<Vec<String>> {
    crate::template_limits::check_template(text).ok()?;
    let env = Environment::new();
    let template = env.template_from_str(text).ok()?;
    Some(params_among(template.undeclared_variables(true)))
}

/// The param names (`NAME` of `params.NAME...`) among a template's or expression's variables,
/// sorted and without repeats.
pub(crate) fn params_among(variables: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = variables
        .into_iter()
        .filter_map(|v| {
            let rest = v.strip_prefix("params.")?;
            Some(rest.split('.').next().unwrap_or(rest).to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The inner expression of a string that is exactly `{{ expr }}`.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner)
}

fn check_names(
    names: std::collections::HashSet<String>,
    params: &BTreeMap<String, Json>,
) -> Result<(), String> {
    let names: BTreeSet<String> = names.into_iter().collect();
    for name in &names {
        let mut parts = name.splitn(3, '.');
        let root = parts.next().unwrap_or_default();
        let field = parts.next();
        if !ROOTS.contains(&root) {
            return Err(format!(
                "template refers to unknown variable `{name}`; use params.NAME or run.{}",
                RUN_FIELDS.join("|run.")
            ));
        }
        match (root, field) {
            ("params", Some(p)) if !params.contains_key(p) => {
                let known: Vec<&str> = params.keys().map(String::as_str).collect();
                let hint = match crate::compile::suggest(p, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if known.is_empty() => "declared params: none".to_string(),
                    None => format!("declared params: {}", known.join(", ")),
                };
                return Err(format!("template refers to unknown param `{p}` ({hint})"));
            }
            ("run", Some(f)) if !RUN_FIELDS.contains(&f) => {
                return Err(format!(
                    "template refers to unknown run field `run.{f}` (known: {})",
                    RUN_FIELDS.join(", ")
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn describe(err: &minijinja::Error) -> String {
    let mut msg = match err.detail() {
        Some(detail) => format!("template error: {detail}"),
        None => format!("template error: {}", err.kind()),
    };
    if let Some(line) = err.line()
        && line > 1
    {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> RunVars {
        RunVars {
            id: "r1".into(),
            trigger_time: "2026-01-02T06:00:00Z".into(),
            date: "2026-01-02".into(),
            fired_by: "manual".into(),
            workflow_dir: "/w".into(),
        }
    }

    fn render(with: Json, params: Json) -> Result<Json, Vec<TemplateError>> {
        let params: BTreeMap<String, Json> = serde_json::from_value(params).unwrap();
        Renderer::new()
            .render(with.as_object().unwrap(), &params, &run())
            .map(Json::Object)
    }

    #[test]
    fn renders_and_keeps_types() {
        let out = render(
            json!({"n": "{{ params.n }}", "s": "run {{ run.id }} on {{ run.date }}", "l": ["{{ params.n * 2 }}"]}),
            json!({"n": 21}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"n": 21, "s": "run r1 on 2026-01-02", "l": [42]})
        );
    }

    #[test]
    fn unknown_names_are_errors_with_paths() {
        let errs = render(
            json!({"a": "{{ params.missing }}", "b": {"c": "{{ nope }}"}, "d": "{{ run.idd }}"}),
            json!({"n": 1}),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(
            errs[0]
                .message
                .contains("unknown param `missing` (declared params: n)"),
            "{}",
            errs[0].message
        );
        assert_eq!(errs[1].path, vec![Seg::key("b"), Seg::key("c")]);
        assert!(errs[2].message.contains("run.idd"));
        let errs = render(json!({"a": "{{ params.lmit }}"}), json!({"limit": 1})).unwrap_err();
        assert_eq!(
            errs[0].message,
            "template refers to unknown param `lmit` (did you mean `limit`?)"
        );
    }

    #[test]
    fn param_names_of_a_template() {
        assert_eq!(
            param_names(
                "Hi {{ customer.name }}, {{ params.offer }} {% if params.vip %}!{% endif %}"
            ),
            Some(vec!["offer".to_string(), "vip".to_string()])
        );
        assert_eq!(param_names("{{ oops"), None);
    }

    #[test]
    fn syntax_errors_are_reported() {
        let errs = render(json!({"a": "{{ params.n "}), json!({"n": 1})).unwrap_err();
        assert!(errs[0].message.starts_with("template error"));
    }
}
