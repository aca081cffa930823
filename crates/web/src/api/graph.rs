//! A workflow's DAG laid out left to right: [`Graph`]. A node's layer is its longest-path
//! depth from the triggers; within a layer nodes are ordered by the mean row of their parents
//! (the barycenter heuristic), which keeps edges from crossing much.

use flow_engine::compile::Workflow;
use flow_engine::node::NodeKind;
use serde::Serialize;
use utoipa::ToSchema;

/// A node box of the drawing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct GraphNode {
    pub id: String,
    /// `trigger`, `action`, `decision` or `output`.
    pub kind: String,
    #[serde(rename = "type")]
    pub node_type: String,
    /// Column: 0 for triggers.
    pub layer: usize,
    /// Position within the column.
    pub row: usize,
    /// A decision's cases.
    pub cases: Option<Vec<String>>,
}

/// An edge: `to` needs `from` (one of its cases, for a decision).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct GraphEdge {
    pub from: String,
    pub to: String,
    pub case: Option<String>,
}

/// The laid-out graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// Number of columns.
    pub layers: usize,
    /// Rows of the tallest column.
    pub rows: usize,
}

impl Graph {
    pub fn of(wf: &Workflow) -> Graph {
        let n = wf.nodes.len();
        let mut layer = vec![0usize; n];
        for &i in &wf.order {
            let node = &wf.nodes[i];
            if node.kind != NodeKind::Trigger {
                layer[i] = node
                    .needs
                    .iter()
                    .map(|need| layer[need.node] + 1)
                    .max()
                    .unwrap_or(0);
            }
        }
        let layers = layer.iter().max().map_or(0, |m| m + 1);
        let mut row = vec![0usize; n];
        let mut rows = 0;
        for l in 0..layers {
            let mut members: Vec<(f64, usize)> = (0..n)
                .filter(|&i| layer[i] == l)
                .map(|i| {
                    let parents: Vec<f64> = wf.nodes[i]
                        .needs
                        .iter()
                        .map(|need| row[need.node] as f64)
                        .collect();
                    let center = if parents.is_empty() {
                        f64::MAX
                    } else {
                        parents.iter().sum::<f64>() / parents.len() as f64
                    };
                    (center, i)
                })
                .collect();
            // Ties (and parentless nodes) keep file order.
            members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (r, (_, i)) in members.iter().enumerate() {
                row[*i] = r;
            }
            rows = rows.max(members.len());
        }
        let nodes = wf
            .nodes
            .iter()
            .map(|node| GraphNode {
                id: node.id.clone(),
                kind: node.kind.as_str().to_string(),
                node_type: node.type_name.clone(),
                layer: layer[node.index],
                row: row[node.index],
                cases: (node.kind == NodeKind::Decision).then(|| node.cases.clone()),
            })
            .collect();
        let edges = wf
            .nodes
            .iter()
            .flat_map(|node| {
                node.needs.iter().map(|need| GraphEdge {
                    from: wf.nodes[need.node].id.clone(),
                    to: node.id.clone(),
                    case: need.case.clone(),
                })
            })
            .collect();
        Graph {
            nodes,
            edges,
            layers,
            rows,
        }
    }

    pub fn empty() -> Graph {
        Graph {
            nodes: Vec::new(),
            edges: Vec::new(),
            layers: 0,
            rows: 0,
        }
    }
}
