// The forum UI: session per tenant, client-side routing with the History
// API, the header (breadcrumbs, account, connection state), and the pages.

import { AgoraClient, State } from "./agora.js";
import { Api } from "./api.js";
import { h, setChildren, startClock, avatar } from "./dom.js";
import { isMod } from "./components.js";
import * as landing from "./pages/landing.js";
import * as home from "./pages/home.js";
import * as board from "./pages/board.js";
import * as post from "./pages/post.js";
import * as auth from "./pages/auth.js";
import * as modPages from "./pages/mod.js";
import * as user from "./pages/user.js";
import * as search from "./pages/search.js";
import { bell } from "./notifications.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const account = document.getElementById("account");
const modnav = document.getElementById("modnav");
const conn = document.getElementById("conn");
const connAnnounce = document.getElementById("conn-announce");
const announcer = document.getElementById("announcer");
const toaster = document.getElementById("toaster");
const brand = document.querySelector(".brand");

const routes = [
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/?$/, home],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/b\/(\d+)\/?$/, board],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/p\/(\d+)\/?$/, post],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/(login|register)\/?$/, auth],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/mod\/(reports|audit|members)\/?$/, modPages],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/u\/([^/]+)\/?$/, user],
  [/^\/t\/([a-z0-9][a-z0-9-]*)\/search\/?$/, search],
];

const tokenKey = (tenant) => `agora:${tenant}:token`;

// session is the current tenant's connection and user; replaced when the
// path moves to another tenant.
let session = null;
let unmount = null;
let renderSeq = 0;

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: sessions last one page view
  }
}

async function openSession(tenant) {
  if (session?.tenant === tenant) {
    await session.ready;
    return session;
  }
  session?.bell?.dispose();
  session?.client.close();
  const token = storage()?.getItem(tokenKey(tenant)) || null;
  const s = {
    tenant,
    api: new Api({ tenant, token }),
    client: null,
    me: null,
    conn: { state: State.CONNECTING },
    // missing: the server knows no such community; nothing connects.
    missing: false,
  };
  s.client = new AgoraClient({
    tenant,
    token,
    ...livenessOverride(),
    onState: (st) => {
      s.conn = st;
      if (session === s) renderConn();
      // Policy close: banned, or the token was revoked (a logout
      // elsewhere). Find out which, and show it.
      if (st.state === State.OFFLINE && st.code === 1008) refreshMe(s, st.reason);
    },
    onUnauthorized: () => {
      // The token was revoked or expired: continue as a reader.
      setToken(s, null, null);
      toast("Your session has ended. Sign in again to write.");
      rerender();
    },
  });
  session = s;
  // A navigation that arrives while this runs waits for the same answer.
  s.ready = (async () => {
    // One request tells whether the community exists (404 before anything
    // else) and, with a token, who we are.
    try {
      if (token) s.me = await s.api.get("/me");
      else await s.api.get("/boards?limit=1");
    } catch (e) {
      if (e.status === 404) s.missing = true;
      if (e.status === 401 && token) {
        storage()?.removeItem(tokenKey(tenant));
        s.api.token = null;
        s.client.token = null;
      }
    }
    if (s.missing) {
      forgetTenant(tenant);
      return;
    }
    rememberTenant(tenant);
    s.client.connect();
  })();
  await s.ready;
  return s;
}

async function refreshMe(s, reason) {
  if (!s.api.token) return;
  try {
    // The server names a revoked token: no need to ask (and be refused).
    if (reason === "token revoked") throw Object.assign(new Error(reason), { status: 401 });
    s.me = await s.api.get("/me");
  } catch (e) {
    if (e.status !== 401) return;
    setToken(s, null, null);
    toast("You were signed out.");
  }
  if (session === s) {
    renderAccount();
    rerender();
  }
}

// Another tab of this browser signed in or out of the same community:
// follow it, so the tabs never disagree about who is writing.
window.addEventListener("storage", async (e) => {
  const s = session;
  if (!s || e.key !== tokenKey(s.tenant)) return;
  const token = e.newValue || null;
  s.api.token = token;
  s.me = null;
  s.client.setToken(token);
  if (token) {
    try {
      s.me = await s.api.get("/me");
    } catch {
      // Shown as signed out; the next action will tell.
    }
  }
  if (session === s) {
    renderAccount();
    rerender();
  }
});

function setToken(s, token, user) {
  const st = storage();
  if (token) st?.setItem(tokenKey(s.tenant), token);
  else st?.removeItem(tokenKey(s.tenant));
  s.api.token = token;
  s.me = user;
  s.client.setToken(token);
}

function rememberTenant(tenant) {
  saveTenants([tenant, ...knownTenants().filter((t) => t !== tenant)]);
}

// forgetTenant drops a community that does not exist (any more) from
// "communities you visited".
function forgetTenant(tenant) {
  const list = knownTenants();
  if (list.includes(tenant)) saveTenants(list.filter((t) => t !== tenant));
}

