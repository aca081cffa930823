import { relative, absolute } from './format.js';

// Building the DOM from data. Text always goes through textContent and attributes through
// setAttribute, so an untrusted value (a customer name, an error, an output cell) shows as
// text and never becomes markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h('a.link', {href: '/x'}, 'text', child, [more]) -> element.
// Attribute keys starting with "on" take a function (an event listener), never a string.
export function h(spec, attrs, ...children) {
  return build(document.createElement(tag(spec)), spec, attrs, children);
}

// The same for SVG elements.
export function s(spec, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag(spec)), spec, attrs, children);
}

function tag(spec) {
  return spec.split('.')[0] || 'div';
}

function build(el, spec, attrs, children) {
  const classes = spec.split('.').slice(1).filter(Boolean);
  if (classes.length) el.setAttribute('class', classes.join(' '));
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) {
      if (typeof value === 'function') el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', [el.getAttribute('class'), value].filter(Boolean).join(' '));
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Replaces an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A status shown as a coloured pill with its name (colour is never the only signal).
export function badge(status) {
  const name = status || 'unknown';
  return h(`span.badge.st-${name.replace(/[^a-z_]/g, '')}`, { title: `status: ${name}` },
    h('span.dot', { 'aria-hidden': 'true' }), name);
}

export function banner(kind, ...text) {
  return h(`div.banner.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

// A <time> with the relative time as text and the absolute one as its tooltip.
export function when(iso) {
  if (!iso) return h('span.muted', '—');
  return h('time', { datetime: iso, title: absolute(iso), 'data-rel': iso }, relative(iso));
}

// Keeps relative times fresh without re-rendering pages.
setInterval(() => {
  for (const el of document.querySelectorAll('time[data-rel]')) {
    el.textContent = relative(el.getAttribute('data-rel'));
  }
}, 15000);

// A <pre> for error texts and JSON (escaped, scrollable).
export function pre(text, cls = '') {
  return h(`pre${cls ? '.' + cls : ''}`, typeof text === 'string' ? text : JSON.stringify(text, null, 2));
}

// A two-column definition list from [label, value] pairs (values may be nodes).
export function facts(pairs) {
  return h('dl.facts', pairs.filter(p => p && p[1] !== undefined)
    .map(([k, v]) => [h('dt', k), h('dd', v === null || v === '' ? h('span.muted', '—') : v)]));
}

// A table from column names and row arrays; cell values are shown as text.
export function table(columns, rows, cls = '') {
  return h(`div.table-wrap${cls ? '.' + cls : ''}`, h('table',
    h('thead', h('tr', columns.map(c => h('th', { scope: 'col' }, c)))),
    h('tbody', rows.map(r => h('tr', r.map(cell => h('td', cell)))))));
}

export function cellText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
