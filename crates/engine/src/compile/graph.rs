//! The graph the `needs` make: resolving each need, cycles, a stable order, and which of a
//! decision's cases reach an output.

use std::collections::{HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value as Json;

use super::{Compiler, Need, Parsed, node_path, suggest, with_path};
use crate::node::NodeKind;
use crate::source::Seg;

impl Compiler<'_> {
    pub(super) fn resolve_need(
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
pub(super) fn undelivered_cases(
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
pub(super) fn case_path(i: usize, with: &serde_json::Map<String, Json>, case: &str) -> Vec<Seg> {
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

/// Every cycle in the graph, each as a path that starts and ends at the same node.
pub(super) fn find_cycles(graph: &DiGraph<usize, Option<String>>) -> Vec<Vec<usize>> {
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
pub(super) fn topo_order(graph: &DiGraph<usize, Option<String>>) -> Vec<usize> {
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
