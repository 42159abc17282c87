// The admin's "Train a baseline for your network" page: upload conn.logs with exclusions, follow
// the job while the API trains it, read its health report and figures, promote a held model,
// and pick earlier jobs from the list. Everything shown from a job goes in as text.

import { csrfHeaders, sendJson } from './analyst.js';
import {
  byId, el, fmtCell, fmtInt, fmtMegabytes, fmtPercent, fmtSize, show,
} from './dom.js';
import { ensureAwake, getJson, messageFor } from './service.js';

const JOBS_URL = '/admin/baseline/jobs';
const POLL_MS = 2000;
const POLL_MAX_MS = 30000;
const MAX_HOSTS_SHOWN = 20;
const MAX_SERVICES_SHOWN = 15;
const ACTIVE = new Set(['queued', 'running']);

// What each job status means, in a sentence an admin can act on.
const STATUS_TEXT = {
  queued: 'Queued: waiting for the trainer to start.',
  running: 'Running.',
  reported: 'Checked: the health report is ready (check only, no model was trained).',
  promoted: 'Promoted: this model now scores Zeek uploads.',
  held: 'Held: the model was trained but not promoted. Read the report, then promote it or train again.',
  rejected: 'Rejected: no model was promoted.',
  failed: 'Failed: no model was trained; the serving model is unchanged.',
};

const maxUploadMb = Number(document.body.dataset.maxUploadMb) || 200;
const maxFiles = Number(document.body.dataset.maxFiles) || 20;

const form = byId('baseline-form');
const filesInput = byId('baseline-files');
const submit = byId('baseline-submit');
const reportOnly = byId('report-only');
const progress = byId('baseline-progress');

const state = { busy: false, job: null, shownId: null, timer: null, delay: POLL_MS, lastSaid: '' };

// --- the upload form ----------------------------------------------------------------------------

function announce(text) {
  byId('baseline-announcement').textContent = text;
}

function setStatus(text, { spoken = true, uploading = false } = {}) {
  byId('baseline-status-text').textContent = text;
  show(byId('baseline-status'), Boolean(text));
  show(progress, uploading);
  if (spoken) announce(text);
}

function showError(message, problems) {
  byId('baseline-error-text').textContent = message;
  const list = Array.isArray(problems) ? problems : [];
  byId('baseline-error-problems').replaceChildren(...list.filter((p) => p && p.message).map((p) => el('li', {
    text: Number.isInteger(p.line) ? `Line ${p.line}${p.column ? `, column ${p.column}` : ''}: ${p.message}` : p.message,
  })));
  show(byId('baseline-error'), Boolean(message));
}

function chosenFiles() {
  return [...filesInput.files];
}

function filesProblem(files) {
  if (files.length === 0) return null;
  if (files.length > maxFiles) return `Choose at most ${maxFiles} files for one baseline.`;
  if (files.some((file) => file.size === 0)) return 'One of the files is empty.';
  const total = files.reduce((sum, file) => sum + file.size, 0);
  if (total > maxUploadMb * 1024 * 1024) {
    return `The files are ${fmtMegabytes(total)} together; the upload limit is ${maxUploadMb} MB.`;
  }
  return null;
}

function rerunText() {
  return `${reportOnly.checked ? 'Check' : 'Train'} these files again with the options above`;
}

function refreshButton() {
  const files = chosenFiles();
  submit.textContent = reportOnly.checked ? 'Upload and check' : 'Upload and train';
  submit.disabled = state.busy || files.length === 0 || Boolean(filesProblem(files));
  const rerun = byId('rerun-button');
  if (rerun) {
    rerun.textContent = rerunText();
    rerun.disabled = state.busy;
  }
}

function filesChosen() {
  const files = chosenFiles();
  const total = files.reduce((sum, file) => sum + file.size, 0);
  byId('baseline-files-chosen').textContent = files.length === 0 ? 'No files chosen'
    : `${files.map((file) => file.name).join(', ')} (${files.length} ${files.length === 1 ? 'file' : 'files'}, ${fmtSize(total)})`;
  showError(filesProblem(files) || '');
  refreshButton();
}

