// One workflow: its triggers and next fires, recent firings (missed and skipped ones with
// why), recent runs, its graph, and a "Run now" form built from its declared params.

import { ApiError, events, get, post, seg } from './api.js';
import { h, badge, banner, replace, when, pre } from './dom.js';
import { duration } from './format.js';
import { dag } from './dag.js';
import { confirmAction } from './dialog.js';
import { errorsView, triggersView } from './workflows.js';
import { firstLine } from './runs.js';

export async function workflowPage(main, key) {
  document.title = `${key} · flow`;
  const message = h('div');
  const body = h('div');
  replace(main, h('p.crumbs', h('a', { href: '/workflows' }, '← All workflows')), message, body);

  let formShown = false;
  const parts = {};
  async function load() {
    let wf;
    try {
      wf = await get(`/api/workflows/${seg(key)}`);
      replace(message);
    } catch (e) {
      replace(message, banner('error', e instanceof ApiError && e.status === 404
        ? `There is no served workflow ${key}.` : `The workflow could not be loaded: ${e.message}`));
      return;
    }
    document.title = `${wf.name || key} · flow`;
    if (!formShown) {
      // The form is built once, so a live refresh never discards what someone is typing.
      formShown = true;
      parts.head = h('div.page-head');
      parts.info = h('div');
      parts.form = runForm(wf);
      parts.graph = h('div.dag-scroll', { id: 'dag' });
      parts.firings = h('div', { id: 'firings' });
      parts.runs = h('div', { id: 'recent-runs' });
      replace(body, parts.head, parts.info,
        h('section.card', h('h2', 'Graph'), parts.graph),
        h('div.two-col',
          h('section.card', h('h2', 'Run now'), parts.form),
          h('section.card', h('h2', 'Triggers'), parts.triggers = h('div'))),
        h('section.card', h('h2', 'Recent runs'), parts.runs),
        h('section.card', h('h2', 'Recent firings'), parts.firings));
    }
    replace(parts.head, h('h1', wf.name || key),
      h('a.button.secondary', { href: `/runs?workflow=${encodeURIComponent(key)}` }, 'All its runs'));
    replace(parts.info, h('p.muted.path', wf.path), wf.description ? h('p', wf.description) : null, errorsView(wf),
      wf.running ? h('p', h('a', { href: `/runs/${seg(wf.running)}` }, 'A run is in progress'), wf.queued ? ` · ${wf.queued} queued` : '') : null);
    replace(parts.triggers, triggersView(wf.triggers || [], 5));
    replace(parts.graph, wf.graph && (wf.graph.nodes || []).length ? dag(wf.graph, new Map()) : h('p.muted', 'No graph.'));
    replace(parts.runs, runsTable(wf.recent_runs || []));
    replace(parts.firings, firingsTable(wf.firings || []));
  }
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; load(); }, 300); };
  events({ catalog: soon, run: r => { if (r.workflow_key === key) soon(); }, resync: soon });
  await load();
}

function runsTable(runs) {
  if (!runs.length) return h('p.muted', 'No runs yet.');
  return h('div.table-wrap', h('table',
    h('thead', h('tr', ['Status', 'Trigger', 'Started', 'Duration', 'Error'].map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', runs.map(r => h('tr', { 'data-run': r.id },
      h('td', h('a.plain', { href: `/runs/${seg(r.id)}` }, badge(r.status))),
      h('td', r.fired_by || '—'),
      h('td', h('a', { href: `/runs/${seg(r.id)}` }, when(r.created_at))),
      h('td', duration(r.duration_secs)),
      h('td.wrap', r.error ? h('span.error-text', firstLine(r.error)) : ''))))));
}

function firingsTable(firings) {
  if (!firings.length) return h('p.muted', 'No scheduled firings recorded yet.');
  return h('div.table-wrap', h('table',
    h('thead', h('tr', ['Trigger', 'Scheduled for', 'Outcome', 'Why', 'Run'].map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', firings.map(f => h('tr', { 'data-outcome': f.outcome },
      h('td', f.trigger),
      h('td', when(f.scheduled_for || f.at)),
      h('td', h(`span.badge.fo-${String(f.outcome).replace(/[^a-z]/g, '')}`, f.outcome)),
      h('td.wrap', f.reason || ''),
      h('td', f.run_id ? h('a', { href: `/runs/${seg(f.run_id)}` }, 'open') : '—'))))));
}