function saveTenants(list) {
  try {
    storage()?.setItem("agora:tenants", JSON.stringify(list.slice(0, 10)));
  } catch {
    // Full or disabled storage: the landing page just lists fewer.
  }
}

// livenessOverride reads shorter ping intervals for the live indicator
// from localStorage "agora:liveness" ({"idlePingMs", "pongTimeoutMs"}):
// tests use it, and so can someone debugging a flaky network.
function livenessOverride() {
  try {
    const o = JSON.parse(storage()?.getItem("agora:liveness") || "{}");
    const out = {};
    for (const k of ["idlePingMs", "pongTimeoutMs"]) if (Number.isFinite(o?.[k]) && o[k] > 0) out[k] = o[k];
    return out;
  } catch {
    return {};
  }
}

export function knownTenants() {
  try {
    const list = JSON.parse(storage()?.getItem("agora:tenants") || "[]");
    return Array.isArray(list) ? list.filter((t) => typeof t === "string" && /^[a-z0-9][a-z0-9-]{1,38}$/.test(t)) : [];
  } catch {
    return [];
  }
}

// The context pages get: everything they may use, nothing global.
function pageContext(s) {
  const base = `/t/${s.tenant}`;
  return {
    tenant: s.tenant,
    api: s.api,
    client: s.client,
    get me() {
      return s.me;
    },
    url: (p = "/") => base + p,
    navigate,
    announce,
    toast,
    setTitle,
    setCrumbs,
    storage,
    markSynced: () => {
      if (s === session) main.dataset.synced = "true";
    },
    async signIn(token, user, next) {
      setToken(s, token, user);
      renderAccount();
      navigate(next && next.startsWith(`${base}/`) ? next : `${base}/`, { replace: true });
    },
    rerender,
  };
}

