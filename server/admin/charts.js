// The charts' pure part: scales, axis ticks, bar layouts, sparkline paths and the sentences that
// say what a chart shows (its text alternative). No DOM and no imports, so a test can load this
// module alone and check every number; charts_view.js draws the SVG from what these return.

/** The smallest "nice" number (1, 2 or 5 times a power of ten) at or above v; 1 for v <= 1. */
export function niceCeil(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** A linear map of [d0, d1] onto [r0, r1]; an empty domain maps everything to r0. */
export function scale(d0, d1, r0, r1) {
  const span = d1 - d0;
  return (x) => (span === 0 ? r0 : r0 + ((x - d0) / span) * (r1 - r0));
}

/** Axis ticks from 0 to `top` (a niceCeil value) in whole equal steps, at most 5 of them. */
export function ticks(top) {
  const parts = [5, 4, 2, 1].find((k) => Number.isInteger(top / k)) || 1;
  const out = [];
  for (let i = 0; i <= parts; i += 1) out.push((top / parts) * i);
  return out;
}

/**
 * Grouped bars: `series` is a list of equally long value lists (one per series), drawn side by
 * side per index in a `width` x `height` plot. Returns {top, slot, bars: [{series, index, value,
 * x, y, w, h}]}; a zero is a bar of height 0 (the view draws a baseline mark for it).
 */
export function barLayout(series, width, height, { gap = 0.2 } = {}) {
  const n = series.length ? series[0].length : 0;
  const all = series.flat();
  const top = niceCeil(Math.max(0, ...all));
  const y = scale(0, top, height, 0);
  const slot = n ? width / n : 0;
  const inner = slot * (1 - gap);
  const w = series.length ? inner / series.length : 0;
  const bars = [];
  series.forEach((values, s) => {
    values.forEach((value, i) => {
      const v = Math.max(0, Number(value) || 0);
      const x = i * slot + (slot - inner) / 2 + s * w;
      bars.push({ series: s, index: i, value: v, x: round(x), y: round(y(v)), w: round(w), h: round(height - y(v)) });
    });
  });
  return { top, slot: round(slot), bars };
}

/** The SVG path of a sparkline (a line through every value, baseline at the bottom). */
export function sparkPath(values, width, height) {
  if (!values.length) return '';
  const top = Math.max(1, ...values);
  const x = scale(0, Math.max(1, values.length - 1), 0, width);
  const y = scale(0, top, height - 1, 1);
  return values.map((v, i) => `${i ? 'L' : 'M'}${round(x(i))} ${round(y(Math.max(0, v)))}`).join(' ');
}

/** Which of n labels to print under the axis so that at most `room` show (always the last). */
export function labelEvery(n, room) {
  const step = Math.max(1, Math.ceil(n / Math.max(1, room)));
  const out = [];
  for (let i = n - 1; i >= 0; i -= step) out.unshift(i);
  return out;
}

/** "2 Dec" for "2026-12-02" (UTC, so a day never shifts with the viewer's zone). */
export function dayLabel(date) {
  const d = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return String(date);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
}

/** "14:00" for "2026-12-02T14:00:00Z" (UTC). */
export function hourLabel(iso) {
  const m = /T(\d\d):/.exec(String(iso));
  return m ? `${m[1]}:00` : String(iso);
}

/**
 * The sentence a chart's <desc> and its sparkline's <title> carry: the total and where the peak
 * was, e.g. "12 fires in 30 days; most on 2 Dec (5)." `unit` is [singular, plural].
 */
export function summarize(values, labels, unit, span, at = 'on') {
  const total = values.reduce((a, b) => a + (Number(b) || 0), 0);
  const [one, many] = unit;
  if (!total) return `No ${many} in ${span}.`;
  let peak = 0;
  values.forEach((v, i) => { if (v > values[peak]) peak = i; });
  return `${total} ${total === 1 ? one : many} in ${span}; most ${at} ${labels[peak]} (${values[peak]}).`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function round(v) { return Math.round(v * 100) / 100; }
