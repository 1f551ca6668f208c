// Pieces shared by the pages: a live room bound to REST state, presence,
// typing, badges, inline confirmations and the ban dialog.

import { describeError } from "./api.js";
import { avatar, h, setChildren } from "./dom.js";

/**
 * liveRoom keeps a page's REST state and a realtime room in step:
 * subscribe first, read over REST after `subscribed` (or read at once and
 * again after `subscribed` when the connection is not up yet), queue
 * events while a read is in flight and apply them after it. `apply` must
 * be idempotent by id and version. `reset` (lost history) reads again.
 * Once the page provably misses nothing, onSynced runs (default:
 * ctx.markSynced, which sets data-synced="true" on <main>).
 */
export function liveRoom(ctx, room, { load, apply, onPresence, onTyping, onError, onSynced }) {
  let disposed = false;
  let synced = false;
  let ready = false;
  let queue = [];
  let subscribedOnce = false;
  let loadedBeforeSubscribed = false;
  let running = null;
  let again = false;
  let firstSubscribed;
  const subscribed = new Promise((resolve) => (firstSubscribed = resolve));

  const loadOnce = async () => {
    ready = false;
    const afterSubscribed = subscribedOnce;
    if (!afterSubscribed) loadedBeforeSubscribed = true;
    await load();
    if (disposed) return;
    ready = true;
    const q = queue;
    queue = [];
    for (const ev of q) apply(ev);
    // From the first read that began after `subscribed`, the page misses
    // nothing: say so (tests and curious integrators wait for it).
    if (afterSubscribed && !synced) {
      synced = true;
      (onSynced || ctx.markSynced)?.();
    }
  };
  // Reads never overlap; a request during a read runs one more after it.
  const reload = () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await loadOnce();
        } while (again && !disposed);
      } finally {
        running = null;
      }
    })();
    return running;
  };

  const sub = ctx.client.subscribe(room, {
    onSubscribed() {
      if (subscribedOnce) return;
      subscribedOnce = true;
      firstSubscribed();
      if (loadedBeforeSubscribed) reload().catch(() => {});
    },
    onEvent(ev) {
      if (disposed) return;
      if (ready) apply(ev);
      else queue.push(ev);
    },
    onReset() {
      if (!disposed) reload().catch(() => {});
    },
    onPresence: (m) => !disposed && onPresence?.(m),
    onTyping: (m) => !disposed && onTyping?.(m),
    onError(e) {
      // A refused subscription (a room that does not exist) answers no
      // `subscribed`: stop waiting for one.
      firstSubscribed();
      if (!disposed) onError?.(e);
    },
  });

  return {
    /** The first read; resolves when the page can render. */
    async start() {
      if (ctx.client.state.state === "live") {
        await Promise.race([subscribed, new Promise((r) => setTimeout(r, 1500))]);
      }
      await reload();
    },
    reload,
    typing: () => sub.typing(),
    dispose() {
      disposed = true;
      sub.unsubscribe();
    },
  };
}

/**
 * "Who's here": initials avatars, a count, anonymous readers. The count is
 * the server's `count`, not the list's length: above 100 people the list
 * is a sample (`truncated`) and then only the counts come (API.md, "Large
 * rooms"), so the list the view holds can be short and a little stale,
 * while the counts are always whole.
 */
