// The at-risk page: a hash router and four views (at-risk list, turning
// red soon, one customer, the model), all read from the JSON API.

import { getJSON, NotAvailable, ApiError } from './api.js';
import { h, fmtScore, fmtTime, fmtIn, bandBadge, trend, bar, historyChart } from './dom.js';

const main = document.getElementById('main');
const status = document.getElementById('status');
let generation = 0; // the render in progress; older ones drop their results
let firstRender = true;

// The model changes only with a reload of the service: fetch it once.
let modelPromise = null;
function model() {
  if (!modelPromise) {
    modelPromise = getJSON('/v1/model').catch((e) => {
      modelPromise = null;
      throw e;
    });
  }
  return modelPromise;
}

function customers(n) {
  return n === 1 ? '1 customer' : `${n} customers`;
}

function customerHref(id) {
  return `#/customers/${encodeURIComponent(id)}`;
}

// problem renders an error the way the user can act on it.
function problem(e, what) {
  if (e instanceof NotAvailable) {
    return h('p', { class: 'notice', 'data-state': 'not-available' }, `${what}: not available on this service.`);
  }
  if (e instanceof ApiError) {
    const p = h('p', { class: 'notice error', 'data-state': 'error' }, `${what}: ${e.message}`);
    if (e.status === 401) p.append(' ', h('button', { type: 'button', class: 'secondary', onclick: () => render() }, 'Enter token'));
    return p;
  }
  return h('p', { class: 'notice error', 'data-state': 'error' }, `${what}: cannot reach the service (${e.message}).`);
}

function setView(title, ...kids) {
  document.title = `${title} — healthscore`;
  main.replaceChildren(h('h1', { tabindex: '-1' }, title), ...kids.flat().filter(Boolean));
}

function announce(msg) {
  status.textContent = msg;
}

function params() {
  const hash = location.hash || '#/';
  const q = hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
}

// setParams records filter values in the address without a re-render.
function setParams(path, p) {
  const q = p.toString();
  history.replaceState(null, '', `#${path}${q ? `?${q}` : ''}`);
}

function select(id, label, options, value, onchange) {
  return h('label', { for: id }, label,
    h('select', { id, onchange },
      options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}

// ---- at-risk list -----------------------------------------------------------

async function segmentOptions(seen) {
  const names = new Set(seen);
  try {
    const m = await model();
    for (const seg of m.segments || []) if (seg && seg.name) names.add(seg.name);
  } catch {
    // no model endpoint: the segments seen in the list only
  }
  names.delete('');
  return [...names].sort();
}

async function listView(gen) {
  const p = params();
  let band = p.get('band') || 'risk';
  let segment = p.get('segment') || '';
  let limit = p.get('limit') || '100';
  const results = h('div', { id: 'results' });
  const segSelect = h('select', { id: 'f-segment', onchange: (e) => { segment = e.target.value; update(); } },
    h('option', { value: '' }, 'All segments'));
  if (segment) segSelect.append(h('option', { value: segment, selected: true }, segment));
  setView('Customers at risk',
    h('p', { class: 'muted' }, 'Red and yellow customers, lowest score first, with the change of their score over the last 7 and 30 days.'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault(), 'aria-label': 'Filters' },
      select('f-band', 'Band', [['risk', 'Red and yellow'], ['red', 'Red'], ['yellow', 'Yellow']], band, (e) => { band = e.target.value; update(); }),
      h('label', { for: 'f-segment' }, 'Segment', segSelect),
      select('f-limit', 'Show up to', [['50', '50 per band'], ['100', '100 per band'], ['500', '500 per band']], limit, (e) => { limit = e.target.value; update(); })),
    results);

  let seen = [];
  async function update() {
    const q = new URLSearchParams();
    if (band !== 'risk') q.set('band', band);
    if (segment) q.set('segment', segment);
    if (limit !== '100') q.set('limit', limit);
    setParams('/', q);
    const mine = ++listGen;
    delete results.dataset.query;
    results.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    const bands = band === 'risk' ? ['red', 'yellow'] : [band];
    let rows;
    try {
      const answers = await Promise.all(bands.map((b) => {
        const a = new URLSearchParams({ band: b, limit });
        if (segment) a.set('segment', segment);
        return getJSON(`/v1/customers?${a}`);
      }));
      rows = answers.flatMap((a) => a.customers);
    } catch (e) {
      if (mine === listGen && gen === generation) results.replaceChildren(problem(e, 'The customer list'));
      return;
    }
    if (mine !== listGen || gen !== generation) return;
    // Lowest first across both bands; the API's order breaks ties.
    rows = rows.map((r, i) => [r, i]).sort((a, b) => a[0].score - b[0].score || a[1] - b[1]).map(([r]) => r);
    seen = [...new Set([...seen, ...rows.map((r) => r.segment || '')])];
    results.replaceChildren(listTable(rows));
    results.dataset.query = q.toString(); // what is shown (for tests and tools)
    announce(`${customers(rows.length)} shown`);
    const opts = await segmentOptions(seen);
    if (mine !== listGen || gen !== generation) return;
    const keep = segSelect.value;
    segSelect.replaceChildren(h('option', { value: '' }, 'All segments'),
      ...opts.map((n) => h('option', { value: n, selected: n === keep }, n)));
  }
  await update();
}
let listGen = 0;

function listTable(rows) {
  if (rows.length === 0) return h('p', { class: 'notice', 'data-state': 'empty' }, 'No customer is red or yellow with these filters.');
  return h('table', { id: 'at-risk' },
    h('caption', {}, `${customers(rows.length)}, lowest score first`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Customer'), h('th', { scope: 'col' }, 'Band'), h('th', { scope: 'col', class: 'num' }, 'Score'),
      h('th', { scope: 'col', class: 'num' }, '7 days'), h('th', { scope: 'col', class: 'num' }, '30 days'), h('th', { scope: 'col' }, 'Segment'))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-customer-id': r.customer_id },
      h('td', {}, h('a', { href: customerHref(r.customer_id), class: 'customer-link' }, r.customer_id)),
      h('td', {}, bandBadge(r.band)),
      h('td', { class: 'num score' }, fmtScore(r.score)),
      h('td', { class: 'num' }, trend(r.trend_7d)),
      h('td', { class: 'num' }, trend(r.trend_30d)),
      h('td', {}, r.segment || h('span', { class: 'muted' }, 'default'))))));
}

