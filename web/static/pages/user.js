// A user's page: name, role, when they joined, and their newest posts and
// comments that the reader may see (GET users/{username}). Mentions in
// bodies link here.

import { h, setChildren, timeEl, avatar } from "../dom.js";
import { describeError } from "../api.js";
import { badge } from "../components.js";

export function mount(root, ctx, [username]) {
  const name = decodeURIComponent(username);
  setChildren(root, h("p", { class: "loading", "aria-busy": "true" }, "Loading…"));
  let gone = false;
  ctx.api
    .get(`/users/${encodeURIComponent(name)}`)
    .then((u) => {
      if (gone) return;
      ctx.setTitle(u.username);
      ctx.setCrumbs([[u.username, ctx.url(`/u/${encodeURIComponent(u.username)}`)]]);
      setChildren(
        root,
        h(
          "section",
          { class: "user-page card", id: "user-page", dataset: { username: u.username, role: u.role } },
          h(
            "header",
            { class: "user-head" },
            avatar(u, "lg"),
            h("h1", { tabindex: "-1", id: "user-name" }, u.username),
            u.role !== "member" ? badge(u.role, "role") : null,
          ),
          h("p", { class: "meta", id: "user-joined" }, "Joined ", timeEl(u.created_at)),
          h("h2", { id: "recent-heading" }, "Recent posts and comments"),
          u.recent.length === 0
            ? h("p", { class: "muted empty", id: "recent-empty" }, "Nothing here yet.")
            : h(
                "ol",
                { class: "recent", id: "recent", "aria-labelledby": "recent-heading" },
                u.recent.map((it) => recentItem(ctx, it)),
              ),
        ),
      );
      ctx.markSynced();
    })
    .catch((e) => {
      if (gone) return;
      ctx.setTitle(e.status === 404 ? "No such user" : "Cannot load this user");
      setChildren(
        root,
        h("h1", { tabindex: "-1" }, e.status === 404 ? "No such user" : "Cannot load this user"),
        h("p", null, e.status === 404 ? `Nobody here is called ${name}. ` : describeError(e) + " ", h("a", { href: ctx.url("/") }, "All boards")),
      );
    });
  return () => {
    gone = true;
  };
}

function recentItem(ctx, it) {
  const href = it.comment_id ? ctx.url(`/p/${it.post.id}#c${it.comment_id}`) : ctx.url(`/p/${it.post.id}`);
  return h(
    "li",
    { class: "recent-item", dataset: { type: it.type } },
    h(
      "div",
      { class: "meta" },
      it.type === "comment" ? "Commented on " : "Posted ",
      h("a", { href, class: "recent-link" }, it.post.title),
      " · ",
      timeEl(it.created_at),
    ),
    h("p", { class: "excerpt" }, it.excerpt),
  );
}
