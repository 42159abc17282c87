// DOM and formatting helpers. Text only ever goes in through textContent / text nodes, so
// anything from an uploaded file is shown literally and never parsed as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function byId(id) {
  return document.getElementById(id);
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(value) {
  return Number.isFinite(Number(value)) ? integer.format(Number(value)) : '–';
}

export function fmtFixed(value, digits) {
  return Number.isFinite(Number(value)) ? Number(value).toFixed(digits) : '–';
}

export function fmtPercent(value, digits = 1) {
  return Number.isFinite(Number(value)) ? `${Number(value).toFixed(digits)} %` : '–';
}

export function fmtSeconds(value) {
  const seconds = Number(value);
  if (!Number.isFinite(seconds)) return '–';
  return `${seconds < 10 ? seconds.toFixed(3) : seconds.toFixed(1)} s`;
}

export function fmtMegabytes(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function fmtSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return fmtMegabytes(bytes);
}

// A cell value for display: numbers as given by the API, anything else as text.
export function fmtCell(value) {
  if (value === null || value === undefined || value === '') return '–';
  return String(value);
}

// A feature value: integers as they are, other numbers to 3 significant digits.
export function fmtValue(value) {
  if (typeof value !== 'number' || Number.isInteger(value)) return fmtCell(value);
  return String(Number(value.toPrecision(3)));
}

export const SEVERITY_ORDER = ['Normal', 'Low', 'Medium', 'High', 'Critical'];

// A severity shown as text and colour together (never colour alone).
export function severityBadge(severity) {
  const known = SEVERITY_ORDER.includes(severity);
  return el('span', { class: `badge ${known ? `sev-${severity}` : 'sev-unknown'}`, text: fmtCell(severity) });
}
