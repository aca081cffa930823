// Picks the page from the address and draws it into <main>.

import { loadSession, post } from './api.js';
import { banner, h, replace } from './dom.js';
import { runsPage } from './runs.js';
import { runPage } from './run.js';
import { workflowsPage } from './workflows.js';
import { workflowPage } from './workflow.js';

const routes = [
  [/^\/runs\/?$/, 'runs', () => runsPage],
  [/^\/runs\/([^/]+)\/?$/, 'runs', m => main => runPage(main, decodeURIComponent(m[1]))],
  [/^\/workflows\/?$/, 'workflows', () => workflowsPage],
  [/^\/workflows\/([^/]+)\/?$/, 'workflows', m => main => workflowPage(main, decodeURIComponent(m[1]))],
];

async function start() {
  const main = document.getElementById('main');
  loadSession().then(session => {
    if (!session.authenticated) return;
    // Signed in with a token (not on localhost): offer to end the session.
    document.querySelector('header.top').appendChild(h('button.logout', {
      type: 'button', id: 'logout',
      onclick: async () => {
        try { await post('/logout'); } catch { /* the login page follows either way */ }
        location.assign('/login');
      },
    }, 'Log out'));
  });
  for (const [pattern, section, page] of routes) {
    const m = location.pathname.match(pattern);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a[data-nav]')) {
      if (a.getAttribute('data-nav') === section) a.setAttribute('aria-current', 'page');
    }
    try {
      await page(m)(main);
    } catch (e) {
      replace(main, banner('error', `This page could not be shown: ${e.message}`));
    }
    return;
  }
  replace(main, banner('error', 'No such page.'));
}

start();
