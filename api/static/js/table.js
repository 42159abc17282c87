// The anomalies table: sortable (header buttons with aria-sort), filterable by severity and
// paginated. Only the current page is in the DOM, so thousands of rows stay responsive.

import {
  SEVERITY_ORDER, el, fmtCell, fmtFixed, fmtInt, fmtPercent, fmtValue, severityBadge,
} from './dom.js';

const TOP_FEATURES_SHOWN = 3;

function connectionText(row) {
  const orig = [row['id.orig_h'], row['id.orig_p']].filter((v) => v !== undefined && v !== null).join(':');
  const resp = [row['id.resp_h'], row['id.resp_p']].filter((v) => v !== undefined && v !== null).join(':');
  return orig || resp ? `${orig || '?'} → ${resp || '?'}` : '';
}

function topFeatures(row) {
  const features = Array.isArray(row.top_features) ? row.top_features.slice(0, TOP_FEATURES_SHOWN) : [];
  if (features.length === 0) return '–';
  return el('ul', { class: 'top-features' }, features.map((f) => el('li', {},
    el('code', { text: fmtCell(f.feature) }), ` = ${fmtValue(f.value)} `,
    el('span', { class: 'contribution', text: `(${fmtFixed(f.contribution, 2)})` }))));
}

function actionsCell(row, builders) {
  return el('div', { class: 'row-actions' }, builders.map((build) => build(row)));
}

function buildColumns({ hasLabels, zeek, rowActions = [] }) {
  const num = (key) => (row) => Number(row[key]);
  const str = (key) => (row) => String(row[key] ?? '');
  const columns = [
    { key: 'index', label: 'Index', sortValue: num('index'), render: (r) => fmtCell(r.index), numeric: true },
    { key: 'severity', label: 'Severity', sortValue: (r) => SEVERITY_ORDER.indexOf(r.severity), render: (r) => severityBadge(r.severity) },
    { key: 'anomaly_score', label: 'Score', sortValue: num('anomaly_score'), render: (r) => fmtFixed(r.anomaly_score, 3), numeric: true },
    { key: 'confidence', label: 'Confidence', sortValue: num('confidence'), render: (r) => fmtPercent(Number(r.confidence) * 100, 1), numeric: true },
    { key: 'protocol_type', label: 'Protocol', sortValue: str('protocol_type'), render: (r) => fmtCell(r.protocol_type) },
    { key: 'service', label: 'Service', sortValue: str('service'), render: (r) => fmtCell(r.service) },
    { key: 'flag', label: 'Flag', sortValue: str('flag'), render: (r) => fmtCell(r.flag) },
    { key: 'src_bytes', label: 'Src bytes', sortValue: num('src_bytes'), render: (r) => fmtInt(r.src_bytes), numeric: true },
    { key: 'dst_bytes', label: 'Dst bytes', sortValue: num('dst_bytes'), render: (r) => fmtInt(r.dst_bytes), numeric: true },
  ];
  if (hasLabels) {
    columns.push({ key: 'label', label: 'Label', sortValue: str('label'), render: (r) => fmtCell(r.label) });
  }
  if (zeek) {
    // Next to the verdict, so the connection is in view without scrolling sideways.
    columns.splice(4, 0,
      { key: 'connection', label: 'Hosts', sortValue: connectionText, render: (r) => fmtCell(connectionText(r)), className: 'hosts' },
      { key: 'uid', label: 'Zeek uid', sortValue: str('uid'), render: (r) => fmtCell(r.uid) });
  }
  columns.push({ key: 'top_features', label: 'Top contributing features', render: topFeatures });
  if (rowActions.length > 0) {
    columns.push({ key: 'actions', label: 'Actions', render: (r) => actionsCell(r, rowActions) });
  }
  return columns;
}

const HOST_FIELDS = { source: 'id.orig_h', destination: 'id.resp_h' };

function cellClass(column) {
  return [column.numeric ? 'numeric' : null, column.className || null].filter(Boolean).join(' ') || null;
}

function compare(a, b) {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
    if (Number.isNaN(b)) return -1;
    return a - b;
  }
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

