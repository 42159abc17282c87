// The "Model" panel: the model card from /api/model-info and the retraining status.

import { el, fmtCell, fmtFixed, fmtInt, fmtPercent } from './dom.js';
import { getJson, messageFor } from './service.js';

function definitionList(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(([, value]) => value !== null && value !== undefined)
    .map(([term, value]) => [el('dt', { text: term }), el('dd', {}, value instanceof Node ? value : fmtCell(value))]));
}

function fraction(value) {
  return Number.isFinite(Number(value)) ? fmtPercent(Number(value) * 100, 1) : null;
}

function modelFacts(model) {
  const training = model.training_data || {};
  const validation = model.validation_metrics || {};
  return definitionList([
    ['Version', model.model_version],
    ['Created', model.created_at],
    ['Ensemble', model.n_models !== undefined ? `${fmtInt(model.n_models)} K-means models` : null],
    ['k values', Array.isArray(model.k_values) ? model.k_values.join(', ') : null],
    ['Threshold', model.threshold !== undefined ? fmtFixed(model.threshold, 3) : null],
    ['Input', model.input_kind],
    ['Trained on', training.file ? `${training.file} (${fmtInt(training.rows)} rows)` : null],
    ['Validation accuracy', fraction(validation.accuracy)],
    ['Validation F1', fraction(validation.f1)],
    ['Validation AUROC', validation.auroc !== undefined ? fmtFixed(validation.auroc, 3) : null],
  ]);
}

// What the automatic trigger counts: new unique uploads since it last fired
// (`uploads_since_retrain`), not the uploads still waiting to be learned from
// (`pending_uploads`), which stay pending after a failed or rejected run.
function nextRetrain(retrain) {
  const threshold = Number(retrain.threshold);
  const counted = threshold > 0
    ? `${fmtInt(retrain.uploads_since_retrain)} of ${fmtInt(threshold)} new uploads needed`
    : 'automatic retraining is off';
  return Number(retrain.queued_requests) > 0 ? `a run is queued · ${counted}` : counted;
}

function retrainFacts(retrain) {
  const runs = Array.isArray(retrain.last_runs) ? retrain.last_runs : [];
  // The newest run by its ISO timestamp, whatever order the list comes in.
  const when = (run) => String(run.finished_at || run.started_at || '');
  const last = runs.reduce((newest, run) => (newest === null || when(run) > when(newest) ? run : newest), null);
  return definitionList([
    ['Next retrain', nextRetrain(retrain)],
    ['Running now', retrain.running ? 'yes' : 'no'],
    ['Last run', last ? `${fmtCell(last.outcome)} · ${fmtCell(last.finished_at || last.started_at)}` : 'none yet'],
    ['Reason', last && last.reason ? last.reason : null],
    ['Feedback waiting', retrain.feedback
      ? `${fmtInt(retrain.feedback.false_positive_waiting)} false positive(s) for the next run` : null],
  ]);
}

export function showModelPanelMessage(text) {
  document.getElementById('model-content').replaceChildren(el('p', { class: 'muted', text }));
}

// Where the admin trains a baseline (the server puts the address on <body>).
export function baselineLink(text = 'Train a baseline for your network') {
  return el('a', { href: document.body.dataset.baselineUrl || '/admin/baseline', text });
}

// The period a baseline model learnt from, when its card records one.
function baselinePeriod(model) {
  const period = (model.baseline && model.baseline.period) || (model.training_data && model.training_data.period);
  if (!period || (!period.start && !period.end)) return null;
  return `${fmtCell(period.start)} to ${fmtCell(period.end)}`;
}

function kindFacts(model) {
  return definitionList([
    ['Version', model.model_version],
    ['Created', model.created_at],
    ['k values', Array.isArray(model.k_values) ? model.k_values.join(', ') : null],
    ['Threshold', model.threshold !== undefined && model.threshold !== null ? fmtFixed(model.threshold, 3) : null],
    ['Training period', baselinePeriod(model)],
    ['Trained on', model.training_data && model.training_data.file
      ? `${model.training_data.file}${model.training_data.rows !== undefined ? ` (${fmtInt(model.training_data.rows)} rows)` : ''}` : null],
  ]);
}

const KIND_TITLES = { kdd: 'KDD model', zeek: 'Zeek model' };
const KIND_INPUT = { kdd: 'KDD records', zeek: 'Zeek conn.logs' };

// One current model per input kind: each with its facts, or what to do when there is none.
function kindSections(models) {
  const kinds = ['kdd', 'zeek', ...Object.keys(models).filter((kind) => !(kind in KIND_TITLES))];
  return kinds.filter((kind) => kind in models).map((kind) => {
    const model = models[kind];
    const title = KIND_TITLES[kind] || `${kind} model`;
    const body = model ? kindFacts(model) : el('p', { class: 'no-model', 'data-kind': kind },
      `No ${title} yet: ${KIND_INPUT[kind] || 'uploads of this kind'} are scored by the KDD model, which cannot judge them. `,
      kind === 'zeek' ? baselineLink() : null, kind === 'zeek' ? '.' : null);
    return el('div', { class: 'model-kind', 'data-kind': kind },
      el('h3', { text: title }), body);
  });
}

export async function loadModelPanel() {
  const target = document.getElementById('model-content');
  const reply = await getJson('/model-panel');
  if (!reply.ok || !reply.data || !reply.data.success) {
    target.replaceChildren(el('p', { class: 'error-inline', text: messageFor(reply.status, reply.data) }));
    return;
  }
  const { model, retrain } = reply.data;
  const models = model && model.models && typeof model.models === 'object' ? model.models : null;
  target.replaceChildren(
    ...(models ? kindSections(models) : [modelFacts(model || {})]),
    el('h3', { text: models ? 'Retraining (KDD model)' : 'Retraining' }),
    retrain ? retrainFacts(retrain)
      : el('p', { class: 'muted', id: 'retrain-unavailable', text: 'Retraining status is not available: this API does not offer it yet.' }),
  );
}