function uploadForm(files) {
  const data = new FormData();
  for (const file of files) data.append('files', file, file.name);
  data.append('exclude_hosts', byId('exclude-hosts').value);
  data.append('exclude_ranges', byId('exclude-ranges').value);
  data.append('report_only', reportOnly.checked ? 'true' : 'false');
  return data;
}

// POSTs the form with XHR for upload progress. Resolves to {ok, status, data}.
function send(data) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', JOBS_URL);
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries(csrfHeaders())) xhr.setRequestHeader(name, value);
    let said = 0;
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      progress.value = percent;
      setStatus(`Uploading… ${percent} %`, { spoken: false, uploading: true });
      if (percent >= said + 25 && percent < 100) {
        said = percent - (percent % 25);
        announce(`Uploading… ${said} %`);
      }
    });
    xhr.upload.addEventListener('load', () => setStatus('Upload complete. The analysis service is reading the files…'));
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300 && body && body.success === true, status: xhr.status, data: body });
    });
    xhr.addEventListener('error', () => resolve({ ok: false, status: 0, data: { error: 'The upload was interrupted: the connection to the server was lost.' } }));
    xhr.send(data);
  });
}

async function startJob(sendRequest) {
  state.busy = true;
  showError('');
  refreshButton();
  try {
    setStatus('Checking the analysis service…');
    const awake = await ensureAwake(() => setStatus('Waking up the analysis service… this can take a minute.'));
    if (!awake.ok) {
      setStatus('');
      showError(awake.message);
      return;
    }
    const reply = await sendRequest();
    setStatus('');
    if (!reply.ok || !reply.data || !reply.data.job) {
      showError(messageFor(reply.status, reply.data), reply.data && reply.data.problems);
      return;
    }
    announce(`Baseline job ${reply.data.job.id} created.`);
    filesInput.value = '';
    filesChosen();
    await showJob(reply.data.job.id, { focus: true, job: reply.data.job });
    loadJobs();
  } finally {
    state.busy = false;
    refreshButton();
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const files = chosenFiles();
  if (state.busy || files.length === 0 || filesProblem(files)) return;
  startJob(() => {
    progress.value = 0;
    return send(uploadForm(files));
  });
});
filesInput.addEventListener('change', filesChosen);
reportOnly.addEventListener('change', refreshButton);

// --- one job: state, report, figures ------------------------------------------------------------

function facts(pairs, className = 'facts') {
  return el('dl', { class: className }, pairs.filter(([, value]) => value !== null && value !== undefined && value !== '')
    .map(([term, value]) => [el('dt', { text: term }), el('dd', {}, value instanceof Node ? value : String(value))]));
}