async function render() {
  const seq = ++renderSeq;
  if (unmount) {
    try {
      unmount();
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
    unmount = null;
  }
  delete main.dataset.synced;
  const path = location.pathname;
  let page = null;
  let params = null;
  for (const [re, pageModule] of routes) {
    const m = re.exec(path);
    if (m) {
      page = pageModule;
      params = m.slice(1);
      break;
    }
  }
  setCrumbs([]);
  if (!page) {
    if (path === "/" || path === "/index.html") {
      session?.bell?.dispose();
      session?.client.close();
      session = null;
      renderAccount();
      renderConn();
      setTitle("");
      unmount = landing.mount(main, { navigate, setTitle, knownTenants });
      return;
    }
    setTitle("Not found");
    setChildren(
      main,
      h("h1", { tabindex: "-1" }, "Page not found"),
      h("p", null, "There is nothing here. ", h("a", { href: "/" }, "Go to the start page.")),
    );
    return;
  }
  setChildren(main, h("p", { class: "loading", "aria-busy": "true" }, "Loading…"));
  const s = await openSession(params[0]);
  if (seq !== renderSeq) return; // a later navigation won
  renderAccount();
  renderConn();
  setCrumbs([]);
  if (s.missing) {
    // Whatever page of it was asked for: no forms, no live connection.
    setTitle("No such community");
    setChildren(
      main,
      h("h1", { tabindex: "-1", id: "no-such-community" }, "No such community"),
      h("p", null, `There is no community called “${s.tenant}” here. Check the address you were given, or `, h("a", { href: "/" }, "go to the start page"), "."),
    );
    if (seq > 1) main.focus({ preventScroll: true });
    return;
  }
  const result = page.mount(main, pageContext(s), params.slice(1));
  unmount = typeof result === "function" ? result : null;
  // After an in-app navigation, start screen readers and the Tab key at
  // the new content (a full load starts there anyway).
  if (seq > 1 && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

function rerender() {
  render().catch(showFatal);
}

function showFatal(e) {
  setChildren(main, h("h1", null, "Something went wrong"), h("p", null, String(e?.message || e)));
  setTimeout(() => {
    throw e;
  });
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  rerender();
  if (!location.hash) window.scrollTo(0, 0);
}

function setTitle(t) {
  const parts = [t, session && !session.missing && session.tenant, "Agora"].filter(Boolean);
  document.title = parts.join(" · ");
}

/** crumbs: [[label, href], ...]; the last one is the current page. */
function setCrumbs(list) {
  if (!session || session.missing) {
    setChildren(crumbs);
    return;
  }
  const items = [[session.tenant, `/t/${session.tenant}/`], ...list];
  setChildren(
    crumbs,
    h(
      "ol",
      null,
      items.map(([label, href], i) =>
        h(
          "li",
          null,
          i === items.length - 1 && list.length > 0
            ? h("span", { "aria-current": "page" }, label)
            : h("a", { href, class: i === 0 ? "tenant" : "" }, label),
        ),
      ),
    ),
  );
}

// bellFor keeps one bell per signed-in user of the session: it lives
// across page views (its room subscription too) and goes with the user.
function bellFor(s) {
  if (s.bell && s.bell.userId === s.me?.id) return s.bell;
  s.bell?.dispose();
  s.bell = null;
  if (!s.me) return null;
  const b = bell(
    {
      api: s.api,
      client: s.client,
      url: (p) => `/t/${s.tenant}${p}`,
      navigate,
      announce,
      toast,
    },
    s.me,
  );
  b.userId = s.me.id;
  document.body.appendChild(b.panel);
  s.bell = b;
  return b;
}

function renderAccount() {
  setChildren(modnav);
  // The logo leads to the community's front page while inside one: the
  // start page is a step out of it, one click too easy to take by mistake.
  const inside = session && !session.missing;
  brand.href = inside ? `/t/${session.tenant}/` : "/";
  brand.setAttribute("aria-label", inside ? `${session.tenant}: all boards` : "Agora home");
  if (!inside) {
    setChildren(account);
    return;
  }
  const s = session;
  const base = `/t/${s.tenant}`;
  const b = bellFor(s);
  if (!s.me) {
    const next = encodeURIComponent(location.pathname);
    setChildren(
      account,
      h("a", { href: `${base}/login?next=${next}`, class: "button small" }, "Log in"),
      h("a", { href: `${base}/register?next=${next}`, class: "button small primary register" }, "Register"),
    );
    return;
  }
  const logout = h("button", { type: "button", class: "small", id: "logout" }, "Log out");
  logout.addEventListener("click", async () => {
    logout.disabled = true;
    // Forget the token first, so the live connection it revokes is already
    // ours to close, then revoke it on the server.
    const revoke = new Api({ tenant: s.tenant, token: s.api.token });
    setToken(s, null, null);
    try {
      await revoke.post("/auth/logout");
    } catch {
      // Dropped here either way; the server expires it in time.
    }
    renderAccount();
    toast("You are signed out.");
    rerender();
  });
  if (isMod(s.me)) {
    setChildren(
      modnav,
      h("a", { href: `${base}/mod/reports` }, "Reports"),
      h("a", { href: `${base}/mod/members` }, "Members"),
      h("a", { href: `${base}/mod/audit` }, "Audit log"),
    );
  }
  setChildren(
    account,
    b.el,
    h(
      "span",
      { class: "me", id: "me", dataset: { username: s.me.username, role: s.me.role } },
      avatar(s.me, "sm"),
      h("span", { class: "me-name" }, s.me.username),
      s.me.role !== "member" ? h("span", { class: "badge role" }, s.me.role) : null,
    ),
    logout,
  );
}

// Connection state -------------------------------------------------------

let connTimer = null;
let lastAnnounced = "";

function renderConn() {
  clearInterval(connTimer);
  connTimer = null;
  if (!session || session.missing) {
    conn.hidden = true;
    return;
  }
  conn.hidden = false;
  const st = session.conn;
  const paint = () => {
    let text;
    let short; // what a phone has room for: the state, without the details
    let cls = st.state;
    let retry = false;
    switch (st.state) {
      case State.LIVE:
        text = short = "Live";
        break;
      case State.CONNECTING:
        text = short = st.attempt > 0 ? "Reconnecting…" : "Connecting…";
        if (st.attempt > 0) cls = "reconnecting";
        break;
      case State.RECONNECTING: {
        const s = Math.ceil((st.retryAt - Date.now()) / 1000);
        text = s > 0 ? `Reconnecting in ${s} s` : "Reconnecting…";
        short = "Reconnecting…";
        retry = s > 1;
        break;
      }
      default:
        text = st.reason ? `Offline: ${st.reason}` : "Offline";
        short = "Offline";
        retry = true;
    }
    conn.className = `conn ${cls}`;
    conn.dataset.state = st.state;
    conn.title = text;
    setChildren(
      conn,
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "conn-text" }, h("span", { class: "conn-long" }, text), h("span", { class: "conn-short" }, short)),
      retry
        ? h(
            "button",
            { type: "button", class: "link small", "aria-label": "Retry now", onclick: () => session?.client.reconnectNow() },
            h("span", { class: "conn-long" }, "Retry now"),
            h("span", { class: "conn-short" }, "Retry"),
          )
        : null,
    );
  };
  paint();
  if (st.state === State.RECONNECTING) connTimer = setInterval(paint, 1000);
  // Screen readers hear state changes, not the countdown.
  const said = { live: "Live updates connected.", offline: "Live updates offline.", reconnecting: "Live updates interrupted, reconnecting." }[st.state];
  if (said && said !== lastAnnounced) {
    lastAnnounced = said;
    connAnnounce.textContent = said;
  }
}

// Announcements and toasts ------------------------------------------------

function announce(text) {
  // A fresh node per message: screen readers announce additions.
  announcer.appendChild(h("p", null, text));
  while (announcer.childElementCount > 5) announcer.firstElementChild.remove();
}

function toast(text) {
  const el = h("div", { class: "toast", role: "status" }, text);
  toaster.appendChild(el);
  setTimeout(() => el.classList.add("out"), 3500);
  setTimeout(() => el.remove(), 4000);
}

// Links: same-origin anchors route in the page.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener("popstate", rerender);
startClock();
rerender();