// The "Run now" form: one input per declared param, defaults prefilled; the server validates
// (a 422 shows its message here), list and mapping params are typed as JSON.
function runForm(wf) {
  const params = wf.params || [];
  const error = h('div.form-error', { id: 'run-error', role: 'alert' });
  const fields = params.map(p => field(p));
  const manual = (wf.triggers || []).filter(t => t.type === 'manual');
  const triggerSelect = manual.length > 1
    ? h('select', { name: 'trigger' }, manual.map(t => h('option', { value: t.id }, t.id))) : null;
  const submit = h('button.primary', { type: 'submit', id: 'run-now' }, 'Run now…');
  const form = h('form.run-form', { id: 'run-form', novalidate: true },
    params.length ? null : h('p.muted', 'This workflow declares no parameters.'),
    fields.map(f => f.row),
    triggerSelect ? h('label.field', h('span.label', 'Trigger'), triggerSelect) : null,
    error, h('div.actions', submit));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    replace(error);
    for (const f of fields) f.row.classList.remove('bad');
    const values = {};
    for (const f of fields) {
      const read = f.read();
      if (read.error) {
        f.row.classList.add('bad');
        replace(error, banner('error', `${f.param.name}: ${read.error}`));
        return;
      }
      if (read.changed) values[f.param.name] = read.value;
    }
    const names = Object.keys(values);
    const ok = await confirmAction({
      title: `Start a run of ${wf.name || wf.key}?`,
      body: names.length
        ? [h('p', 'With these parameters (the others keep their defaults):'), pre(values)]
        : [h('p', 'With the default parameters.')],
      confirm: 'Start run',
    });
    if (!ok) return;
    submit.disabled = true;
    try {
      const started = await post(`/api/workflows/${seg(wf.key)}/runs`, {
        params: values, trigger: triggerSelect ? triggerSelect.value : null,
      });
      location.assign(`/runs/${seg(started.run_id)}`);
    } catch (err) {
      for (const f of fields) {
        if (err.message.includes(f.param.name)) f.row.classList.add('bad');
      }
      replace(error, banner('error', err.status === 422 ? err.message : `The run could not start: ${err.message}`));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function field(p) {
  const id = `param-${p.name}`;
  const defaultJson = JSON.stringify(p.default ?? null);
  let input;
  let read;
  if (Array.isArray(p.allowed) && p.allowed.length) {
    input = h('select', { id, name: p.name }, p.allowed.map((v, i) =>
      h('option', { value: String(i), selected: JSON.stringify(v) === defaultJson }, typeof v === 'string' ? v : JSON.stringify(v))));
    read = () => {
      const value = p.allowed[Number(input.value)];
      return { value, changed: JSON.stringify(value) !== defaultJson };
    };
  } else if (p.type === 'boolean') {
    input = h('input', { id, name: p.name, type: 'checkbox', checked: p.default === true });
    read = () => ({ value: input.checked, changed: input.checked !== (p.default === true) });
  } else if (p.type === 'integer' || p.type === 'number') {
    input = h('input', {
      id, name: p.name, type: 'number', step: p.type === 'integer' ? '1' : 'any',
      min: p.min ?? null, max: p.max ?? null, value: p.default ?? '', inputmode: p.type === 'integer' ? 'numeric' : 'decimal',
    });
    read = () => {
      const text = input.value.trim();
      if (text === '') return p.default === undefined || p.default === null ? { changed: false } : { error: 'a number is required' };
      const value = Number(text);
      if (!Number.isFinite(value)) return { error: 'not a number' };
      return { value, changed: value !== p.default };
    };
  } else if (p.type === 'list' || p.type === 'mapping') {
    input = h('textarea', { id, name: p.name, rows: 3, spellcheck: 'false', class: 'mono' },
      p.default === undefined || p.default === null ? '' : JSON.stringify(p.default, null, 1));
    read = () => {
      const text = input.value.trim();
      if (text === '') return { changed: false };
      let value;
      try { value = JSON.parse(text); } catch (e) { return { error: `not valid JSON (${e.message})` }; }
      if (p.type === 'list' && !Array.isArray(value)) return { error: 'must be a JSON list, like ["a", "b"]' };
      if (p.type === 'mapping' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
        return { error: 'must be a JSON object, like {"key": "value"}' };
      }
      return { value, changed: JSON.stringify(value) !== defaultJson };
    };
  } else {
    input = h('input', { id, name: p.name, type: 'text', value: p.default ?? '' });
    read = () => ({ value: input.value, changed: input.value !== (p.default ?? '') });
  }
  const limits = [p.min !== null && p.min !== undefined ? `min ${p.min}` : null, p.max !== null && p.max !== undefined ? `max ${p.max}` : null].filter(Boolean).join(', ');
  const row = h('div.field', { 'data-param': p.name },
    h('label', { for: id }, h('span.label', p.name), ' ', h('span.tag', p.type), limits ? h('span.muted', ` ${limits}`) : null),
    input,
    p.description ? h('p.help', p.description) : null);
  return { param: p, row, read };
}