export function presenceView() {
  const users = new Map();
  let count = 0; // signed-in users present, the receiver included
  let anonymous = 0;
  const el = h("div", { class: "presence", id: "presence", "aria-label": "Who's here" });

  const render = () => {
    const list = [...users.values()].sort((a, b) => a.username.localeCompare(b.username));
    const shown = list.slice(0, 8);
    const total = count + anonymous;
    const names = list.map((u) => u.username).join(", ");
    const unnamed = count - list.length;
    setChildren(
      el,
      h(
        "span",
        { class: "avatars", title: names },
        shown.map((u) => avatar(u, "sm")),
        count > shown.length ? h("span", { class: "avatar sm more" }, `+${grouped(count - shown.length)}`) : null,
      ),
      h(
        "span",
        { class: "presence-count", dataset: { users: String(count), anonymous: String(anonymous) } },
        total === 0 ? "" : `${grouped(total)} here`,
        anonymous > 0 && count > 0 ? ` (${grouped(anonymous)} anonymous)` : "",
        anonymous > 0 && count === 0 ? ` (anonymous)` : "",
      ),
      h("span", { class: "sr-only" }, names ? `Here now: ${names}${unnamed > 0 ? ` and ${grouped(unnamed)} more` : ""}` : ""),
    );
  };

  const entries = (xs) => (Array.isArray(xs) ? xs : []);
  return {
    el,
    update(msg) {
      if (Array.isArray(msg.state)) {
        users.clear();
        for (const p of msg.state) users.set(p.user.id, p.user);
      } else {
        for (const p of entries(msg.joins)) users.set(p.user.id, p.user);
        for (const p of entries(msg.leaves)) users.delete(p.user.id);
      }
      count = typeof msg.count === "number" ? msg.count : users.size;
      if (typeof msg.anonymous === "number") anonymous = msg.anonymous;
      render();
    },
  };
}

