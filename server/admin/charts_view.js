// Charts on the managers' page (issue 18 item 7), drawn as inline SVG from the public API: no
// library, no fetch from another host. Three places:
//
// * the rule list: a 30-day sparkline of each rule's fires in a column after "30 d" (one
//   GET /v1/stats/rules for the whole list, cached for a short while: the table is redrawn on
//   every keystroke of the search);
// * the rule editor: a larger "Fires per day" chart of the rule (GET /v1/rules/{id}/days);
// * the Charts tab: the workspace's events per hour (GET /v1/stats/events?hours=48) and its SLA
//   targets met / breached per day (GET /v1/stats/sla?days=30).
//
// Readable without colour: every chart has a <title> and a <desc> (the total and the peak in
// words), axis numbers, a legend whose swatches differ by pattern (breached bars are hatched),
// a <title> on each bar with its exact value, and the numbers as a table under "Show as table".
// The numbers come from charts.js (pure). Text goes in as text nodes only.

import { api, enc } from './api.js';
import { h, clear, uid } from './dom.js';
import { HOOKS } from './app.js';
import { registerView } from './router.js';
import { barLayout, ticks, sparkPath, labelEvery, dayLabel, hourLabel, summarize, scale } from './charts.js';

// The SVG namespace, as the HTML parser assigns it to an <svg> tag (the page's assets carry no
// URL at all: tests/web/test_admin_assets.py).
const NS = new DOMParser().parseFromString('<svg></svg>', 'text/html').body.firstChild.namespaceURI;
const CACHE_MS = 30_000;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// ------------------------------------------------------------------ sparkline (rule list)

const SPARK_W = 92;
const SPARK_H = 22;

/** A small chart of per-day fires: bars, the last (today) outlined, with a <title> in words. */
export function sparkline(values, dates, name) {
  const title = `${name}: ${summarize(values, dates.map(dayLabel), ['fire', 'fires'], `${values.length} days`)}`;
  const { bars } = barLayout([values], SPARK_W, SPARK_H - 2, { gap: 0.15 });
  const tid = uid('spark');
  return s('svg', { class: 'spark', width: SPARK_W, height: SPARK_H, viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
    role: 'img', 'aria-labelledby': tid, 'data-total': values.reduce((a, b) => a + b, 0) },
  s('title', { id: tid }, title),
  s('line', { class: 'base', x1: 0, x2: SPARK_W, y1: SPARK_H - 1.5, y2: SPARK_H - 1.5 }),
  bars.map((b) => s('rect', { class: b.index === values.length - 1 ? 'bar today' : 'bar', x: b.x, y: b.y,
    width: Math.max(1, b.w), height: Math.max(b.value ? 1 : 0, b.h) })));
}

let rulesCache = { at: 0, data: null, ids: '' };

async function ruleDays(ids) {
  const key = ids.join(',');
  if (rulesCache.data && rulesCache.ids === key && Date.now() - rulesCache.at < CACHE_MS) return rulesCache.data;
  const data = await api('GET', '/v1/stats/rules?days=30');
  rulesCache = { at: Date.now(), data, ids: key };
  return data;
}

/** HOOKS.table: a "Fires, 30 days" column after "30 d", with a sparkline in each drawn row. */
async function addSparklines(body, rules) {
  const head = body.parentElement?.querySelector('thead tr');
  const after = head ? [...head.querySelectorAll('th.c-n')].pop() : null;
  if (!after || head.querySelector('th.c-spark')) return;
  after.after(h('th', { scope: 'col', class: 'c-spark' }, 'Fires, 30 days'));
  const cells = new Map();
  for (const row of body.querySelectorAll('tr[data-rule-id]')) {
    const cell = h('td', { class: 'c-spark' });
    [...row.querySelectorAll('td.c-n')].pop()?.after(cell);
    cells.set(row.dataset.ruleId, cell);
  }
  let data;
  try { data = await ruleDays(rules.map((r) => r.id).sort()); } catch { return; }
  for (const rule of rules) {
    const cell = cells.get(rule.id);
    const values = data.rules[rule.id];
    if (cell && cell.isConnected && values) cell.append(sparkline(values, data.dates, rule.name));
  }
}

// ------------------------------------------------------------------ bar chart

const W = 860;
const H = 200;
const PAD = { l: 40, r: 10, t: 10, b: 34 };

/**
 * A figure with a bar chart (one or two series side by side), its legend and its numbers as a
 * table. `series`: [{name, values, cls, hatched?}]; `labels`: one per value; `axis`: the short
 * label printed under every few bars.
 */
