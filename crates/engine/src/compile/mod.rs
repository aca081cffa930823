//! Compiles a workflow file into a validated graph, collecting every error first.
//!
//! Parsing happens in two passes over the same text: `serde_yaml` for values and syntax errors,
//! [`SourceMap`] for positions. Every later check (ids, types, parameters, needs, cycles,
//! templates) appends a [`Diagnostic`] instead of returning early, so `flow validate` reports all
//! problems at once, each as `FILE:LINE:COL: message`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::model::{NODE_KEYS, RetryDef, WORKFLOW_KEYS};
use crate::node::{ConfigureCx, Node, NodeKind, ParamError, ParamType, Params, Registry};
use crate::node::{NodeType, parse_duration};
use crate::params::{self, ParamDecl};
use crate::source::{Pos, Seg, SourceMap, path_to_string};
use crate::template::{Renderer, RunVars, TemplateError};
use crate::trigger_rule::TriggerRule;

/// How bad a diagnostic is: errors make the file invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

#[cfg(test)]
mod fuzz_tests;
pub mod limits;
mod param_checks;
mod read;
mod roles;
#[cfg(test)]
mod roles_tests;

pub use read::{decode, read_bytes, read_source};

/// One validation problem.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read workflow {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", display_all(.0))]
    Invalid(Vec<Diagnostic>),
}

pub fn display_all(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a node is retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            factor: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1) as i32);
        let secs = (self.backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// An edge: this node needs `node` (one case of it, for a decision).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Need {
    pub node: usize,
    pub case: Option<String>,
    /// The input role the output fills in this node (see [`NodeType::inputs`]).
    pub role: Option<String>,
}

/// A validated node.
pub struct CompiledNode {
    pub index: usize,
    pub id: String,
    pub kind: NodeKind,
    pub type_name: String,
    pub node_type: Arc<dyn NodeType>,
    pub description: Option<String>,
    pub needs: Vec<Need>,
    /// When the node runs, given how its inputs ended (the kind's default if not set).
    pub trigger_rule: TriggerRule,
    /// Whether `trigger_rule` was written in the file.
    pub trigger_rule_set: bool,
    /// A decision's cases whose rows reach no output, with why (no subscriber, no path).
    pub undelivered_cases: Vec<(String, String)>,
    /// `with:` as written (templates not rendered).
    pub with: serde_json::Map<String, Json>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// A decision's cases, in declaration order.
    pub cases: Vec<String>,
    /// Per need: the kind an input's table is checked against when it arrives, for a role
    /// filled by a node that does not declare the kind of table it produces.
    pub input_checks: Vec<Option<crate::table_kind::TableKind>>,
    /// Hash of the node's definition: resume re-runs a node whose fingerprint changed.
    pub fingerprint: String,
    /// The params the node's `with:` uses (by name, in templates, expressions or
    /// `FLOW_PARAM_NAME`): changing one re-runs the node on resume.
    pub params_used: BTreeSet<String>,
    pub pos: Option<Pos>,
}

impl CompiledNode {
    /// The definition's fingerprint combined with the values of the params the node uses, as
    /// recorded for a run. A node that uses no params keeps its definition's fingerprint.
    pub fn fingerprint_with(&self, params: &BTreeMap<String, Json>) -> String {
        if self.params_used.is_empty() {
            return self.fingerprint.clone();
        }
        let used: serde_json::Map<String, Json> = self
            .params_used
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    params.get(name).cloned().unwrap_or(Json::Null),
                )
            })
            .collect();
        hash_hex(&format!(
            "{}|{}",
            self.fingerprint,
            canonical_json(&Json::Object(used))
        ))
    }
}

impl fmt::Debug for CompiledNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledNode")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("type", &self.type_name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

