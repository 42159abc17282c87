// The results dashboard: warnings, summary cards, notices, charts and (with labels) the
// quality metrics.

import { horizontalBarChart, histogramLegend, scoreHistogram } from './charts.js';
import {
  SEVERITY_ORDER, byId, el, fmtCell, fmtFixed, fmtInt, fmtPercent, fmtSeconds, show,
} from './dom.js';
import { baselineLink } from './model_panel.js';

const CATEGORY_ORDER = ['DoS', 'Probe', 'R2L', 'U2R', 'Unknown'];

function card(metric, label, value, text, hint) {
  return el('div', { class: 'card', 'data-metric': metric },
    el('span', { class: 'card-label', text: label }),
    el('span', { class: 'card-value', 'data-value': value, text }),
    hint ? el('span', { class: 'card-hint', text: hint }) : null);
}

export function detectionRate(summary) {
  const total = Number(summary.total_samples);
  return total > 0 ? (Number(summary.anomalies_detected) / total) * 100 : 0;
}

// A Zeek file scored by another kind's model: the API fell back to it because no Zeek model
// exists yet, so the way out is a baseline of the analyst's own network.
function baselineHint(warning, summary) {
  if (warning.code !== 'input_kind_mismatch' || summary.input_kind !== 'zeek') return null;
  const used = summary.model && summary.model.input_kind;
  if (used === 'zeek') return null;
  const admin = document.body.dataset.admin === 'true';
  return el('p', { class: 'warning-baseline' },
    'No Zeek model exists yet. ',
    baselineLink(admin ? 'Train a baseline for your network' : 'Train a baseline for your network (admin)'),
    admin ? ' from a quiet period of your traffic, then analyse this file again.'
      : ': an admin uploads a quiet period of your traffic, then this file can be analysed again.');
}

// What the numbers alone would hide (the API's summary.warnings), above the results: the
// message, and the command that fixes it (or, for a Zeek file, the page that does).
export function renderWarnings(summary) {
  const box = byId('warnings');
  const warnings = Array.isArray(summary && summary.warnings) ? summary.warnings : [];
  box.replaceChildren(...warnings.map((warning) => el('div', { class: 'warning', 'data-code': fmtCell(warning.code) },
    el('p', {}, el('strong', { text: 'Warning: ' }), fmtCell(warning.message)),
    baselineHint(warning, summary),
    warning.command ? el('p', { class: 'warning-command' }, 'Command: ', el('code', { text: String(warning.command) })) : null)));
  show(box, warnings.length > 0);
}

export function renderSummary(result, fileName) {
  const summary = result.summary || {};
  byId('results-file').textContent = fileName ? `for ${fileName}` : '';
  const rate = detectionRate(summary);
  byId('summary-cards').replaceChildren(
    card('total_samples', 'Total samples', summary.total_samples, fmtInt(summary.total_samples)),
    card('anomalies_detected', 'Anomalies', summary.anomalies_detected, fmtInt(summary.anomalies_detected)),
    card('detection_rate', 'Detection rate', rate.toFixed(2), fmtPercent(rate, 2), 'anomalies ÷ total samples'),
    card('processing_time', 'Processing time', summary.processing_time, fmtSeconds(summary.processing_time)),
    card('model_version', 'Model version', fmtCell(summary.model_version), fmtCell(summary.model_version)),
  );

  const notice = byId('duplicate-notice');
  if (summary.duplicate) {
    notice.textContent = 'This exact file (same SHA-256) was uploaded before. It was analysed again, '
      + 'but not stored a second time for retraining.';
    show(notice, true);
  } else {
    show(notice, false);
  }

  const returned = Number(summary.anomalies_returned ?? (result.anomalies || []).length);
  const detected = Number(summary.anomalies_detected);
  const scope = returned < detected
    ? `The table holds the ${fmtInt(returned)} highest-scoring of ${fmtInt(detected)} anomalies; `
      + 'the CSV download has every record.'
    : `${fmtInt(detected)} ${detected === 1 ? 'record was' : 'records were'} flagged as anomalies.`;
  byId('anomalies-note').textContent = `${scope} Index is the record's 0-based position in the `
    + 'file (header and blank lines not counted), as in the CSV.';
}

export function renderSeverityChart(summary) {
  const counts = (summary && summary.severity_counts) || {};
  const total = Object.values(counts).reduce((a, b) => a + Number(b || 0), 0);
  const items = SEVERITY_ORDER.map((severity) => {
    const value = Number(counts[severity] || 0);
    const share = total > 0 ? (value / total) * 100 : 0;
    return { label: severity, value, className: `sev-${severity}`, valueText: `${fmtInt(value)} (${share.toFixed(1)} %)` };
  });
  const max = Math.max(0, ...items.map((i) => i.value));
  byId('severity-chart').replaceChildren(horizontalBarChart({ items, max, title: 'Records per severity' }));
}

