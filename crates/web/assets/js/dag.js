// The workflow's DAG as inline SVG, left to right: the server gives each node its layer
// (column) and row; nodes are coloured by status (with the status written in the box), edges
// from a decision carry their case, and branches that did not run are greyed and dashed.

import { s } from './dom.js';
import { durationMs, count } from './format.js';

const W = 184;
const H = 66;
const GAP_X = 72;
const GAP_Y = 22;
const PAD = 16;

// graph: {nodes, edges, layers, rows}; details: Map id -> NodeDetail (may be empty);
// onSelect(id) is called when a node is clicked or activated with the keyboard.
export function dag(graph, details, { selected = null, onSelect = null } = {}) {
  const nodes = graph.nodes || [];
  const layers = Math.max(graph.layers || 0, ...nodes.map(n => n.layer + 1), 1);
  const rows = Math.max(graph.rows || 0, ...nodes.map(n => n.row + 1), 1);
  const width = PAD * 2 + layers * W + (layers - 1) * GAP_X;
  const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  const pos = new Map(nodes.map(n => [n.id, {
    x: PAD + n.layer * (W + GAP_X),
    y: PAD + n.row * (H + GAP_Y),
  }]));

  const svg = s('svg.dag', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'group',
    'aria-label': 'Workflow graph',
  });
  svg.appendChild(s('defs', s('marker', {
    id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));

  const edgeLayer = s('g.edges');
  const labelLayer = s('g.edge-labels');
  for (const edge of graph.edges || []) {
    const a = pos.get(edge.from);
    const b = pos.get(edge.to);
    if (!a || !b) continue;
    const from = details.get(edge.from);
    const to = details.get(edge.to);
    const skipped = (edge.case && (from?.skipped_cases || []).includes(edge.case))
      || to?.status === 'skipped';
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    edgeLayer.appendChild(s(`path.edge${skipped ? '.skipped' : ''}`, {
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)',
      'data-from': edge.from, 'data-to': edge.to,
    }));
    if (edge.case) {
      const rowsOfCase = from?.case_rows ? from.case_rows[edge.case] : undefined;
      const text = rowsOfCase === undefined ? edge.case : `${edge.case} · ${count(rowsOfCase)}`;
      const label = s(`g.edge-label${skipped ? '.skipped' : ''}`, { 'data-case': edge.case });
      const lx = x1 + 10;
      const ly = y1 + (y2 - y1) * 0.18 - 4;
      const shown = clip(text, 20);
      label.appendChild(s('rect', { x: lx - 3, y: ly - 11, width: shown.length * 6.6 + 6, height: 15, rx: 3 }));
      label.appendChild(s('text', { x: lx, y: ly }, shown));
      labelLayer.appendChild(label);
    }
  }
  svg.appendChild(edgeLayer);

  for (const node of nodes) {
    const p = pos.get(node.id);
    const d = details.get(node.id);
    const status = d ? d.status : null;
    const cls = `node k-${safe(node.kind)}${status ? ` st-${safe(status)}` : ''}${node.id === selected ? ' selected' : ''}`;
    const g = s('g', {
      class: cls, transform: `translate(${p.x},${p.y})`, 'data-node': node.id,
      tabindex: onSelect ? 0 : null, role: onSelect ? 'button' : null,
      'aria-label': `${node.id}${status ? `: ${status}` : ''}`,
    });
    g.appendChild(s('title', `${node.id} (${node.type})${status ? ` — ${status}` : ''}`));
    g.appendChild(s('rect.box', { width: W, height: H, rx: 8 }));
    g.appendChild(s('rect.stripe', { width: 6, height: H, rx: 3 }));
    g.appendChild(s('text.name', { x: 14, y: 20 }, clip(node.id, 24)));
    g.appendChild(s('text.type', { x: 14, y: 37 }, clip(node.type || node.kind, 28)));
    const line = status ? [status, d.duration_ms !== null && d.duration_ms !== undefined ? durationMs(d.duration_ms) : null,
      d.rows_out !== null && d.rows_out !== undefined ? `${count(d.rows_out)} rows` : null].filter(Boolean).join(' · ')
      : node.kind;
    g.appendChild(s('text.info', { x: 14, y: 55 }, clip(line, 30)));
    if (onSelect) {
      g.addEventListener('click', () => onSelect(node.id));
      g.addEventListener('keydown', e => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect(node.id); }
      });
    }
    svg.appendChild(g);
  }
  svg.appendChild(labelLayer);
  return svg;
}

// A graph for a run whose workflow is no longer served: its nodes in run order, one column each.
export function fallbackGraph(nodes) {
  return {
    nodes: nodes.map((n, i) => ({ id: n.id, kind: n.kind, type: n.type, layer: i, row: 0, cases: null })),
    edges: nodes.slice(1).map((n, i) => ({ from: nodes[i].id, to: n.id, case: null })),
    layers: nodes.length, rows: 1,
  };
}

function clip(text, n) {
  const t = String(text ?? '');
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

function safe(name) {
  return String(name).replace(/[^a-z_]/g, '');
}