// ---- turning red soon -------------------------------------------------------

async function forecastView(gen) {
  const p = params();
  let band = p.get('band') === 'yellow' ? 'yellow' : 'red';
  let within = p.get('within') || '7d';
  const results = h('div', { id: 'results' });
  const withins = [['1d', '1 day'], ['3d', '3 days'], ['7d', '7 days'], ['14d', '14 days'], ['30d', '30 days'], ['90d', '90 days']];
  if (!withins.some(([v]) => v === within)) withins.push([within, within]);
  setView('Turning red soon',
    h('p', { class: 'muted' }, 'Customers who are not in the band yet and enter it within the time chosen if nothing more happens (no further event), soonest first. Act before the alert.'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault(), 'aria-label': 'Filters' },
      select('f-fband', 'Turning', [['red', 'red'], ['yellow', 'yellow or red']], band, (e) => { band = e.target.value; update(); }),
      select('f-within', 'Within', withins, within, (e) => { within = e.target.value; update(); })),
    results);
  let mine = 0;
  async function update() {
    setParams('/forecast', new URLSearchParams({ band, within }));
    const me = ++mine;
    results.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    let f;
    try {
      f = await getJSON(`/v1/forecast?${new URLSearchParams({ band, within, limit: '100' })}`);
    } catch (e) {
      if (me === mine && gen === generation) results.replaceChildren(problem(e, 'The forecast'));
      return;
    }
    if (me !== mine || gen !== generation) return;
    const rows = f.customers || [];
    if (rows.length === 0) {
      results.replaceChildren(h('p', { class: 'notice', 'data-state': 'empty' }, `No customer turns ${band} within ${within} if nothing more happens.`));
      return;
    }
    results.replaceChildren(h('table', { id: 'forecast' },
      h('caption', {}, `${customers(rows.length)}, soonest first`),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Customer'), h('th', { scope: 'col' }, 'Band now'), h('th', { scope: 'col', class: 'num' }, 'Score'),
        h('th', { scope: 'col' }, `Turns ${band}`), h('th', { scope: 'col' }, 'Segment'))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-customer-id': r.customer_id },
        h('td', {}, h('a', { href: customerHref(r.customer_id), class: 'customer-link' }, r.customer_id)),
        h('td', {}, bandBadge(r.band)),
        h('td', { class: 'num score' }, fmtScore(r.score)),
        h('td', {}, h('time', { datetime: r.at }, fmtTime(r.at)), ' ', h('span', { class: 'muted' }, `(${fmtIn(r.at)})`)),
        h('td', {}, r.segment || h('span', { class: 'muted' }, 'default')))))));
    announce(`${customers(rows.length)} shown`);
  }
  await update();
}