export function renderScoreChart(histogram, logScale) {
  const target = byId('score-chart');
  const edges = histogram && Array.isArray(histogram.bin_edges) ? histogram.bin_edges.map(Number) : [];
  const counts = histogram && Array.isArray(histogram.counts) ? histogram.counts.map(Number) : [];
  if (counts.length === 0 || edges.length !== counts.length + 1) {
    target.replaceChildren(el('p', { text: 'The analysis service sent no score histogram.' }));
    return;
  }
  target.replaceChildren(
    scoreHistogram({
      edges, counts, threshold: Number(histogram.threshold), logScale, logX: histogram.scale === 'log',
    }),
    histogramLegend(),
  );
}

function confusionMatrix(matrix) {
  const cell = (key, value) => el('td', { 'data-cell': key, class: 'numeric', text: fmtInt(value) });
  return [
    el('caption', { text: 'Rows: the file\'s label. Columns: the model\'s decision.' }),
    el('thead', {}, el('tr', {},
      el('td', {}),
      el('th', { scope: 'col', text: 'Predicted normal' }),
      el('th', { scope: 'col', text: 'Predicted anomaly' }))),
    el('tbody', {},
      el('tr', {}, el('th', { scope: 'row', text: 'Actually normal' }), cell('tn', matrix.tn), cell('fp', matrix.fp)),
      el('tr', {}, el('th', { scope: 'row', text: 'Actually attack' }), cell('fn', matrix.fn), cell('tp', matrix.tp))),
  ];
}

export function renderMetrics(result) {
  const section = byId('metrics');
  const metrics = result.metrics;
  if (!result.has_labels || !metrics) {
    show(section, false);
    return;
  }
  show(section, true);
  byId('metric-cards').replaceChildren(...[
    card('accuracy', 'Accuracy', metrics.accuracy, fmtPercent(metrics.accuracy, 2)),
    card('precision', 'Precision', metrics.precision, fmtPercent(metrics.precision, 2)),
    card('recall', 'Recall', metrics.recall, fmtPercent(metrics.recall, 2)),
    card('f1_score', 'F1 score', metrics.f1_score, fmtPercent(metrics.f1_score, 2)),
    metrics.auroc === undefined || metrics.auroc === null ? null
      : card('auroc', 'AUROC', metrics.auroc, fmtFixed(metrics.auroc, 3)),
    card('labeled_samples', 'Labelled samples', metrics.labeled_samples, fmtInt(metrics.labeled_samples)),
  ].filter(Boolean));
  byId('confusion-matrix').replaceChildren(...confusionMatrix(metrics.confusion_matrix || {}));

  const rates = detectionRates(metrics);
  const target = byId('category-chart');
  byId('category-heading').textContent = rates.byLabel
    ? 'Detection rate per attack category or label' : 'Detection rate per attack category';
  if (rates.items.length === 0) {
    target.replaceChildren(el('p', { text: 'The file holds no attack records.' }));
    return;
  }
  target.replaceChildren(horizontalBarChart({ items: rates.items, max: 100, title: byId('category-heading').textContent }));
}

const MAX_LABEL_CHARS = 16;

function rateItem(name, entry) {
  const rate = Number(entry.rate || 0);
  const label = name.length > MAX_LABEL_CHARS ? `${name.slice(0, MAX_LABEL_CHARS - 1)}…` : name;
  return {
    label, fullLabel: name, value: rate, className: 'bar-category',
    valueText: `${fmtPercent(rate, 1)} (${fmtInt(entry.detected)} of ${fmtInt(entry.total)})`,
  };
}

// Known categories as they are; attack labels outside the KDD taxonomy (all "Unknown" to the
// model, e.g. Stratosphere's "malicious") by the file's own label names instead.
export function detectionRates(metrics) {
  const byCategory = metrics.detection_rate_by_category || {};
  const byLabel = metrics.detection_rate_by_label || {};
  const unknownLabels = Object.entries(byLabel).filter(([, entry]) => entry && entry.category === 'Unknown');
  const names = [...CATEGORY_ORDER.filter((c) => c in byCategory),
    ...Object.keys(byCategory).filter((c) => !CATEGORY_ORDER.includes(c))];
  if (!('Unknown' in byCategory) || unknownLabels.length === 0) {
    return { byLabel: false, items: names.map((name) => rateItem(name, byCategory[name] || {})) };
  }
  const items = names.filter((name) => name !== 'Unknown').map((name) => rateItem(name, byCategory[name] || {}));
  items.push(...unknownLabels.map(([name, entry]) => rateItem(name, entry)));
  const unknown = byCategory.Unknown;
  const listed = unknownLabels.reduce((sum, [, e]) => ({
    total: sum.total + Number(e.total || 0), detected: sum.detected + Number(e.detected || 0),
  }), { total: 0, detected: 0 });
  const rest = { total: Number(unknown.total || 0) - listed.total, detected: Number(unknown.detected || 0) - listed.detected };
  if (rest.total > 0) items.push(rateItem('other labels', { ...rest, rate: (rest.detected / rest.total) * 100 }));
  return { byLabel: true, items };
}
