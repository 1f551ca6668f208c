// A board: its posts (pinned first, then newest activity), live through
// the board's room; how many comments the reader has not read (the
// server's unread_comments, kept live from post.activity and the reader's
// own room); a form for a new post.

import { h, setChildren, timeEl, avatar, compareIds } from "../dom.js";
import { describeError } from "../api.js";
import { badge, canWrite, formError, isMod, limitedField, liveRoom, presenceView, showError } from "../components.js";

export function mount(root, ctx, [boardId]) {
  const posts = new Map(); // id -> post
  const fresh = new Set(); // ids that arrived live while the page is open
  let nextCursor = null;
  let boardInfo = null;

  const heading = h("h1", { tabindex: "-1", id: "board-title" });
  const desc = h("p", { class: "muted" });
  const presence = presenceView();
  const list = h("ol", { class: "posts", id: "posts", "aria-label": "Posts" });
  const empty = h("p", { class: "muted empty", hidden: true }, "No posts yet. Start the first discussion!");
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more posts");

  const order = (a, b) =>
    (b.pinned ? 1 : 0) - (a.pinned ? 1 : 0) ||
    Date.parse(b.last_activity_at || b.created_at) - Date.parse(a.last_activity_at || a.created_at) ||
    compareIds(b.id, a.id);

  const visible = (p) => !p.hidden || isMod(ctx.me);

  const render = () => {
    const items = [...posts.values()].filter(visible).sort(order);
    setChildren(list, items.map(postItem));
    empty.hidden = items.length > 0;
    more.hidden = !nextCursor;
  };

  const postItem = (p) => {
    // Signed-in readers get unread_comments from the server; a post that
    // arrived while the page is open is new.
    const n = ctx.me ? p.unread_comments || 0 : 0;
    const isNew = fresh.has(p.id);
    const unread = isNew || n > 0;
    let marker = null;
    if (unread) {
      const text = isNew && n === 0 ? "New" : `${n} new`;
      const title = isNew && n === 0 ? "Posted while you were here" : `${n} ${n === 1 ? "comment" : "comments"} you have not read`;
      marker = h("span", { class: "unread", title, dataset: { unread: String(n) } }, text);
    }
    return h(
      "li",
      {
        class: `post-item${p.pinned ? " pinned" : ""}${p.hidden ? " is-hidden" : ""}${unread ? " is-unread" : ""}`,
        dataset: { id: p.id },
      },
      avatar(p.author),
      h(
        "div",
        { class: "post-main" },
        h(
          "div",
          { class: "post-title-line" },
          p.pinned ? badge("Pinned") : null,
          p.locked ? badge("Locked") : null,
          p.hidden ? badge("Hidden") : null,
          h("a", { href: ctx.url(`/p/${p.id}`), class: "post-link" }, p.title),
          marker,
        ),
        h(
          "div",
          { class: "meta" },
          h("span", { class: "author" }, p.author.username),
          " · ",
          timeEl(p.last_activity_at || p.created_at),
          " · ",
          h("span", { class: "count" }, `${p.comment_count} ${p.comment_count === 1 ? "comment" : "comments"}`),
        ),
      ),
    );
  };

  const showBoard = () => {
    heading.textContent = boardInfo.name;
    desc.textContent = boardInfo.description || "";
    desc.hidden = !boardInfo.description;
    ctx.setTitle(boardInfo.name);
    ctx.setCrumbs([[boardInfo.name, ctx.url(`/b/${boardId}`)]]);
  };

  // Renames are board.updated events in the tenant room, not the board's.
  const tenantRoom = ctx.client.subscribe("tenant", {
    onEvent(ev) {
      const d = ev.data;
      if (ev.type !== "board.updated" || d.id !== boardId || !boardInfo) return;
      if (typeof d.version === "number" && boardInfo.version !== undefined && d.version <= boardInfo.version) return;
      Object.assign(boardInfo, d.changes, { version: d.version });
      showBoard();
    },
  });

  const room = liveRoom(ctx, `board:${boardId}`, {
    async load() {
      const [boards, page] = await Promise.all([
        boardInfo ? null : ctx.api.all("/boards"),
        ctx.api.get(`/boards/${boardId}/posts?limit=50`),
      ]);
      if (boards) {
        boardInfo = boards.find((b) => b.id === boardId) || { id: boardId, name: "Board", description: "" };
        showBoard();
      }
      posts.clear();
      for (const p of page.items) posts.set(p.id, p);
      nextCursor = page.next_cursor;
      render();
    },
    apply(ev) {
      const d = ev.data;
      switch (ev.type) {
        case "post.created":
          if (posts.has(d.id)) return;
          posts.set(d.id, d);
          if (d.author.id !== ctx.me?.id) fresh.add(d.id);
          break;
        case "post.updated": {
          const p = posts.get(d.id);
          if (!p) {
            // Unhidden, or outside the loaded page: the list is read again.
            if (d.changes.hidden === false) room.reload();
            return;
          }
          if (d.version <= p.version) return;
          Object.assign(p, d.changes, { version: d.version });
          break;
        }
        case "post.deleted":
          if (!posts.delete(d.id)) return;
          break;
        case "post.activity": {
          const p = posts.get(d.id);
          if (!p) return;
          // More comments than before are unread until the reader's own
          // room says otherwise (their own comment marks the post read,
          // and read.updated makes us ask for the exact number).
          const more = d.comment_count - p.comment_count;
          if (ctx.me && more > 0) p.unread_comments = (p.unread_comments || 0) + more;
          if (ctx.me) p.unread_comments = Math.min(p.unread_comments || 0, d.comment_count);
          p.comment_count = d.comment_count;
          p.last_activity_at = d.last_activity_at;
          break;
        }
        default:
          return;
      }
      render();
    },
    onPresence: (m) => presence.update(m),
  });

  // The reader's own room: a post read here or on another device is read
  // up to somewhere; the server counts what is left.
  const userRoom = ctx.me
    ? ctx.client.subscribe(`user:${ctx.me.id}`, {
        onEvent(ev) {
          if (ev.type !== "read.updated" || !posts.has(ev.data.post_id)) return;
          ctx.api
            .get(`/posts/${ev.data.post_id}`)
            .then((fresh) => {
              const p = posts.get(fresh.id);
              if (!p) return;
              p.unread_comments = fresh.unread_comments;
              p.comment_count = fresh.comment_count;
              render();
            })
            .catch(() => {});
        },
      })
    : null;

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await ctx.api.get(`/boards/${boardId}/posts?limit=50&cursor=${encodeURIComponent(nextCursor)}`);
      for (const p of page.items) if (!posts.has(p.id)) posts.set(p.id, p);
      nextCursor = page.next_cursor;
      render();
    } catch (e) {
      ctx.toast(describeError(e));
    } finally {
      more.disabled = false;
    }
  });

  setChildren(
    root,
    h("div", { class: "page-head" }, h("div", null, heading, desc), presence.el),
    canWrite(ctx.me) ? newPostForm(ctx, boardId) : signInPrompt(ctx),
    list,
    empty,
    more,
  );

  room.start().catch((e) => {
    setChildren(
      root,
      h("h1", { tabindex: "-1" }, e.status === 404 ? "Board not found" : "Cannot load this board"),
      h("p", null, e.status === 404 ? "It may have been removed. " : `${describeError(e)} `, h("a", { href: ctx.url("/") }, "All boards")),
    );
  });
  return () => {
    room.dispose();
    tenantRoom.unsubscribe();
    userRoom?.unsubscribe();
  };
}

