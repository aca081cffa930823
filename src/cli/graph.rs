//! `flow graph`: Mermaid and Graphviz renderings of a workflow.

use std::fmt::Write;

use serde_json::{Value as Json, json};

use flow_engine::compile::{CompiledNode, Workflow};
use flow_engine::node::NodeKind;
use flow_engine::trigger_rule::TriggerRule;

/// The trigger rule worth showing on a node: a join rule, or one written in the file.
fn shown_rule(node: &CompiledNode) -> Option<TriggerRule> {
    (!node.needs.is_empty() && (node.trigger_rule.is_join() || node.trigger_rule_set))
        .then_some(node.trigger_rule)
}

/// What a rule means, in a few words.
fn meaning(rule: TriggerRule) -> &'static str {
    match rule {
        TriggerRule::AllSuccess => {
            "runs when every input succeeded; skipped when an input was skipped or a subscribed case is empty"
        }
        TriggerRule::NoneFailedMinOneSuccess => {
            "runs with the inputs that succeeded; skipped when every input was skipped"
        }
        TriggerRule::NoneFailed => "runs unless an input failed, even when every input was skipped",
        TriggerRule::AllDone => "runs once every input is done, whatever happened",
        TriggerRule::OneFailed => "runs only when an input failed",
    }
}

/// How many of the node's inputs fill a context role, which the trigger rule does not count.
fn context_inputs(node: &CompiledNode) -> usize {
    let specs = node.node_type.inputs();
    node.needs
        .iter()
        .filter(|need| {
            need.role
                .as_deref()
                .is_some_and(|r| specs.iter().any(|s| s.context && s.role == r))
        })
        .count()
}

/// `flow validate`: the nodes' trigger rules, joins and rules set in the file by name.
pub fn trigger_rules(wf: &Workflow) -> String {
    let mut out = String::new();
    let shown: Vec<&CompiledNode> = wf
        .order
        .iter()
        .map(|&i| &wf.nodes[i])
        .filter(|n| shown_rule(n).is_some())
        .collect();
    let width = shown.iter().map(|n| n.id.len()).max().unwrap_or(0);
    for node in &shown {
        let context = context_inputs(node);
        let _ = writeln!(
            out,
            "  {:<width$}  {} ({} input{}{}): {}",
            node.id,
            node.trigger_rule,
            node.needs.len(),
            if node.needs.len() == 1 { "" } else { "s" },
            if context > 0 {
                format!(", {context} of them context, not counted")
            } else {
                String::new()
            },
            meaning(node.trigger_rule)
        );
    }
    let others = wf
        .nodes
        .iter()
        .filter(|n| !n.needs.is_empty() && shown_rule(n).is_none())
        .count();
    if others > 0 {
        let _ = writeln!(
            out,
            "  {} other node{}: {} ({})",
            others,
            if others == 1 { "" } else { "s" },
            TriggerRule::AllSuccess,
            meaning(TriggerRule::AllSuccess)
        );
    }
    out
}

/// `flow validate --json`: every node with its inputs and effective trigger rule.
pub fn summary_json(wf: &Workflow) -> Vec<Json> {
    wf.nodes
        .iter()
        .map(|n| {
            let needs: Vec<String> = n
                .needs
                .iter()
                .map(|need| {
                    let from = &wf.nodes[need.node].id;
                    match &need.case {
                        Some(case) => format!("{from}.{case}"),
                        None => from.clone(),
                    }
                })
                .collect();
            json!({
                "id": n.id,
                "kind": n.kind.as_str(),
                "type": n.type_name,
                "needs": needs,
                "trigger_rule": n.trigger_rule,
                "trigger_rule_set": n.trigger_rule_set,
            })
        })
        .collect()
}

pub fn mermaid(wf: &Workflow) -> String {
    let mut out = String::from("flowchart TD\n");
    for node in &wf.nodes {
        let mut label = format!("{}<br/><small>{}</small>", node.id, node.type_name);
        if let Some(rule) = shown_rule(node) {
            let _ = write!(label, "<br/><small><i>{rule}</i></small>");
        }
        let shape = match node.kind {
            NodeKind::Trigger => format!("([\"{label}\"])"),
            NodeKind::Decision => format!("{{\"{label}\"}}"),
            NodeKind::Output => format!("[/\"{label}\"/]"),
            NodeKind::Action => format!("[\"{label}\"]"),
        };
        let _ = writeln!(out, "    {}{shape}", mermaid_id(&node.id));
    }
    for node in &wf.nodes {
        for need in &node.needs {
            let from = mermaid_id(&wf.nodes[need.node].id);
            match &need.case {
                Some(case) => {
                    let _ = writeln!(out, "    {from} -->|{case}| {}", mermaid_id(&node.id));
                }
                None => {
                    let _ = writeln!(out, "    {from} --> {}", mermaid_id(&node.id));
                }
            }
        }
    }
    out
}

/// Mermaid ids cannot contain `-`; `end` and friends are keywords.
fn mermaid_id(id: &str) -> String {
    format!("n_{}", id.replace('-', "_"))
}

pub fn dot(wf: &Workflow) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n",
        wf.name.replace('"', "'")
    );
    for node in &wf.nodes {
        let shape = match node.kind {
            NodeKind::Trigger => "oval",
            NodeKind::Decision => "diamond",
            NodeKind::Output => "parallelogram",
            NodeKind::Action => "box",
        };
        let rule = shown_rule(node)
            .map(|r| format!("\\n[{r}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    \"{}\" [shape={shape}, label=\"{}\\n{}{rule}\"];",
            node.id, node.id, node.type_name
        );
    }
    for node in &wf.nodes {
        for need in &node.needs {
            let from = &wf.nodes[need.node].id;
            match &need.case {
                Some(case) => {
                    let _ = writeln!(out, "    \"{from}\" -> \"{}\" [label=\"{case}\"];", node.id);
                }
                None => {
                    let _ = writeln!(out, "    \"{from}\" -> \"{}\";", node.id);
                }
            }
        }
    }
    out.push_str("}\n");
    out
}