export function barChart({ id, title, labels, axis, series, unit, span, at = 'on', columns }) {
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const { top, bars } = barLayout(series.map((x) => x.values), plotW, plotH);
  const y = scale(0, top, PAD.t + plotH, PAD.t);
  const tid = uid('chart-t');
  const did = uid('chart-d');
  const hatch = uid('hatch');
  const desc = series.map((x) => `${x.name}: ${summarize(x.values, labels, unit, span, at)}`).join(' ');
  const svg = s('svg', { class: 'chart-svg', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${tid} ${did}`, preserveAspectRatio: 'xMinYMin meet' },
    s('title', { id: tid }, title),
    s('desc', { id: did }, desc),
    s('defs', null, s('pattern', { id: hatch, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
      s('rect', { class: 'hatch-bg', width: 6, height: 6 }),
      s('line', { class: 'hatch-line', x1: 0, y1: 0, x2: 0, y2: 6 }))),
    ticks(top).map((t) => s('g', { class: 'tick' },
      s('line', { x1: PAD.l, x2: PAD.l + plotW, y1: y(t), y2: y(t) }),
      s('text', { x: PAD.l - 6, y: y(t) + 4, 'text-anchor': 'end' }, String(t)))),
    s('g', { transform: `translate(${PAD.l} ${PAD.t})` },
      bars.map((b) => {
        const sr = series[b.series];
        return s('rect', { class: `bar ${sr.cls}`, x: b.x, y: b.y, width: Math.max(1, b.w), height: Math.max(b.value ? 1 : 0, b.h),
          fill: sr.hatched ? `url(#${hatch})` : null, 'data-series': sr.name, 'data-index': b.index, 'data-value': b.value },
        s('title', null, `${labels[b.index]}: ${b.value} ${sr.name.toLowerCase()}`));
      })),
    labelEvery(labels.length, 8).map((i) => s('text', { class: 'x-label', 'text-anchor': 'middle',
      x: PAD.l + (i + 0.5) * (plotW / labels.length), y: H - PAD.b + 16 }, axis[i])));
  const legend = h('ul', { class: 'legend' }, series.map((x) => h('li', null,
    s('svg', { class: 'swatch', width: 16, height: 12, viewBox: '0 0 16 12', 'aria-hidden': 'true' },
      s('defs', null, s('pattern', { id: `${hatch}-k`, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        s('rect', { class: 'hatch-bg', width: 6, height: 6 }), s('line', { class: 'hatch-line', x1: 0, y1: 0, x2: 0, y2: 6 }))),
      s('rect', { class: `bar ${x.cls}`, width: 16, height: 12, fill: x.hatched ? `url(#${hatch}-k)` : null })),
    ` ${x.name}${x.hatched ? ' (hatched)' : ''}: ${x.values.reduce((a, b) => a + b, 0)}`)));
  const table = h('table', { class: 'chart-table' },
    h('caption', { class: 'sr-only' }, title),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, columns[0]), series.map((x) => h('th', { scope: 'col' }, x.name)))),
    h('tbody', null, labels.map((label, i) => h('tr', null, h('th', { scope: 'row' }, label),
      series.map((x) => h('td', null, String(x.values[i])))))));
  return h('figure', { class: 'chart card', id },
    h('figcaption', null, h('h2', null, title), h('p', { class: 'hint' }, desc)),
    svg, legend,
    h('details', { class: 'chart-data' }, h('summary', null, 'Show as table'), table));
}

// ------------------------------------------------------------------ the rule editor

/** HOOKS.editor: a "Fires per day" chart of the rule under the editor's state line. */
async function addRuleChart(view, rule) {
  if (!rule || !rule.id) return;
  const box = h('div', { id: 'rule-chart', 'aria-live': 'polite' }, h('p', { class: 'hint' }, 'Loading the fires per day…'));
  const anchor = view.querySelector('#editor-state');
  if (anchor) anchor.after(box); else view.append(box);
  try {
    const got = await api('GET', `/v1/rules/${enc(rule.id)}/days?days=30`);
    const days = got.days || [];
    clear(box).append(barChart({
      id: 'rule-fires-chart', title: 'Fires per day, last 30 days', columns: ['Day (UTC)'],
      labels: days.map((d) => d.date), axis: days.map((d) => dayLabel(d.date)),
      series: [{ name: 'Fires', values: days.map((d) => d.fired), cls: 'fires' }],
      unit: ['fire', 'fires'], span: '30 days',
    }));
  } catch (err) {
    clear(box).append(h('p', { class: 'error-text' }, `Could not load the fires per day: ${err.message}`));
  }
}

// ------------------------------------------------------------------ the Charts tab

async function renderCharts(view) {
  clear(view);
  const out = h('div', { id: 'charts-body' }, h('p', null, 'Loading charts…'));
  view.append(
    h('div', { class: 'view-head' }, h('h1', { id: 'charts-h' }, 'Charts'),
      h('button', { type: 'button', class: 'quiet', id: 'charts-refresh', onclick: () => draw() }, 'Refresh')),
    h('p', { class: 'lead' }, 'What the workspace’s automation has been doing. Times are UTC; the counts trail the events by a moment.'),
    out);
  async function draw() {
    try {
      const [ev, sla] = await Promise.all([api('GET', '/v1/stats/events?hours=48'), api('GET', '/v1/stats/sla?days=30')]);
      clear(out).append(
        barChart({
          id: 'events-chart', title: 'Events per hour, last 48 hours', columns: ['Hour (UTC)'],
          labels: ev.hours.map((x) => x.hour.replace('T', ' ').replace(':00:00Z', ':00')),
          axis: ev.hours.map((x) => hourLabel(x.hour)),
          series: [{ name: 'Events', values: ev.hours.map((x) => x.events), cls: 'events' }],
          unit: ['event', 'events'], span: '48 hours', at: 'at',
        }),
        barChart({
          id: 'sla-chart', title: 'SLA targets met and breached per day, last 30 days', columns: ['Day (UTC)'],
          labels: sla.days.map((d) => d.date), axis: sla.days.map((d) => dayLabel(d.date)),
          series: [{ name: 'Met', values: sla.days.map((d) => d.met), cls: 'met' },
            { name: 'Breached', values: sla.days.map((d) => d.breached), cls: 'breached', hatched: true }],
          unit: ['target', 'targets'], span: '30 days',
        }));
    } catch (err) {
      clear(out).append(h('p', { class: 'error-text' }, `Could not load the charts: ${err.message}`));
    }
  }
  await draw();
}

registerView('charts', renderCharts, { label: 'Charts' });
HOOKS.table.push(addSparklines);
HOOKS.editor.push(addRuleChart);