function fmtDuration(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return null;
  if (s < 120) return `${s.toFixed(0)} seconds`;
  if (s < 7200) return `${(s / 60).toFixed(0)} minutes`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} hours`;
  return `${(s / 86400).toFixed(1)} days`;
}

export function periodText(period) {
  if (!period || (!period.start && !period.end)) return 'no timestamps';
  const duration = fmtDuration(period.seconds);
  return `${fmtCell(period.start)} to ${fmtCell(period.end)}${duration ? ` (${duration})` : ''}`;
}

function optionFacts(options) {
  const hosts = Array.isArray(options.exclude_hosts) ? options.exclude_hosts : [];
  const ranges = Array.isArray(options.exclude_ranges) ? options.exclude_ranges : [];
  return [
    ['Excluded hosts', hosts.length ? hosts.join(', ') : 'none'],
    ['Excluded time ranges', ranges.length ? ranges.map((r) => (Array.isArray(r) ? r.join(' to ') : String(r))).join('; ') : 'none'],
    ['Check only', options.report_only ? 'yes' : 'no'],
  ];
}

function filesList(files) {
  return el('ul', { class: 'plain-list' }, files.map((file) => el('li', {},
    `${fmtCell(file.name)}${Number.isFinite(Number(file.rows)) ? ` (${fmtInt(file.rows)} rows)` : ''} `,
    file.sha256 ? el('code', { class: 'sha', title: String(file.sha256), text: String(file.sha256).slice(0, 12) }) : null)));
}

function renderState(job) {
  const active = ACTIVE.has(job.status);
  const lines = [
    el('p', { class: 'job-status-text' }, el('strong', { text: `${fmtCell(job.status)}` }), ' — ',
      STATUS_TEXT[job.status] || ''),
    job.stage ? el('p', { text: `Stage: ${job.stage}` }) : null,
    job.reason ? el('p', { class: 'job-reason', text: `Reason: ${job.reason}` }) : null,
  ];
  const box = byId('job-state');
  box.dataset.status = String(job.status);
  const spinner = el('span', { class: 'spinner', 'aria-hidden': 'true' });
  box.replaceChildren(...(active ? [spinner] : []), el('div', {}, lines));
  // Spoken once per change of status or stage, not on every poll.
  const said = `Job ${job.id}: ${job.status}${job.stage ? `, ${job.stage}` : ''}.`;
  if (said !== state.lastSaid) {
    state.lastSaid = said;
    byId('job-announcement').textContent = said;
  }
}

function renderActions(job) {
  const canPromote = job.status === 'held' && Boolean(job.version);
  show(byId('job-actions'), canPromote);
  if (!canPromote) return;
  const warned = job.health && Array.isArray(job.health.warnings) && job.health.warnings.length > 0;
  byId('promote-button').textContent = `Promote version ${job.version}${warned ? ' despite the warnings' : ''}`;
  byId('promote-button').disabled = false;
  byId('promote-status').textContent = '';
}

function warningHosts(health) {
  const hosts = new Set();
  for (const warning of health.warnings || []) for (const host of warning.hosts || []) hosts.add(String(host));
  return hosts;
}

function addExclusions(hosts) {
  const area = byId('exclude-hosts');
  const have = new Set(area.value.split(/\r?\n/).map((line) => line.trim()).filter(Boolean));
  const added = hosts.filter((host) => !have.has(host));
  const lines = [...have, ...added];
  area.value = lines.length ? `${lines.join('\n')}\n` : '';
  return added.length;
}

function renderHealthWarnings(health, job) {
  const warnings = Array.isArray(health.warnings) ? health.warnings : [];
  byId('health-warnings').replaceChildren(...(warnings.length === 0
    ? [el('p', { class: 'health-ok', text: 'No warnings: nothing in this baseline looks like a scan or an attack.' })]
    : warnings.map((warning) => {
      const hosts = Array.isArray(warning.hosts) ? warning.hosts.map(String) : [];
      const shown = hosts.slice(0, MAX_HOSTS_SHOWN);
      const more = hosts.length - shown.length;
      const exclude = hosts.length ? el('button', { type: 'button', class: 'small', text: `Exclude ${hosts.length === 1 ? 'this host' : `these ${hosts.length} hosts`}` }) : null;
      if (exclude) {
        exclude.addEventListener('click', () => {
          const added = addExclusions(hosts);
          byId('job-announcement').textContent = `${added} host(s) added to the exclusions above. `
            + (rerunnable(job) ? `"${rerunText()}" trains without them.` : 'Upload the files again to train without them.');
        });
      }
      return el('div', { class: 'warning', 'data-code': fmtCell(warning.code) },
        el('p', {}, el('strong', { text: 'Warning: ' }), fmtCell(warning.message)),
        hosts.length ? el('p', { class: 'warning-hosts' }, 'Hosts: ',
          shown.map((host, i) => [i ? ', ' : '', el('code', { text: host })]), more > 0 ? ` and ${more} more` : '') : null,
        exclude);
    })));
}

function table(id, head, rows) {
  const node = byId(id);
  node.replaceChildren(
    el('thead', {}, el('tr', {}, head.map(([text, numeric]) => el('th', { scope: 'col', class: numeric ? 'numeric' : null, text })))),
    el('tbody', {}, rows.length ? rows.map((cells) => el('tr', {}, cells.map(([value, numeric]) => el('td', { class: numeric ? 'numeric' : null }, value instanceof Node ? value : fmtCell(value)))))
      : el('tr', {}, el('td', { colspan: head.length, class: 'empty', text: 'None' }))),
  );
}

function renderHealth(job) {
  const health = job.health;
  show(byId('health-report'), Boolean(health));
  if (!health) return;
  renderHealthWarnings(health, job);
  const hosts = health.hosts || {};
  const labels = health.labels;
  byId('health-facts').replaceChildren(facts([
    ['Period', periodText(health.period)],
    ['Connections', fmtInt(health.rows)],
    ['Hosts', `${fmtInt(hosts.sources)} sources, ${fmtInt(hosts.destinations)} destinations`],
    ['Rejected or half-open', fmtPercent(Number(health.rejected_share) * 100, 2)],
    ['Labels', labels ? `${fmtInt(labels.normal)} normal, ${fmtInt(labels.malicious)} malicious, ${fmtInt(labels.unlabeled)} unlabeled`
      : 'none: every connection counts as normal'],
  ]));
  const warned = warningHosts(health);
  table('talkers-table', [['Host'], ['Destinations', true], ['Ports', true], ['Connections', true]],
    (health.top_talkers || []).map((t) => [
      [el('span', {}, el('code', { text: fmtCell(t.host) }), warned.has(String(t.host)) ? el('span', { class: 'warned', text: ' (warned)' }) : null)],
      [fmtInt(t.destinations), true], [fmtInt(t.ports), true], [fmtInt(t.connections), true]]));
  const rows = Number(health.rows) || 0;
  const states = Object.entries(health.rejected_states || {}).sort((a, b) => Number(b[1]) - Number(a[1]));
  table('states-table', [['State'], ['Connections', true], ['Of all connections', true]],
    states.map(([name, count]) => [[name], [fmtInt(count), true],
      [rows ? fmtPercent((Number(count) / rows) * 100, 2) : '–', true]]));
  const services = health.services || [];
  const shown = services.slice(0, MAX_SERVICES_SHOWN).map((s) => [[s.service], [fmtInt(s.connections), true]]);
  const rest = services.slice(MAX_SERVICES_SHOWN);
  if (rest.length) {
    shown.push([[`${rest.length} other services`], [fmtInt(rest.reduce((sum, s) => sum + Number(s.connections || 0), 0)), true]]);
  }
  table('services-table', [['Service'], ['Connections', true]], shown);
}

const NAMES = { auroc: 'AUROC', fpr: 'False-positive rate', tpr: 'True-positive rate', k: 'k' };
const FRACTION_KEY = /(rate|fpr|tpr|share|recall|precision|fraction)$/i;

function figureName(key) {
  if (NAMES[key]) return NAMES[key];
  const words = String(key).replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// A figure as text: fractions named as such in percent, other numbers to 4 significant digits,
// nested objects as nested lists.
export function figureValue(key, value) {
  if (typeof value === 'number') {
    if (FRACTION_KEY.test(key) && value >= 0 && value <= 1) return fmtPercent(value * 100, 2);
    if (Number.isInteger(value)) return fmtInt(value);
    return String(Number(value.toPrecision(4)));
  }
  if (Array.isArray(value)) return value.map((item) => (item && typeof item === 'object' ? JSON.stringify(item) : String(item))).join(', ');
  if (value && typeof value === 'object') return figureList(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return fmtCell(value);
}

function figureList(figures) {
  return facts(Object.entries(figures).map(([key, value]) => [figureName(key), figureValue(key, value)]));
}

function renderFigures(job) {
  const figures = job.figures && typeof job.figures === 'object' ? job.figures : null;
  show(byId('job-figures'), Boolean(figures));
  if (figures) byId('figures-content').replaceChildren(figureList(figures));
}

function rerunnable(job) {
  return Array.isArray(job.files) && job.files.length > 0 && job.files.every((file) => file.sha256);
}

function renderFacts(job) {
  const rerun = rerunnable(job) && !ACTIVE.has(job.status)
    ? el('button', { type: 'button', id: 'rerun-button', text: rerunText(), disabled: state.busy }) : null;
  if (rerun) {
    rerun.addEventListener('click', () => {
      if (state.busy) return;
      startJob(() => sendJson(JOBS_URL, {
        uploads: job.files.map((file) => file.sha256),
        exclude_hosts: byId('exclude-hosts').value,
        exclude_ranges: byId('exclude-ranges').value,
        report_only: reportOnly.checked,
      }));
    });
  }
  byId('job-facts').replaceChildren(...[facts([
    ['Created', job.created_at],
    ['Finished', job.finished_at],
    ['Files', Array.isArray(job.files) && job.files.length ? filesList(job.files) : null],
    ...optionFacts(job.options || {}),
    ['Model version', job.version],
  ]), rerun].filter(Boolean));
}

function renderJob(job) {
  state.job = job;
  byId('job-heading').textContent = `Baseline job ${job.id}`;
  renderState(job);
  renderActions(job);
  renderFacts(job);
  renderHealth(job);
  renderFigures(job);
  show(byId('job-view'), true);
  byId('job-view').setAttribute('aria-busy', ACTIVE.has(job.status) ? 'true' : 'false');
  markShownJob();
}

async function poll(id) {
  if (state.shownId !== id) return;
  const reply = await getJson(`${JOBS_URL}/${id}`);
  if (state.shownId !== id) return;
  if (!reply.ok || !reply.data || !reply.data.job) {
    // Keep what is shown; look again later, less often.
    byId('job-announcement').textContent = `The job could not be read: ${messageFor(reply.status, reply.data)}`;
    if (reply.status === 404 || reply.status === 401 || reply.status === 403) return;
    state.delay = Math.min(state.delay * 2, POLL_MAX_MS);
    state.timer = setTimeout(() => poll(id), state.delay);
    return;
  }
  const wasActive = state.job && state.job.id === id && ACTIVE.has(state.job.status);
  renderJob(reply.data.job);
  state.delay = POLL_MS;
  if (ACTIVE.has(reply.data.job.status)) {
    state.timer = setTimeout(() => poll(id), state.delay);
  } else if (wasActive) {
    loadJobs();
    window.dispatchEvent(new CustomEvent('baseline-finished', { detail: reply.data.job }));
  }
}

export async function showJob(id, { focus = false, job = null } = {}) {
  clearTimeout(state.timer);
  state.shownId = id;
  state.delay = POLL_MS;
  if (job) renderJob(job);
  if (focus) byId('job-heading').focus();
  if (!job || ACTIVE.has(job.status)) await poll(id);
  if (focus) byId('job-heading').focus();
}

byId('promote-button').addEventListener('click', async () => {
  const job = state.job;
  if (!job || job.status !== 'held') return;
  const button = byId('promote-button');
  button.disabled = true;
  byId('promote-status').textContent = `Promoting version ${job.version}…`;
  const reply = await sendJson(`${JOBS_URL}/${job.id}/promote`);
  if (!reply.ok || !reply.data || !reply.data.success) {
    button.disabled = false;
    byId('promote-status').textContent = messageFor(reply.status, reply.data);
    return;
  }
  byId('promote-status').textContent = '';
  await showJob(job.id, {});
  const version = reply.data.model_version || job.version;
  byId('job-announcement').textContent = `Version ${version} now scores ${reply.data.input_kind || 'zeek'} uploads.`;
  loadJobs();
});

// --- the list of recent jobs --------------------------------------------------------------------

function markShownJob() {
  for (const row of document.querySelectorAll('#jobs-table tbody tr')) {
    const current = Number(row.dataset.job) === state.shownId;
    row.classList.toggle('current', current);
    const button = row.querySelector('button');
    if (button) button.setAttribute('aria-current', current ? 'true' : 'false');
  }
}

export async function loadJobs() {
  const status = byId('jobs-status');
  const reply = await getJson(JOBS_URL);
  if (!reply.ok || !reply.data) {
    status.textContent = messageFor(reply.status, reply.data);
    status.classList.add('error-inline');
    return;
  }
  status.classList.remove('error-inline');
  const jobs = Array.isArray(reply.data.jobs) ? reply.data.jobs : [];
  status.textContent = jobs.length ? `${jobs.length} recent ${jobs.length === 1 ? 'job' : 'jobs'}.` : 'No baseline jobs yet.';
  show(byId('jobs-table'), jobs.length > 0);
  byId('jobs-table').querySelector('tbody').replaceChildren(...jobs.map((job) => {
    const open = el('button', { type: 'button', class: 'link-button', text: `Job ${job.id}` });
    open.addEventListener('click', () => showJob(job.id, { focus: true }));
    const names = (job.files || []).map((file) => file.name).join(', ');
    return el('tr', { 'data-job': job.id },
      el('td', {}, open),
      el('td', { 'data-status': fmtCell(job.status), text: fmtCell(job.status) }),
      el('td', { text: fmtCell(job.created_at) }),
      el('td', { class: 'job-files', text: names || '–' }));
  }));
  markShownJob();
}

byId('jobs-refresh').addEventListener('click', loadJobs);

filesChosen();
loadJobs();
