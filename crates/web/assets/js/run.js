// One run: its summary, actions (resume, cancel), files, the DAG coloured by node status, the
// timeline of attempts and the panel of the selected node. Live events refetch the run, so
// the page follows a run while it executes.

import { ApiError, events, get, post, seg } from './api.js';
import { h, badge, banner, facts, pre, replace, when } from './dom.js';
import { duration, elapsed, bytes } from './format.js';
import { dag, fallbackGraph } from './dag.js';
import { gantt } from './gantt.js';
import { nodePanel } from './panel.js';
import { confirmAction } from './dialog.js';

export async function runPage(main, id) {
  document.title = `Run ${id} · flow`;
  const state = { run: null, selected: new URLSearchParams(location.search).get('node'), panelKey: null };

  const head = h('div.page-head');
  const message = h('div', { id: 'run-message' });
  const summary = h('div.summary');
  const actions = h('div.actions', { id: 'run-actions' });
  const files = h('div');
  const graph = h('div.dag-scroll', { id: 'dag' });
  const timeline = h('div', { id: 'timeline' });
  const side = h('div.side', { id: 'side' });
  replace(main,
    h('p.crumbs', h('a', { href: '/runs' }, '← All runs')),
    head, message,
    h('div.run-layout',
      h('div.run-main',
        h('section.card', summary, actions, files),
        h('section.card', h('h2', 'Graph'), h('p.muted.hint', 'Click a node to see its details.'), graph),
        h('section.card', h('h2', 'Timeline'), timeline)),
      side));

  const select = nodeId => {
    state.selected = nodeId;
    const url = new URL(location.href);
    if (nodeId) url.searchParams.set('node', nodeId); else url.searchParams.delete('node');
    history.replaceState(null, '', url);
    render();
    if (nodeId) document.getElementById('panel')?.scrollIntoView({ block: 'nearest' });
  };

  function render() {
    const run = state.run;
    document.title = `${run.workflow} · ${run.status} · flow`;
    replace(head, h('h1', run.workflow || run.workflow_key || 'Run', ' ', badge(run.status)),
      run.workflow_key ? h('a.secondary.button', { href: `/workflows/${seg(run.workflow_key)}` }, 'Workflow') : null);
    renderSummary(run, summary);
    renderActions(run, actions, refresh, message);
    renderFiles(run, files);
    const details = new Map((run.nodes || []).map(n => [n.id, n]));
    const g = run.graph || fallbackGraph(run.nodes || []);
    replace(graph, dag(g, details, { selected: state.selected, onSelect: select }));
    replace(timeline, gantt(run.nodes || []));
    const node = details.get(state.selected);
    if (!node) {
      state.panelKey = null;
      replace(side);
      side.classList.remove('open');
      return;
    }
    // The panel (and its output and log requests) is rebuilt only when its node changed.
    const key = JSON.stringify(node);
    if (key !== state.panelKey) {
      state.panelKey = key;
      replace(side, nodePanel(run, node, { onClose: () => select(null) }));
      side.classList.add('open');
    }
  }

  let pending = null;
  // The run as last drawn: a refetch that finds it unchanged leaves the page as it is.
  let shown = null;
  async function refresh() {
    try {
      const run = await get(`/api/runs/${seg(id)}`);
      const text = JSON.stringify(run);
      if (text === shown) return;
      shown = text;
      state.run = run;
      render();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        replace(main, banner('error', `There is no run ${id}.`), h('p', h('a', { href: '/runs' }, 'All runs')));
        return;
      }
      replace(message, banner('error', `The run could not be loaded: ${e.message}`));
    }
  }
  // Bursts of node events become one refetch.
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, 200);
  };
  events({
    run: r => { if (r.id === id) soon(); },
    node: n => { if (n.run_id === id) soon(); },
    removed: d => { if ((d.run_ids || []).includes(id)) refresh(); },
    resync: soon,
    // The run may have moved on between the first fetch and the stream opening.
    open: soon,
  }, { run: id });
  // A running run's clocks move even when nothing is reported.
  setInterval(() => { if (state.run && state.run.status === 'running') render(); }, 5000);
  await refresh();
}

function renderSummary(run, into) {
  const trigger = run.trigger || {};
  const secs = run.duration_secs ?? (run.status === 'running' ? elapsed(run.created_at, null) : null);
  const params = run.params && Object.keys(run.params).length ? pre(run.params) : null;
  replace(into, facts([
    ['Run', h('span.mono', { id: 'run-id' }, run.id)],
    ['Status', badge(run.status)],
    ['Started by', [trigger.fired_by || run.fired_by, (run.triggers || []).length ? ` (${run.triggers.join(', ')})` : ''].join('')],
    trigger.scheduled_for ? ['Scheduled for', when(trigger.scheduled_for)] : null,
    ['Started', when(run.created_at)],
    ['Finished', run.finished_at ? when(run.finished_at) : null],
    ['Duration', `${duration(secs)}${run.status === 'running' ? ' so far' : ''}`],
    run.executions > 1 ? ['Executions', String(run.executions)] : null,
    params ? ['Parameters', params] : null,
  ]), run.error ? h('div.run-error', h('h3', 'Error'), pre(run.error, 'error-text')) : null);
}

