// The signed-in analyst's hooks. The server says whether this page was served to a signed-in
// analyst (body data-analyst) and gives the CSRF token every state-changing request of theirs
// must carry (meta csrf-token); it checks both again on every such request.

import { byId, el, show } from './dom.js';

export function isAnalyst() {
  return document.body.dataset.analyst === 'true';
}

export function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { 'X-CSRFToken': meta.content } : {};
}

// Builders of the controls shown in the anomalies table's "Actions" column for a signed-in
// analyst: each takes an anomaly row and returns a node (or null). The column appears only
// when there is at least one.
export const ROW_ACTIONS = [];

// Sends JSON with the CSRF header. Resolves to {ok, status, data}.
export async function sendJson(url, body, method = 'POST') {
  try {
    const response = await fetch(url, {
      method,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...csrfHeaders() },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

// --- the analyst's tools: verdicts and allow-list buttons per row, and the allow-list panel ---


// What the row buttons need from the page: the analysed upload's summary (its SHA-256 names
// the upload for feedback) and a way to redraw the table after a row changed.
export const analystContext = { summary: null, rows: [], redraw: () => {} };

function announce(text, isError = false) {
  const status = byId('analyst-status');
  if (!status) return;
  status.textContent = text;
  status.classList.toggle('error-text', isError);
}

function errorText(reply, fallback) {
  const data = reply.data || {};
  const field = data.field ? ` (${data.field})` : '';
  return `${data.error || fallback}${field}`;
}

async function sendVerdict(row, verdict) {
  const summary = analystContext.summary || {};
  const reply = await sendJson('/analyst/feedback', {
    sha256: summary.sha256, records: [row.index], verdict,
  });
  if (!reply.ok) {
    announce(errorText(reply, 'The verdict was not recorded.'), true);
    return;
  }
  row.feedback = verdict;
  announce(`Row ${row.index} marked ${verdict === 'false_positive' ? 'a false positive' : 'a confirmed attack'}.`);
  analystContext.redraw();
}

// Rows an entry allows, as the API matches them (addresses of either side, or the pair).
function entryMatches(entry, row) {
  const src = row['id.orig_h'];
  const dst = row['id.resp_h'];
  if (entry.host) return src === entry.host || dst === entry.host;
  if (entry.source || entry.destination) {
    return (!entry.source || src === entry.source) && (!entry.destination || dst === entry.destination);
  }
  return false;
}

export function markAllowlisted(entry, rows) {
  let changed = 0;
  for (const row of rows) {
    if (!row.allowlisted && entryMatches(entry, row)) {
      row.allowlisted = true;
      row.allowlist_entry = entry.id;
      changed += 1;
    }
  }
  return changed;
}

async function allowlist(row, fields, what) {
  const reply = await sendJson('/analyst/allowlist', {
    ...fields, reason: `Allow-listed from the results table (row ${row.index})`,
  });
  const entry = reply.ok ? reply.data.entry
    : (reply.status === 409 && reply.data && reply.data.existing_id
      ? { ...fields, id: reply.data.existing_id } : null);
  if (!entry) {
    announce(errorText(reply, 'The allow-list entry was not added.'), true);
    return;
  }
  const changed = markAllowlisted(entry, analystContext.rows || [row]);
  announce(`${what} allow-listed (entry ${entry.id}): ${changed} row(s) in the table are no longer alerts.`);
  analystContext.redraw();
  loadAllowlist();
}

function button(text, label, onClick) {
  const node = el('button', { type: 'button', class: 'small', text, 'aria-label': label });
  node.addEventListener('click', onClick);
  return node;
}

function rowState(row) {
  if (row.allowlisted) return el('span', { class: 'row-state allowlisted', text: `Allow-listed (entry ${row.allowlist_entry})` });
  if (row.feedback === 'false_positive') return el('span', { class: 'row-state', text: 'Marked false positive' });
  if (row.feedback === 'true_positive') return el('span', { class: 'row-state', text: 'Confirmed' });
  return null;
}

ROW_ACTIONS.push(
  (row) => rowState(row),
  (row) => button('False positive', `False positive: row ${row.index}`, () => sendVerdict(row, 'false_positive')),
  (row) => button('Confirmed', `Confirmed attack: row ${row.index}`, () => sendVerdict(row, 'true_positive')),
  (row) => (row['id.orig_h'] ? button('Allow-list host', `Allow-list host ${row['id.orig_h']}`,
    () => allowlist(row, { host: row['id.orig_h'] }, `Host ${row['id.orig_h']}`)) : null),
  (row) => (row['id.orig_h'] && row['id.resp_h'] ? button('Allow-list pair',
    `Allow-list pair ${row['id.orig_h']} to ${row['id.resp_h']}`,
    () => allowlist(row, { source: row['id.orig_h'], destination: row['id.resp_h'] },
      `Pair ${row['id.orig_h']} → ${row['id.resp_h']}`)) : null),
);

// --- the allow-list panel ----------------------------------------------------------------------

const ENTRY_FIELDS = ['host', 'source', 'destination', 'port', 'service'];

function describe(entry) {
  return ENTRY_FIELDS.filter((name) => entry[name] !== null && entry[name] !== undefined)
    .map((name) => `${name} ${entry[name]}`).join(', ');
}

function renderEntries(entries) {
  const list = byId('allowlist-entries');
  list.replaceChildren();
  show(byId('allowlist-empty'), entries.length === 0);
  for (const entry of entries) {
    const remove = button('Remove', `Remove allow-list entry ${entry.id}`, async () => {
      const reply = await sendJson(`/analyst/allowlist/${entry.id}`, undefined, 'DELETE');
      if (!reply.ok) {
        announce(errorText(reply, 'The entry was not removed.'), true);
        return;
      }
      announce(`Entry ${entry.id} removed. It no longer applies to new results.`);
      loadAllowlist();
    });
    const expiry = entry.expires_at ? `, until ${entry.expires_at}` : '';
    list.append(el('li', { class: 'allowlist-entry' },
      el('span', { text: `#${entry.id} ${describe(entry)} — ${entry.reason} (by ${entry.added_by}${expiry})` }),
      remove));
  }
}

export async function loadAllowlist() {
  if (!byId('allowlist-panel')) return;
  const reply = await sendJson('/analyst/allowlist', undefined, 'GET');
  if (!reply.ok) {
    announce(errorText(reply, 'The allow-list could not be loaded.'), true);
    return;
  }
  renderEntries(reply.data.entries || []);
}

export function initAllowlistPanel() {
  const form = byId('allowlist-form');
  if (!form) return;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of [...ENTRY_FIELDS, 'reason', 'expires_at']) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = value;
    }
    const reply = await sendJson('/analyst/allowlist', body);
    if (!reply.ok) {
      announce(errorText(reply, 'The entry was not added.'), true);
      return;
    }
    form.reset();
    const changed = markAllowlisted(reply.data.entry, analystContext.rows || []);
    announce(`Entry ${reply.data.entry.id} added${changed ? `: ${changed} row(s) in the table are no longer alerts` : ''}.`);
    analystContext.redraw();
    loadAllowlist();
  });
  loadAllowlist();
}