// ---- one customer -------------------------------------------------------------

const ALERTS = new Set(['health.low', 'health.recovered', 'health.dropped']);
const TYPE_TEXT = {
  'health.score_changed': 'band changed',
  'health.low': 'alert: health low',
  'health.recovered': 'alert: recovered',
  'health.dropped': 'alert: dropped sharply',
};

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function forecastFacts(c) {
  const f = c.forecast;
  if (!f) return null;
  const one = (band, at, already) => {
    if (at) return [h('time', { datetime: at }, fmtTime(at)), ' ', h('span', { class: 'muted' }, `(${fmtIn(at)})`)];
    if (already) return `already ${c.band}`;
    return `not within ${f.horizon_days} days`;
  };
  return h('section', { 'aria-labelledby': 'fc-title' },
    h('h2', { id: 'fc-title' }, 'If nothing more happens'),
    facts([
      ['Turns yellow', one('yellow', f.yellow_at, c.band === 'yellow' || c.band === 'red')],
      ['Turns red', one('red', f.red_at, c.band === 'red')],
    ]));
}

function overrideBlock(c) {
  const o = c.override;
  if (!o) return null;
  return h('div', { class: 'override', id: 'override' },
    h('p', {}, h('strong', {}, `Manual override in force: ${fmtScore(o.score)}`), ` set by ${o.by || 'unknown'}`, o.reason ? ` — “${o.reason}”` : ''),
    facts([
      ['Set', fmtTime(o.set_at)],
      ['Expires', o.expires_at ? fmtTime(o.expires_at) : 'never (until removed)'],
      ['Event score', [h('span', { id: 'event-score' }, fmtScore(c.event_score)), ' ', bandBadge(c.event_band)]],
    ]),
    h('p', { class: 'muted' }, 'The categories below add up to the event score, the score the events give.'));
}

