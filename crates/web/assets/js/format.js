// Human-readable durations, times and numbers.

export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '—';
  if (secs < 1) return `${Math.max(0, Math.round(secs * 1000))} ms`;
  if (secs < 10) return `${(Math.round(secs * 10) / 10).toString()} s`;
  let s = Math.round(secs);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const parts = [];
  if (d) parts.push(`${d} d`);
  if (hr) parts.push(`${hr} h`);
  if (m && !d) parts.push(`${m} min`);
  if (s && !d && !hr) parts.push(`${s} s`);
  return parts.join(' ') || '0 s';
}

export function durationMs(ms) {
  return ms === null || ms === undefined ? '—' : duration(ms / 1000);
}

export function relative(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const diff = (t - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return diff < 0 ? 'just now' : 'in a few seconds';
  const units = [[60, 'minute', 60], [3600, 'hour', 24 * 3600], [86400, 'day', 30 * 86400],
    [30 * 86400, 'month', 365 * 86400], [365 * 86400, 'year', Infinity]];
  for (const [size, name, limit] of units) {
    if (abs < limit) {
      const n = Math.round(abs / size);
      const label = `${n} ${name}${n === 1 ? '' : 's'}`;
      return diff < 0 ? `${label} ago` : `in ${label}`;
    }
  }
  return absolute(iso);
}

const ABS = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  second: '2-digit', timeZoneName: 'short',
});
const SHORT = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

export function absolute(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso) : ABS.format(new Date(t));
}

export function short(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso) : SHORT.format(new Date(t));
}

const NUM = new Intl.NumberFormat();
export function count(n) {
  return n === null || n === undefined ? '—' : NUM.format(n);
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// Seconds a run or node took; a running one counts up to now.
export function elapsed(startIso, endIso) {
  const a = Date.parse(startIso);
  if (Number.isNaN(a)) return null;
  const b = endIso ? Date.parse(endIso) : Date.now();
  return Math.max(0, (b - a) / 1000);
}
