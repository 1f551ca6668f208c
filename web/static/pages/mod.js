// Moderator pages: the reports queue, the members and the audit log.

import { h, setChildren, timeEl, excerpt, avatar } from "../dom.js";
import { describeError } from "../api.js";
import { banDialog, formError, isMod } from "../components.js";

const titles = { reports: "Reports", members: "Members", audit: "Audit log" };

export function mount(root, ctx, [which]) {
  const title = titles[which];
  ctx.setTitle(title);
  ctx.setCrumbs([[title, ctx.url(`/mod/${which}`)]]);
  if (!isMod(ctx.me)) {
    setChildren(
      root,
      h("h1", { tabindex: "-1" }, title),
      h("p", { class: "notice" }, "Only moderators can see this page. ", ctx.me ? null : h("a", { href: ctx.url(`/login?next=${encodeURIComponent(location.pathname)}`) }, "Log in")),
    );
    return;
  }
  if (which === "members") return members(root, ctx);
  return which === "reports" ? reports(root, ctx) : audit(root, ctx);
}

// Members: every user with role and ban state, found by the start of the
// name; admins change roles, moderators ban and unban members (admins
// anyone but themselves), as the API allows.
function members(root, ctx) {
  const me = ctx.me;
  const params = new URLSearchParams(location.search);
  const q = h("input", { id: "members-q", type: "search", name: "q", autocomplete: "off", spellcheck: "false", value: params.get("q") || "", placeholder: "Start of a username" });
  const bannedOnly = h("input", { id: "members-banned", type: "checkbox", name: "banned", checked: params.get("banned") === "true" });
  const body = h("tbody", { id: "members" });
  const msg = h("p", { class: "muted", id: "members-msg", role: "status", hidden: true });
  const more = h("button", { type: "button", class: "more", id: "more-members", hidden: true }, "Load more");
  const roles = ["member", "moderator", "admin"];
  let cursor = null;
  let query = 0; // answers to an older query are dropped

  const status = (u) => {
    if (!u.banned) return h("span", { class: "status ok" }, "Active");
    return h(
      "span",
      { class: "status banned" },
      u.banned_until ? ["Banned until ", h("time", { datetime: u.banned_until, title: new Date(u.banned_until).toLocaleString() }, new Date(u.banned_until).toLocaleDateString())] : "Banned",
    );
  };

  // What the API lets me do to u.
  const canBan = (u) => u.id !== me.id && (me.role === "admin" || u.role === "member");
  const canSetRole = (u) => u.id !== me.id && me.role === "admin";

  const row = (u) => {
    const tr = h("tr", { dataset: { id: u.id, username: u.username } });
    const render = (focus) => {
      tr.dataset.role = u.role;
      tr.dataset.banned = String(u.banned);
      const roleCell = canSetRole(u) ? roleSelect() : h("span", { class: `badge role ${u.role}` }, u.role);
      const actions = h("td", { class: "member-actions" });
      if (canBan(u)) {
        actions.append(
          u.banned
            ? h("button", { type: "button", class: "small", dataset: { action: "unban" }, "aria-label": `Unban ${u.username}`, onclick: unban }, "Unban")
            : h("button", { type: "button", class: "small danger", dataset: { action: "ban" }, "aria-label": `Ban ${u.username}`, onclick: ban }, "Ban"),
        );
      }
      setChildren(
        tr,
        h("th", { scope: "row", class: "member-name" }, avatar(u, "sm"), h("span", null, u.username), u.id === me.id ? h("span", { class: "muted small" }, " (you)") : null),
        h("td", { class: "member-role" }, roleCell),
        h("td", { class: "member-status" }, status(u)),
        h("td", { class: "member-joined" }, h("span", { class: "sr-only" }, "Joined "), timeEl(u.created_at)),
        actions,
      );
      // Keep the keyboard where it was: on the control that replaced the
      // one just used.
      if (focus) tr.querySelector(focus)?.focus();
    };
    const update = (res, focus) => {
      u.role = res.role;
      u.banned = !!res.banned;
      u.banned_until = res.banned_until ?? null;
      render(focus);
    };
    const roleSelect = () => {
      const sel = h(
        "select",
        { class: "role-select", dataset: { action: "role" }, "aria-label": `Role of ${u.username}` },
        roles.map((r) => h("option", { value: r, selected: r === u.role }, r)),
      );
      sel.value = u.role;
      sel.addEventListener("change", async () => {
        const to = sel.value;
        sel.disabled = true;
        try {
          update(await ctx.api.put(`/mod/users/${u.id}/role`, { role: to }), "[data-action=role]");
          ctx.toast(`${u.username} is now ${to === "admin" ? "an" : "a"} ${to}.`);
        } catch (e) {
          ctx.toast(describeError(e));
          render("[data-action=role]");
        }
      });
      return sel;
    };
    const ban = () => banDialog(ctx, u, (res) => res && update(res, "[data-action=unban]"));
    const unban = async (e) => {
      e.currentTarget.disabled = true;
      try {
        update(await ctx.api.post(`/mod/users/${u.id}/unban`), "[data-action=ban]");
        ctx.toast(`${u.username} can write again.`);
      } catch (e2) {
        ctx.toast(describeError(e2));
        render("[data-action=unban]");
      }
    };
    render(null);
    return tr;
  };

  const path = () => {
    const p = new URLSearchParams({ limit: "50" });
    if (q.value.trim()) p.set("q", q.value.trim());
    if (bannedOnly.checked) p.set("banned", "true");
    return `/mod/users?${p}`;
  };

  const load = async (fresh) => {
    const mine = fresh ? ++query : query;
    more.disabled = true;
    body.setAttribute("aria-busy", "true");
    try {
      const page = await ctx.api.get(`${path()}${!fresh && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      if (mine !== query) return;
      if (fresh) setChildren(body);
      body.append(...page.items.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      msg.hidden = body.childElementCount > 0;
      if (!body.childElementCount) {
        const name = q.value.trim();
        msg.textContent = bannedOnly.checked
          ? name ? `Nobody whose name starts with “${name}” is banned.` : "Nobody is banned."
          : `No members whose name starts with “${name}”.`;
      }
    } catch (e) {
      if (mine !== query) return;
      msg.hidden = false;
      msg.textContent = describeError(e);
    } finally {
      // Only the newest query's answer ends the wait (and a newer one may
      // be waiting for its timer).
      if (mine === query && !timer) {
        more.disabled = false;
        body.removeAttribute("aria-busy");
      }
    }
  };

  // The filter lives in the address, so a reload or a shared link shows
  // the same list.
  let timer = null;
  const refilter = () => {
    clearTimeout(timer);
    // What is shown no longer matches the filter until the answer comes.
    body.setAttribute("aria-busy", "true");
    timer = setTimeout(() => {
      timer = null;
      const p = new URLSearchParams();
      if (q.value.trim()) p.set("q", q.value.trim());
      if (bannedOnly.checked) p.set("banned", "true");
      history.replaceState(null, "", `${location.pathname}${p.size ? `?${p}` : ""}`);
      load(true);
    }, 200);
  };
  q.addEventListener("input", refilter);
  bannedOnly.addEventListener("change", refilter);
  more.addEventListener("click", () => load(false));

  setChildren(
    root,
    h("h1", { tabindex: "-1" }, "Members"),
    h(
      "form",
      { class: "members-filter", role: "search", "aria-label": "Find members", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "members-q" }, "Find by username"), q),
      h("label", { class: "check", for: "members-banned" }, bannedOnly, " Banned only"),
    ),
    msg,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "members-table" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, "Member"),
            h("th", { scope: "col" }, "Role"),
            h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, "Joined"),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
          ),
        ),
        body,
      ),
    ),
    more,
  );
  load(true);
  return () => clearTimeout(timer);
}

function reports(root, ctx) {
  const status = new URLSearchParams(location.search).get("status") === "resolved" ? "resolved" : "open";
  const list = h("ol", { class: "mod-list", id: "reports" });
  const msg = h("p", { class: "muted", hidden: true });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");

  const tab = (s, label) =>
    h("a", { href: ctx.url(`/mod/reports${s === "open" ? "" : "?status=resolved"}`), class: `tab${s === status ? " current" : ""}`, "aria-current": s === status ? "page" : null }, label);

  const item = (r) => {
    const target = r.post_id
      ? h("a", { href: ctx.url(`/p/${r.post_id}${r.target_type === "comment" ? `#c${r.target_id}` : ""}`) }, `${r.target_type} #${r.target_id}`)
      : h("span", { class: "muted" }, `${r.target_type} #${r.target_id} (deleted)`);
    const li = h(
      "li",
      { class: "card report", dataset: { id: r.id } },
      h("div", { class: "meta" }, h("strong", null, r.reporter.username), " reported ", target, " · ", timeEl(r.created_at)),
      h("blockquote", { class: "reason" }, r.reason),
      r.status === "resolved"
        ? h(
            "p",
            { class: "muted small" },
            `Resolved${r.resolved_by ? ` by ${r.resolved_by.username}` : ""}`,
            r.resolved_at ? [" ", timeEl(r.resolved_at)] : null,
            r.note ? `: ${r.note}` : "",
          )
        : resolveForm(r),
    );
    return li;
  };

  const resolveForm = (r) => {
    const id = `note-${r.id}`;
    const err = formError();
    const note = h("input", { id, name: "note", maxlength: "1000", placeholder: "What did you do? (optional)" });
    const form = h(
      "form",
      { class: "resolve" },
      h("label", { for: id, class: "sr-only" }, "Resolution note"),
      note,
      h("button", { type: "submit", class: "small primary" }, "Resolve"),
      err.el,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await ctx.api.post(`/mod/reports/${r.id}/resolve`, note.value.trim() ? { note: note.value.trim() } : {});
        form.closest("li").remove();
        ctx.toast("Report resolved.");
        if (!list.childElementCount) showEmpty();
      } catch (e2) {
        err.show(e2);
      }
    });
    return form;
  };

  const showEmpty = () => {
    msg.hidden = false;
    msg.textContent = status === "open" ? "No open reports. All clear!" : "No resolved reports yet.";
  };

  const load = pager(ctx, `/mod/reports?status=${status}&limit=50`, list, item, more, msg, showEmpty);
  more.addEventListener("click", load);
  setChildren(
    root,
    h("h1", { tabindex: "-1" }, "Reports"),
    h("nav", { class: "tabs", "aria-label": "Report status" }, tab("open", "Open"), tab("resolved", "Resolved")),
    msg,
    list,
    more,
  );
  load();
}

