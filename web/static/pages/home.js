// A community's home: the search box and its boards, live through the
// "tenant" room; admins can add a board.

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

  const render = () => {
    const items = [...boards.values()].sort((a, b) => a.name.localeCompare(b.name) || compareIds(a.id, b.id));
    setChildren(
      list,
      items.map((b) =>
        h(
          "li",
          { class: "board-item", dataset: { id: b.id } },
          h("a", { href: ctx.url(`/b/${b.id}`), class: "board-link" }, h("span", { class: "board-name" }, b.name)),
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
    },
    apply(ev) {
      if (ev.type === "board.created") {
        if (!boards.has(ev.data.id)) boards.set(ev.data.id, ev.data);
      } else if (ev.type === "board.updated") {
        const b = boards.get(ev.data.id);
        if (!b || ev.data.version <= b.version) return;
        Object.assign(b, ev.data.changes, { version: ev.data.version });
      } else return;
      render();
    },
    onPresence: (m) => presence.update(m),
  });

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
  return () => room.dispose();
}

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