/// A validated workflow: nodes, their graph and a topological order.
#[derive(Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The workflow file (absolute).
    pub path: PathBuf,
    /// Relative paths in parameters resolve against this directory.
    pub dir: PathBuf,
    /// The file as named when it was loaded, for messages.
    pub file: PathBuf,
    /// Each param's default.
    pub params: BTreeMap<String, Json>,
    /// Each param's declaration: type, default, limits, where it is declared.
    pub param_decls: BTreeMap<String, ParamDecl>,
    pub concurrency: Option<usize>,
    pub nodes: Vec<CompiledNode>,
    pub graph: DiGraph<usize, Option<String>>,
    /// Node indices, each after everything it needs (file order among independent nodes).
    pub order: Vec<usize>,
    pub fingerprint: String,
    /// Problems that do not stop the workflow from running (`flow validate` prints them).
    pub warnings: Vec<Diagnostic>,
    by_id: HashMap<String, usize>,
    renderer: Arc<Renderer>,
    registry: Registry,
}

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

struct Compiler<'a> {
    path: PathBuf,
    dir: PathBuf,
    text: &'a str,
    map: SourceMap,
    registry: &'a Registry,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// A node after shape checks, before graph checks.
struct Parsed {
    id: String,
    kind: Option<NodeKind>,
    type_name: String,
    node_type: Option<Arc<dyn NodeType>>,
    description: Option<String>,
    needs: Vec<String>,
    /// Per item of `needs`: the role written as `as:`.
    roles: Vec<Option<String>>,
    trigger_rule: Option<TriggerRule>,
    with: serde_json::Map<String, Json>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    raw: Json,
    cases: Vec<String>,
    /// A required parameter is missing (already reported; configure would only repeat it).
    missing_required: bool,
    /// The node configured without knowledge of its inputs (first pass).
    configured: Option<Arc<dyn Node>>,
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