function signInPrompt(ctx) {
  if (ctx.me?.banned) return h("p", { class: "notice" }, "You are banned from writing here.");
  const next = encodeURIComponent(location.pathname);
  return h(
    "p",
    { class: "notice" },
    h("a", { href: ctx.url(`/login?next=${next}`) }, "Log in"),
    " or ",
    h("a", { href: ctx.url(`/register?next=${next}`) }, "register"),
    " to start a discussion.",
  );
}

function newPostForm(ctx, boardId) {
  const err = formError();
  const title = h("input", { id: "post-title", name: "title", required: true, autocomplete: "off" });
  const body = h("textarea", { id: "post-body", name: "body", required: true, rows: "6" });
  const titleField = limitedField(title, 200, "Titles");
  const bodyField = limitedField(body, 20000, "Posts");
  const submit = h("button", { type: "submit", class: "primary", id: "publish" }, "Publish");
  const form = h(
    "form",
    { class: "stack", id: "new-post", novalidate: true },
    h("label", { for: "post-title" }, "Title"),
    title,
    titleField.el,
    h("label", { for: "post-body" }, "What would you like to discuss?"),
    body,
    bodyField.el,
    err.el,
    h("div", { class: "actions" }, submit),
  );
  const details = h("details", { class: "card compose-post" }, h("summary", null, "New post"), form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.clear();
    titleField.clearError();
    bodyField.clearError();
    // Empty fields are the server's to name (its messages are the ones
    // people see everywhere); lengths are refused here, before sending.
    if (!titleField.check() || !bodyField.check()) return;
    submit.disabled = true;
    try {
      const p = await ctx.api.post(`/boards/${boardId}/posts`, { title: title.value, body: body.value });
      form.reset();
      ctx.navigate(ctx.url(`/p/${p.id}`));
    } catch (e2) {
      showError(e2, { title: titleField, body: bodyField }, err);
    } finally {
      submit.disabled = false;
    }
  });
  body.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  return details;
}
