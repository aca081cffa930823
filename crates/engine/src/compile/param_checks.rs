//! Params in compilation: reading the `params:` declarations, and checking the params that
//! rule expressions and self-rendered templates name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Compiler, suggest, with_path};
use crate::node::{Node, NodeType, ParamType};
use crate::params::{self, ParamDecl, ParamKind};
use crate::source::Seg;

impl Compiler<'_> {
    /// Reads `params:`: the declarations, and each param's default (also for a param whose
    /// declaration is wrong, so its uses are not reported as unknown on top).
    pub(super) fn declare_params(
        &mut self,
        raw: Option<&Json>,
    ) -> (BTreeMap<String, ParamDecl>, BTreeMap<String, Json>) {
        let raw = match raw {
            None | Some(Json::Null) => return Default::default(),
            Some(Json::Object(m)) => m,
            Some(_) => {
                self.error(
                    &[Seg::key("params")],
                    None,
                    "`params` must map names to defaults (`NAME: VALUE` or `NAME: { type, default }`)",
                );
                return Default::default();
            }
        };
        let (mut decls, errors) = params::declare(raw);
        for e in errors {
            self.error(&e.path, None, e.message);
        }
        for (name, decl) in &mut decls {
            decl.pos = self
                .map
                .pos(&[Seg::key("params"), Seg::KeyName(name.clone())]);
        }
        let defaults = raw
            .iter()
            .map(|(name, value)| {
                let default = match decls.get(name) {
                    Some(d) => d.default.clone(),
                    None => match value {
                        Json::Object(m) if m.contains_key("default") => m["default"].clone(),
                        Json::Object(m) if m.contains_key("type") => Json::Null,
                        other => other.clone(),
                    },
                };
                (name.clone(), default)
            })
            .collect();
        (decls, defaults)
    }

    /// Params named in a node's rule expressions and self-rendered templates must be
    /// declared, and a param compared with a literal must have the literal's type. (Templates
    /// rendered by the engine are checked when they are rendered.)
    pub(super) fn check_param_uses(
        &mut self,
        i: usize,
        id: &str,
        node_type: &dyn NodeType,
        with: &serde_json::Map<String, Json>,
        configured: &Arc<dyn Node>,
        (decls, known): (&BTreeMap<String, ParamDecl>, &BTreeMap<String, Json>),
    ) {
        let unknown = |name: &str| {
            let hint = match suggest(name, known.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "the workflow declares no params".to_string(),
                None => format!(
                    "declared params: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            format!("unknown param `{name}` ({hint})")
        };
        for (path, expr) in configured.expressions() {
            let at = with_path(i, &path);
            for name in expr.param_names() {
                if !known.contains_key(&name) {
                    let msg = format!("`{}` refers to {}", expr.source(), unknown(&name));
                    self.error(&at, Some(id), msg);
                }
            }
            for (name, op, literal) in expr.param_literal_comparisons() {
                let Some(decl) = decls.get(&name) else {
                    continue;
                };
                let fits = match decl.kind {
                    ParamKind::Integer | ParamKind::Number => literal.is_number(),
                    ParamKind::String => literal.is_string(),
                    ParamKind::Boolean => literal.is_boolean(),
                    ParamKind::List | ParamKind::Mapping => true,
                };
                if !fits {
                    let msg = format!(
                        "`{}`: param `{name}` is {} but is compared (`{op}`) with {}",
                        expr.source(),
                        decl.kind.described(),
                        params::show(&literal)
                    );
                    self.error(&at, Some(id), msg);
                }
            }
        }
        for spec in node_type.params() {
            if spec.ty != ParamType::Template {
                continue;
            }
            let Some(Json::String(text)) = with.get(spec.name) else {
                continue;
            };
            for name in crate::template::param_names(text).unwrap_or_default() {
                if !known.contains_key(&name) {
                    let msg = format!("template refers to {}", unknown(&name));
                    self.error(&with_path(i, &[Seg::key(spec.name)]), Some(id), msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{compile_str, errors};
    use crate::params::ParamKind;

    #[test]
    fn params_are_typed_and_their_declarations_checked_where_written() {
        let wf = compile_str(
            "\
name: p
params:
  min: 300
  days: { type: integer, default: 30, min: 1, description: recent }
  tier: { default: gold, allowed: [gold, silver] }
nodes:
  - { id: go, kind: trigger, type: manual }
",
        )
        .unwrap();
        let kinds: Vec<(&str, ParamKind)> = wf
            .param_decls
            .values()
            .map(|d| (d.name.as_str(), d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("days", ParamKind::Integer),
                ("min", ParamKind::Number),
                ("tier", ParamKind::String)
            ]
        );
        assert_eq!(wf.param_decls["days"].pos.map(|p| p.line), Some(4));
        assert_eq!(wf.params["days"], serde_json::json!(30));

        let errs = errors(
            "\
name: p
params:
  a: { type: integr, default: 1 }
  b: { type: integer, default: 2.5 }
  c: { default: 5, max: 3 }
  d: ~
nodes:
  - { id: go, kind: trigger, type: manual }
",
        );
        let expect = [
            (3, "unknown param type `integr` (did you mean `integer`?"),
            (4, "the default of param `b`: expected an integer, got 2.5"),
            (5, "the default of param `c`: 5 is above the maximum 3"),
            (6, "param `d` has no default"),
        ];
        for (line, text) in expect {
            assert!(
                errs.iter().any(|(l, m)| *l == line && m.contains(text)),
                "missing line {line}: {text}\ngot: {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    }

    #[test]
    fn undeclared_params_in_rules_and_templates_are_errors_at_their_line() {
        let errs = errors(
            "\
name: p
params: { limit: 3, tier: gold }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules:
        - { case: big, when: 'value > params.limt' }
        - { case: odd, when: 'params.tier > 2' }
        - { case: fine, when: 'value > params.limit and params.tier == \"gold\"' }
      default: small
  - { id: b, kind: action, type: core.shell, needs: split.big, with: { command: 'echo {{ params.tierr }}' } }
  - id: mail
    kind: action
    type: test.message
    needs: split.small
    with: { action: 'Call {{ customer.first_name }} about {{ params.tire }}' }
",
        );
        let expect = [
            (
                11,
                "`value > params.limt` refers to unknown param `limt` (did you mean `limit`?)",
            ),
            (
                12,
                "`params.tier > 2`: param `tier` is a string but is compared (`>`) with 2",
            ),
            (15, "template refers to unknown param `tierr`"),
            (
                20,
                "template refers to unknown param `tire` (did you mean `tier`?)",
            ),
        ];
        for (line, text) in expect {
            assert!(
                errs.iter().any(|(l, m)| *l == line && m.contains(text)),
                "missing line {line}: {text}\ngot: {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    }

    #[test]
    fn nodes_record_the_params_they_use_and_fingerprint_their_values() {
        let text = "\
name: p
params: { limit: 3, label: x, unused: 1 }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules: [{ case: big, when: 'value > params.limit' }]
      default: small
  - { id: env, kind: action, type: core.shell, needs: go, with: { command: 'echo $FLOW_PARAM_LABEL' } }
  - { id: all, kind: action, type: core.shell, needs: go, with: { command: 'echo {{ params }}' } }
  - { id: none, kind: action, type: core.shell, needs: go, with: { command: 'echo params.limit' } }
";
        let wf = compile_str(text).unwrap();
        let used = |id: &str| -> Vec<&str> {
            wf.node(id)
                .unwrap()
                .params_used
                .iter()
                .map(String::as_str)
                .collect()
        };
        assert_eq!(used("split"), ["limit"]);
        assert_eq!(used("env"), ["label"]);
        assert_eq!(used("all"), ["label", "limit", "unused"]);
        // A plain string that mentions a param counts: re-running is the safe mistake.
        assert_eq!(used("none"), ["limit"]);
        assert!(used("go").is_empty());

        let mut params = wf.params.clone();
        let split = wf.node("split").unwrap();
        let env = wf.node("env").unwrap();
        let go = wf.node("go").unwrap();
        let (split_fp, env_fp) = (
            split.fingerprint_with(&params),
            env.fingerprint_with(&params),
        );
        assert_eq!(go.fingerprint_with(&params), go.fingerprint);
        params.insert("limit".into(), serde_json::json!(4));
        assert_ne!(split.fingerprint_with(&params), split_fp);
        assert_eq!(env.fingerprint_with(&params), env_fp);
        params.insert("unused".into(), serde_json::json!(2));
        params.insert("limit".into(), serde_json::json!(3));
        assert_eq!(split.fingerprint_with(&params), split_fp);
    }
}
