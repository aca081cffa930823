//! Configuring nodes from their rendered parameters: at validation time with placeholder run
//! values (again in graph order once input columns are known), and for each run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Compiler, Need, Parsed, with_path};
use crate::node::{ConfigureCx, Node, NodeKind, NodeType, ParamError, ParamType, Params};
use crate::source::Seg;
use crate::template::{Renderer, RunVars, TemplateError};

impl Compiler<'_> {
    /// Second pass in graph order: nodes whose inputs declare their columns are configured
    /// again with them, so a rule naming a column that cannot exist is reported now.
    pub(super) fn check_columns(
        &mut self,
        order: &[usize],
        parsed: &[Parsed],
        needs: &[Vec<Need>],
        renderer: &Renderer,
        params: &BTreeMap<String, Json>,
        run: &RunVars,
    ) {
        let mut columns: Vec<Option<Vec<String>>> = vec![None; parsed.len()];
        for &i in order {
            let node = &parsed[i];
            let Some(first) = &node.configured else {
                continue;
            };
            let inputs: Vec<Option<Vec<String>>> =
                needs[i].iter().map(|n| columns[n.node].clone()).collect();
            let mut configured = first.clone();
            if inputs.iter().any(Option::is_some) {
                let (Some(node_type), Some(kind)) = (&node.node_type, node.kind) else {
                    continue;
                };
                match configure_node(
                    renderer,
                    node_type.as_ref(),
                    &node.id,
                    kind,
                    &node.with,
                    params,
                    run,
                    &self.dir,
                    &inputs,
                ) {
                    Ok(c) => configured = c,
                    Err(errors) => {
                        for e in errors {
                            self.error(&with_path(i, &e.path), Some(&node.id), e.message);
                        }
                        continue;
                    }
                }
            }
            columns[i] = configured.output_columns(&inputs);
        }
    }
}

/// Renders a node's parameters, type-checks them and configures the node.
#[allow(clippy::too_many_arguments)]
pub(super) fn configure_node(
    renderer: &Renderer,
    node_type: &dyn NodeType,
    id: &str,
    kind: NodeKind,
    with: &serde_json::Map<String, Json>,
    params: &BTreeMap<String, Json>,
    run: &RunVars,
    dir: &Path,
    input_columns: &[Option<Vec<String>>],
) -> Result<Arc<dyn Node>, Vec<ParamError>> {
    let specs = node_type.params();
    let raw: Vec<&str> = specs
        .iter()
        .filter(|s| s.ty == ParamType::Template)
        .map(|s| s.name)
        .collect();
    let secrets = literal_secrets(with);
    if !secrets.is_empty() {
        return Err(secrets);
    }
    let rendered = renderer
        .render_except(with, params, run, &raw)
        .map_err(|errs| {
            errs.into_iter()
                .map(|TemplateError { path, message }| ParamError::at(path, message))
                .collect::<Vec<_>>()
        })?;
    let mut errors = Vec::new();
    for spec in specs {
        if let Some(value) = rendered.get(spec.name).filter(|v| !v.is_null())
            && !spec.ty.accepts(value)
        {
            let expected = spec.ty.expected();
            errors.push(ParamError::new(
                spec.name,
                format!("`{}` must be {expected}, got {}", spec.name, short(value)),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let cx = ConfigureCx {
        node_id: id,
        kind,
        workflow_dir: dir,
        input_columns,
    };
    node_type.configure(&Params::new(rendered, dir), &cx)
}

/// Every value under `with:` that is a literal credential (see [`crate::secret::literal_secret`]).
fn literal_secrets(with: &serde_json::Map<String, Json>) -> Vec<ParamError> {
    fn walk(path: &mut Vec<Seg>, key: &str, value: &Json, out: &mut Vec<ParamError>) {
        match value {
            Json::Object(map) => {
                for (k, v) in map {
                    path.push(Seg::key(k));
                    walk(path, k, v, out);
                    path.pop();
                }
            }
            Json::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(path, key, v, out);
                    path.pop();
                }
            }
            _ => {
                if let Some(message) = crate::secret::literal_secret(key, value) {
                    out.push(ParamError::at(path.clone(), message));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (k, v) in with {
        walk(&mut vec![Seg::key(k)], k, v, &mut out);
    }
    out
}

fn short(value: &Json) -> String {
    let s = value.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(57)])
    } else {
        s
    }
}