    fn error(&mut self, at: &[Seg], node: Option<&str>, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Error, at, node, message.into());
        self.diags.push(d);
    }

    fn warning(&mut self, at: &[Seg], node: Option<&str>, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Warning, at, node, message.into());
        self.warnings.push(d);
    }

    fn diagnostic(
        &self,
        severity: Severity,
        at: &[Seg],
        node: Option<&str>,
        message: String,
    ) -> Diagnostic {
        let pos = self.map.pos(at);
        Diagnostic {
            severity,
            file: self.path.clone(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.col),
            node: node.map(str::to_string),
            message,
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

        let input_checks = self.assign_roles(&parsed, &mut needs, &positions, &unresolved);

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
        for (i, (((p, node_needs), undelivered_cases), input_checks)) in parsed
            .into_iter()
            .zip(needs)
            .zip(undelivered)
            .zip(input_checks)
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
                cases: p.cases,
                input_checks,
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

    /// Second pass in graph order: nodes whose inputs declare their columns are configured
    /// again with them, so a rule naming a column that cannot exist is reported now.
    fn check_columns(
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

    fn unknown_keys(
        &mut self,
        map: &serde_json::Map<String, Json>,
        at: &[Seg],
        known: &[&str],
        node: Option<&str>,
        what: &str,
    ) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let mut path = at.to_vec();
                path.push(Seg::KeyName(key.clone()));
                let hint = suggest(key, known.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!(" (expected one of: {})", known.join(", ")));
                self.error(&path, node, format!("unknown {what} key `{key}`{hint}"));
            }
        }
    }

    fn parse_node(&mut self, i: usize, item: &Json) -> Parsed {
        let mut parsed = Parsed {
            id: String::new(),
            kind: None,
            type_name: String::new(),
            node_type: None,
            description: None,
            needs: Vec::new(),
            roles: Vec::new(),
            trigger_rule: None,
            with: serde_json::Map::new(),
            retry: RetryPolicy::default(),
            timeout: None,
            raw: item.clone(),
            cases: Vec::new(),
            missing_required: false,
            configured: None,
        };
        let at = node_path(i);
        let field = |k: &str| {
            let mut p = node_path(i);
            p.push(Seg::key(k));
            p
        };
        let Json::Object(map) = item else {
            self.error(
                &at,
                None,
                "a node must be a mapping with `id`, `kind` and `type`",
            );
            return parsed;
        };
        match map.get("id") {
            Some(Json::String(id)) if valid_id(id) => parsed.id = id.clone(),
            Some(Json::String(id)) => self.error(
                &field("id"),
                Some(id),
                "ids may contain only letters, digits, `_` and `-` (a `.` separates a decision's case in `needs`)",
            ),
            Some(other) => self.error(&field("id"), None, format!("`id` must be a string, got {other}")),
            None => self.error(&at, None, "node without `id`"),
        }
        let id = (!parsed.id.is_empty()).then(|| parsed.id.clone());
        let id = id.as_deref();
        self.unknown_keys(map, &at, NODE_KEYS, id, "node");

        match map.get("kind") {
            Some(Json::String(k)) => match k.as_str() {
                "trigger" => parsed.kind = Some(NodeKind::Trigger),
                "action" => parsed.kind = Some(NodeKind::Action),
                "decision" => parsed.kind = Some(NodeKind::Decision),
                "output" => parsed.kind = Some(NodeKind::Output),
                other => self.error(
                    &field("kind"),
                    id,
                    format!(
                        "unknown kind `{other}` (expected trigger, action, decision or output)"
                    ),
                ),
            },
            Some(other) => self.error(
                &field("kind"),
                id,
                format!("`kind` must be a string, got {other}"),
            ),
            None => self.error(
                &at,
                id,
                "missing `kind` (trigger, action, decision or output)",
            ),
        }
        match map.get("type") {
            Some(Json::String(t)) => {
                parsed.type_name = t.clone();
                match self.registry.get(t) {
                    Some(nt) => parsed.node_type = Some(nt.clone()),
                    None => {
                        let hint = suggest(t, self.registry.names())
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| "`flow nodes` lists the known types".into());
                        self.error(
                            &field("type"),
                            id,
                            format!("unknown node type `{t}` ({hint})"),
                        );
                    }
                }
            }
            Some(other) => self.error(
                &field("type"),
                id,
                format!("`type` must be a string, got {other}"),
            ),
            None => self.error(
                &at,
                id,
                "missing `type` (`flow nodes` lists the node types)",
            ),
        }
        if let (Some(kind), Some(nt)) = (parsed.kind, &parsed.node_type)
            && !nt.kinds().contains(&kind)
        {
            let allowed: Vec<&str> = nt.kinds().iter().map(|k| k.as_str()).collect();
            self.error(
                &field("kind"),
                id,
                format!(
                    "type `{}` cannot be a {kind} node (it can be: {})",
                    nt.name(),
                    allowed.join(", ")
                ),
            );
            parsed.node_type = None;
        }
        parsed.description = map
            .get("description")
            .and_then(Json::as_str)
            .map(str::to_string);
        match map.get("needs") {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => {
                parsed.needs = vec![s.clone()];
                parsed.roles = vec![None];
            }
            Some(Json::Array(items)) => {
                for (j, item) in items.iter().enumerate() {
                    let mut p = field("needs");
                    p.push(Seg::Index(j));
                    if let Some((need, role)) = self.parse_need_item(item, &p, id) {
                        parsed.needs.push(need);
                        parsed.roles.push(role);
                    }
                }
            }
            Some(other) => self.error(
                &field("needs"),
                id,
                format!("`needs` must be a node id or a list of them, got {other}"),
            ),
        }
        match map.get("trigger_rule") {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => match TriggerRule::parse(s) {
                Some(rule) if parsed.kind == Some(NodeKind::Trigger) => self.error(
                    &field("trigger_rule"),
                    id,
                    format!("a trigger has no inputs, so `trigger_rule: {rule}` means nothing"),
                ),
                Some(rule) => parsed.trigger_rule = Some(rule),
                None => {
                    let names = TriggerRule::ALL.map(TriggerRule::as_str);
                    let hint = suggest(s, names.iter().copied())
                        .map(|n| format!("did you mean `{n}`? "))
                        .unwrap_or_default();
                    self.error(
                        &field("trigger_rule"),
                        id,
                        format!(
                            "unknown trigger rule `{s}` ({hint}expected one of: {})",
                            names.join(", ")
                        ),
                    );
                }
            },
            Some(other) => self.error(
                &field("trigger_rule"),
                id,
                format!("`trigger_rule` must be a string, got {other}"),
            ),
        }
        match map.get("with") {
            None | Some(Json::Null) => {}
            Some(Json::Object(w)) => parsed.with = w.clone(),
            Some(other) => self.error(
                &field("with"),
                id,
                format!("`with` must be a mapping, got {other}"),
            ),
        }
        if let Some(nt) = &parsed.node_type {
            let specs = nt.params();
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            for key in parsed.with.keys() {
                if !known.contains(&key.as_str()) {
                    let hint = match suggest(key, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if known.is_empty() => "it takes no parameters".to_string(),
                        None => format!("it takes: {}", known.join(", ")),
                    };
                    self.error(
                        &with_path(i, &[Seg::KeyName(key.clone())]),
                        id,
                        format!(
                            "unknown parameter `{key}` for type `{}` ({hint})",
                            nt.name()
                        ),
                    );
                }
            }
            for spec in specs.iter().filter(|s| s.required) {
                if parsed.with.get(spec.name).is_none_or(Json::is_null) {
                    parsed.missing_required = true;
                    self.error(
                        &field("with"),
                        id,
                        format!("missing required parameter `{}` ({})", spec.name, spec.doc),
                    );
                }
            }
        }
        if let Some(retry) = map.get("retry") {
            match serde_json::from_value::<RetryDef>(retry.clone()) {
                Ok(def) => match retry_policy(def) {
                    Ok(policy) => parsed.retry = policy,
                    Err(msg) => self.error(&field("retry"), id, msg),
                },
                Err(_) => self.error(
                    &field("retry"),
                    id,
                    "`retry` must be a number of attempts or { max_attempts, backoff, max_backoff, factor }",
                ),
            }
        }
        match map.get("timeout") {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => parsed.timeout = Some(d),
                Ok(_) => self.error(&field("timeout"), id, "`timeout` must be longer than zero"),
                Err(e) => self.error(&field("timeout"), id, format!("`timeout`: {e}")),
            },
            Some(Json::Number(n)) => match n.as_f64() {
                Some(secs) if secs > 0.0 => parsed.timeout = Some(Duration::from_secs_f64(secs)),
                _ => self.error(&field("timeout"), id, "`timeout` must be longer than zero"),
            },
            Some(other) => self.error(
                &field("timeout"),
                id,
                format!("`timeout` must be a duration like 30s, got {other}"),
            ),
        }
        parsed
    }

    fn resolve_need(
        &self,
        need: &str,
        by_id: &HashMap<String, usize>,
        parsed: &[Parsed],
    ) -> Result<Need, String> {
        let (target, case) = match need.split_once('.') {
            Some((t, c)) => (t, Some(c)),
            None => (need, None),
        };
        let Some(&node) = by_id.get(target) else {
            let hint = suggest(target, by_id.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!("needs unknown node `{target}`{hint}"));
        };
        let dep = &parsed[node];
        let is_decision = dep.kind == Some(NodeKind::Decision);
        match case {
            None if is_decision => {
                let options: Vec<String> =
                    dep.cases.iter().map(|c| format!("{target}.{c}")).collect();
                Err(format!(
                    "needs decision `{target}` without naming a case; write one of: {}",
                    if options.is_empty() {
                        format!("{target}.CASE")
                    } else {
                        options.join(", ")
                    }
                ))
            }
            Some(case) if !is_decision => Err(format!(
                "`{need}`: `{target}` is not a decision, so it has no case `{case}`"
            )),
            Some(case) if !dep.cases.is_empty() && !dep.cases.iter().any(|c| c == case) => {
                let hint = suggest(case, dep.cases.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                Err(format!(
                    "decision `{target}` has no case `{case}` ({hint}its cases: {})",
                    dep.cases.join(", ")
                ))
            }
            _ => Ok(Need {
                node,
                case: case.map(str::to_string),
                role: None,
            }),
        }
    }
}

