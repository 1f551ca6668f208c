// DOM helpers. Text goes into the page only as text nodes: nothing in the
// UI parses strings as HTML, except serverHTML below for the one kind of
// HTML the server vouches for.

/**
 * h("a", {href: "/x", class: "link", onclick: fn}, "text", child, ...)
 * Props: class, text, dataset (object), on<event> (listener), hidden,
 * disabled, checked, value, required (properties); anything else is an
 * attribute. Children: nodes, strings (text nodes), null/false (skipped),
 * arrays.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden" || k === "required") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/**
 * serverHTML turns a post's or comment's body_html into nodes. It is the
 * only place the UI reads HTML, and body_html the only HTML it is given
 * besides search snippets (escaped text and <mark>, of which the search
 * page keeps nothing else): the server renders body_html from Markdown
 * once, on write, through an allow list (API.md, "Formatting"), and the
 * page's CSP would stop any script in it regardless. The inert document
 * parsed into runs and loads nothing while it parses.
 */
export function serverHTML(html) {
  const doc = new DOMParser().parseFromString(String(html ?? ""), "text/html");
  const frag = document.createDocumentFragment();
  frag.append(...doc.body.childNodes);
  return frag;
}

/** Replaces an element's children. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Relative times ---------------------------------------------------------

const MIN = 60e3;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const d = Math.max(0, now - t);
  if (d < 45e3) return "just now";
  if (d < HOUR) return `${Math.max(1, Math.round(d / MIN))} min ago`;
  if (d < DAY) return `${Math.round(d / HOUR)} h ago`;
  if (d < 2 * DAY) return "yesterday";
  if (d < 30 * DAY) return `${Math.round(d / DAY)} days ago`;
  return new Date(t).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** A <time> that keeps its relative text fresh (see startClock). */
export function timeEl(iso) {
  const el = h("time", { datetime: iso, title: new Date(iso).toLocaleString(), class: "rel" }, relativeTime(iso));
  return el;
}

/** Refreshes every relative time on the page twice a minute. */
export function startClock() {
  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll("time.rel")) {
      const s = relativeTime(el.getAttribute("datetime"), now);
      if (el.textContent !== s) el.textContent = s;
    }
  }, 30e3);
}

// Avatars ----------------------------------------------------------------

export function initials(name) {
  const parts = String(name).split(/[_\s.-]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 2);
  return s.toUpperCase();
}

function hue(name) {
  let x = 0;
  for (const c of String(name)) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 360;
}

/** A round initials avatar; the colour is stable per username. */
export function avatar(user, size = "") {
  const el = h("span", { class: `avatar ${size}`, title: user.username, "aria-hidden": "true" }, initials(user.username));
  // CSSOM, not a style attribute: allowed under the CSP.
  el.style.backgroundColor = `hsl(${hue(user.username)} 55% 42%)`;
  return el;
}

// IDs are strings of digits; compare them as numbers without losing precision.
export function compareIds(a, b) {
  a = String(a);
  b = String(b);
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** A short excerpt for announcements and titles. */
export function excerpt(s, n = 120) {
  s = String(s).replace(/\s+/g, " ").trim();
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
