//! Giving every input of a node its role, and checking the columns the role needs.
//!
//! A node type that declares input roles ([`NodeType::inputs`]) gets each input in one role:
//! the role written as `{ node: ID, as: ROLE }` under `needs`; else, for a type with a single
//! role, that role; else the one role that takes the kind of table the upstream node type
//! declares ([`NodeType::output_kind`]). Anything else is an error that says which `as:` to
//! write. When the upstream declares its kind, the columns and types the role needs are checked
//! now; otherwise the table is checked when it arrives (see [`CompiledNode::input_plans`]).
//!
//! [`CompiledNode::input_plans`]: super::CompiledNode::input_plans

use serde_json::Value as Json;

use super::{Compiler, Need, Parsed, node_path, suggest};
use crate::model::NEED_KEYS;
use crate::node::{NodeKind, NodeType};
use crate::source::Seg;
use crate::table_kind::{InputPlan, InputSpec, TableKind};

impl Compiler<'_> {
    /// One item of a `needs` list: `ID`, `ID.CASE` or `{ node: ID, as: ROLE }`.
    pub(super) fn parse_need_item(
        &mut self,
        item: &Json,
        at: &[Seg],
        id: Option<&str>,
    ) -> Option<(String, Option<String>)> {
        match item {
            Json::String(s) => Some((s.clone(), None)),
            Json::Object(map) => {
                self.unknown_keys(map, at, NEED_KEYS, id, "`needs` item");
                let field = |key: &str| {
                    let mut p = at.to_vec();
                    p.push(Seg::key(key));
                    p
                };
                let node = match map.get("node") {
                    Some(Json::String(s)) => Some(s.clone()),
                    Some(other) => {
                        self.error(
                            &field("node"),
                            id,
                            format!("`node` must be a node id, got {other}"),
                        );
                        None
                    }
                    None => {
                        self.error(at, id, "a `needs` item written as a mapping needs `node`, as in { node: ID, as: ROLE }");
                        None
                    }
                };
                let role = match map.get("as") {
                    Some(Json::String(s)) => Some(s.clone()),
                    Some(other) => {
                        self.error(
                            &field("as"),
                            id,
                            format!("`as` must be the name of an input role, got {other}"),
                        );
                        return None;
                    }
                    None => None,
                };
                Some((node?, role))
            }
            other => {
                self.error(
                    at,
                    id,
                    format!(
                        "`needs` items must be node ids or {{ node: ID, as: ROLE }}, got {other}"
                    ),
                );
                None
            }
        }
    }

    /// Gives every need its role and reports what cannot be assigned. Returns, per node and
    /// need, how the input is handed to the node (the kind its table is checked against when it
    /// arrives, the columns the node reads).
    pub(super) fn assign_roles(
        &mut self,
        parsed: &[Parsed],
        needs: &mut [Vec<Need>],
        positions: &[Vec<usize>],
        unresolved: &[bool],
    ) -> Vec<Vec<InputPlan>> {
        let mut checks = Vec::with_capacity(parsed.len());
        for (i, node) in parsed.iter().enumerate() {
            let mut node_checks = vec![InputPlan::default(); needs[i].len()];
            if let Some(node_type) = &node.node_type {
                let cx = NodeRoles {
                    node,
                    node_type: node_type.as_ref(),
                    specs: node_type.inputs(),
                    i,
                };
                self.assign_node_roles(
                    &cx,
                    parsed,
                    &mut needs[i],
                    &positions[i],
                    unresolved[i],
                    &mut node_checks,
                );
            }
            checks.push(node_checks);
        }
        checks
    }

    fn assign_node_roles(
        &mut self,
        cx: &NodeRoles<'_>,
        parsed: &[Parsed],
        needs: &mut [Need],
        positions: &[usize],
        unresolved: bool,
        checks: &mut [InputPlan],
    ) {
        let id = cx.node.id.as_str();
        let mut filled: Vec<(&'static str, String)> = Vec::new();
        for (k, need) in needs.iter_mut().enumerate() {
            let j = positions[k];
            let at = cx.need_path(j);
            let upstream = &parsed[need.node];
            let from = need_name(upstream, need);
            let written = need.role.take();
            if upstream.kind == Some(NodeKind::Trigger) {
                if written.is_some() {
                    self.error(
                        &cx.as_path(j),
                        Some(id),
                        format!("`{from}` is a trigger: it starts the node and fills no input role; write `{from}` without `as:`"),
                    );
                }
                continue;
            }
            if cx.specs.is_empty() {
                if let Some(role) = written {
                    self.error(
                        &cx.as_path(j),
                        Some(id),
                        format!(
                            "type `{}` has no input roles, so `as: {role}` means nothing; write `{from}` without `as:`",
                            cx.node_type.name()
                        ),
                    );
                }
                continue;
            }
            let produced = upstream.node_type.as_ref().and_then(|t| t.output_kind());
            let spec = match &written {
                Some(role) => match cx.specs.iter().find(|s| s.role == role) {
                    Some(spec) => spec,
                    None => {
                        let hint = suggest(role, cx.specs.iter().map(|s| s.role))
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        self.error(
                            &cx.as_path(j),
                            Some(id),
                            format!(
                                "`{role}` is not an input role of type `{}` ({hint}its roles: {})",
                                cx.node_type.name(),
                                cx.role_list()
                            ),
                        );
                        continue;
                    }
                },
                None => match cx.infer(produced.as_ref()) {
                    Ok(spec) => spec,
                    Err(why) => {
                        self.error(
                            &at,
                            Some(id),
                            format!(
                                "cannot tell which input role `{from}` fills: {why}; write {{ node: {from}, as: ROLE }} with ROLE one of: {}",
                                cx.role_list()
                            ),
                        );
                        continue;
                    }
                },
            };
            match (&spec.kind, &produced) {
                (Some(want), Some(have)) if want.name() != have.name() => {
                    if let Err(mismatch) = want.check_declared(have.schema()) {
                        self.error(
                            &at,
                            Some(id),
                            format!(
                                "`{from}` cannot fill the role `{}`: its {} table {mismatch}; the role needs {}",
                                spec.role,
                                have.name(),
                                want.describe()
                            ),
                        );
                    }
                }
                (Some(want), None) => checks[k].check = Some(want.clone()),
                _ => {}
            }
            if let Some(extra) = spec.only_columns {
                let declared = spec.kind.iter().flat_map(|k| k.schema().fields().iter());
                let mut names: Vec<String> = declared.map(|f| f.name().clone()).collect();
                for name in extra {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                    }
                }
                checks[k].columns = Some(names.into());
            }
            if !spec.many
                && let Some((_, first)) = filled.iter().find(|(r, _)| *r == spec.role)
            {
                self.error(
                    &at,
                    Some(id),
                    format!(
                        "the role `{}` takes one table, and `{first}` already fills it; remove one of them from `needs`",
                        spec.role
                    ),
                );
            }
            filled.push((spec.role, from));
            need.role = Some(spec.role.to_string());
        }
        if unresolved {
            return;
        }
        let mut required: Vec<&InputSpec> = cx.specs.iter().filter(|s| s.required).collect();
        let extra = cx
            .node
            .configured
            .as_ref()
            .map(|c| c.required_inputs())
            .unwrap_or_default();
        for role in extra {
            if let Some(spec) = cx.specs.iter().find(|s| s.role == role)
                && !required.iter().any(|s| s.role == role)
            {
                required.push(spec);
            }
        }
        for spec in required {
            if filled.iter().any(|(r, _)| *r == spec.role) {
                continue;
            }
            let mut at = node_path(cx.i);
            at.push(Seg::KeyName("needs".into()));
            self.error(
                &at,
                Some(id),
                format!(
                    "no input fills the role `{}` ({}: {}); add the node that produces it to `needs`, as {{ node: ID, as: {} }} if its type does not declare that kind",
                    spec.role,
                    spec.kind.as_ref().map_or_else(|| "any table".to_string(), TableKind::describe),
                    spec.doc,
                    spec.role
                ),
            );
        }
    }
}

