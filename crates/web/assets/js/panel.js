// The side panel of one node of a run: its status, attempts, error, decision cases, logs,
// parameters as rendered, metadata, an output preview and downloads.

import { get, query, seg } from './api.js';
import { h, badge, banner, cellText, facts, pre, replace, table, when } from './dom.js';
import { absolute, bytes, count, durationMs } from './format.js';

const PREVIEW_ROWS = 20;

export function nodePanel(run, node, { onClose }) {
  const base = `/api/runs/${seg(run.id)}/nodes/${seg(node.id)}`;
  const panel = h('aside.panel', { id: 'panel', 'aria-label': `Node ${node.id}`, 'data-node': node.id },
    h('div.panel-head',
      h('h2', node.id),
      h('button.icon', { type: 'button', 'aria-label': 'Close', title: 'Close', onclick: onClose }, '×')),
    h('p.panel-status', badge(node.status), ' ', h('span.muted', `${node.kind} · ${node.type}`)),
    facts([
      ['Started', node.started_at ? when(node.started_at) : null],
      ['Finished', node.finished_at ? when(node.finished_at) : null],
      ['Duration', durationMs(node.duration_ms)],
      ['Rows in', count(node.rows_in)],
      ['Rows out', count(node.rows_out)],
      node.reason ? ['Why', node.reason] : null,
    ]));

  if (node.error) {
    panel.appendChild(section('Error', pre(node.error, 'error-text'), 'error'));
  }
  for (const w of node.warnings || []) panel.appendChild(banner('warn', cellText(w)));

  if (node.case_rows) {
    const skipped = new Set(node.skipped_cases || []);
    panel.appendChild(section('Cases', table(['Case', 'Rows', 'Branch'],
      Object.entries(node.case_rows).map(([c, n]) => [c, count(n),
        skipped.has(c) ? h('span.badge.st-skipped', 'skipped') : 'ran'])), 'cases'));
  }

  const attempts = node.attempts || [];
  if (attempts.length) {
    const executions = new Set(attempts.map(a => a.execution)).size;
    panel.appendChild(section(`Attempts (${attempts.length})`, h('ol.attempts', attempts.map(a =>
      h('li',
        h('span.attempt-head',
          h('strong', `#${a.number}`),
          executions > 1 ? ` · execution ${a.execution}` : '',
          a.started_at ? [' · ', h('span', { title: absolute(a.started_at) }, clock(a.started_at))] : '',
          a.finished_at ? [' → ', h('span', { title: absolute(a.finished_at) }, clock(a.finished_at))] : '',
          ' · ', a.outcome || (a.finished_at ? 'finished' : 'running')),
        a.error ? pre(firstLines(a.error, 6), 'error-text') : null))), 'attempts'));
  }

  const fileList = (run.files || []).filter(f => f.node === node.id);
  if (fileList.length) {
    panel.appendChild(section('Files', h('ul.files', fileList.map(f =>
      h('li', h('a', { href: f.url, target: '_blank', rel: 'noopener' }, f.name), ' ', h('span.muted', bytes(f.bytes))))), 'files'));
  }

  const output = h('div', h('p.muted', 'Loading the output…'));
  if (node.has_output) panel.appendChild(section('Output', output, 'output'));

  if (node.params && Object.keys(node.params).length) {
    panel.appendChild(section('Parameters (as rendered)', pre(node.params), 'params'));
  }
  if (node.meta && Object.keys(node.meta).length) {
    panel.appendChild(section('Metadata', metaView(node.meta), 'meta'));
  }

  const logs = h('div', h('p.muted', 'Loading the log…'));
  panel.appendChild(section('Log', logs, 'logs'));

  if (node.has_output) loadOutput(base, output, null);
  loadLogs(base, logs);
  return panel;
}

function section(title, content, name) {
  return h('section.panel-section', { 'data-section': name }, h('h3', title), content);
}

function metaView(meta) {
  return facts(Object.entries(meta).map(([k, v]) =>
    [k, v !== null && typeof v === 'object' ? pre(v) : cellText(v)]));
}

async function loadOutput(base, into, chosenCase) {
  try {
    const data = await get(`${base}/output${query({ limit: PREVIEW_ROWS, case: chosenCase })}`);
    const downloads = h('p.downloads',
      h('a.button.secondary', { href: `${base}/output.csv${query({ case: chosenCase })}`, download: '' }, 'Download CSV'),
      ' ',
      h('a.button.secondary', { href: `${base}/output.arrow${query({ case: chosenCase })}`, download: '' }, 'Download Arrow'));
    if (data.kind === 'cases') {
      const cases = data.cases || [];
      const pick = h('select', { 'aria-label': 'Case' }, h('option', { value: '' }, 'Choose a case…'),
        cases.map(c => h('option', { value: typeof c === 'string' ? c : c.name },
          typeof c === 'string' ? c : `${c.name} (${count(c.rows)} rows)`)));
      const shown = h('div');
      pick.addEventListener('change', () => {
        if (pick.value) loadOutput(base, shown, pick.value);
      });
      replace(into, h('label', 'Rows of case ', pick), shown);
      return;
    }
    if (data.kind === 'json') {
      replace(into, pre(data.json), downloads);
      return;
    }
    if (data.kind === 'empty' || !(data.columns || []).length) {
      replace(into, h('p.muted', 'This node produced no rows.'));
      return;
    }
    const names = data.columns.map(c => c.name);
    const rows = (data.rows || []).map(r => names.map(n => cellText(r[n])));
    const total = data.total_rows ?? rows.length;
    replace(into,
      h('p.muted', `First ${count(rows.length)} of ${count(total)} rows${chosenCase ? ` (case ${chosenCase})` : ''}`),
      table(data.columns.map(c => h('span', { title: c.type }, c.name)), rows, 'preview'),
      downloads);
  } catch (e) {
    replace(into, banner('error', `The output could not be loaded: ${e.message}`));
  }
}

async function loadLogs(base, into) {
  try {
    const data = await get(`${base}/logs`);
    const lines = data.lines || [];
    if (!lines.length) {
      replace(into, h('p.muted', 'Nothing was logged.'));
      return;
    }
    replace(into, h('div.log', lines.map(l =>
      h(`div.log-line.lv-${String(l.level).replace(/[^a-z]/g, '')}`,
        h('span.log-at', { title: absolute(l.at) }, timeOf(l.at)), ' ',
        h('span.log-level', l.level), ' ', h('span.log-msg', l.message)))));
  } catch (e) {
    replace(into, banner('error', `The log could not be loaded: ${e.message}`));
  }
}

function clock(iso) {
  return timeOf(iso);
}

function timeOf(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : t.toLocaleTimeString();
}

function firstLines(text, n) {
  const lines = String(text).split('\n');
  return lines.length > n ? `${lines.slice(0, n).join('\n')}\n…` : String(text);
}
