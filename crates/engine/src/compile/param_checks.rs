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