/// Per node, the decision cases whose rows reach no output: a case nobody subscribes to, or
/// (when the workflow has output nodes) one from which no path leads to an output.
fn undelivered_cases(
    parsed: &[Parsed],
    needs: &[Vec<Need>],
    graph: &DiGraph<usize, Option<String>>,
) -> Vec<Vec<(String, String)>> {
    let has_outputs = parsed.iter().any(|p| p.kind == Some(NodeKind::Output));
    let mut out = vec![Vec::new(); parsed.len()];
    for (d, node) in parsed.iter().enumerate() {
        if node.kind != Some(NodeKind::Decision) {
            continue;
        }
        for case in &node.cases {
            let subscribers: Vec<usize> = (0..parsed.len())
                .filter(|&i| {
                    needs[i]
                        .iter()
                        .any(|n| n.node == d && n.case.as_deref() == Some(case.as_str()))
                })
                .collect();
            if subscribers.is_empty() {
                out[d].push((case.clone(), "has no subscriber (no node needs it)".into()));
                continue;
            }
            if !has_outputs {
                continue;
            }
            let mut seen: HashSet<usize> = HashSet::new();
            let mut stack = subscribers;
            let mut delivers = false;
            while let Some(i) = stack.pop() {
                if !seen.insert(i) {
                    continue;
                }
                if parsed[i].kind == Some(NodeKind::Output) {
                    delivers = true;
                    break;
                }
                stack.extend(graph.neighbors(NodeIndex::new(i)).map(|n| graph[n]));
            }
            if !delivers {
                out[d].push((case.clone(), "leads to no output node".into()));
            }
        }
    }
    out
}

