//! The shape of the file: the keys a workflow and a node may have, and each node's fields
//! read and checked on their own, before the graph is built.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Compiler, RetryPolicy, node_path, suggest, with_path};
use crate::model::{NODE_KEYS, RetryDef};
use crate::node::{Node, NodeKind, NodeType, parse_duration};
use crate::source::Seg;
use crate::trigger_rule::TriggerRule;

/// A node after shape checks, before graph checks.
pub(super) struct Parsed {
    pub(super) id: String,
    pub(super) kind: Option<NodeKind>,
    pub(super) type_name: String,
    pub(super) node_type: Option<Arc<dyn NodeType>>,
    pub(super) description: Option<String>,
    pub(super) needs: Vec<String>,
    /// Per item of `needs`: the role written as `as:`.
    pub(super) roles: Vec<Option<String>>,
    pub(super) trigger_rule: Option<TriggerRule>,
    pub(super) with: serde_json::Map<String, Json>,
    pub(super) retry: RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) labels: Vec<String>,
    pub(super) raw: Json,
    pub(super) cases: Vec<String>,
    /// A required parameter is missing (already reported; configure would only repeat it).
    pub(super) missing_required: bool,
    /// The node configured without knowledge of its inputs (first pass).
    pub(super) configured: Option<Arc<dyn Node>>,
}

impl Compiler<'_> {
    pub(super) fn unknown_keys(
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

    pub(super) fn parse_node(&mut self, i: usize, item: &Json) -> Parsed {
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
            labels: Vec::new(),
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
        match map.get("labels") {
            None | Some(Json::Null) => {}
            Some(Json::Array(items)) => {
                for item in items {
                    match item {
                        Json::String(label) if valid_id(label) => {
                            if !parsed.labels.contains(label) {
                                parsed.labels.push(label.clone());
                            }
                        }
                        other => self.error(
                            &field("labels"),
                            id,
                            format!("a label is letters, digits, `_` and `-`; got {other}"),
                        ),
                    }
                }
                parsed.labels.sort();
            }
            Some(other) => self.error(
                &field("labels"),
                id,
                format!("`labels` must be a list like [pos], got {other}"),
            ),
        }
        parsed
    }
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
