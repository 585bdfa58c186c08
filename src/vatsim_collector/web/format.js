// Formatting and DOM helpers shared by the dashboard modules. Times are always shown in UTC:
// the network runs on UTC and so do the hourly statistics.

const SVG_NS = "http://www.w3.org/2000/svg";
const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(value) {
  return value === null || value === undefined ? "—" : integer.format(value);
}

export function fmtPercent(share, digits = 0) {
  if (share === null || share === undefined) return "—";
  return `${(share * 100).toFixed(digits)}%`;
}

export function pad2(n) {
  return String(n).padStart(2, "0");
}

export function fmtTimeUTC(date, seconds = true) {
  const hm = `${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}`;
  return seconds ? `${hm}:${pad2(date.getUTCSeconds())}` : hm;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function fmtDateTimeUTC(date) {
  return `${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${fmtTimeUTC(date)} UTC`;
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** An SVG element with attributes; children may be nodes or strings. */
export function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** An HTML element with attributes (``text`` sets the text, ``dataset`` data-*). */
export function html(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** "Nice" axis ticks from 0 to at least ``max``: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(max, count = 4) {
  const top = Math.max(max, 1);
  const raw = top / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const whole = Math.max(1, Math.ceil(step));
  const ticks = [];
  for (let v = 0; v <= top + whole * 1e-9; v += whole) ticks.push(v);
  if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + whole);
  return ticks;
}

export const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

/** Show a number: formatted text for people, the raw value in data-value for scripts. */
export function setNumber(id, value, format = fmtInt) {
  const node = byTestId(id);
  if (!node) return;
  node.textContent = format(value);
  if (value === null || value === undefined) delete node.dataset.value;
  else node.dataset.value = String(value);
}

/** A UTC time as the value of a datetime-local input (which has no zone: the page says UTC). */
export function toInputUTC(date) {
  return date.toISOString().slice(0, 16);
}

/** A datetime-local input's value read as UTC; null when empty or not a time. */
export function fromInputUTC(value) {
  if (!value) return null;
  const time = Date.parse(`${value.length === 16 ? `${value}:00` : value}Z`);
  return Number.isNaN(time) ? null : new Date(time);
}

/** A card whose source failed keeps its last drawing, dimmed, with the reason. */
export function setCardError(card, error) {
  const section = document.getElementById(card);
  section.classList.toggle("failed", Boolean(error));
  section.querySelector(".card-error").textContent = error ? `Not updated: ${error.message}` : "";
}