function renderFiles(run, into) {
  const list = run.files || [];
  if (!list.length) { replace(into); return; }
  const item = f => h('li', h('a', { href: f.url, target: '_blank', rel: 'noopener' }, f.name), ' ',
    h('span.muted', `${f.node} · ${bytes(f.bytes)}`));
  // Top-level files (the report, the exports) first; each folder (one message per customer)
  // folded, so a long list does not push the graph off the page.
  const top = list.filter(f => !f.name.includes('/'));
  const folders = new Map();
  for (const f of list.filter(f => f.name.includes('/'))) {
    const dir = f.name.slice(0, f.name.lastIndexOf('/') + 1);
    if (!folders.has(dir)) folders.set(dir, []);
    folders.get(dir).push(f);
  }
  replace(into, h('h3', 'Files'), h('ul.files', { id: 'files' },
    top.map(item),
    [...folders].map(([dir, files]) => h('li',
      h('details', h('summary', `${dir} (${files.length} file${files.length === 1 ? '' : 's'})`),
        h('ul.files', files.map(item)))))));
}

function renderActions(run, into, refresh, message) {
  const buttons = [];
  const resume = run.resume || {};
  if (run.status === 'failed' || run.status === 'interrupted' || resume.possible) {
    buttons.push(h('button.primary', {
      type: 'button', id: 'resume', disabled: resume.possible === false,
      title: resume.possible === false && resume.reason ? resume.reason : null,
      onclick: () => resumeRun(run, refresh, message),
    }, 'Resume…'));
  }
  if (run.status === 'running' || run.status === 'queued') {
    buttons.push(h('button.danger', { type: 'button', id: 'cancel', onclick: () => cancelRun(run, refresh, message) }, 'Cancel run…'));
  }
  replace(into, buttons,
    resume.possible === false && resume.reason && run.status !== 'succeeded' ? h('p.muted', resume.reason) : null,
    resume.command && run.status !== 'succeeded' ? h('p.muted.small', 'From a terminal: ', h('code', resume.command)) : null);
}

async function resumeRun(run, refresh, message) {
  const resume = run.resume || {};
  const from = h('select', { id: 'resume-from', name: 'from' },
    h('option', { value: '' }, 'Where it failed (recommended)'),
    (run.nodes || []).filter(n => n.kind !== 'trigger').map(n => h('option', { value: n.id }, n.id)));
  const plan = h('div.plan');
  const showPlan = () => {
    if (from.value) {
      replace(plan, h('p', 'Runs ', h('strong', from.value), ' again and every node after it; earlier nodes keep their results.'));
      return;
    }
    const reruns = resume.reruns || [];
    replace(plan,
      reruns.length ? [h('p', 'These nodes run again:'), h('ul', reruns.map(r => h('li', h('strong', r.node), r.reason ? ` — ${r.reason}` : '')))] : null,
      (resume.reused || []).length ? h('p.muted', `Reused as they are: ${resume.reused.join(', ')}`) : null);
  };
  from.addEventListener('change', showPlan);
  showPlan();
  const ok = await confirmAction({
    title: `Resume this run of ${run.workflow}?`,
    body: [h('label', 'Start from ', from), plan],
    confirm: 'Resume',
  });
  if (!ok) return;
  try {
    const started = await post(`/api/runs/${seg(run.id)}/resume`, { from: from.value || null });
    replace(message, banner('ok', started && started.queued ? 'Resume queued: it starts when the workflow’s current run ends.' : 'Resumed.'));
    if (started && started.run_id && started.run_id !== run.id) {
      location.assign(`/runs/${seg(started.run_id)}`);
      return;
    }
    refresh();
  } catch (e) {
    replace(message, banner('error', `Resume failed: ${e.message}`));
  }
}

async function cancelRun(run, refresh, message) {
  const ok = await confirmAction({
    title: 'Cancel this run?',
    body: [h('p', `The run of ${run.workflow} stops; nodes still running are interrupted. You can resume it later.`)],
    confirm: 'Cancel run', danger: true,
  });
  if (!ok) return;
  try {
    await post(`/api/runs/${seg(run.id)}/cancel`);
    replace(message, banner('ok', 'Cancelling…'));
    refresh();
  } catch (e) {
    replace(message, banner('error', `Cancel failed: ${e.message}`));
  }
}
