// Every served workflow: its triggers (next fire times, webhook address), what is running,
// its last run, and the validation errors of a file that is currently invalid.

import { events, get, seg } from './api.js';
import { h, badge, banner, replace, when } from './dom.js';
import { short } from './format.js';

export async function workflowsPage(main) {
  document.title = 'Workflows · flow';
  const list = h('div.cards', { id: 'workflows' });
  const message = h('div');
  replace(main, h('div.page-head', h('h1', 'Workflows')), message, list);

  async function load() {
    try {
      const data = await get('/api/workflows');
      const all = data.workflows || [];
      replace(list, all.length ? all.map(card) : h('p.muted', 'No workflow is served. Start `flow serve` with workflow files.'));
      replace(message);
    } catch (e) {
      replace(message, banner('error', `The workflows could not be loaded: ${e.message}`));
    }
  }
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; load(); }, 300); };
  events({ catalog: soon, run: soon, resync: soon });
  await load();
}

function card(wf) {
  const href = `/workflows/${seg(wf.key)}`;
  return h(`article.card.workflow${wf.errors && wf.errors.length ? '.invalid' : ''}`, { 'data-key': wf.key },
    h('div.card-head',
      h('h2', h('a', { href }, wf.name || wf.key)),
      wf.last_run ? h('a.plain', { href: `/runs/${seg(wf.last_run.id)}`, title: 'Last run' }, badge(wf.last_run.status)) : h('span.muted', 'never run')),
    h('p.muted.path', wf.path),
    wf.description ? h('p', wf.description) : null,
    errorsView(wf),
    triggersView(wf.triggers || [], 3),
    h('p.small',
      wf.running ? [h('a', { href: `/runs/${seg(wf.running)}` }, 'A run is in progress'), '. '] : null,
      wf.queued ? `${wf.queued} queued. ` : null,
      wf.last_run ? ['Last run ', when(wf.last_run.created_at), '.'] : null));
}

export function errorsView(wf) {
  const errors = wf.errors || [];
  if (!errors.length) return null;
  return h('div.banner.error.validation', { role: 'alert' },
    h('strong', wf.valid ? 'The file has errors; the last valid version is still in force:' : 'The file is invalid:'),
    h('ul', errors.map(e => h('li', h('code', e)))));
}

export function triggersView(triggers, nextCount) {
  if (!triggers.length) return h('p.muted', 'No triggers.');
  return h('ul.triggers', triggers.map(t => h('li', { 'data-trigger': t.id },
    h('span.tag', t.type), ' ', h('strong', t.id), ' ', triggerDetail(t, nextCount))));
}

function triggerDetail(t, nextCount) {
  if (t.type === 'schedule') {
    const next = (t.next || []).slice(0, nextCount);
    return h('span', h('code', t.cron || ''), t.timezone ? ` (${t.timezone})` : '',
      next.length ? h('span.next', ' · next ', next.map((n, i) => [i ? ', ' : '', h('time', { datetime: n, title: n }, short(n))])) : null);
  }
  if (t.type === 'webhook') {
    const url = t.url ? new URL(t.url, location.origin).href : '';
    return h('span', h('code.url', url), t.auth ? h('span.muted', ` · auth: ${t.auth}`) : null);
  }
  return null;
}
