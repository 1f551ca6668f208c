// Moderator pages: the reports queue and the audit log.

import { h, setChildren, timeEl, excerpt } from "../dom.js";
import { describeError } from "../api.js";
import { formError, isMod } from "../components.js";

export function mount(root, ctx, [which]) {
  const title = which === "reports" ? "Reports" : "Audit log";
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
  return which === "reports" ? reports(root, ctx) : audit(root, ctx);
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
