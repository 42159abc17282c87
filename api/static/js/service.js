// Talking to the frontend's own routes. Every failure becomes a sentence for the page; the
// raw response body is never shown.

async function parseJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export function messageFor(status, data) {
  if (data && typeof data.error === 'string' && data.error) return data.error;
  if (status === 0) return 'The Anomalyze web server could not be reached. Check your connection and try again.';
  if (status === 413) return 'The file is too large to upload.';
  if (status === 502 || status === 503) return 'The analysis service is not available right now. Please try again in a minute.';
  if (status === 504) return 'The analysis took too long and was stopped. Please try again with a smaller file.';
  return `The server sent an unexpected response (HTTP ${status}).`;
}

export async function getJson(url) {
  try {
    const response = await fetch(url, { headers: { Accept: 'application/json' } });
    return { ok: response.ok, status: response.status, data: await parseJson(response) };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

// Resolves once the ML API answers; calls onWaking() first if it has to be woken up.
export async function ensureAwake(onWaking) {
  let reply = await getJson('/service-status');
  if (reply.ok && reply.data && reply.data.awake) return { ok: true };
  onWaking();
  reply = await getJson('/service-status?wait=1');
  if (reply.ok && reply.data && reply.data.awake) return { ok: true };
  return { ok: false, message: messageFor(reply.status, reply.data), data: reply.data };
}

// POSTs the file with XHR for upload progress. Resolves to {ok, status, data}.
export function uploadFile(url, file, { onProgress, onUploaded }) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.open('POST', url);
    xhr.responseType = 'text';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.upload.addEventListener('load', () => onUploaded());
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      const ok = xhr.status === 200 && data !== null && data.success === true;
      resolve({ ok, status: xhr.status, data });
    });
    xhr.addEventListener('error', () => resolve({
      ok: false, status: 0, data: { error: 'The upload was interrupted: the connection to the server was lost.' },
    }));
    xhr.addEventListener('abort', () => resolve({ ok: false, status: 0, data: { error: 'The upload was cancelled.' } }));
    xhr.send(form);
  });
}

// Posts the same File again to /download.csv and saves the streamed CSV.
export async function downloadCsv(file, downloadName) {
  const form = new FormData();
  form.append('file', file, file.name);
  let response;
  try {
    response = await fetch('/download.csv', { method: 'POST', body: form });
  } catch {
    return { ok: false, message: messageFor(0, null) };
  }
  if (!response.ok) {
    return { ok: false, message: messageFor(response.status, await parseJson(response)) };
  }
  let blob;
  try {
    blob = await response.blob();
  } catch {
    return { ok: false, message: 'The download was interrupted: the connection to the server was lost.' };
  }
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = downloadName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return { ok: true };
}
