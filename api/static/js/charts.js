// Inline SVG charts drawn with DOM calls: no library, no network, and every label is text.

import { el, fmtFixed, fmtInt, svg } from './dom.js';

let chartCount = 0;

function chartRoot(width, height, title, description) {
  chartCount += 1;
  const titleId = `chart-title-${chartCount}`;
  const descId = `chart-desc-${chartCount}`;
  return svg('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img',
    'aria-labelledby': titleId, 'aria-describedby': descId,
    preserveAspectRatio: 'xMinYMin meet',
  },
  svg('title', { id: titleId, text: title }),
  svg('desc', { id: descId, text: description }));
}

// Horizontal bars, one per item: {label, value, className, valueText}.
export function horizontalBarChart({ items, max, title }) {
  const rowHeight = 34;
  const labelWidth = 120;
  const valueWidth = 170;
  const width = 600;
  const barSpace = width - labelWidth - valueWidth;
  const height = items.length * rowHeight + 8;
  const description = items.map((item) => `${item.fullLabel || item.label}: ${item.valueText}`).join('; ');
  const root = chartRoot(width, height, title, description);
  items.forEach((item, i) => {
    const y = i * rowHeight + 4;
    const barWidth = max > 0 ? Math.max(0, (item.value / max) * barSpace) : 0;
    root.append(
      svg('text', { x: labelWidth - 10, y: y + rowHeight / 2 + 5, 'text-anchor': 'end', class: 'chart-label', text: item.label }),
      svg('rect', { x: labelWidth, y: y + 5, width: barSpace, height: rowHeight - 10, class: 'bar-track' }),
      svg('rect', { x: labelWidth, y: y + 5, width: barWidth.toFixed(1), height: rowHeight - 10, class: `bar ${item.className || ''}` }),
      svg('text', { x: labelWidth + barSpace + 8, y: y + rowHeight / 2 + 5, class: 'chart-value', text: item.valueText }),
    );
  });
  return root;
}

function linearTicks(lo, hi, count) {
  const ticks = [];
  for (let i = 0; i <= count; i += 1) ticks.push(lo + ((hi - lo) * i) / count);
  return ticks;
}

// 1, 2, 5 × 10^k inside [lo, hi]; only the powers of ten when that would crowd the axis.
function logTicks(lo, hi) {
  const ticks = [];
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k += 1) {
    for (const m of [1, 2, 5]) {
      const value = m * 10 ** k;
      if (value >= lo && value <= hi) ticks.push(value);
    }
  }
  return ticks.length > 8 ? ticks.filter((t) => Number.isInteger(Math.log10(t))) : ticks;
}

function tickText(value, span) {
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(span < 10 ? 2 : 1);
}

