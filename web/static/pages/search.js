// Search: the search box (also on the community's home page) and the
// results page, best match first, each result a link to the post or to the
// comment in it. The query lives in the URL (/t/{tenant}/search?q=…), so a
// search can be linked, reloaded and gone back to.

import { h, setChildren, timeEl, avatar, serverHTML } from "../dom.js";
import { describeError } from "../api.js";

const pageSize = 20;

/** The search box; submitting it opens the results page. */
export function searchForm(ctx, { q = "", board = "" } = {}) {
  const input = h("input", {
    type: "search",
    id: "search-q",
    name: "q",
    value: q,
    maxlength: "200",
    placeholder: "Search posts and comments",
    "aria-label": "Search posts and comments",
    autocomplete: "off",
    enterkeyhint: "search",
  });
  const form = h(
    "form",
    { role: "search", class: "search-form", id: "search-form" },
    input,
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    const params = new URLSearchParams({ q: text });
    if (board) params.set("board", board);
    ctx.navigate(ctx.url(`/search?${params}`));
  });
  return form;
}

export function mount(root, ctx) {
  const params = new URLSearchParams(location.search);
  const q = (params.get("q") || "").trim();
  const board = params.get("board") || "";
  ctx.setTitle(q ? `Search: ${q}` : "Search");
  ctx.setCrumbs([["Search", ctx.url("/search")]]);

  const status = h("p", { class: "muted", id: "search-status", role: "status" });
  const list = h("ol", { class: "results", id: "search-results", "aria-label": "Results" });
  const more = h("button", { type: "button", class: "more", id: "search-more", hidden: true }, "More results");
  setChildren(root, h("h1", { tabindex: "-1" }, "Search"), searchForm(ctx, { q, board }), status, list, more);
  if (!q) {
    status.textContent = "Find posts and comments by their words, in any language.";
    ctx.markSynced();
    return undefined;
  }

  let disposed = false;
  let cursor = null;
  let count = 0;
  const load = async () => {
    more.disabled = true;
    const p = new URLSearchParams({ q, limit: String(pageSize) });
    if (board) p.set("board", board);
    if (cursor) p.set("cursor", cursor);
    try {
      const page = await ctx.api.get(`/search?${p}`);
      if (disposed) return;
      for (const r of page.items) list.appendChild(resultItem(ctx, r));
      count += page.items.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent =
        count === 0
          ? `Nothing found for “${q}”.`
          : `${count} ${count === 1 ? "result" : "results"} for “${q}”${cursor ? ", more below" : ""}.`;
    } catch (e) {
      if (disposed) return;
      status.textContent = describeError(e);
    } finally {
      more.disabled = false;
    }
    // Results are a snapshot, not a live room: once shown, the page is
    // as complete as it gets.
    ctx.markSynced();
  };
  more.addEventListener("click", load);
  load();
  return () => {
    disposed = true;
  };
}

function resultItem(ctx, r) {
  const href = ctx.url(`/p/${r.post.id}${r.comment_id ? `#c${r.comment_id}` : ""}`);
  return h(
    "li",
    { class: "result", dataset: { type: r.type, post: r.post.id, comment: r.comment_id || "" } },
    avatar(r.author),
    h(
      "div",
      { class: "result-main" },
      h("a", { href, class: "result-link" }, r.type === "comment" ? `Comment on “${r.post.title}”` : r.post.title),
      h("p", { class: "snippet" }, snippetNodes(r.snippet)),
      h("div", { class: "meta" }, h("span", { class: "author" }, r.author.username), " · ", timeEl(r.created_at)),
    ),
  );
}

// A snippet is HTML the server escaped, with <mark> around the matches.
// Only its text and its marks are kept: nothing else in it could ever
// become markup here.
function snippetNodes(html) {
  return [...serverHTML(html).childNodes].map((n) => (n.nodeName === "MARK" ? h("mark", null, n.textContent) : n.textContent));
}
