// Small DOM and SVG helpers. Text always goes in as text nodes: nothing
// from the API is ever parsed as HTML.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// h creates an HTML element: h('a', {href: '#/'}, 'text', child, …).
export function h(tag, attrs, ...kids) {
  return build(document.createElement(tag), attrs, kids);
}

// s creates an SVG element.
export function s(tag, attrs, ...kids) {
  return build(document.createElementNS(SVG, tag), attrs, kids);
}

export function fmtScore(v) {
  return v === null || v === undefined ? '—' : Number(v).toFixed(2);
}

// fmtTime shows an RFC 3339 UTC instant as "2026-11-20 11:00 UTC".
export function fmtTime(t) {
  if (!t) return '—';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(t);
  return m ? `${m[1]} ${m[2]} UTC` : t;
}

// fmtIn says how far an instant is from now: "in 3 d 4 h".
export function fmtIn(t) {
  const ms = Date.parse(t) - Date.now();
  if (!Number.isFinite(ms)) return '';
  const past = ms < 0;
  let m = Math.round(Math.abs(ms) / 60000);
  const d = Math.floor(m / 1440);
  m -= d * 1440;
  const hr = Math.floor(m / 60);
  m -= hr * 60;
  const txt = d > 0 ? `${d} d ${hr} h` : hr > 0 ? `${hr} h ${m} min` : `${m} min`;
  return past ? `${txt} ago` : `in ${txt}`;
}

export function bandBadge(band) {
  const b = band || 'none';
  return h('span', { class: `band band-${b}` }, band || 'no band');
}

// trend shows a signed change of score, or — without data.
export function trend(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted', title: 'no score that day in the history' }, '—');
  const n = Number(v);
  const txt = n > 0 ? `+${n.toFixed(2)}` : n < 0 ? `−${Math.abs(n).toFixed(2)}` : '0.00';
  return h('span', { class: n > 0 ? 'up' : n < 0 ? 'down' : '' }, txt);
}

// bar is a small horizontal bar for a value in [0, max] (decorative: the
// number is always written next to it).
export function bar(value, max, width = 160) {
  const w = value === null || value === undefined ? 0 : Math.max(0, Math.min(1, value / max)) * width;
  return s('svg', { class: 'bars', width, height: 12, viewBox: `0 0 ${width} 12`, 'aria-hidden': 'true', focusable: 'false' },
    s('rect', { class: 'track', x: 0, y: 2, width, height: 8, rx: 2 }),
    s('rect', { class: 'bar', x: 0, y: 2, width: w.toFixed(1), height: 8, rx: 2 }));
}

// historyChart draws the daily score (and the day's lowest) as an SVG line
// chart over 0–100, with the band thresholds when known.
export function historyChart(points, bands, id) {
  const W = 720, H = 240, L = 36, R = 12, T = 12, B = 28;
  const day = (d) => Date.parse(`${d}T00:00:00Z`) / 86400000;
  const d0 = day(points[0].day), d1 = day(points[points.length - 1].day);
  const span = Math.max(1, d1 - d0);
  const x = (d) => L + ((day(d) - d0) / span) * (W - L - R);
  const y = (v) => T + (1 - v / 100) * (H - T - B);
  const kids = [];
  const last = points[points.length - 1];
  const lowest = points.reduce((a, p) => (p.min < a.min ? p : a), points[0]);
  kids.push(s('title', { id: `${id}-title` }, 'Score per day'));
  kids.push(s('desc', { id: `${id}-desc` },
    `${points.length} days from ${points[0].day} to ${last.day}; last score ${fmtScore(last.score)} (${last.band}); lowest ${fmtScore(lowest.min)} on ${lowest.day}.`));
  for (const v of [0, 25, 50, 75, 100]) {
    kids.push(s('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    kids.push(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  if (bands && typeof bands.red_below === 'number') {
    kids.push(s('line', { class: 'threshold-red', x1: L, x2: W - R, y1: y(bands.red_below), y2: y(bands.red_below) }));
  }
  if (bands && typeof bands.green_at_or_above === 'number') {
    kids.push(s('line', { class: 'threshold-green', x1: L, x2: W - R, y1: y(bands.green_at_or_above), y2: y(bands.green_at_or_above) }));
  }
  const path = (key) => points.map((p, i) => `${i ? 'L' : 'M'}${x(p.day).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  kids.push(s('path', { class: 'min-line', d: path('min') }));
  kids.push(s('path', { class: 'line', d: path('score') }));
  for (const p of points) {
    kids.push(s('circle', { class: `dot-${p.band}`, cx: x(p.day).toFixed(1), cy: y(p.score).toFixed(1), r: points.length > 60 ? 2 : 3 },
      s('title', {}, `${p.day}: ${fmtScore(p.score)} (${p.band}), lowest ${fmtScore(p.min)}`)));
  }
  const labels = points.length > 1 ? [points[0], points[Math.floor(points.length / 2)], last] : [last];
  labels.forEach((p, i) => {
    const anchor = labels.length === 1 || i === 0 ? 'start' : i === labels.length - 1 ? 'end' : 'middle';
    kids.push(s('text', { x: x(p.day), y: H - 8, 'text-anchor': anchor }, p.day));
  });
  return s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc` }, kids);
}
