// The bell in the header: the signed-in user's unread count and their
// notifications, from the server's state (API.md, Notifications). The
// count is read once over REST and then follows the user's own room,
// whose notification.created and notification.read carry the
// authoritative unread_count: every tab and device shows the same number.

import { h, setChildren, timeEl } from "./dom.js";
import { describeError } from "./api.js";
import { liveRoom } from "./components.js";

const LIST = 20;

/**
 * bell(ctx, me) -> {el, panel, dispose}. ctx: {api, client, url,
 * navigate, announce}. el goes into the header, panel anywhere in the
 * body (it is placed under the header when open).
 */
export function bell(ctx, me) {
  let count = 0;
  let items = null; // the list as last read, newest first; null: not read yet
  let open = false;
  let disposed = false;

  const badgeEl = h("span", { class: "bell-count", id: "bell-count", "aria-hidden": "true", hidden: true });
  const button = h(
    "button",
    { type: "button", class: "bell", id: "bell", "aria-expanded": "false", "aria-controls": "notif-panel", dataset: { count: "0" } },
    bellIcon(),
    badgeEl,
  );
  const list = h("ol", { class: "notif-list", id: "notif-list" });
  const markAll = h("button", { type: "button", class: "link small", id: "notif-mark-all" }, "Mark all read");
  const panel = h(
    "section",
    { class: "notif-panel card", id: "notif-panel", hidden: true, "aria-labelledby": "notif-title" },
    h("div", { class: "notif-head" }, h("h2", { id: "notif-title", tabindex: "-1" }, "Notifications"), markAll),
    list,
  );

  const showCount = (n) => {
    if (typeof n !== "number" || n < 0) return;
    count = n;
    button.dataset.count = String(n);
    badgeEl.textContent = n > 99 ? "99+" : String(n);
    badgeEl.hidden = n === 0;
    button.setAttribute("aria-label", n === 0 ? "Notifications, none unread" : `Notifications, ${n} unread`);
    markAll.disabled = n === 0;
  };
  showCount(0);

  const renderList = () => {
    if (items === null) {
      setChildren(list, h("li", { class: "loading" }, "Loading…"));
      return;
    }
    if (items.length === 0) {
      setChildren(list, h("li", { class: "muted empty", id: "notif-empty" }, "Nothing yet. Replies, mentions and news about your posts show up here."));
      return;
    }
    setChildren(list, items.map(itemEl));
  };

  const itemEl = (n) => {
    const href = n.post ? ctx.url(`/p/${n.post.id}${n.comment_id ? `#c${n.comment_id}` : ""}`) : null;
    const body = [
      h("span", { class: "notif-what" }, describe(n)),
      // About content the reader can no longer see the server sends no
      // title and no excerpt: nothing to show then.
      n.post?.title ? h("span", { class: "notif-title" }, n.post.title) : null,
      n.excerpt ? h("span", { class: "notif-excerpt" }, n.excerpt) : null,
      h("span", { class: "notif-time" }, timeEl(n.created_at)),
    ];
    const open = async (e) => {
      e.preventDefault();
      close();
      if (!n.read) markRead([n.id]);
      if (href) ctx.navigate(href);
    };
    return h(
      "li",
      { class: `notif${n.read ? "" : " is-unread"}`, dataset: { id: n.id, kind: n.kind } },
      href
        ? h("a", { class: "notif-link", href, onclick: open }, body)
        : h("button", { type: "button", class: "notif-link", onclick: open }, body),
    );
  };

  const markRead = async (ids) => {
    for (const n of items || []) if (ids === "all" || ids.includes(n.id)) n.read = true;
    renderList();
    try {
      const res = await ctx.api.post("/me/notifications/read", ids === "all" ? { all: true } : { ids });
      showCount(res?.unread_count);
    } catch (e) {
      ctx.toast?.(describeError(e));
    }
  };

  const readList = async () => {
    try {
      const page = await ctx.api.get(`/me/notifications?limit=${LIST}`);
      if (disposed) return;
      items = page.items || [];
      renderList();
    } catch (e) {
      setChildren(list, h("li", { class: "form-error", role: "alert" }, describeError(e)));
    } finally {
      list.removeAttribute("aria-busy");
    }
  };

  const place = () => {
    const top = document.querySelector("header.top")?.getBoundingClientRect().bottom ?? 56;
    panel.style.top = `${Math.round(top) + 4}px`;
  };

  const onOutside = (e) => {
    if (!panel.contains(e.target) && !button.contains(e.target)) close();
  };
  const onKey = (e) => {
    if (e.key === "Escape") {
      close();
      button.focus();
    }
  };
  function close() {
    if (!open) return;
    open = false;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", onOutside, true);
    document.removeEventListener("keydown", onKey);
  }
  const show = () => {
    open = true;
    place();
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    document.addEventListener("pointerdown", onOutside, true);
    document.addEventListener("keydown", onKey);
    list.setAttribute("aria-busy", "true");
    renderList();
    readList();
    panel.querySelector("#notif-title").focus();
  };
  button.addEventListener("click", () => (open ? close() : show()));
  markAll.addEventListener("click", () => markRead("all"));

  const room = liveRoom(ctx, `user:${me.id}`, {
    async load() {
      const res = await ctx.api.get("/me/notifications/unread_count");
      showCount(res.unread_count);
      if (open) await readList();
    },
    apply(ev) {
      const d = ev.data || {};
      if (ev.type === "notification.created") {
        showCount(d.unread_count);
        const n = d.notification;
        if (n && items && !items.some((x) => x.id === n.id)) {
          items.unshift(n);
          if (open) renderList();
        }
        if (n) ctx.announce?.(`New notification: ${describe(n)}`);
      } else if (ev.type === "notification.read") {
        showCount(d.unread_count);
        for (const n of items || []) if (d.all || d.ids?.includes(n.id)) n.read = true;
        if (open) renderList();
      }
    },
    onSynced: () => {
      button.dataset.synced = "true";
    },
  });
  room.start().catch(() => {
    // Shown as zero; the next event or reconnect tells the real number.
  });

  return {
    el: button,
    panel,
    dispose() {
      disposed = true;
      close();
      room.dispose();
      panel.remove();
    },
  };
}

// bellIcon is drawn, not an emoji: it looks the same with every font.
function bellIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ class: "bell-icon", viewBox: "0 0 24 24", width: "20", height: "20", "aria-hidden": "true", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round" })) {
    svg.setAttribute(k, v);
  }
  for (const d of ["M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9", "M10.3 21a1.94 1.94 0 0 0 3.4 0"]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
  }
  return svg;
}

/** A sentence for a notification: who did what. */
export function describe(n) {
  const who = n.actor?.username || "Someone";
  const what = n.comment_id ? "comment" : "post";
  switch (n.kind) {
    case "reply":
      return `${who} replied`;
    case "mention":
      return `${who} mentioned you`;
    case "moderation":
      if (n.detail === "hide") return `A moderator hid your ${what}`;
      if (n.detail === "unhide") return `A moderator made your ${what} visible again`;
      if (n.detail === "lock") return "A moderator locked your post";
      return `A moderator acted on your ${what}`;
    case "report_resolved":
      return "Your report was resolved";
    case "role":
      return n.detail ? `You are now ${n.detail === "admin" ? "an admin" : `a ${n.detail}`}` : "Your role changed";
    case "ban":
      return n.detail === "unban" ? "Your ban was lifted" : "You were banned";
    default:
      return "Something happened";
  }
}
