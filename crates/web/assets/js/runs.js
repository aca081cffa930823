// The runs list: newest first, filtered by status and workflow, paged by cursor, and kept
// current from the live event stream (new runs appear at the top, changed ones update).

import { get, events, query, seg } from './api.js';
import { h, badge, banner, replace, when } from './dom.js';
import { duration, elapsed } from './format.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'interrupted'];
const PAGE = 50;

export async function runsPage(main) {
  const params = new URLSearchParams(location.search);
  const filter = {
    status: params.get('status') || '',
    workflow: params.get('workflow') || '',
  };
  document.title = 'Runs · flow';

  const statusSelect = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'All statuses'),
    STATUSES.map(st => h('option', { value: st, selected: st === filter.status }, st)));
  const workflowSelect = h('select', { id: 'filter-workflow', name: 'workflow' },
    h('option', { value: '' }, 'All workflows'));
  const body = h('tbody');
  const more = h('button.secondary', { type: 'button', id: 'more', hidden: true }, 'Show older runs');
  const message = h('div');
  const empty = h('p.muted.empty', { hidden: true }, 'No runs match these filters yet.');

  replace(main,
    h('div.page-head', h('h1', 'Runs'),
      h('form.filters', { role: 'search', onsubmit: e => e.preventDefault() },
        h('label', 'Status ', statusSelect), h('label', 'Workflow ', workflowSelect))),
    message,
    h('div.table-wrap', h('table.runs', { id: 'runs' },
      h('thead', h('tr',
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Workflow'),
        h('th', { scope: 'col' }, 'Trigger'), h('th', { scope: 'col' }, 'Started'),
        h('th', { scope: 'col' }, 'Duration'), h('th.col-id', { scope: 'col' }, 'Run'))),
      body)),
    empty, h('div.more', more));

  const rows = new Map();
  let cursor = null;

  const onFilter = () => {
    filter.status = statusSelect.value;
    filter.workflow = workflowSelect.value;
    const q = query(filter);
    history.replaceState(null, '', `/runs${q}`);
    load(true);
  };
  statusSelect.addEventListener('change', onFilter);
  workflowSelect.addEventListener('change', onFilter);

  get('/api/workflows').then(data => {
    for (const wf of data.workflows || []) {
      workflowSelect.appendChild(h('option', { value: wf.key, selected: wf.key === filter.workflow }, wf.name || wf.key));
    }
    if (filter.workflow && !(data.workflows || []).some(w => w.key === filter.workflow)) {
      workflowSelect.appendChild(h('option', { value: filter.workflow, selected: true }, filter.workflow));
    }
  }).catch(() => {});

  async function load(reset) {
    if (reset) { cursor = null; rows.clear(); body.replaceChildren(); }
    more.disabled = true;
    try {
      const data = await get(`/api/runs${query({ ...filter, limit: PAGE, cursor })}`);
      replace(message);
      for (const run of data.runs || []) {
        if (rows.has(run.id)) continue;
        const tr = row(run);
        rows.set(run.id, tr);
        body.appendChild(tr);
      }
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
    } catch (e) {
      replace(message, banner('error', `The runs could not be loaded: ${e.message}`));
    } finally {
      more.disabled = false;
      empty.hidden = rows.size > 0;
    }
  }
  more.addEventListener('click', () => load(false));

  const matches = run => (!filter.status || run.status === filter.status)
    && (!filter.workflow || run.workflow_key === filter.workflow);

  events({
    run(run) {
      const existing = rows.get(run.id);
      if (existing) {
        if (matches(run)) {
          const tr = row(run);
          existing.replaceWith(tr);
          rows.set(run.id, tr);
        } else {
          existing.remove();
          rows.delete(run.id);
        }
      } else if (matches(run)) {
        const tr = row(run);
        tr.classList.add('fresh');
        rows.set(run.id, tr);
        body.insertBefore(tr, body.firstChild);
      }
      empty.hidden = rows.size > 0;
    },
    removed(data) {
      for (const id of data.run_ids || []) {
        rows.get(id)?.remove();
        rows.delete(id);
      }
      empty.hidden = rows.size > 0;
    },
    resync: () => load(true),
  });

  await load(true);
}

function row(run) {
  const href = `/runs/${seg(run.id)}`;
  const secs = run.duration_secs ?? (run.status === 'running' ? elapsed(run.created_at, null) : null);
  const trigger = [run.fired_by, (run.triggers || []).join(', ')].filter(Boolean);
  return h('tr', { 'data-run': run.id, 'data-status': run.status },
    h('td', h('a.plain', { href }, badge(run.status))),
    h('td.wrap', h('a', { href }, run.workflow || run.workflow_key || '—'),
      run.error ? h('div.sub.error-text', firstLine(run.error)) : null),
    h('td', trigger[0] || '—', trigger[1] ? h('div.sub', trigger[1]) : null),
    h('td', when(run.created_at)),
    h('td', run.status === 'running' ? h('span', duration(secs), ' so far') : duration(secs),
      run.executions > 1 ? h('div.sub', `${run.executions} executions`) : null),
    h('td.col-id', h('a.mono', { href }, shortId(run.id))));
}

export function shortId(id) {
  const text = String(id);
  return text.length > 14 ? `${text.slice(0, 12)}…` : text;
}

export function firstLine(text) {
  const line = String(text).split('\n').find(l => l.trim()) || '';
  return line.length > 140 ? `${line.slice(0, 140)}…` : line;
}
