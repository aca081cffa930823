//! `flow graph`: Mermaid and Graphviz renderings of a workflow.

use std::fmt::Write;

use crate::compile::Workflow;
use crate::node::NodeKind;

pub fn mermaid(wf: &Workflow) -> String {
    let mut out = String::from("flowchart TD\n");
    for node in &wf.nodes {
        let label = format!("{}<br/><small>{}</small>", node.id, node.type_name);
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
        let _ = writeln!(
            out,
            "    \"{}\" [shape={shape}, label=\"{}\\n{}\"];",
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
