//! Compiles a workflow file into a validated graph, collecting every error first.
//!
//! Parsing happens in two passes over the same text: `serde_yaml` for values and syntax errors,
//! [`SourceMap`] for positions. Every later check (ids, types, parameters, needs, cycles,
//! templates) appends a [`Diagnostic`] instead of returning early, so `flow validate` reports all
//! problems at once, each as `FILE:LINE:COL: message`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::model::WORKFLOW_KEYS;
use crate::node::{NodeKind, Registry};
use crate::params;
use crate::source::{Seg, SourceMap};
use crate::template::{Renderer, RunVars};
use crate::trigger_rule::TriggerRule;

mod configure;
mod diagnostic;
mod fingerprint;
mod graph;
pub mod limits;
mod notifications;
mod param_checks;
mod parse;
mod read;
mod roles;
#[cfg(test)]
mod tests;
mod workflow;

pub use diagnostic::{Diagnostic, LoadError, Severity, display_all, suggest};
pub use fingerprint::canonical_json;
pub use read::{decode, read_bytes, read_source};
pub use workflow::{CompiledNode, Need, RetryPolicy, Workflow};

use configure::configure_node;
use fingerprint::{hash_hex, hex};
use graph::{case_path, find_cycles, topo_order, undelivered_cases};
use parse::Parsed;

/// Reads and compiles a workflow file.
pub fn load(path: &Path, registry: &Registry) -> Result<Workflow, LoadError> {
    let text = read_source(path)?;
    compile(&text, path, registry).map_err(LoadError::Invalid)
}

/// Compiles workflow text; `path` names the file in messages and anchors relative paths.
pub fn compile(text: &str, path: &Path, registry: &Registry) -> Result<Workflow, Vec<Diagnostic>> {
    // Before any parser: deep nesting would overflow the stack or take quadratic time.
    read::check_limits(text, path)?;
    Compiler::new(text, path, registry).run()
}

/// One compilation: the file, where its values are, and the problems found so far.
struct Compiler<'a> {
    path: PathBuf,
    dir: PathBuf,
    text: &'a str,
    map: SourceMap,
    registry: &'a Registry,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

fn node_path(i: usize) -> Vec<Seg> {
    vec![Seg::key("nodes"), Seg::Index(i)]
}

fn with_path(i: usize, rest: &[Seg]) -> Vec<Seg> {
    let mut p = node_path(i);
    p.push(Seg::key("with"));
    p.extend_from_slice(rest);
    p
}