export class AnomalyTable {
  constructor({ table, filter, pageSize, first, prev, next, last, info }) {
    Object.assign(this, { table, filter, pageSizeSelect: pageSize, first, prev, next, last, info });
    this.rows = [];
    this.view = [];
    this.columns = [];
    this.sortKey = 'anomaly_score';
    this.sortDirection = 'descending';
    this.page = 0;
    this.hostFilter = null; // {side: source or destination, host}
    filter.addEventListener('change', () => { this.page = 0; this.refresh(); });
    pageSize.addEventListener('change', () => { this.page = 0; this.renderPage(); });
    first.addEventListener('click', () => this.goTo(0));
    prev.addEventListener('click', () => this.goTo(this.page - 1));
    next.addEventListener('click', () => this.goTo(this.page + 1));
    last.addEventListener('click', () => this.goTo(Number.MAX_SAFE_INTEGER));
  }

  setData(rows, options) {
    this.rows = Array.isArray(rows) ? rows : [];
    this.columns = buildColumns(options);
    this.sortKey = 'anomaly_score';
    this.sortDirection = 'descending';
    this.filter.value = 'all';
    this.hostFilter = null;
    this.page = 0;
    this.renderHeader();
    this.refresh();
  }

  // Only the anomalies of one source or destination host; null shows every host again.
  setHostFilter(selection) {
    this.hostFilter = selection;
    this.page = 0;
    this.refresh();
  }

  get pageSize() {
    return Number(this.pageSizeSelect.value) || 50;
  }

  get pageCount() {
    return Math.max(1, Math.ceil(this.view.length / this.pageSize));
  }

  sortBy(key) {
    if (this.sortKey === key) {
      this.sortDirection = this.sortDirection === 'ascending' ? 'descending' : 'ascending';
    } else {
      this.sortKey = key;
      this.sortDirection = key === 'anomaly_score' || key === 'severity' || key === 'confidence' ? 'descending' : 'ascending';
    }
    this.page = 0;
    this.renderHeader();
    this.refresh();
    const button = this.table.querySelector(`button[data-key="${CSS.escape(key)}"]`);
    if (button) button.focus();
  }

  goTo(page) {
    this.page = Math.min(Math.max(0, page), this.pageCount - 1);
    this.renderPage();
  }

  // Filter and sort once per change; paging only slices the result.
  refresh() {
    const severity = this.filter.value;
    const host = this.hostFilter;
    const field = host ? HOST_FIELDS[host.side] : null;
    const filtered = this.rows.filter((r) => (severity === 'all' || r.severity === severity)
      && (!field || String(r[field] ?? '') === host.host));
    const column = this.columns.find((c) => c.key === this.sortKey);
    if (column && column.sortValue) {
      const sign = this.sortDirection === 'ascending' ? 1 : -1;
      const keyed = filtered.map((row, i) => ({ row, i, value: column.sortValue(row) }));
      keyed.sort((a, b) => sign * compare(a.value, b.value) || a.i - b.i);
      this.view = keyed.map((k) => k.row);
    } else {
      this.view = filtered;
    }
    this.renderPage();
  }

  renderHeader() {
    const thead = this.table.tHead || this.table.createTHead();
    const cells = this.columns.map((column) => {
      if (!column.sortValue) return el('th', { scope: 'col', text: column.label });
      const active = column.key === this.sortKey;
      const arrow = active ? (this.sortDirection === 'ascending' ? '▲' : '▼') : '↕';
      const button = el('button', { type: 'button', class: 'sort-button', 'data-key': column.key },
        column.label, ' ', el('span', { class: 'sort-indicator', 'aria-hidden': 'true', text: arrow }));
      button.addEventListener('click', () => this.sortBy(column.key));
      return el('th', {
        scope: 'col', 'aria-sort': active ? this.sortDirection : 'none', class: cellClass(column),
      }, button);
    });
    thead.replaceChildren(el('tr', {}, cells));
  }

  renderPage() {
    this.page = Math.min(this.page, this.pageCount - 1);
    const start = this.page * this.pageSize;
    const pageRows = this.view.slice(start, start + this.pageSize);
    const body = this.table.tBodies[0] || this.table.createTBody();
    if (pageRows.length === 0) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: this.columns.length, class: 'empty', text: 'No anomalies match this filter.' })));
    } else {
      body.replaceChildren(...pageRows.map((row) => el('tr', {}, this.columns.map(
        (column) => el('td', { class: cellClass(column) }, column.render(row)),
      ))));
    }
    const end = Math.min(start + this.pageSize, this.view.length);
    this.info.textContent = this.view.length === 0
      ? 'No rows'
      : `Page ${this.page + 1} of ${this.pageCount} · rows ${fmtInt(start + 1)}–${fmtInt(end)} of ${fmtInt(this.view.length)}`;
    this.first.disabled = this.page === 0;
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= this.pageCount - 1;
    this.last.disabled = this.page >= this.pageCount - 1;
  }
}