/** "alice is typing…", each name fading out ~3 s after its last signal. */
export function typingView(me) {
  const typing = new Map(); // user id -> {user, timer}
  const el = h("div", { class: "typing", id: "typing", "aria-hidden": "true" });
  const render = () => {
    const names = [...typing.values()].map((t) => t.user.username);
    if (names.length === 0) {
      el.classList.remove("visible");
      return;
    }
    let s;
    if (names.length === 1) s = `${names[0]} is typing…`;
    else if (names.length === 2) s = `${names[0]} and ${names[1]} are typing…`;
    else s = "Several people are typing…";
    el.textContent = s;
    el.classList.add("visible");
  };
  return {
    el,
    update(msg) {
      const u = msg.user;
      if (!u || (me && u.id === me.id)) return;
      const t = typing.get(u.id);
      if (t) clearTimeout(t.timer);
      typing.set(u.id, {
        user: u,
        timer: setTimeout(() => {
          typing.delete(u.id);
          render();
        }, 3000),
      });
      render();
    },
    /** Someone's comment arrived: they stopped typing. */
    stop(userId) {
      const t = typing.get(userId);
      if (!t) return;
      clearTimeout(t.timer);
      typing.delete(userId);
      render();
    },
    dispose() {
      for (const t of typing.values()) clearTimeout(t.timer);
      typing.clear();
    },
  };
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text.toLowerCase()}` }, text);
}

/** A message area for a form: errors are announced (role=alert). */
export function formError() {
  const el = h("p", { class: "form-error", role: "alert", hidden: true });
  return {
    el,
    show(err) {
      el.textContent = typeof err === "string" ? err : describeError(err);
      el.hidden = false;
    },
    clear() {
      el.textContent = "";
      el.hidden = true;
    },
  };
}

/** Characters as the server counts them (code points, not UTF-16 units). */
export function charCount(s) {
  let n = 0;
  for (const _ of String(s)) n++;
  return n;
}

const grouped = (n) => n.toLocaleString("en-US");

/**
 * limitedField puts a live character count and a message slot under a
 * text field with a server limit, instead of a maxlength that cuts a
 * paste short without a word. check() (call it on submit) refuses a text
 * over the limit with a sentence next to the field. `many` names the
 * thing in the plural, as in "Comments can be at most 20,000 characters".
 * Insert .el right after the field.
 */
export function limitedField(field, max, many) {
  const id = field.id;
  const count = h("span", { class: "char-count", id: `${id}-count` });
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert", hidden: true });
  const el = h("div", { class: "field-foot" }, error, count);
  field.setAttribute("aria-describedby", [field.getAttribute("aria-describedby"), count.id, error.id].filter(Boolean).join(" "));
  field.removeAttribute("maxlength");
  let shown = "";
  const update = () => {
    const n = charCount(field.value);
    count.textContent = `${grouped(n)} / ${grouped(max)}`;
    count.classList.toggle("near", n > max * 0.9 && n <= max);
    count.classList.toggle("over", n > max);
    // A message about the length goes once the text fits again.
    if (shown === "length" && n <= max) api.clearError();
  };
  const api = {
    el,
    update,
    /** True when the text fits; otherwise says why next to the field. */
    check() {
      const n = charCount(field.value);
      if (n <= max) return true;
      api.showError(`${many} can be at most ${grouped(max)} characters: this one has ${grouped(n)}. Shorten it by ${grouped(n - max)}.`);
      shown = "length";
      field.focus();
      return false;
    },
    showError(text) {
      shown = "server";
      error.textContent = text;
      error.hidden = false;
      field.setAttribute("aria-invalid", "true");
    },
    clearError() {
      shown = "";
      error.textContent = "";
      error.hidden = true;
      field.removeAttribute("aria-invalid");
    },
  };
  field.addEventListener("input", update);
  update();
  return api;
}

/**
 * showError puts an API error where the person will look: a 422 next to
 * the first field it names (fields maps API field names to limitedField
 * or fieldMessage results), anything else in the form's message area.
 */
export function showError(err, fields, formErr) {
  const named = err?.code === "unprocessable" && err.fields ? Object.keys(err.fields).filter((f) => fields[f]) : [];
  if (named.length === 0) {
    formErr.show(err);
    return;
  }
  // The message covers every field; it is shown once, at the first.
  fields[named[0]].showError(err.message);
}

/** A message slot for a field without a limit to count (usernames, passwords). */
export function fieldMessage(field) {
  const error = h("p", { class: "field-error", id: `${field.id}-error`, role: "alert", hidden: true });
  field.setAttribute("aria-describedby", [field.getAttribute("aria-describedby"), error.id].filter(Boolean).join(" "));
  const clear = () => {
    error.hidden = true;
    error.textContent = "";
    field.removeAttribute("aria-invalid");
  };
  field.addEventListener("input", clear);
  return {
    el: error,
    showError(text) {
      error.textContent = text;
      error.hidden = false;
      field.setAttribute("aria-invalid", "true");
    },
    clearError: clear,
  };
}

/**
 * A button that asks "Sure?" in place instead of a modal confirm(): the
 * first press swaps in Yes/Cancel, Escape or Cancel swaps back.
 */
export function confirmButton(label, question, onConfirm, cls = "link danger", ariaLabel = null) {
  const wrap = h("span", { class: "confirm" });
  const btn = h("button", { type: "button", class: cls, "aria-label": ariaLabel, dataset: { action: label.toLowerCase() } }, label);
  const ask = () => {
    const yes = h("button", { type: "button", class: "small danger" }, `Yes, ${label.toLowerCase()}`);
    const no = h("button", { type: "button", class: "small" }, "Cancel");
    const back = () => {
      setChildren(wrap, btn);
      btn.focus();
    };
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        await onConfirm();
      } finally {
        if (wrap.isConnected) back();
      }
    });
    no.addEventListener("click", back);
    wrap.addEventListener("keydown", (e) => e.key === "Escape" && wrap.contains(no) && back());
    setChildren(wrap, h("span", { class: "muted" }, question, " "), yes, " ", no);
    no.focus();
  };
  btn.addEventListener("click", ask);
  wrap.appendChild(btn);
  return wrap;
}

/** A modal <dialog> to ban a user, with a reason and a duration. */
export function banDialog(ctx, user, onDone) {
  const err = formError();
  const reason = h("textarea", { id: "ban-reason", name: "reason", required: true, rows: "3", maxlength: "500" });
  const until = h(
    "select",
    { id: "ban-until", name: "until" },
    h("option", { value: "" }, "Until lifted"),
    h("option", { value: String(24) }, "1 day"),
    h("option", { value: String(24 * 7) }, "7 days"),
    h("option", { value: String(24 * 30) }, "30 days"),
  );
  const dlg = h(
    "dialog",
    { class: "dialog", "aria-labelledby": "ban-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "ban-title" }, `Ban ${user.username}`),
      h("p", { class: "muted" }, "They can still read, but cannot post, comment or react. Their live connections close."),
      h("label", { for: "ban-reason" }, "Reason (shown to them and in the audit log)"),
      reason,
      h("label", { for: "ban-until" }, "Duration"),
      until,
      err.el,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "danger", value: "ban" }, "Ban"),
        h("button", { type: "button", value: "cancel", onclick: () => dlg.close() }, "Cancel"),
      ),
    ),
  );
  dlg.querySelector("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    err.clear();
    const body = { reason: reason.value.trim() };
    if (until.value) body.until = new Date(Date.now() + Number(until.value) * 3600e3).toISOString();
    try {
      const banned = await ctx.api.post(`/mod/users/${encodeURIComponent(user.id)}/ban`, body);
      dlg.close();
      ctx.toast(`${user.username} is banned.`);
      onDone?.(banned);
    } catch (e2) {
      err.show(e2);
    }
  });
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  reason.focus();
}

/** Where the page's header and the pages ask for a moderator's view. */
export function isMod(me) {
  return !!me && (me.role === "moderator" || me.role === "admin");
}

export function canWrite(me) {
  return !!me && !me.banned;
}

/** The six reaction kinds of API.md, with what people see and hear. */
export const REACTIONS = [
  ["like", "👍", "Like"],
  ["love", "❤️", "Love"],
  ["laugh", "😂", "Laugh"],
  ["wow", "😮", "Wow"],
  ["sad", "😢", "Sad"],
  ["thanks", "🙏", "Thanks"],
];

/**
 * reactionBar: a button per kind with its count, pressed for the
 * reader's own. path is the object's REST path ("/posts/1"); the bar
 * PUTs or DELETEs its reactions, hands the answer to onSaved (to keep
 * with the object) and shows it. update(x) shows
 * x.reactions (and x.my_reactions when present) without rebuilding the
 * buttons, so focus stays where it is while counts change live. Readers
 * who cannot react see the counts only.
 */
export function reactionBar(ctx, path, noun, canReact, onSaved) {
  let counts = {};
  let mine = new Set();
  const buttons = new Map();
  const el = h("div", { class: "reactions", role: "group", "aria-label": `Reactions to this ${noun}` });
  for (const [kind, emoji, label] of REACTIONS) {
    const n = h("span", { class: "reaction-n" });
    const b = h(
      "button",
      { type: "button", class: "reaction", dataset: { kind }, title: label },
      h("span", { class: "reaction-emoji", "aria-hidden": "true" }, emoji),
      n,
    );
    b.addEventListener("click", async () => {
      if (b.disabled) return;
      const on = !mine.has(kind);
      b.disabled = true;
      try {
        const res = on ? await ctx.api.put(`${path}/reactions/${kind}`) : await ctx.api.del(`${path}/reactions/${kind}`);
        onSaved?.(res);
        api.update(res);
      } catch (e) {
        ctx.toast(describeError(e));
      } finally {
        b.disabled = !canReact();
      }
    });
    buttons.set(kind, { b, n, label });
    el.appendChild(b);
  }
  const api = {
    el,
    update(x) {
      if (x?.reactions) counts = x.reactions;
      if (Array.isArray(x?.my_reactions)) mine = new Set(x.my_reactions);
      const can = canReact();
      el.classList.toggle("readonly", !can);
      for (const [kind, { b, n, label }] of buttons) {
        const c = counts[kind] || 0;
        const own = mine.has(kind);
        n.textContent = c > 0 ? String(c) : "";
        b.dataset.count = String(c);
        b.setAttribute("aria-pressed", own ? "true" : "false");
        b.setAttribute("aria-label", c > 0 ? `${label} (${c})` : label);
        b.classList.toggle("mine", own);
        b.classList.toggle("zero", c === 0);
        b.disabled = !can;
        // Without a way to react, only kinds someone used are shown.
        b.hidden = !can && c === 0;
      }
    },
  };
  return api;
}
