// A timeline of node attempts: one row per node, one bar per attempt (retries and resumed
// executions show as separate bars), placed on the run's time axis.

import { h } from './dom.js';
import { absolute, duration, elapsed } from './format.js';

export function gantt(nodes) {
  const attempts = [];
  for (const node of nodes) {
    for (const a of node.attempts || []) {
      if (!a.started_at) continue;
      attempts.push({ node: node.id, ...a });
    }
  }
  if (!attempts.length) return h('p.muted', 'No node has started yet.');
  const now = Date.now();
  const start = Math.min(...attempts.map(a => Date.parse(a.started_at)));
  const end = Math.max(...attempts.map(a => (a.finished_at ? Date.parse(a.finished_at) : now)), start + 1);
  const span = end - start;
  const byNode = new Map();
  for (const a of attempts) {
    if (!byNode.has(a.node)) byNode.set(a.node, []);
    byNode.get(a.node).push(a);
  }
  const executions = new Set(attempts.map(a => a.execution));

  const rows = [...byNode.entries()]
    .sort((x, y) => Math.min(...x[1].map(a => Date.parse(a.started_at))) - Math.min(...y[1].map(a => Date.parse(a.started_at))))
    .map(([id, list]) => {
      const track = h('div.track');
      for (const a of list) {
        const from = Date.parse(a.started_at) - start;
        const to = (a.finished_at ? Date.parse(a.finished_at) : now) - start;
        const secs = elapsed(a.started_at, a.finished_at);
        const outcome = a.outcome || (a.finished_at ? 'finished' : 'running');
        const label = [`attempt ${a.number}`, executions.size > 1 ? `execution ${a.execution}` : null,
          outcome, duration(secs)].filter(Boolean).join(' · ');
        const bar = h(`div.bar.st-${String(outcome).replace(/[^a-z_]/g, '')}`, {
          title: `${id}: ${label}\n${absolute(a.started_at)}${a.finished_at ? ` → ${absolute(a.finished_at)}` : ''}${a.error ? `\n${a.error}` : ''}`,
          'data-node': id, 'data-attempt': a.number,
        }, list.length > 1 ? `#${a.number}` : '');
        // A bar starting at the very end stays inside the track.
        bar.style.left = `min(${(from / span) * 100}%, calc(100% - 3px))`;
        bar.style.width = `max(3px, ${((to - from) / span) * 100}%)`;
        track.appendChild(bar);
      }
      return h('div.gantt-row', h('div.gantt-label', { title: id }, id), track);
    });
  return h('div.gantt', { role: 'img', 'aria-label': 'Timeline of node attempts' },
    h('div.gantt-row.axis', h('div.gantt-label', ''),
      h('div.track', h('span.axis-start', absolute(new Date(start).toISOString())),
        h('span.axis-end', `+${duration(span / 1000)}`))),
    rows);
}
