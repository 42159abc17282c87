// A Zeek upload's hosts view and timeline, from the API's `hosts` and `timeline`, which count
// every flagged connection of the file (the table holds only the highest-scoring ones).

import { severityLegend, timelineChart } from './charts.js';
import { byId, el, fmtInt, severityBadge, show } from './dom.js';

const TIMELINE_SEVERITIES = ['Low', 'Medium', 'High', 'Critical'];
// Below this a `ts` is seconds from the start of the capture, not a date (some logs are).
const EPOCH_FROM = 1e8;

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function binText(seconds) {
  if (seconds % 86400 === 0) return seconds === 86400 ? 'day' : plural(seconds / 86400, 'day');
  if (seconds % 3600 === 0) return seconds === 3600 ? 'hour' : plural(seconds / 3600, 'hour');
  return seconds === 60 ? 'minute' : plural(Math.round(seconds / 60), 'minute');
}

// A bin's start: a UTC date and time for epoch seconds, else time since the capture began.
export function timeFormatter(firstBin) {
  if (firstBin >= EPOCH_FROM) {
    return (seconds) => new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }
  return (seconds) => {
    const minutes = Math.floor(seconds / 60);
    const days = Math.floor(minutes / 1440);
    const clock = `${String(Math.floor((minutes % 1440) / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
    return `+${days > 0 ? `${days}d ` : ''}${clock}`;
  };
}

export function renderTimeline(timeline) {
  const figure = byId('timeline-figure');
  const counts = timeline && timeline.counts;
  const length = counts && Array.isArray(counts.Low) ? counts.Low.length : 0;
  if (!length) {
    show(figure, false);
    return;
  }
  const width = Number(timeline.bin_seconds);
  const first = Number(timeline.first_bin);
  const bins = Array.from({ length }, (_, i) => ({
    start: first + i * width,
    counts: Object.fromEntries(TIMELINE_SEVERITIES.map((s) => [s, Number((counts[s] || [])[i] || 0)])),
  }));
  const unit = binText(width);
  const timeText = timeFormatter(first);
  byId('timeline-caption').textContent = `Anomalies per ${unit}, by severity`
    + (first >= EPOCH_FROM ? '' : ' (time since the capture began)');
  byId('timeline-chart').replaceChildren(
    timelineChart({ bins, severities: TIMELINE_SEVERITIES, binText: unit, timeText, title: `Anomalies per ${unit}` }),
    severityLegend(TIMELINE_SEVERITIES),
  );
  show(figure, true);
}

function hostsTable(table, hosts, side, onSelect) {
  const caption = side === 'source' ? 'Source hosts by anomalies' : 'Destination hosts by anomalies';
  const head = el('thead', {}, el('tr', {},
    el('th', { scope: 'col', text: 'Host' }),
    el('th', { scope: 'col', class: 'numeric', text: 'Anomalies' }),
    el('th', { scope: 'col', class: 'numeric', text: 'Connections' }),
    el('th', { scope: 'col', text: 'Highest severity' })));
  const rows = hosts.map((entry) => {
    const button = el('button', {
      type: 'button', class: 'host-button', 'data-side': side, 'data-host': entry.host,
      'aria-pressed': 'false', text: entry.host,
    });
    button.addEventListener('click', () => onSelect(side, String(entry.host), Number(entry.anomalies)));
    return el('tr', {},
      el('td', {}, button),
      el('td', { class: 'numeric', text: fmtInt(entry.anomalies) }),
      el('td', { class: 'numeric', text: fmtInt(entry.connections) }),
      el('td', {}, severityBadge(entry.max_severity)));
  });
  const body = el('tbody', {}, rows.length ? rows
    : el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'No host has an anomaly.' })));
  table.replaceChildren(el('caption', { class: 'visually-hidden', text: caption }), head, body);
}

// Marks the selected host's button as pressed (none when `selected` is null).
export function markSelectedHost(selected) {
  for (const button of document.querySelectorAll('#hosts-view .host-button')) {
    const pressed = selected !== null && button.dataset.side === selected.side
      && button.dataset.host === selected.host;
    button.setAttribute('aria-pressed', pressed ? 'true' : 'false');
  }
}

export function renderHostsView(hosts, onSelect) {
  const section = byId('hosts-view');
  if (!hosts) {
    show(section, false);
    return;
  }
  const sources = Array.isArray(hosts.sources) ? hosts.sources : [];
  const destinations = Array.isArray(hosts.destinations) ? hosts.destinations : [];
  hostsTable(byId('source-hosts'), sources, 'source', onSelect);
  hostsTable(byId('destination-hosts'), destinations, 'destination', onSelect);
  const parts = [`${fmtInt(hosts.sources_with_anomalies)} source and `
    + `${fmtInt(hosts.destinations_with_anomalies)} destination hosts have anomalies; the busiest `
    + 'are listed, counted over the whole file. Choose a host to show only its anomalies in the table.'];
  if (hosts.complete === false) {
    parts.push('The file has more distinct hosts than the service counts; hosts first seen after that are left out.');
  }
  byId('hosts-note').textContent = parts.join(' ');
  show(section, true);
}