/// The roles of one node, for assigning them.
struct NodeRoles<'a> {
    node: &'a Parsed,
    node_type: &'a dyn NodeType,
    specs: Vec<InputSpec>,
    i: usize,
}

impl NodeRoles<'_> {
    fn need_path(&self, j: usize) -> Vec<Seg> {
        let mut at = node_path(self.i);
        at.push(Seg::key("needs"));
        if !matches!(self.node.raw.get("needs"), Some(Json::String(_))) {
            at.push(Seg::Index(j));
        }
        at
    }

    fn as_path(&self, j: usize) -> Vec<Seg> {
        let mut at = self.need_path(j);
        at.push(Seg::key("as"));
        at
    }

    /// The role of an input whose `as:` is not written.
    fn infer(&self, produced: Option<&TableKind>) -> Result<&InputSpec, String> {
        if let [only] = self.specs.as_slice() {
            return Ok(only);
        }
        let Some(kind) = produced else {
            return Err("its node type does not declare the kind of table it produces".into());
        };
        let takers: Vec<&InputSpec> = self
            .specs
            .iter()
            .filter(|s| s.kind.as_ref().is_some_and(|k| k.name() == kind.name()))
            .collect();
        match takers.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "it produces {} tables, which no role of type `{}` takes",
                kind.name(),
                self.node_type.name()
            )),
            many => Err(format!(
                "it produces {} tables, which the roles {} all take",
                kind.name(),
                many.iter()
                    .map(|s| format!("`{}`", s.role))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn role_list(&self) -> String {
        self.specs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `from` or `from.case`, as written under `needs`.
fn need_name(upstream: &Parsed, need: &Need) -> String {
    match &need.case {
        Some(case) => format!("{}.{case}", upstream.id),
        None => upstream.id.clone(),
    }
}