/// Where a decision names `case`: its rule (`with.rules[k].case`), its `default`, or the node.
fn case_path(i: usize, with: &serde_json::Map<String, Json>, case: &str) -> Vec<Seg> {
    if let Some(Json::Array(rules)) = with.get("rules")
        && let Some(k) = rules
            .iter()
            .position(|r| r.get("case").and_then(Json::as_str) == Some(case))
    {
        return with_path(i, &[Seg::key("rules"), Seg::Index(k), Seg::key("case")]);
    }
    if with.get("default").and_then(Json::as_str) == Some(case) {
        return with_path(i, &[Seg::key("default")]);
    }
    node_path(i)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn retry_policy(def: RetryDef) -> Result<RetryPolicy, String> {
    let mut policy = RetryPolicy::default();
    match def {
        RetryDef::Attempts(n) => policy.max_attempts = n,
        RetryDef::Policy(p) => {
            policy.max_attempts = p.max_attempts.unwrap_or(3);
            if let Some(b) = p.backoff {
                policy.backoff = parse_duration(&b).map_err(|e| format!("`retry.backoff`: {e}"))?;
            }
            if let Some(b) = p.max_backoff {
                policy.max_backoff =
                    parse_duration(&b).map_err(|e| format!("`retry.max_backoff`: {e}"))?;
            }
            if let Some(f) = p.factor {
                if !(1.0..=10.0).contains(&f) {
                    return Err("`retry.factor` must be between 1 and 10".into());
                }
                policy.factor = f;
            }
        }
    }
    if policy.max_attempts == 0 {
        return Err("`retry` needs at least 1 attempt".into());
    }
    Ok(policy)
}

/// Renders a node's parameters, type-checks them and configures the node.
#[allow(clippy::too_many_arguments)]
fn configure_node(
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

fn short(value: &Json) -> String {
    let s = value.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(57)])
    } else {
        s
    }
}

