// A community's home: the search box and its boards, live through the
// "tenant" room, with how many comments the signed-in reader has not read
// in each (the server's unread_comments of its newest posts, live from the
// boards' rooms and the reader's own); admins can add a board.

import { h, setChildren, compareIds } from "../dom.js";
import { describeError } from "../api.js";
import { formError, liveRoom, presenceView } from "../components.js";
import { searchForm } from "./search.js";

export function mount(root, ctx) {
  ctx.setTitle("Boards");
  const boards = new Map(); // id -> board
  const list = h("ul", { class: "boards", id: "boards" });
  const status = h("p", { class: "muted", hidden: true });
  const heading = h("h1", { tabindex: "-1" }, "Boards");
  const presence = presenceView();
  // board id -> Map(post id -> {unread, count}) for the newest posts.
  const unread = new Map();
  const boardRooms = new Map();
  const unreadIn = (id) => [...(unread.get(id)?.values() || [])].reduce((n, p) => n + p.unread, 0);

  const render = () => {
    const items = [...boards.values()].sort((a, b) => a.name.localeCompare(b.name) || compareIds(a.id, b.id));
    setChildren(
      list,
      items.map((b) =>
        h(
          "li",
          { class: "board-item", dataset: { id: b.id } },
          h(
            "a",
            { href: ctx.url(`/b/${b.id}`), class: "board-link" },
            h("span", { class: "board-name" }, b.name),
            unreadIn(b.id) > 0
              ? h("span", { class: "unread", dataset: { unread: String(unreadIn(b.id)) }, title: "Comments you have not read" }, `${unreadIn(b.id)} new`)
              : null,
          ),
          b.description ? h("p", { class: "muted" }, b.description) : null,
        ),
      ),
    );
    status.hidden = items.length > 0;
    status.textContent = "No boards yet.";
  };

  const room = liveRoom(ctx, "tenant", {
    async load() {
      const items = await ctx.api.all("/boards");
      boards.clear();
      for (const b of items) boards.set(b.id, b);
      render();
      if (ctx.me) for (const b of items.slice(0, MAX_WATCHED)) watchBoard(b.id);
    },
    apply(ev) {
      if (ev.type === "board.created") {
        if (!boards.has(ev.data.id)) boards.set(ev.data.id, ev.data);
        if (ctx.me && boardRooms.size < MAX_WATCHED) watchBoard(ev.data.id);
      } else if (ev.type === "board.updated") {
        const b = boards.get(ev.data.id);
        if (!b || ev.data.version <= b.version) return;
        Object.assign(b, ev.data.changes, { version: ev.data.version });
      } else return;
      render();
    },
    onPresence: (m) => presence.update(m),
  });

  // watchBoard reads a board's newest posts for their unread counts and
  // follows its room: more comments are unread until the reader's own
  // room says they read them (then the server counts again).
  const watchBoard = (id) => {
    if (boardRooms.has(id)) return;
    const load = async () => {
      const page = await ctx.api.get(`/boards/${id}/posts?limit=50`);
      unread.set(id, new Map(page.items.map((p) => [p.id, { unread: p.unread_comments || 0, count: p.comment_count }])));
      render();
    };
    boardRooms.set(
      id,
      liveRoom(ctx, `board:${id}`, {
        load,
        apply(ev) {
          const d = ev.data;
          const posts = unread.get(id);
          if (!posts) return;
          if (ev.type === "post.created") posts.set(d.id, { unread: 0, count: 0 });
          else if (ev.type === "post.deleted") posts.delete(d.id);
          else if (ev.type === "post.activity" && posts.has(d.id)) {
            const p = posts.get(d.id);
            p.unread = Math.min(d.comment_count, p.unread + Math.max(0, d.comment_count - p.count));
            p.count = d.comment_count;
          } else return;
          render();
        },
        onSynced: () => {},
      }),
    );
    boardRooms.get(id).start().catch(() => {});
  };
  const userRoom = ctx.me
    ? ctx.client.subscribe(`user:${ctx.me.id}`, {
        onEvent(ev) {
          if (ev.type !== "read.updated") return;
          const id = [...unread.entries()].find(([, posts]) => posts.has(ev.data.post_id))?.[0];
          if (!id) return;
          ctx.api
            .get(`/posts/${ev.data.post_id}`)
            .then((p) => {
              const known = unread.get(id)?.get(p.id);
              if (!known) return;
              known.unread = p.unread_comments || 0;
              known.count = p.comment_count;
              render();
            })
            .catch(() => {});
        },
      })
    : null;

  setChildren(root, h("div", { class: "page-head" }, heading, presence.el), searchForm(ctx), status, list);
  if (ctx.me?.role === "admin") {
    const onCreated = (b) => {
      if (!boards.has(b.id)) boards.set(b.id, b);
      render();
    };
    root.appendChild(newBoardForm(ctx, onCreated));
  }

  room.start().catch((e) => {
    if (e.status === 404) {
      setChildren(
        root,
        h("h1", { tabindex: "-1" }, "No such community"),
        h("p", null, `There is no community called “${ctx.tenant}”. `, h("a", { href: "/" }, "Try another.")),
      );
    } else if (e.status === 401) {
      setChildren(
        root,
        h("h1", { tabindex: "-1" }, "Members only"),
        h("p", null, "This community is private. ", h("a", { href: ctx.url("/login") }, "Log in"), " to read it."),
      );
    } else {
      status.hidden = false;
      status.textContent = describeError(e);
    }
  });
  return () => {
    room.dispose();
    userRoom?.unsubscribe();
    for (const r of boardRooms.values()) r.dispose();
  };
}

// How many boards the home page follows for unread counts: a community
// with more shows them for the first ones (by the order boards are listed).
const MAX_WATCHED = 30;

function newBoardForm(ctx, onCreated) {
  const err = formError();
  const name = h("input", { id: "board-name", name: "name", required: true, maxlength: "100" });
  const desc = h("input", { id: "board-description", name: "description", maxlength: "500" });
  const form = h(
    "form",
    { class: "card stack", id: "new-board" },
    h("h2", null, "New board"),
    h("label", { for: "board-name" }, "Name"),
    name,
    h("label", { for: "board-description" }, "Description (optional)"),
    desc,
    err.el,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create board")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.clear();
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const b = await ctx.api.post("/boards", { name: name.value.trim(), description: desc.value.trim() });
      form.reset();
      onCreated(b);
      ctx.toast(`Board “${b.name}” created.`);
    } catch (e2) {
      err.show(e2);
    } finally {
      btn.disabled = false;
    }
  });
  return form;
}
