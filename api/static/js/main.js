// The upload page: choose or drop a file, check its size, wake the analysis service, upload
// with progress, then render the dashboard. The chosen File is kept so the CSV download can
// post it again without asking the user to pick it a second time.

import {
  ROW_ACTIONS, analystContext, initAllowlistPanel, isAnalyst,
} from './analyst.js';
import { byId, el, fmtInt, fmtMegabytes, fmtSize, show } from './dom.js';
import { loadModelPanel, showModelPanelMessage } from './model_panel.js';
import {
  renderMetrics, renderScoreChart, renderSeverityChart, renderSummary, renderWarnings,
} from './results.js';
import { downloadCsv, ensureAwake, messageFor, uploadFile } from './service.js';
import { AnomalyTable } from './table.js';
import { markSelectedHost, renderHostsView, renderTimeline } from './zeek_views.js';

const WAKING_MESSAGE = 'Waking up the analysis service… A sleeping server can take up to a minute to start.';

const maxUploadMb = Number(document.body.dataset.maxUploadMb) || 200;
const maxUploadBytes = maxUploadMb * 1024 * 1024;

const state = { file: null, analysedFile: null, result: null, busy: false };

const input = byId('file-input');
const dropZone = byId('drop-zone');
const analyzeButton = byId('analyze-button');
const progress = byId('progress');

const table = new AnomalyTable({
  table: byId('anomaly-table'),
  filter: byId('severity-filter'),
  pageSize: byId('page-size'),
  first: byId('first-page'),
  prev: byId('prev-page'),
  next: byId('next-page'),
  last: byId('last-page'),
  info: byId('page-info'),
});

// The visible status changes with every progress event; screen readers hear only what is
// passed to announce(): each step, and the upload at a few milestones, never every tick.
const UPLOAD_MILESTONES = [25, 50, 75];

function announce(text) {
  byId('status-announcement').textContent = text;
}

function setStatus(text, mode, { spoken = true } = {}) {
  const box = byId('status');
  box.dataset.mode = mode || '';
  byId('status-text').textContent = text;
  show(box, Boolean(text));
  show(progress, mode === 'uploading' || mode === 'analysing');
  if (mode === 'analysing') progress.removeAttribute('value');
  if (spoken) announce(text);
}

// The milestone `percent` has just reached (coming from `previous`), or null.
function uploadMilestone(previous, percent) {
  const passed = UPLOAD_MILESTONES.filter((m) => previous < m && percent >= m && percent < 100);
  return passed.length ? passed[passed.length - 1] : null;
}

function clearError() {
  show(byId('error'), false);
  byId('error-text').textContent = '';
  byId('error-problems').replaceChildren();
}

function problemText(problem) {
  const where = [];
  if (Number.isInteger(problem.line)) where.push(`Line ${problem.line}`);
  if (problem.column) where.push(`column ${problem.column}`);
  return where.length ? `${where.join(', ')}: ${problem.message}` : String(problem.message || '');
}

// `formatHelp`: the message is about the file's content, so point at the format page.
function showError(message, problems, formatHelp = false) {
  byId('error-text').textContent = message;
  show(document.querySelector('#error .error-help'), formatHelp);
  const list = Array.isArray(problems) && problems.length > 1 ? problems : [];
  byId('error-problems').replaceChildren(...list.map((p) => el('li', { text: problemText(p) })));
  show(byId('error'), true);
}

function setBusy(busy) {
  state.busy = busy;
  analyzeButton.disabled = busy || !state.file || state.file.size > maxUploadBytes;
  dropZone.setAttribute('aria-disabled', busy ? 'true' : 'false');
  byId('download-button').disabled = busy;
  byId('results').setAttribute('aria-busy', busy ? 'true' : 'false');
}

function sizeProblem(file) {
  if (file.size === 0) return 'The file is empty.';
  if (file.size > maxUploadBytes) {
    return `The file is ${fmtMegabytes(file.size)}; the upload limit is ${maxUploadMb} MB. `
      + 'Split it into smaller files and analyse them one by one.';
  }
  return null;
}

function selectFile(file) {
  if (!file || state.busy) return;
  state.file = file;
  byId('file-name').textContent = `${file.name} (${fmtSize(file.size)})`;
  clearError();
  setStatus('');
  const problem = sizeProblem(file);
  if (problem) showError(problem);
  analyzeButton.disabled = Boolean(problem);
}

