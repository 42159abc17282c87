// The signed-in analyst's hooks. The server says whether this page was served to a signed-in
// analyst (body data-analyst) and gives the CSRF token every state-changing request of theirs
// must carry (meta csrf-token); it checks both again on every such request.

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