// A histogram of anomaly scores with the decision threshold drawn as a labelled line.
// `logX`: the bins are log-spaced (the API's `scale: "log"`), so the score axis is too.
export function scoreHistogram({ edges, counts, threshold, logScale, logX }) {
  const width = 640;
  const height = 290;
  const margin = { left: 64, right: 20, top: 30, bottom: 50 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const hasThreshold = Number.isFinite(threshold);
  const lo = Math.min(edges[0], hasThreshold ? threshold : edges[0]);
  const hi = Math.max(edges[edges.length - 1], hasThreshold ? threshold : edges[0]);
  const span = hi - lo || 1;
  const useLogX = logX && lo > 0;
  const x = useLogX
    ? (value) => margin.left + ((Math.log10(value) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * plotWidth
    : (value) => margin.left + ((value - lo) / span) * plotWidth;
  const maxCount = Math.max(1, ...counts);
  const scale = logScale
    ? (c) => (Math.log10(c + 1) / Math.log10(maxCount + 1)) * plotHeight
    : (c) => (c / maxCount) * plotHeight;
  const total = counts.reduce((a, b) => a + b, 0);
  const above = counts.reduce((sum, c, i) => (edges[i] >= threshold ? sum + c : sum), 0);
  const description = `${fmtInt(total)} records in ${counts.length} score bins from ${fmtFixed(edges[0], 2)} to `
    + `${fmtFixed(edges[edges.length - 1], 2)}; threshold ${fmtFixed(threshold, 3)}; `
    + `${fmtInt(above)} records in bins at or above the threshold.`;
  const root = chartRoot(width, height, 'Anomaly score histogram', description);
  const bottom = margin.top + plotHeight;

  counts.forEach((count, i) => {
    const x0 = x(edges[i]);
    const x1 = x(edges[i + 1]);
    const barHeight = count > 0 ? Math.max(1, scale(count)) : 0;
    const kind = hasThreshold && edges[i] >= threshold ? 'bar-anomalous' : 'bar-normal';
    root.append(svg('rect', {
      x: (x0 + 0.5).toFixed(1), y: (bottom - barHeight).toFixed(1),
      width: Math.max(0.5, x1 - x0 - 1).toFixed(1), height: barHeight.toFixed(1),
      class: `bar ${kind}`,
    }, svg('title', { text: `score ${fmtFixed(edges[i], 3)}–${fmtFixed(edges[i + 1], 3)}: ${fmtInt(count)} records` })));
  });

  root.append(
    svg('line', { x1: margin.left, y1: bottom, x2: margin.left + plotWidth, y2: bottom, class: 'axis' }),
    svg('line', { x1: margin.left, y1: margin.top, x2: margin.left, y2: bottom, class: 'axis' }),
  );
  for (const tick of useLogX ? logTicks(lo, hi) : linearTicks(lo, hi, 5)) {
    root.append(
      svg('line', { x1: x(tick), y1: bottom, x2: x(tick), y2: bottom + 5, class: 'axis' }),
      svg('text', { x: x(tick), y: bottom + 18, 'text-anchor': 'middle', class: 'tick-label', text: tickText(tick, span) }),
    );
  }
  root.append(
    svg('text', { x: margin.left - 8, y: margin.top + 4, 'text-anchor': 'end', class: 'tick-label', text: fmtInt(maxCount) }),
    svg('text', { x: margin.left - 8, y: bottom, 'text-anchor': 'end', class: 'tick-label', text: '0' }),
    svg('text', { x: margin.left + plotWidth / 2, y: height - 8, 'text-anchor': 'middle', class: 'axis-title', text: useLogX ? 'anomaly score (log scale)' : 'anomaly score' }),
    svg('text', {
      x: 14, y: margin.top + plotHeight / 2, 'text-anchor': 'middle', class: 'axis-title',
      transform: `rotate(-90 14 ${margin.top + plotHeight / 2})`, text: logScale ? 'records (log scale)' : 'records',
    }),
  );
  if (hasThreshold) {
    const tx = x(threshold);
    const anchorEnd = tx > margin.left + plotWidth * 0.7;
    root.append(
      svg('line', { x1: tx, y1: margin.top - 6, x2: tx, y2: bottom, class: 'threshold-line' }),
      svg('text', {
        x: anchorEnd ? tx - 6 : tx + 6, y: margin.top - 10, 'text-anchor': anchorEnd ? 'end' : 'start',
        class: 'threshold-label', text: `threshold = ${fmtFixed(threshold, 3)}`,
      }),
    );
  }
  return root;
}

// The histogram's colour key, in words as well as colour.
export function histogramLegend() {
  return el('p', { class: 'legend' },
    el('span', { class: 'swatch bar-normal', 'aria-hidden': 'true' }), ' below the threshold (normal)  ',
    el('span', { class: 'swatch bar-anomalous', 'aria-hidden': 'true' }), ' above the threshold (anomaly)  ',
    el('span', { class: 'swatch threshold-swatch', 'aria-hidden': 'true' }), ' threshold');
}

// Anomalies per time bin, stacked by severity (Low at the bottom), over the file's time range.
// `bins`: [{start, counts: {severity: n}}]; `timeText(seconds)` labels a bin's start.
export function timelineChart({ bins, severities, binText, timeText, title }) {
  const width = 1100;
  const height = 280;
  const margin = { left: 64, right: 24, top: 16, bottom: 40 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const totals = bins.map((bin) => severities.reduce((sum, s) => sum + (bin.counts[s] || 0), 0));
  const maxTotal = Math.max(1, ...totals);
  const all = totals.reduce((a, b) => a + b, 0);
  const peak = totals.indexOf(Math.max(...totals));
  const description = `${fmtInt(all)} anomalies in ${fmtInt(bins.length)} bins of ${binText} from `
    + `${timeText(bins[0].start)} to ${timeText(bins[bins.length - 1].start)}`
    + (all > 0 ? `; the busiest bin starts at ${timeText(bins[peak].start)} with ${fmtInt(totals[peak])}.` : '.');
  const root = chartRoot(width, height, title, description);
  const bottom = margin.top + plotHeight;
  const step = plotWidth / bins.length;
  bins.forEach((bin, i) => {
    let y = bottom;
    for (const severity of severities) {
      const count = bin.counts[severity] || 0;
      if (count === 0) continue;
      const h = Math.max(1, (count / maxTotal) * plotHeight);
      y -= h;
      root.append(svg('rect', {
        x: (margin.left + i * step).toFixed(2), y: y.toFixed(2),
        width: Math.max(0.6, step - (step > 3 ? 1 : 0)).toFixed(2), height: h.toFixed(2),
        class: `bar sev-${severity}`,
      }, svg('title', { text: `${timeText(bin.start)}: ${fmtInt(count)} ${severity}` })));
    }
  });
  root.append(
    svg('line', { x1: margin.left, y1: bottom, x2: margin.left + plotWidth, y2: bottom, class: 'axis' }),
    svg('line', { x1: margin.left, y1: margin.top, x2: margin.left, y2: bottom, class: 'axis' }),
    svg('text', { x: margin.left - 8, y: margin.top + 4, 'text-anchor': 'end', class: 'tick-label', text: fmtInt(maxTotal) }),
    svg('text', { x: margin.left - 8, y: bottom, 'text-anchor': 'end', class: 'tick-label', text: '0' }),
    svg('text', {
      x: 14, y: margin.top + plotHeight / 2, 'text-anchor': 'middle', class: 'axis-title',
      transform: `rotate(-90 14 ${margin.top + plotHeight / 2})`, text: `anomalies per ${binText}`,
    }),
  );
  const ticks = Math.min(4, bins.length - 1);
  for (let t = 0; t <= ticks; t += 1) {
    const i = ticks === 0 ? 0 : Math.round((t * (bins.length - 1)) / ticks);
    const x = margin.left + i * step;
    const anchor = t === 0 ? 'start' : (t === ticks && ticks > 0 ? 'end' : 'middle');
    root.append(
      svg('line', { x1: x, y1: bottom, x2: x, y2: bottom + 5, class: 'axis' }),
      svg('text', { x, y: bottom + 18, 'text-anchor': anchor, class: 'tick-label', text: timeText(bins[i].start) }),
    );
  }
  return root;
}

// The severity colour key, in words as well as colour.
export function severityLegend(severities) {
  return el('p', { class: 'legend' }, severities.map((severity) => [
    el('span', { class: `swatch swatch-${severity}`, 'aria-hidden': 'true' }), ` ${severity}  `]));
}