// Clicking a host in the hosts view shows only its anomalies; clicking it again, or "Show
// every host", shows them all.
function selectHost(side, host, inFile) {
  const current = table.hostFilter;
  const selection = current && current.side === side && current.host === host ? null : { side, host };
  table.setHostFilter(selection);
  markSelectedHost(selection);
  const note = byId('host-filter');
  if (selection) {
    const shown = table.view.length;
    const partial = Number.isFinite(inFile) && inFile > shown
      ? ` The table has ${fmtInt(shown)} of its ${fmtInt(inFile)} anomalies: only the highest-scoring `
        + 'anomalies of the file are in the table; the CSV download has them all.'
      : '';
    byId('host-filter-text').textContent = `Showing only the anomalies ${side === 'source' ? 'from' : 'to'} ${host}.${partial}`;
  }
  show(note, Boolean(selection));
}

function renderResults(result, fileName) {
  state.result = result;
  renderWarnings(result.summary);
  renderSummary(result, fileName);
  renderSeverityChart(result.summary);
  renderScoreChart(result.score_histogram, byId('score-log').checked);
  renderMetrics(result);
  const zeek = result.summary && result.summary.input_kind === 'zeek';
  table.setData(result.anomalies, {
    hasLabels: Boolean(result.has_labels), zeek, rowActions: isAnalyst() ? ROW_ACTIONS : [],
  });
  analystContext.summary = result.summary;
  analystContext.rows = table.rows;
  show(byId('host-filter'), false);
  renderTimeline(zeek ? result.timeline : null);
  renderHostsView(zeek ? result.hosts : null, selectHost);
  show(byId('results'), true);
}

async function analyze() {
  const file = state.file;
  if (!file || state.busy) return;
  const problem = sizeProblem(file);
  if (problem) {
    showError(problem);
    return;
  }
  clearError();
  setBusy(true);
  try {
    setStatus('Checking the analysis service…', 'checking');
    const awake = await ensureAwake(() => setStatus(WAKING_MESSAGE, 'waking'));
    if (!awake.ok) {
      setStatus('');
      showError(awake.message);
      return;
    }
    progress.value = 0;
    setStatus('Uploading… 0 %', 'uploading');
    let shown = 0;
    const reply = await uploadFile('/analyze', file, {
      onProgress: (loaded, total) => {
        const percent = Math.round((loaded / total) * 100);
        progress.value = percent;
        setStatus(`Uploading… ${percent} % (${fmtMegabytes(loaded)} of ${fmtMegabytes(total)})`,
          'uploading', { spoken: false });
        const milestone = uploadMilestone(shown, percent);
        if (milestone !== null) announce(`Uploading… ${milestone} %`);
        shown = percent;
      },
      onUploaded: () => setStatus('Upload complete. Analysing… every record is being scored by the model.', 'analysing'),
    });
    setStatus('');
    if (!reply.ok) {
      showError(messageFor(reply.status, reply.data), reply.data && reply.data.problems,
        reply.status === 400);
      return;
    }
    state.analysedFile = file;
    renderResults(reply.data, file.name);
    byId('results-heading').focus();
    loadModelPanel();
  } finally {
    setBusy(false);
  }
}

async function download() {
  if (!state.analysedFile || state.busy) return;
  const status = byId('download-status');
  const button = byId('download-button');
  button.disabled = true;
  status.classList.remove('error-inline');
  status.textContent = 'Preparing the CSV… every record is analysed again on the server.';
  const stem = state.analysedFile.name.replace(/\.[^.]*$/, '') || 'anomalyze';
  let result;
  try {
    result = await downloadCsv(state.analysedFile, `${stem}-results.csv`);
  } catch {
    result = { ok: false, message: 'The CSV could not be saved. Please try again.' };
  } finally {
    button.disabled = state.busy;
  }
  status.textContent = result.ok ? 'The CSV has been downloaded.' : result.message;
  status.classList.toggle('error-inline', !result.ok);
}

input.addEventListener('change', () => selectFile(input.files[0]));
dropZone.addEventListener('click', () => { if (!state.busy) input.click(); });
dropZone.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    if (!state.busy) input.click();
  }
});
for (const name of ['dragenter', 'dragover']) {
  dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    dropZone.classList.add('dragging');
  });
}
for (const name of ['dragleave', 'drop']) {
  dropZone.addEventListener(name, () => dropZone.classList.remove('dragging'));
}
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) selectFile(file);
});
byId('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  analyze();
});
byId('download-button').addEventListener('click', download);
byId('clear-host-filter').addEventListener('click', () => {
  const current = table.hostFilter;
  if (current) selectHost(current.side, current.host);
});
byId('score-log').addEventListener('change', (event) => {
  if (state.result) renderScoreChart(state.result.score_histogram, event.target.checked);
});

analystContext.redraw = () => table.renderPage();
if (isAnalyst()) initAllowlistPanel();

// Start waking a sleeping backend while the user is still choosing a file.
ensureAwake(() => showModelPanelMessage(WAKING_MESSAGE)).then((awake) => {
  if (awake.ok) loadModelPanel();
  else showModelPanelMessage(awake.message);
});