function categories(c) {
  return h('section', { 'aria-labelledby': 'cat-title' },
    h('h2', { id: 'cat-title' }, 'Categories and signals'),
    h('div', { class: 'grid' }, (c.categories || []).map((cat) => h('div', { class: 'panel category', 'data-category': cat.name },
      h('h3', {}, cat.name),
      h('p', { class: 'muted' }, `score ${fmtScore(cat.score)} of 100 · weight ${cat.weight} · ${fmtScore(cat.contribution)} points`),
      h('div', { class: 'category-bar' }, bar(cat.score, 100, 240)),
      h('table', {},
        h('caption', { class: 'visually-hidden' }, `Signals of ${cat.name}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Signal'), h('th', { scope: 'col' }, 'Level'), h('th', { scope: 'col', class: 'num' }, 'Points'))),
        h('tbody', {}, (cat.signals || []).map((sg) => h('tr', { 'data-signal': sg.name },
          h('th', { scope: 'row' }, sg.name),
          h('td', { class: 'level' }, bar(sg.sub, 1, 60), ' ', sg.sub === null ? h('span', { class: 'muted' }, 'no data') : `${Math.round(sg.sub * 100)}%`),
          h('td', { class: 'num' }, fmtScore(sg.contribution))))))))));
}

function changeItem(ch) {
  return h('li', { 'data-type': ch.type, 'data-time': ch.time },
    h('div', {}, h('time', { datetime: ch.time }, fmtTime(ch.time)), ' · ', TYPE_TEXT[ch.type] || ch.type, ' · ',
      bandBadge(ch.prev_band), ' → ', bandBadge(ch.band), ' · score ', h('span', { class: 'change-score' }, fmtScore(ch.score))),
    ch.drivers && ch.drivers.length
      ? h('ul', { class: 'drivers', 'aria-label': 'Top drivers' }, ch.drivers.map((d) => h('li', {
        class: 'driver', 'data-category': d.category, 'data-signal': d.signal, 'data-points': d.points,
      }, `${d.category} / ${d.signal}: `, h('span', { class: d.points < 0 ? 'down' : 'up' }, `${d.points > 0 ? '+' : d.points < 0 ? '−' : ''}${Math.abs(d.points).toFixed(2)} points`))))
      : h('p', { class: 'muted' }, 'no drivers recorded'));
}

async function historySection(id, gen, segment) {
  const sec = h('section', { 'aria-labelledby': 'hist-title' }, h('h2', { id: 'hist-title' }, 'History'), h('p', { class: 'muted' }, 'Loading…'));
  const changes = h('section', { 'aria-labelledby': 'chg-title' }, h('h2', { id: 'chg-title' }, 'Last changes and their top drivers'));
  const alerts = h('section', { 'aria-labelledby': 'al-title' }, h('h2', { id: 'al-title' }, 'Last alerts'));
  const fill = async () => {
    let hist, bands = null;
    try {
      hist = await getJSON(`/v1/customers/${encodeURIComponent(id)}/history`);
    } catch (e) {
      if (gen !== generation) return;
      const msg = problem(e, 'The history');
      sec.replaceChildren(sec.firstChild, msg);
      changes.append(problem(e, 'The changes'));
      alerts.append(problem(e, 'The alerts'));
      return;
    }
    try {
      // The thresholds of the customer's segment, else the model's.
      const m = await model();
      const seg = (m.segments || []).find((x) => x.name === segment);
      bands = (seg && seg.bands) || m.bands || null;
    } catch {
      // no thresholds on the chart
    }
    if (gen !== generation) return;
    const pts = hist.points || [];
    if (pts.length === 0) {
      sec.replaceChildren(sec.firstChild, h('p', { class: 'notice', 'data-state': 'empty' }, `No score in the history from ${hist.from} to ${hist.to}.`));
    } else {
      sec.replaceChildren(sec.firstChild,
        h('p', { class: 'muted' }, `The day's last score (line, dots coloured by band) and its lowest (dashed), ${hist.from} to ${hist.to}.`),
        historyChart(pts, bands, 'hist-chart'),
        h('details', {}, h('summary', {}, 'Show the history as a table'),
          h('table', { id: 'history-table' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col', class: 'num' }, 'Score'), h('th', { scope: 'col', class: 'num' }, 'Lowest'), h('th', { scope: 'col' }, 'Band'))),
            h('tbody', {}, pts.map((p) => h('tr', {}, h('td', {}, p.day), h('td', { class: 'num' }, fmtScore(p.score)), h('td', { class: 'num' }, fmtScore(p.min)), h('td', {}, bandBadge(p.band))))))));
    }
    const chs = hist.changes || [];
    changes.append(chs.length ? h('ul', { class: 'changes', id: 'changes' }, chs.map(changeItem))
      : h('p', { class: 'notice', 'data-state': 'empty' }, 'No band change or alert in the history window.'));
    const al = chs.filter((c) => ALERTS.has(c.type));
    alerts.append(al.length ? h('ul', { class: 'changes', id: 'alerts' }, al.map(changeItem))
      : h('p', { class: 'notice', 'data-state': 'empty' }, 'No alert in the history window.'));
  };
  return { nodes: [sec, changes, alerts], fill };
}

async function customerView(gen, id) {
  setView(`Customer ${id}`, h('p', { class: 'muted' }, 'Loading…'));
  let c;
  try {
    c = await getJSON(`/v1/customers/${encodeURIComponent(id)}`);
  } catch (e) {
    if (gen === generation) setView(`Customer ${id}`, problem(e, 'This customer'), h('p', {}, h('a', { href: '#/' }, 'Back to the customers at risk')));
    return;
  }
  if (gen !== generation) return;
  const hist = await historySection(id, gen, c.segment);
  setView(`Customer ${id}`,
    h('div', { class: 'summary panel' },
      h('div', {}, h('div', { class: 'muted' }, c.override ? 'Score (override)' : 'Score'),
        h('span', { class: 'big', id: 'score' }, fmtScore(c.score)), ' ', h('span', { id: 'band' }, bandBadge(c.band))),
      facts([
        ['Segment', c.segment || 'default'],
        ['Evaluated at', fmtTime(c.at)],
        ['Last event', fmtTime(c.last_event)],
        ['Events applied', String(c.events ?? '—')],
        c.model && ['Model', `${c.model.name} ${c.model.version}`],
      ])),
    overrideBlock(c),
    forecastFacts(c),
    categories(c),
    ...hist.nodes);
  await hist.fill();
}

// ---- the model ------------------------------------------------------------------

function valueText(v) {
  if (v === null || v === undefined) return '—';
  if (Array.isArray(v)) return v.map(valueText).join(', ') || '—';
  if (typeof v === 'object') {
    if (typeof v.red_below === 'number' && typeof v.green_at_or_above === 'number') {
      return `red below ${v.red_below}, green at or above ${v.green_at_or_above}`;
    }
    const parts = Object.entries(v).map(([k, x]) => `${k}: ${valueText(x)}`);
    return parts.length ? parts.join(', ') : '—';
  }
  return String(v);
}

// genericTable shows objects with the union of their keys as columns.
function genericTable(rows, first, caption) {
  const keys = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  keys.sort((a, b) => (a === first ? -1 : b === first ? 1 : 0));
  return h('table', {}, h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, keys.map((k) => h('th', { scope: 'col' }, k.replaceAll('_', ' '))))),
    h('tbody', {}, rows.map((r) => h('tr', {}, keys.map((k, i) => (i === 0 ? h('th', { scope: 'row' }, valueText(r[k])) : h('td', {}, valueText(r[k]))))))));
}

async function modelView(gen) {
  setView('Model', h('p', { class: 'muted' }, 'Loading…'));
  let m;
  try {
    m = await model();
  } catch (e) {
    if (gen === generation) setView('Model', problem(e, 'The model'));
    return;
  }
  if (gen !== generation) return;
  const bands = m.bands || {};
  const known = new Set(['name', 'version', 'yaml', 'bands', 'categories', 'segments']);
  const rest = Object.entries(m).filter(([k]) => !known.has(k));
  setView(`Model ${m.name} ${m.version}`,
    h('p', { class: 'muted' }, 'The model in use: how events become scores. docs/model.md explains the math.'),
    facts([
      ['Name', m.name],
      ['Version', m.version],
      typeof bands.red_below === 'number' && ['Red', `below ${bands.red_below}`],
      typeof bands.green_at_or_above === 'number' && ['Green', `at or above ${bands.green_at_or_above}`],
      ...Object.entries(bands).filter(([k]) => k !== 'red_below' && k !== 'green_at_or_above').map(([k, v]) => [k.replaceAll('_', ' '), valueText(v)]),
      ...rest.map(([k, v]) => [k.replaceAll('_', ' '), valueText(v)]),
    ]),
    h('h2', {}, 'Categories'),
    (m.categories || []).map((cat) => h('section', { class: 'panel', 'data-category': cat.name },
      h('h3', {}, `${cat.name} · weight ${cat.weight}`),
      Object.entries(cat).filter(([k]) => !['name', 'weight', 'signals'].includes(k)).map(([k, v]) => h('p', { class: 'muted' }, `${k.replaceAll('_', ' ')}: ${valueText(v)}`)),
      genericTable(cat.signals || [], 'name', `Signals of ${cat.name}`))),
    h('h2', {}, 'Segments'),
    (m.segments || []).length ? genericTable(m.segments, 'name', 'Segments') : h('p', { class: 'muted' }, 'No segments: every customer uses the base model.'),
    h('details', {}, h('summary', {}, 'The model file as loaded (YAML)'), h('pre', {}, h('code', {}, m.yaml || ''))));
}

// ---- routing --------------------------------------------------------------------

async function render() {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return; // an in-page anchor (the skip link)
  const path = hash.slice(1).split('?')[0];
  const gen = ++generation;
  const nav = path === '/forecast' ? 'forecast' : path === '/model' ? 'model' : path === '/' ? 'list' : '';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const m = /^\/customers\/(.+)$/.exec(path);
  let view;
  if (path === '/') view = listView(gen);
  else if (path === '/forecast') view = forecastView(gen);
  else if (path === '/model') view = modelView(gen);
  else if (m) view = customerView(gen, decodeURIComponent(m[1]));
  else {
    setView('Not found', h('p', {}, 'This page has no such view. ', h('a', { href: '#/' }, 'Go to the customers at risk.')));
    view = Promise.resolve();
  }
  const moved = !firstRender;
  firstRender = false;
  try {
    await view;
  } catch (e) {
    if (gen === generation) main.append(problem(e, 'This view'));
  }
  if (gen !== generation) return;
  // After a navigation, keyboard and screen-reader users continue at the
  // new view's heading (unless they already moved into the view).
  if (moved && !main.contains(document.activeElement)) {
    const h1 = main.querySelector('h1');
    if (h1) h1.focus();
  }
  main.dataset.ready = path;
}

window.addEventListener('hashchange', () => {
  delete main.dataset.ready;
  render();
});
render();