const actionWords = {
  "post.lock": "locked post",
  "post.unlock": "unlocked post",
  "post.pin": "pinned post",
  "post.unpin": "unpinned post",
  "post.hide": "hid post",
  "post.unhide": "unhid post",
  "comment.hide": "hid comment",
  "comment.unhide": "unhid comment",
  "user.ban": "banned user",
  "user.unban": "unbanned user",
  "user.role": "changed the role of user",
  "report.resolve": "resolved report",
};

function audit(root, ctx) {
  const body = h("tbody", { id: "audit" });
  const msg = h("p", { class: "muted", hidden: true });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");

  const target = (e) => {
    if (e.target_type === "post") return h("a", { href: ctx.url(`/p/${e.target_id}`) }, `#${e.target_id}`);
    return h("span", null, `#${e.target_id}`);
  };
  const change = (e) => {
    if (!e.after || typeof e.after !== "object") return "";
    return Object.entries(e.after)
      .map(([k, v]) => `${k}: ${typeof v === "string" ? excerpt(v, 40) : JSON.stringify(v)}`)
      .join(", ");
  };
  const row = (e) =>
    h(
      "tr",
      { dataset: { id: e.id } },
      h("td", null, timeEl(e.created_at)),
      h("td", null, e.actor.username),
      h("td", null, h("span", { class: "action" }, actionWords[e.action] || e.action), " ", target(e)),
      h("td", { class: "reason" }, e.reason || "", e.reason && change(e) ? " · " : "", h("span", { class: "muted" }, change(e))),
    );

  const load = pager(ctx, "/mod/audit?limit=50", body, row, more, msg, () => {
    msg.hidden = false;
    msg.textContent = "Nothing has been moderated yet.";
  });
  more.addEventListener("click", load);
  setChildren(
    root,
    h("h1", { tabindex: "-1" }, "Audit log"),
    h("p", { class: "muted" }, "Every moderation action, newest first. The log cannot be edited."),
    msg,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "audit" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Reason"))),
        body,
      ),
    ),
    more,
  );
  load();
}

// pager returns a loader for a keyset-paginated list: each call appends the
// next page's items, rendered, to into; "more" shows while pages remain,
// errors go to msg, and empty() runs when the list stays empty.
function pager(ctx, path, into, render, more, msg, empty) {
  let cursor = null;
  return async () => {
    more.disabled = true;
    try {
      const page = await ctx.api.get(`${path}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      into.append(...page.items.map(render));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!into.childElementCount) empty();
    } catch (e) {
      msg.hidden = false;
      msg.textContent = describeError(e);
    } finally {
      more.disabled = false;
    }
  };
}