impl Workflow {
    pub fn node(&self, id: &str) -> Option<&CompiledNode> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The nodes that need `index` directly, with the case they subscribe to.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = (usize, Option<&str>)> + '_ {
        self.graph
            .edges_directed(NodeIndex::new(index), petgraph::Direction::Outgoing)
            .map(|e| {
                (
                    self.graph[petgraph::visit::EdgeRef::target(&e)],
                    e.weight().as_deref(),
                )
            })
    }

    /// `start` and every node reachable from it.
    pub fn downstream(&self, start: &[usize]) -> HashSet<usize> {
        let mut seen: HashSet<usize> = HashSet::new();
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.dependents(i).map(|(d, _)| d));
            }
        }
        seen
    }

    /// Renders and configures a node for a run.
    pub fn configure(
        &self,
        index: usize,
        params: &BTreeMap<String, Json>,
        run: &RunVars,
    ) -> Result<Arc<dyn Node>, String> {
        let node = &self.nodes[index];
        configure_node(
            &self.renderer,
            node.node_type.as_ref(),
            &node.id,
            node.kind,
            &node.with,
            params,
            run,
            &self.dir,
            &[],
        )
        .map_err(|errs| {
            errs.iter()
                .map(|e| {
                    let at = path_to_string(&e.path);
                    if at.is_empty() {
                        e.message.clone()
                    } else {
                        format!("with.{at}: {}", e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Trigger nodes, in file order.
    pub fn triggers(&self) -> impl Iterator<Item = &CompiledNode> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Trigger)
    }
}

/// Every cycle in the graph, each as a path that starts and ends at the same node.
fn find_cycles(graph: &DiGraph<usize, Option<String>>) -> Vec<Vec<usize>> {
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.find_edge(scc[0], scc[0]).is_some();
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|ix| graph[**ix]).expect("non-empty");
        // Breadth-first search inside the component for the shortest way back to `start`.
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        while let Some(at) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = graph
                .neighbors(at)
                .filter(|n| members.contains(n))
                .collect();
            next.sort_by_key(|n| graph[*n]);
            if next.contains(&start) {
                closing = Some(at);
                break;
            }
            for n in next {
                if n != start && !parent.contains_key(&n) {
                    parent.insert(n, at);
                    queue.push_back(n);
                }
            }
        }
        let mut path = vec![start];
        if let Some(mut at) = closing {
            let mut back = Vec::new();
            while at != start {
                back.push(at);
                at = parent[&at];
            }
            back.reverse();
            path.extend(back);
        }
        path.push(start);
        cycles.push(path.into_iter().map(|ix| graph[ix]).collect());
    }
    cycles.sort();
    cycles
}

/// A topological order that keeps file order among nodes that are ready together.
fn topo_order(graph: &DiGraph<usize, Option<String>>) -> Vec<usize> {
    let n = graph.node_count();
    let mut indegree: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for m in graph.neighbors(NodeIndex::new(i)) {
            let m = m.index();
            indegree[m] -= 1;
            if indegree[m] == 0 {
                ready.insert(m);
            }
        }
    }
    order
}

/// JSON with object keys sorted, so reordering keys in a file does not change a fingerprint.
pub fn canonical_json(value: &Json) -> String {
    fn write(value: &Json, out: &mut String) {
        match value {
            Json::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Json::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn hash_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The closest candidate within a small edit distance, for "did you mean".
pub fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node type with a template rendered per item, as a messaging node has.
    struct Message;

    impl NodeType for Message {
        fn name(&self) -> &'static str {
            "test.message"
        }
        fn summary(&self) -> &'static str {
            "renders `action` per item"
        }
        fn kinds(&self) -> &'static [NodeKind] {
            &[NodeKind::Action]
        }
        fn params(&self) -> Vec<crate::node::ParamSpec> {
            vec![crate::node::ParamSpec::required(
                "action",
                ParamType::Template,
                "",
            )]
        }
        fn configure(
            &self,
            _params: &Params,
            cx: &ConfigureCx<'_>,
        ) -> Result<Arc<dyn crate::node::Node>, Vec<ParamError>> {
            crate::nodes::Noop.configure(&Params::default(), cx)
        }
    }

    pub(super) fn compile_str(text: &str) -> Result<Workflow, Vec<Diagnostic>> {
        let mut registry = crate::nodes::core_registry();
        registry.register(Message);
        compile(text, Path::new("wf.yaml"), &registry)
    }

    pub(super) fn errors(text: &str) -> Vec<(usize, String)> {
        compile_str(text)
            .expect_err("should be invalid")
            .into_iter()
            .map(|d| (d.line.unwrap_or(0), d.to_string()))
            .collect()
    }

    const VALID: &str = "\
name: ok
params: { limit: 3 }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules: [{ case: big, when: 'value > params.limit' }]
      default: small
  - { id: b, kind: action, type: core.noop, needs: split.big }
  - { id: s, kind: action, type: core.noop, needs: split.small }
  - { id: join, kind: output, type: core.noop, needs: [b, s] }