impl<'a> Compiler<'a> {
    fn new(text: &'a str, path: &Path, registry: &'a Registry) -> Self {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        Compiler {
            path: path.to_path_buf(),
            dir,
            text,
            map: SourceMap::new(text),
            registry,
            diags: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Workflow, Vec<Diagnostic>> {
        let yaml: serde_yaml::Value = match serde_yaml::from_str(self.text) {
            Ok(v) => v,
            Err(e) => {
                let loc = e.location();
                let msg = e.to_string();
                // serde_yaml appends " at line L column C"; the position goes in front instead.
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                self.diags.push(Diagnostic {
                    severity: Severity::Error,
                    file: self.path.clone(),
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    node: None,
                    message: format!("invalid YAML: {msg}"),
                });
                return Err(self.diags);
            }
        };
        let root = match serde_json::to_value(&yaml) {
            Ok(Json::Object(map)) => map,
            Ok(Json::Null) => {
                self.error(
                    &[],
                    None,
                    "the file is empty; a workflow needs `name` and `nodes`",
                );
                return Err(self.diags);
            }
            Ok(_) => {
                self.error(
                    &[],
                    None,
                    "a workflow must be a mapping with `name` and `nodes`",
                );
                return Err(self.diags);
            }
            Err(e) => {
                self.error(&[], None, format!("unsupported YAML: {e}"));
                return Err(self.diags);
            }
        };

        self.unknown_keys(&root, &[], WORKFLOW_KEYS, None, "workflow");
        let name = match root.get("name") {
            Some(Json::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                self.error(
                    &[Seg::key("name")],
                    None,
                    "`name` must be a non-empty string",
                );
                String::new()
            }
            None => {
                self.error(&[], None, "missing `name`");
                String::new()
            }
        };
        let description = root
            .get("description")
            .and_then(Json::as_str)
            .map(str::to_string);
        let (param_decls, params) = self.declare_params(root.get("params"));
        let concurrency = match root.get("concurrency") {
            None | Some(Json::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Some(n as usize),
                _ => {
                    self.error(
                        &[Seg::key("concurrency")],
                        None,
                        "`concurrency` must be a whole number >= 1",
                    );
                    None
                }
            },
        };
        let items = match root.get("nodes") {
            Some(Json::Array(items)) => items.clone(),
            Some(_) => {
                self.error(
                    &[Seg::key("nodes")],
                    None,
                    "`nodes` must be a list of nodes",
                );
                Vec::new()
            }
            None => {
                self.error(&[], None, "missing `nodes`");
                Vec::new()
            }
        };
        if items.is_empty() && root.get("nodes").is_some_and(Json::is_array) {
            self.error(&[Seg::key("nodes")], None, "`nodes` is empty");
        }
        let notifications = self.notifications(&root);

        let placeholder_run = RunVars {
            id: "validate".into(),
            trigger_time: "2000-01-01T00:00:00Z".into(),
            date: "2000-01-01".into(),
            fired_by: "validate".into(),
            workflow_dir: self.dir.display().to_string(),
        };
        let renderer = Arc::new(Renderer::new());
        let mut parsed: Vec<Parsed> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            parsed.push(self.parse_node(i, item));
        }

        // Ids.
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for (i, node) in parsed.iter().enumerate() {
            if node.id.is_empty() {
                continue;
            }
            if let Some(&first) = by_id.get(&node.id) {
                let first_line = self.map.pos(&node_path(first)).map(|p| p.line);
                let msg = match first_line {
                    Some(line) => {
                        format!("duplicate id `{}` (first defined on line {line})", node.id)
                    }
                    None => format!("duplicate id `{}`", node.id),
                };
                let mut at = node_path(i);
                at.push(Seg::key("id"));
                self.error(&at, Some(&node.id.clone()), msg);
            } else {
                by_id.insert(node.id.clone(), i);
            }
        }

        // Parameters: type-check, render templates with defaults, configure.
        for (i, node) in parsed.iter_mut().enumerate() {
            let (Some(node_type), Some(kind)) = (node.node_type.clone(), node.kind) else {
                continue;
            };
            if node.missing_required {
                continue;
            }
            let id = node.id.clone();
            match configure_node(
                &renderer,
                node_type.as_ref(),
                &id,
                kind,
                &node.with,
                &params,
                &placeholder_run,
                &self.dir,
                &[],
            ) {
                Ok(configured) => {
                    node.cases = configured.cases();
                    self.check_param_uses(
                        i,
                        &id,
                        node_type.as_ref(),
                        &node.with,
                        &configured,
                        (&param_decls, &params),
                    );
                    node.configured = Some(configured);
                }
                Err(errors) => {
                    for e in errors {
                        self.error(&with_path(i, &e.path), Some(&id), e.message);
                    }
                }
            }
            if kind == NodeKind::Decision && node.cases.is_empty() && self.diags.is_empty() {
                self.error(
                    &node_path(i),
                    Some(&id),
                    "a decision must declare at least one case",
                );
            }
        }

        // Needs.
        let mut needs: Vec<Vec<Need>> = vec![Vec::new(); parsed.len()];
        // Per resolved need, its index under `needs`; and whether a need failed to resolve.
        let mut positions: Vec<Vec<usize>> = vec![Vec::new(); parsed.len()];
        let mut unresolved = vec![false; parsed.len()];
        for (i, node) in parsed.iter().enumerate() {
            if node.kind == Some(NodeKind::Trigger) && !node.needs.is_empty() {
                let mut at = node_path(i);
                at.push(Seg::KeyName("needs".into()));
                self.error(
                    &at,
                    Some(&node.id),
                    "a trigger starts the run and cannot have `needs`",
                );
                continue;
            }
            let mut seen = HashSet::new();
            for (j, need) in node.needs.iter().enumerate() {
                let mut at = node_path(i);
                at.extend([Seg::key("needs"), Seg::Index(j)]);
                match self.resolve_need(need, &by_id, &parsed) {
                    Ok(mut resolved) => {
                        if !seen.insert(resolved.clone()) {
                            self.error(&at, Some(&node.id), format!("`{need}` is listed twice"));
                        } else {
                            resolved.role = node.roles.get(j).cloned().flatten();
                            needs[i].push(resolved);
                            positions[i].push(j);
                        }
                    }
                    Err(msg) => {
                        unresolved[i] = true;
                        self.error(&at, Some(&node.id), msg);
                        // Keep the edge for cycle detection, so a cycle is reported together
                        // with a mistake in how it is written.
                        let target = need.split('.').next().unwrap_or_default();
                        let edge = by_id.get(target).map(|&dep| Need {
                            node: dep,
                            case: None,
                            role: None,
                        });
                        if let Some(edge) = edge
                            && seen.insert(edge.clone())
                        {
                            needs[i].push(edge);
                            positions[i].push(j);
                        }
                    }
                }
            }
        }

        let input_plans = self.assign_roles(&parsed, &mut needs, &positions, &unresolved);

        // Graph and cycles.
        let mut graph: DiGraph<usize, Option<String>> = DiGraph::new();
        let ix: Vec<NodeIndex> = (0..parsed.len()).map(|i| graph.add_node(i)).collect();
        for (i, node_needs) in needs.iter().enumerate() {
            for need in node_needs {
                graph.add_edge(ix[need.node], ix[i], need.case.clone());
            }
        }
        for cycle in find_cycles(&graph) {
            let names: Vec<&str> = cycle.iter().map(|&i| parsed[i].id.as_str()).collect();
            let first = cycle[0];
            let mut at = node_path(first);
            at.push(Seg::key("needs"));
            self.error(
                &at,
                Some(&parsed[first].id),
                format!("cycle: {}", names.join(" -> ")),
            );
        }

        let order = topo_order(&graph);
        if order.len() == parsed.len() {
            self.check_columns(
                &order,
                &parsed,
                &needs,
                &renderer,
                &params,
                &placeholder_run,
            );
        }

        if !self.diags.is_empty() {
            self.diags
                .sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
            return Err(self.diags);
        }

        let undelivered = undelivered_cases(&parsed, &needs, &graph);
        for (i, cases) in undelivered.iter().enumerate() {
            for (case, why) in cases {
                let at = case_path(i, &parsed[i].with, case);
                self.warning(
                    &at,
                    Some(&parsed[i].id),
                    format!("case `{case}` {why}; its rows will not be delivered"),
                );
            }
        }

        let mut nodes = Vec::with_capacity(parsed.len());
        for (i, (((p, node_needs), undelivered_cases), input_plans)) in parsed
            .into_iter()
            .zip(needs)
            .zip(undelivered)
            .zip(input_plans)
            .enumerate()
        {
            let fingerprint = hash_hex(&canonical_json(&p.raw));
            let uses = params::used_by(&p.with, &param_decls);
            let params_used = if uses.all {
                param_decls.keys().cloned().collect()
            } else {
                uses.names
            };
            let kind = p.kind.expect("validated");
            nodes.push(CompiledNode {
                params_used,
                index: i,
                pos: self.map.pos(&node_path(i)),
                id: p.id,
                kind,
                type_name: p.type_name,
                node_type: p.node_type.expect("validated"),
                description: p.description,
                needs: node_needs,
                trigger_rule: p.trigger_rule.unwrap_or(TriggerRule::default_for(kind)),
                trigger_rule_set: p.trigger_rule.is_some(),
                undelivered_cases,
                with: p.with,
                retry: p.retry,
                timeout: p.timeout,
                labels: p.labels,
                cases: p.cases,
                input_plans,
                fingerprint,
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(canonical_json(
            &serde_json::to_value(&params).unwrap_or_default(),
        ));
        for n in &nodes {
            hasher.update(n.id.as_bytes());
            hasher.update(n.fingerprint.as_bytes());
        }
        let fingerprint = hex(&hasher.finalize()[..8]);
        let path = std::path::absolute(&self.path).unwrap_or(self.path.clone());
        Ok(Workflow {
            name,
            description,
            path,
            dir: self.dir,
            file: self.path,
            params,
            param_decls,
            concurrency,
            notifications,
            nodes,
            graph,
            order,
            fingerprint,
            warnings: self.warnings,
            by_id,
            renderer,
            registry: self.registry.clone(),
        })
    }
}