";

    #[test]
    fn compiles_graph_order_and_cases() {
        let wf = compile_str(VALID).unwrap();
        let ids: Vec<&str> = wf.order.iter().map(|&i| wf.nodes[i].id.as_str()).collect();
        assert_eq!(ids, ["go", "split", "b", "s", "join"]);
        assert_eq!(wf.node("split").unwrap().cases, ["big", "small"]);
        assert_eq!(wf.node("b").unwrap().needs[0].case.as_deref(), Some("big"));
        let down = wf.downstream(&[wf.index_of("b").unwrap()]);
        let mut down: Vec<&str> = down.iter().map(|&i| wf.nodes[i].id.as_str()).collect();
        down.sort();
        assert_eq!(down, ["b", "join"]);
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = compile_str(VALID).unwrap();
        let reordered = VALID.replace(
            "{ id: b, kind: action, type: core.noop, needs: split.big }",
            "{ kind: action, needs: split.big, id: b, type: core.noop }",
        );
        let b = compile_str(&reordered).unwrap();
        assert_eq!(
            a.node("b").unwrap().fingerprint,
            b.node("b").unwrap().fingerprint
        );
        let changed = VALID.replace("default: small", "default: small\n      # same\n");
        assert_eq!(a.fingerprint, compile_str(&changed).unwrap().fingerprint);
        let changed = VALID.replace("params.limit", "params.limit + 1");
        let c = compile_str(&changed).unwrap();
        assert_ne!(
            a.node("split").unwrap().fingerprint,
            c.node("split").unwrap().fingerprint
        );
        assert_eq!(
            a.node("b").unwrap().fingerprint,
            c.node("b").unwrap().fingerprint
        );
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = "\
name: bad
nodes:
  - { id: t, kind: trigger, type: manual, needs: x }
  - { id: a, kind: action, type: core.nope }
  - { id: a, kind: action, type: core.noop, with: { dealy: 1s } }
  - { id: c, kind: action, type: core.shell }
  - { id: d, kind: decision, type: core.switch, needs: c, with: { rules: [{ case: y, when: 'v > 1' }] } }
  - { id: e, kind: action, type: core.noop, needs: [d, d.n, ghost] }
  - { id: f, kind: action, type: core.noop, needs: g }
  - { id: g, kind: action, type: core.noop, needs: f }
  - { id: h, kind: sideways, type: core.noop }
";
        let errs = errors(text);
        let expect = [
            (3, "a trigger starts the run and cannot have `needs`"),
            (4, "unknown node type `core.nope`"),
            (5, "duplicate id `a` (first defined on line 4)"),
            (
                5,
                "unknown parameter `dealy` for type `core.noop` (did you mean `delay`?)",
            ),
            (6, "missing required parameter `command`"),
            (
                8,
                "needs decision `d` without naming a case; write one of: d.y",
            ),
            (8, "decision `d` has no case `n`"),
            (8, "needs unknown node `ghost`"),
            (9, "cycle: f -> g -> f"),
            (11, "unknown kind `sideways`"),
        ];
        for (line, text) in expect {
            assert!(
                errs.iter().any(|(l, m)| *l == line && m.contains(text)),
                "missing line {line}: {text}\ngot: {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
        assert!(errs.iter().all(|(_, m)| m.starts_with("wf.yaml:")));
    }

    #[test]
    fn cycles_print_their_whole_path() {
        let text = "\
name: loop
nodes:
  - { id: one, kind: action, type: core.noop, needs: three }
  - { id: two, kind: action, type: core.noop, needs: one }
  - { id: three, kind: action, type: core.noop, needs: two }
  - { id: self, kind: action, type: core.noop, needs: self }
";
        let errs = errors(text);
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 3 && m.ends_with("cycle: one -> two -> three -> one")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 6 && m.ends_with("cycle: self -> self")),
            "{errs:#?}"
        );
    }

    #[test]
    fn yaml_syntax_and_shape_errors() {
        let errs = errors("name: x\nnodes:\n  - id: a\n    kind: [\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].1.contains("invalid YAML"), "{errs:?}");
        let errs = errors("nodes: 3\nextra: 1\n");
        assert!(errs.iter().any(|(_, m)| m.contains("missing `name`")));
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 1 && m.contains("`nodes` must be a list"))
        );
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 2 && m.contains("unknown workflow key `extra`"))
        );
    }

    #[test]
    fn templates_and_schedules_are_checked() {
        let text = "\
name: t
params: { day: mon }
nodes:
  - { id: s, kind: trigger, type: schedule, with: { cron: '0 6 * *', timezone: Europe/Londn } }
  - { id: a, kind: action, type: core.shell, needs: s, with: { command: 'echo {{ params.dya }}' } }
";
        let errs = errors(text);
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 4 && m.contains("has 4 fields")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 4 && m.contains("unknown time zone `Europe/Londn`"))
        );
        assert!(
            errs.iter()
                .any(|(l, m)| *l == 5 && m.contains("unknown param `dya`"))
        );
    }

    #[test]
    fn trigger_rules_default_by_kind_and_are_checked() {
        let wf = compile_str(VALID).unwrap();
        let rule = |id: &str| {
            let n = wf.node(id).unwrap();
            (n.trigger_rule, n.trigger_rule_set)
        };
        assert_eq!(rule("b"), (TriggerRule::AllSuccess, false));
        assert_eq!(rule("split"), (TriggerRule::AllSuccess, false));
        assert_eq!(rule("join"), (TriggerRule::NoneFailedMinOneSuccess, false));
        let set = VALID.replace(
            "needs: split.big }",
            "needs: split.big, trigger_rule: all_done }",
        );
        let wf = compile_str(&set).unwrap();
        let b = wf.node("b").unwrap();
        assert_eq!(
            (b.trigger_rule, b.trigger_rule_set),
            (TriggerRule::AllDone, true)
        );

        let text = "\
name: rules
nodes:
  - { id: go, kind: trigger, type: manual, trigger_rule: all_done }
  - { id: a, kind: action, type: core.noop, needs: go, trigger_rule: one_faild }
  - { id: b, kind: action, type: core.noop, needs: go, trigger_rule: 3 }
";
        let errs = errors(text);
        let expect = [
            (
                3,
                "a trigger has no inputs, so `trigger_rule: all_done` means nothing",
            ),
            (
                4,
                "unknown trigger rule `one_faild` (did you mean `one_failed`?",
            ),
            (5, "`trigger_rule` must be a string, got 3"),
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
    fn cases_that_reach_no_output_are_warnings_at_their_rule() {
        let text = "\
name: warn
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules:
        - { case: big, when: 'value > 3' }
        - { case: mid, when: 'value > 2' }
      default: small
  - { id: b, kind: action, type: core.noop, needs: split.big }
  - { id: s, kind: action, type: core.noop, needs: split.small }
  - { id: out, kind: output, type: core.noop, needs: b }
";
        let wf = compile_str(text).unwrap();
        let warnings: Vec<(usize, String)> = wf
            .warnings
            .iter()
            .map(|d| (d.line.unwrap(), d.to_string()))
            .collect();
        assert_eq!(
            warnings,
            [
                (
                    11,
                    "wf.yaml:11:19: warning: node `split`: case `mid` has no subscriber (no node needs it); its rows will not be delivered".to_string()
                ),
                (
                    12,
                    "wf.yaml:12:16: warning: node `split`: case `small` leads to no output node; its rows will not be delivered".to_string()
                ),
            ]
        );
        assert!(wf.warnings.iter().all(|d| d.severity == Severity::Warning));
        // Without output nodes only the case nobody subscribes to is a warning.
        let no_outputs = text.replace("kind: output", "kind: action");
        let wf = compile_str(&no_outputs).unwrap();
        assert_eq!(wf.warnings.len(), 1);
        assert!(wf.warnings[0].message.contains("`mid` has no subscriber"));
    }

    #[test]
    fn retry_policy_backoff_grows_to_a_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
            factor: 2.0,
        };
        assert_eq!(p.delay_after(1), Duration::from_secs(1));
        assert_eq!(p.delay_after(2), Duration::from_secs(2));
        assert_eq!(p.delay_after(3), Duration::from_secs(3));
    }
}
