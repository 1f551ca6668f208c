// A post and its comments, live through the post's room: new comments in
// order, edits and deletes applied in place, presence, typing, the edit
// history and the moderation controls. Bodies are shown from the server's
// body_html (see serverHTML in dom.js); everything else is text.

import { h, setChildren, timeEl, avatar, compareIds, excerpt, serverHTML } from "../dom.js";
import { describeError } from "../api.js";
import {
  badge,
  banDialog,
  canWrite,
  confirmButton,
  formError,
  isMod,
  limitedField,
  liveRoom,
  presenceView,
  reactionBar,
  showError,
  typingView,
} from "../components.js";

// Comments are read a page at a time; a long thread shows the first ones
// and a button for more.
const PAGE = 50;

export function mount(root, ctx, [postId]) {
  const me = ctx.me;
  const mod = isMod(me);
  /** @type {Map<string, {c: object, el: HTMLElement, editing: boolean}>} */
  const comments = new Map();
  let post = null;
  let gone = null; // "deleted" | "hidden" once the post disappears for us
  let boardName = null;
  let loaded = false;
  let scrolled = false;
  let replyTo = null; // the comment the compose form answers, or null
  let nextCursor = null; // more comments to read, after the ones shown
  // Read state (signed-in readers). lastRead: where the reader had read
  // to when the page opened, moved on only by their other devices (what
  // this page reads stays "new since your last visit" while it is open);
  // sentRead: how far the server knows they have read.
  let lastRead = null;
  let sentRead = null;
  let serverUnread = 0; // unread_comments as the page opened
  let firstUnread = null; // the id the divider is at, or null
  let writing = 0; // comments being posted: their read.updated is ours
  let readTimer = null;

  const presence = presenceView();
  const typing = typingView(me);
  const canReact = () => canWrite(me) && (mod || !post?.locked);
  const postReactions = reactionBar(ctx, `/posts/${postId}`, "post", canReact, (res) => {
    if (post) Object.assign(post, { reactions: res.reactions, my_reactions: res.my_reactions });
  });
  const article = h("article", { class: "post card", id: "post", "aria-labelledby": "post-title" });
  const countHeading = h("h2", { id: "comments-heading" }, "Comments");
  countHeading.tabIndex = -1;
  const list = h("ol", { class: "comments", id: "comments", "aria-labelledby": "comments-heading" });
  const more = h("button", { type: "button", class: "more", id: "more-comments", hidden: true }, "Show more comments");
  const composeSlot = h("div", { class: "compose-slot" });
  const section = h(
    "section",
    { class: "thread", "aria-labelledby": "comments-heading" },
    countHeading,
    list,
    more,
    typing.el,
    composeSlot,
  );

  const divider = h("p", { class: "new-divider", id: "new-divider", role: "separator" });
  const jump = h("a", { class: "jump-unread", id: "jump-unread", href: "#", hidden: true }, "Jump to first unread");

  // The post ------------------------------------------------------------

  const renderPost = () => {
    if (gone) {
      setChildren(
        article,
        h("h1", { id: "post-title", tabindex: "-1" }, gone === "deleted" ? "This post was deleted" : "This post was hidden by a moderator"),
        gone === "hidden" && me && post?.author.id === me.id
          ? h("p", { class: "notice hidden-notice", role: "status" }, "It was yours: others no longer see it, and a moderator can make it visible again.")
          : null,
        h("p", null, h("a", { href: post ? ctx.url(`/b/${post.board_id}`) : ctx.url("/") }, "Back to the board")),
      );
      // A comment being written stays on screen, to be copied.
      section.hidden = !hasDraft();
      countHeading.hidden = list.hidden = more.hidden = true;
      return;
    }
    section.hidden = countHeading.hidden = list.hidden = false;
    more.hidden = !nextCursor;
    const p = post;
    article.classList.toggle("is-hidden", !!p.hidden);
    postReactions.update(p);
    const title = h("h1", { id: "post-title", tabindex: "-1" }, p.title);
    const canEdit = canWrite(me) && (mod || (me.id === p.author.id && !p.locked));
    const actions = h("div", { class: "actions post-actions" });
    const by = `post by ${p.author.username}`;
    if (canEdit) {
      actions.append(
        h("button", { type: "button", class: "link", id: "edit-post", "aria-label": `Edit ${by}`, onclick: () => editPost() }, "Edit"),
        confirmButton("Delete", "Delete this post and its comments?", async () => {
          try {
            await ctx.api.del(`/posts/${p.id}`);
            ctx.toast("Post deleted.");
            ctx.navigate(ctx.url(`/b/${p.board_id}`));
          } catch (e) {
            ctx.toast(describeError(e));
          }
        }, undefined, `Delete ${by}`),
      );
    }
    if (canWrite(me) && !mod && me.id !== p.author.id) actions.append(reportButton(ctx, "post", p.id, p.author.username));
    setChildren(
      article,
      h(
        "header",
        { class: "post-head" },
        h(
          "div",
          { class: "badges" },
          p.pinned ? badge("Pinned") : null,
          p.locked ? badge("Locked") : null,
          p.hidden ? badge("Hidden") : null,
        ),
        title,
        h(
          "div",
          { class: "meta" },
          avatar(p.author, "sm"),
          h("span", { class: "author" }, p.author.username),
          " · ",
          timeEl(p.created_at),
          editedMark(p, "post"),
        ),
      ),
      h("div", { class: "body", id: "post-body" }, serverHTML(p.body_html)),
      postReactions.el,
      actions.childElementCount ? actions : null,
      mod ? modBar() : null,
    );
  };

  const modBar = () => {
    const p = post;
    const act = (verb) => async (e) => {
      e.currentTarget.disabled = true;
      try {
        const res = await ctx.api.post(`/mod/posts/${p.id}/${verb}`);
        if (res && res.id === p.id) applyPostSnapshot(res);
        ctx.toast(`Post ${doneWords[verb]}.`);
      } catch (e2) {
        ctx.toast(describeError(e2));
      } finally {
        renderPost();
      }
    };
    return h(
      "div",
      { class: "modbar", role: "group", "aria-label": "Moderation" },
      h("span", { class: "modbar-label" }, "Moderate:"),
      h("button", { type: "button", class: "small", dataset: { action: p.locked ? "unlock" : "lock" }, onclick: act(p.locked ? "unlock" : "lock") }, p.locked ? "Unlock" : "Lock"),
      h("button", { type: "button", class: "small", dataset: { action: p.pinned ? "unpin" : "pin" }, onclick: act(p.pinned ? "unpin" : "pin") }, p.pinned ? "Unpin" : "Pin"),
      h("button", { type: "button", class: "small", dataset: { action: p.hidden ? "unhide" : "hide" }, onclick: act(p.hidden ? "unhide" : "hide") }, p.hidden ? "Unhide" : "Hide"),
      me.id !== p.author.id
        ? h("button", { type: "button", class: "small danger", dataset: { action: "ban" }, onclick: () => banDialog(ctx, p.author) }, `Ban ${p.author.username}`)
        : null,
    );
  };

  const editPost = () => {
    const err = formError();
    const title = h("input", { id: "edit-post-title", value: post.title, required: true });
    const body = h("textarea", { id: "edit-post-body", rows: "8", required: true });
    body.value = post.body;
    const titleField = limitedField(title, 200, "Titles");
    const bodyField = limitedField(body, 20000, "Posts");
    const form = h(
      "form",
      { class: "stack", id: "edit-post-form", novalidate: true },
      h("label", { for: "edit-post-title" }, "Title"),
      title,
      titleField.el,
      h("label", { for: "edit-post-body" }, "Body"),
      body,
      bodyField.el,
      err.el,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, "Save"),
        h("button", { type: "button", onclick: () => renderPost() }, "Cancel"),
      ),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.clear();
      titleField.clearError();
      bodyField.clearError();
      if (!titleField.check() || !bodyField.check()) return;
      const patch = {};
      if (title.value !== post.title) patch.title = title.value;
      if (body.value !== post.body) patch.body = body.value;
      try {
        if (Object.keys(patch).length) applyPostSnapshot(await ctx.api.patch(`/posts/${post.id}`, patch));
        renderPost();
        article.querySelector("#edit-post")?.focus();
      } catch (e2) {
        showError(e2, { title: titleField, body: bodyField }, err);
      }
    });
    form.addEventListener("keydown", (e) => e.key === "Escape" && renderPost());
    setChildren(article, form);
    title.focus();
  };

  const applyPostSnapshot = (p) => {
    if (post && p.version < post.version) return;
    post = { ...post, ...p };
    setCrumbs();
    ctx.setTitle(post.title);
    renderCompose();
  };

  // "edited" shows from edited_at (set by edits only, never by
  // moderation), so it survives a reload. The author and moderators may
  // open the history behind it.
  const editedMark = (x, kind) => {
    if (!x.edited_at) return null;
    const title = `edited ${new Date(x.edited_at).toLocaleString()}`;
    if (!mod && me?.id !== x.author.id) return h("span", { class: "edited", title }, " · edited");
    return [
      " · ",
      h(
        "button",
        {
          type: "button",
          class: "link edited",
          title,
          dataset: { action: "history" },
          "aria-label": `Edited: show the history of this ${kind}`,
          onclick: () => historyDialog(ctx, kind, x.id),
        },
        "edited",
      ),
    ];
  };

  // Comments --------------------------------------------------------------

  const commentVisible = (c) => !c.hidden || mod;

  const renderComment = (entry) => {
    const c = entry.c;
    const el = entry.el;
    el.dataset.version = String(c.version);
    el.classList.toggle("is-hidden", !!c.hidden);
    el.classList.toggle("mine", !!me && c.author.id === me.id);
    if (c.hidden && !mod) {
      // Only its author still sees it here (applyComment): say what happened.
      entry.editing = false;
      setChildren(
        el,
        avatar(c.author),
        h(
          "div",
          { class: "comment-main" },
          h("div", { class: "meta" }, h("span", { class: "author" }, c.author.username), " · ", timeEl(c.created_at), badge("Hidden")),
          h(
            "p",
            { class: "notice hidden-notice", role: "status" },
            "Your comment was hidden by a moderator. Others no longer see it; a moderator can make it visible again.",
          ),
          h("div", { class: "body comment-body" }, serverHTML(c.body_html)),
        ),
      );
      return;
    }
    if (entry.editing) return;
    const canEdit = canWrite(me) && (mod || (c.author.id === me.id && !post?.locked));
    const actions = h("div", { class: "actions comment-actions" });
    // Screen readers list buttons out of context: each says whose comment.
    const by = `comment by ${c.author.username}`;
    if (canEdit) {
      actions.append(
        h("button", { type: "button", class: "link", dataset: { action: "edit" }, "aria-label": `Edit ${by}`, onclick: () => editComment(entry) }, "Edit"),
        confirmButton(
          "Delete",
          "Delete this comment?",
          async () => {
            try {
              await ctx.api.del(`/comments/${c.id}`);
              removeComment(c.id, true);
              ctx.announce("Comment deleted.");
            } catch (e) {
              ctx.toast(describeError(e));
            }
          },
          undefined,
          `Delete ${by}`,
        ),
      );
    }
    if (mod) {
      const verb = c.hidden ? "unhide" : "hide";
      actions.append(
        h(
          "button",
          {
            type: "button",
            class: "link",
            dataset: { action: verb },
            "aria-label": `${c.hidden ? "Unhide" : "Hide"} ${by}`,
            onclick: async (e) => {
              e.currentTarget.disabled = true;
              try {
                const res = await ctx.api.post(`/mod/comments/${c.id}/${verb}`);
                applyComment(res && res.id === c.id ? res : { ...c, hidden: !c.hidden, version: c.version });
              } catch (e2) {
                ctx.toast(describeError(e2));
                renderComment(entry);
              }
            },
          },
          c.hidden ? "Unhide" : "Hide",
        ),
      );
      if (c.author.id !== me.id) {
        actions.append(
          h("button", { type: "button", class: "link danger", dataset: { action: "ban" }, "aria-label": `Ban ${c.author.username}`, onclick: () => banDialog(ctx, c.author) }, "Ban"),
        );
      }
    }
    if (canWrite(me) && !mod && c.author.id !== me.id) actions.append(reportButton(ctx, "comment", c.id, c.author.username));
    if (canWrite(me) && (mod || !post?.locked)) {
      actions.prepend(
        h("button", { type: "button", class: "link", dataset: { action: "reply" }, "aria-label": `Reply to the comment by ${c.author.username}`, onclick: () => startReply(c) }, "Reply"),
        h("button", { type: "button", class: "link", dataset: { action: "quote" }, "aria-label": `Quote the comment by ${c.author.username}`, onclick: () => startReply(c, true) }, "Quote"),
      );
    }
    entry.reactions.update(c);
    setChildren(
      el,
      c.id === firstUnread ? divider : null,
      avatar(c.author),
      h(
        "div",
        { class: "comment-main" },
        h(
          "div",
          { class: "meta" },
          h("span", { class: "author" }, c.author.username),
          " · ",
          timeEl(c.created_at),
          editedMark(c, "comment"),
          c.hidden ? badge("Hidden") : null,
        ),
        c.reply_to ? replyQuote(c.reply_to) : null,
        h("div", { class: "body comment-body" }, serverHTML(c.body_html)),
        h("div", { class: "comment-foot" }, entry.reactions.el, actions.childElementCount ? actions : null),
      ),
    );
  };

  // A reply shows what it answers: the answered comment's author and the
  // start of its text, linking to it; one no longer shown (hidden from
  // us, or deleted) is only named.
  const replyQuote = (id) => {
    const answered = comments.get(id)?.c;
    if (!answered) return h("p", { class: "reply-quote gone", dataset: { replyTo: id } }, "In reply to a comment that is no longer shown");
    return h(
      "a",
      { class: "reply-quote", href: `#c${id}`, dataset: { replyTo: id }, "aria-label": `In reply to ${answered.author.username}` },
      h("span", { class: "reply-to-author" }, `@${answered.author.username}`),
      " ",
      h("span", { class: "reply-to-text" }, excerpt(answered.body, 100)),
    );
  };

  // The quotes of the replies to a comment follow it when it changes or goes.
  const renderRepliesTo = (id) => {
    for (const e of comments.values()) if (e.c.reply_to === id) renderComment(e);
  };

  // startReply answers c; with quote, the compose box also gets c's text
  // as a Markdown quote, after what is already written.
  const startReply = (c, quote = false) => {
    replyTo = c;
    renderCompose();
    const ta = composeSlot.querySelector("#comment-body");
    renderReplyChip();
    if (!ta) return;
    if (quote) {
      const quoted = c.body.replace(/\s+$/, "").split("\n").map((l) => (l ? `> ${l}` : ">")).join("\n");
      const before = ta.value.replace(/\s+$/, "");
      ta.value = `${before ? `${before}\n\n` : ""}${quoted}\n\n`;
      ta.dispatchEvent(new Event("input", { bubbles: true }));
      ta.setSelectionRange(ta.value.length, ta.value.length);
    }
    ta.focus();
  };

  const renderReplyChip = () => {
    const chip = composeSlot.querySelector("#reply-chip");
    if (!chip) return;
    if (!replyTo) {
      chip.hidden = true;
      setChildren(chip);
      return;
    }
    chip.hidden = false;
    setChildren(
      chip,
      "Replying to ",
      h("a", { href: `#c${replyTo.id}` }, `@${replyTo.author.username}`),
      " ",
      h(
        "button",
        {
          type: "button",
          class: "link small",
          id: "cancel-reply",
          "aria-label": "Cancel the reply",
          onclick: () => {
            replyTo = null;
            renderReplyChip();
            composeSlot.querySelector("#comment-body")?.focus();
          },
        },
        "×",
      ),
    );
  };

  const editComment = (entry) => {
    const c = entry.c;
    entry.editing = true;
    const id = `edit-${c.id}`;
    const err = formError();
    const ta = h("textarea", { id, rows: "4", required: true });
    ta.value = c.body;
    const bodyField = limitedField(ta, 20000, "Comments");
    const done = () => {
      entry.editing = false;
      renderComment(entry);
      entry.el.querySelector("[data-action=edit]")?.focus();
    };
    const form = h(
      "form",
      { class: "stack edit-comment", novalidate: true },
      h("label", { for: id }, c.author.id === me?.id ? "Edit your comment" : `Edit the comment by ${c.author.username}`),
      ta,
      bodyField.el,
      err.el,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary small" }, "Save"),
        h("button", { type: "button", class: "small", onclick: done }, "Cancel"),
      ),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      err.clear();
      bodyField.clearError();
      if (ta.value === c.body) return done();
      if (!bodyField.check()) return;
      try {
        const res = await ctx.api.patch(`/comments/${c.id}`, { body: ta.value });
        entry.editing = false;
        applyComment(res);
        done();
      } catch (e2) {
        showError(e2, { body: bodyField }, err);
      }
    });
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") done();
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    setChildren(entry.el, avatar(c.author), h("div", { class: "comment-main" }, form));
    ta.focus();
  };

  // insertComment puts a new element in id order (the order REST lists).
  const insertComment = (c) => {
    const el = h("li", { class: "comment", id: `c${c.id}`, dataset: { id: c.id } });
    const entry = { c, el, editing: false, reactions: null };
    entry.reactions = reactionBar(ctx, `/comments/${c.id}`, "comment", canReact, (res) => {
      Object.assign(entry.c, { reactions: res.reactions, my_reactions: res.my_reactions });
    });
    comments.set(c.id, entry);
    renderComment(entry);
    let before = null;
    for (let n = list.lastElementChild; n; n = n.previousElementSibling) {
      if (compareIds(n.dataset.id, c.id) < 0) break;
      before = n;
    }
    list.insertBefore(el, before);
    return entry;
  };

  // removeComment takes a comment off the page. When focus was in it (or
  // the reader just deleted it), focus moves to the comment that took its
  // place, else the one before, else the heading: never to the page's
  // start, which is where a removed element leaves it.
  const removeComment = (id, deletedHere = false) => {
    const e = comments.get(id);
    if (!e) return false;
    const hadFocus = deletedHere || e.el.contains(document.activeElement);
    const near = e.el.nextElementSibling || e.el.previousElementSibling;
    comments.delete(id);
    e.el.remove();
    renderRepliesTo(id);
    if (replyTo?.id === id) {
      replyTo = null;
      renderReplyChip();
    }
    if (post) post.comment_count = Math.max(0, post.comment_count - 1);
    renderCount();
    showUnread();
    if (hadFocus) {
      const target = near || countHeading;
      if (target !== countHeading) target.tabIndex = -1;
      target.focus();
    }
    return true;
  };

  // applyComment merges a full comment (REST answer or created event):
  // stale versions are ignored, so it is safe in any order.
  const applyComment = (c) => {
    const e = comments.get(c.id);
    if (e && c.version < e.c.version) return;
    if (!commentVisible(c)) {
      // Its author is told, in its place, instead of seeing it vanish.
      if (e && me && c.author.id === me.id) {
        e.c = c;
        renderComment(e);
        return;
      }
      if (e) removeComment(c.id);
      return;
    }
    if (e) {
      e.c = c;
      renderComment(e);
    } else {
      insertComment(c);
      if (post) post.comment_count += 1;
      renderCount();
    }
    renderRepliesTo(c.id);
    showUnread();
    scheduleRead(READ_AFTER_MS);
  };

  const renderCount = () => {
    // With pages still unread, the post's count knows how many there are.
    const n = nextCursor ? Math.max(comments.size, post?.comment_count ?? 0) : comments.size;
    countHeading.textContent = n === 0 ? "No comments yet" : n === 1 ? "1 comment" : `${n} comments`;
    more.hidden = !nextCursor || !!gone;
    if (nextCursor) more.textContent = `Show more comments (${comments.size} of ${n})`;
  };

  // Compose ---------------------------------------------------------------

  const hasDraft = () => !!composeSlot.querySelector("#comment-body")?.value.trim();

  // blockReason says why a comment cannot be posted now that the compose
  // box is open (the post changed under it), or null.
  const blockReason = () => {
    if (gone === "deleted") return "This post was deleted while you were writing.";
    if (gone === "hidden") return "A moderator hid this post while you were writing.";
    if (post?.locked && !mod) return "This discussion was locked while you were writing.";
    return null;
  };

  const renderCompose = () => {
    const open = composeSlot.querySelector("#compose");
    if (open && (hasDraft() || !blockReason())) {
      // Keep what is being typed; say whether it can still be sent.
      const why = blockReason();
      const note = open.querySelector("#compose-blocked");
      note.hidden = !why;
      note.textContent = why ? `${why} Your text is kept here so you can copy it, but it cannot be posted.` : "";
      open.querySelector("#comment-submit").disabled = !!why;
      open.querySelector("#locked-note").hidden = !(post?.locked && mod);
      return;
    }
    if (!post || gone) {
      setChildren(composeSlot);
      return;
    }
    if (!me) {
      const next = encodeURIComponent(location.pathname);
      setChildren(
        composeSlot,
        h(
          "p",
          { class: "notice", id: "signin-to-comment" },
          h("a", { href: ctx.url(`/login?next=${next}`) }, "Log in"),
          " or ",
          h("a", { href: ctx.url(`/register?next=${next}`) }, "register"),
          " to join the discussion.",
        ),
      );
      return;
    }
    if (me.banned) {
      setChildren(composeSlot, h("p", { class: "notice" }, "You are banned from writing here", me.ban_reason ? `: ${me.ban_reason}` : "", "."));
      return;
    }
    if (post.locked && !mod) {
      setChildren(composeSlot, h("p", { class: "notice", id: "locked-notice" }, "This discussion is locked: no new comments."));
      return;
    }
    setChildren(composeSlot, composeForm());
    renderReplyChip();
  };

  const composeForm = () => {
    const err = formError();
    const ta = h("textarea", {
      id: "comment-body",
      name: "body",
      rows: "3",
      required: true,
      placeholder: "Write a comment…",
      "aria-describedby": "compose-hint",
    });
    const bodyField = limitedField(ta, 20000, "Comments");
    const submit = h("button", { type: "submit", class: "primary", id: "comment-submit" }, "Post comment");
    const form = h(
      "form",
      { class: "compose card", id: "compose", novalidate: true },
      h("label", { for: "comment-body" }, "Add a comment"),
      h("p", { class: "notice small", id: "locked-note", hidden: !post.locked }, "Locked: only moderators can comment."),
      h("p", { class: "reply-chip small", id: "reply-chip", hidden: true, "aria-live": "polite" }),
      h("p", { class: "notice", id: "compose-blocked", role: "status", hidden: true }),
      ta,
      bodyField.el,
      err.el,
      h(
        "div",
        { class: "actions" },
        h("span", { class: "muted small", id: "compose-hint" }, "Ctrl+Enter to post"),
        submit,
      ),
    );
    ta.addEventListener("input", () => {
      if (ta.value.trim() && !blockReason()) room.typing();
    });
    ta.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      // Ctrl+Enter submits past a disabled button.
      if (blockReason() || submit.disabled) return;
      err.clear();
      bodyField.clearError();
      if (!ta.value.trim()) {
        bodyField.showError("Write something first.");
        ta.focus();
        return;
      }
      if (!bodyField.check()) return;
      submit.disabled = true;
      try {
        const req = { body: ta.value };
        if (replyTo) req.reply_to = replyTo.id;
        writing++;
        let c;
        try {
          c = await ctx.api.post(`/posts/${postId}/comments`, req);
        } finally {
          writing--;
        }
        // Writing it marked the post read up to it (API.md).
        if (after(c.id, sentRead)) sentRead = c.id;
        ta.value = "";
        replyTo = null;
        renderReplyChip();
        bodyField.update();
        // A new comment goes at the end of the thread: read up to the end
        // first, so it does not land after a gap (if that fails, it is
        // shown after the gap rather than not at all).
        if (nextCursor) await readRest().catch(() => {});
        applyComment(c);
      } catch (e2) {
        showError(e2, { body: bodyField }, err);
      } finally {
        submit.disabled = !!blockReason();
        ta.focus();
      }
    });
    return form;
  };

  // Pages of comments -----------------------------------------------------

  // readPages reads comments from the start, a page at a time, until it
  // has at least `atLeast` of them (or the one `wanted` id), or the end.
  const readPages = async (atLeast, wanted) => {
    const items = [];
    let cursor = null;
    do {
      const page = await ctx.api.get(`/posts/${postId}/comments?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && (items.length < atLeast || (wanted && !items.some((c) => c.id === wanted))));
    return { items, cursor };
  };

  const showMore = async () => {
    if (!nextCursor) return;
    const page = await ctx.api.get(`/posts/${postId}/comments?limit=${PAGE}&cursor=${encodeURIComponent(nextCursor)}`);
    nextCursor = page.next_cursor;
    const first = page.items.find((c) => !comments.has(c.id));
    for (const c of page.items) if (!comments.has(c.id) && commentVisible(c)) insertComment(c);
    renderCount();
    showUnread();
    return first;
  };

  const readRest = async () => {
    while (nextCursor) await showMore();
  };

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const first = await showMore();
      // Keyboard users go on reading where the new comments begin.
      const el = first && comments.get(first.id)?.el;
      if (el) {
        el.tabIndex = -1;
        el.focus();
      }
    } catch (e) {
      ctx.toast(describeError(e));
    } finally {
      more.disabled = false;
    }
  });

  // Read state ------------------------------------------------------------

  const after = (id, pos) => pos === null || compareIds(id, pos) > 0;

  // showUnread puts the divider before the first comment after lastRead
  // that the reader did not write, with the count of those, and the jump
  // link to it. A reader who never opened the post gets none: everything
  // is new to them.
  const showUnread = () => {
    let first = null;
    let n = 0;
    if (me && lastRead !== null) {
      for (const id of [...comments.keys()].sort(compareIds)) {
        const c = comments.get(id).c;
        if (!after(id, lastRead) || c.author.id === me.id) continue;
        first ??= id;
        n++;
      }
      // Unread pages hold more of them: the server counted them all.
      if (nextCursor) n = Math.max(n, serverUnread);
    }
    if (first !== firstUnread) {
      const was = firstUnread;
      firstUnread = first;
      divider.remove();
      if (first) comments.get(first).el.prepend(divider);
      if (was && comments.has(was)) comments.get(was).el.classList.remove("first-unread");
    }
    if (first) comments.get(first).el.classList.add("first-unread");
    divider.textContent = n === 1 ? "1 new since your last visit" : `${n} new since your last visit`;
    divider.dataset.count = String(n);
    // With the first unread one on a page not read yet, the link reads on.
    const beyond = !first && nextCursor && me && lastRead !== null && serverUnread > 0;
    jump.hidden = !first && !beyond;
    jump.href = first ? `#c${first}` : "#";
    jump.textContent = `Jump to first unread (${n})`;
  };

  jump.addEventListener("click", async (e) => {
    e.preventDefault();
    if (!firstUnread && nextCursor) {
      try {
        await readRest();
      } catch (e2) {
        ctx.toast(describeError(e2));
        return;
      }
    }
    const el = firstUnread && comments.get(firstUnread)?.el;
    if (!el) return;
    el.tabIndex = -1;
    el.scrollIntoView({ block: "start" });
    el.focus({ preventScroll: true });
  });

  // The page tells the server how far the reader has read: up to the
  // newest comment shown, once the page has been visible a moment or the
  // reader reached its end; one request per pause at most.
  const READ_AFTER_MS = 2000;
  const scheduleRead = (delay) => {
    if (!me || !loaded || document.visibilityState !== "visible") return;
    clearTimeout(readTimer);
    readTimer = setTimeout(sendRead, delay);
  };
  const sendRead = async () => {
    readTimer = null;
    if (!me || gone || document.visibilityState !== "visible") return;
    const newest = [...comments.keys()].sort(compareIds).at(-1);
    if (!newest || !after(newest, sentRead)) return;
    const before = sentRead;
    sentRead = newest;
    try {
      await ctx.api.put(`/posts/${postId}/read`, { comment_id: newest });
    } catch {
      // Tried again at the next comment or visit.
      if (sentRead === newest) sentRead = before;
    }
  };
  const onVisible = () => scheduleRead(READ_AFTER_MS);
  document.addEventListener("visibilitychange", onVisible);
  // Reaching the end of the thread reads it at once.
  const endSeen = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !nextCursor) scheduleRead(300);
  });
  endSeen.observe(composeSlot);

  // Another device read further: what it read is no longer new here.
  const userRoom = me
    ? ctx.client.subscribe(`user:${me.id}`, {
        onEvent(ev) {
          const d = ev.data;
          if (ev.type !== "read.updated" || d.post_id !== postId || writing > 0) return;
          if (!after(d.last_read_comment_id, sentRead)) return; // ours, or behind us
          sentRead = d.last_read_comment_id;
          if (lastRead !== null && !after(d.last_read_comment_id, lastRead)) return;
          // Our own comment marks the post read too: not someone else's reading.
          if (comments.get(d.last_read_comment_id)?.c.author.id === me.id) return;
          lastRead = d.last_read_comment_id;
          showUnread();
        },
      })
    : null;

  // The room --------------------------------------------------------------

  const room = liveRoom(ctx, `post:${postId}`, {
    async load() {
      // Read as far as the page shows already (a reload must not shrink
      // it), and on to a comment the address points at.
      const wanted = scrolled ? null : /^#c(\d+)$/.exec(location.hash)?.[1];
      const [p, { items, cursor }] = await Promise.all([ctx.api.get(`/posts/${postId}`), readPages(comments.size, wanted)]);
      // A second read of an unchanged post leaves the page as it is (an
      // open editor stays open).
      const postChanged = !post || gone !== null || p.version !== post.version;
      if (postChanged) post = p;
      gone = null;
      if (boardName === null) {
        boardName = "Board";
        ctx.api
          .all("/boards")
          .then((bs) => {
            boardName = bs.find((b) => b.id === p.board_id)?.name || "Board";
            setCrumbs();
          })
          .catch(() => {});
      }
      setCrumbs();
      ctx.setTitle(p.title);
      // Reconcile: keep elements (and open editors) of comments that stay.
      // Past the last one read, what is shown is left for "show more".
      nextCursor = cursor;
      const ids = new Set(items.map((c) => c.id));
      const last = items.at(-1)?.id;
      for (const id of [...comments.keys()]) {
        if (!ids.has(id) && (!cursor || (last && compareIds(id, last) <= 0))) removeComment(id);
      }
      for (const c of items) {
        const e = comments.get(c.id);
        if (!e) insertComment(c);
        else if (c.version !== e.c.version) {
          // Unchanged comments keep their elements untouched: a second
          // read must not steal focus or close an open editor.
          e.c = c;
          renderComment(e);
        } else {
          // Reactions change no version: take the counts as read.
          e.c.reactions = c.reactions;
          e.c.my_reactions = c.my_reactions;
          e.reactions.update(c);
        }
      }
      post.comment_count = p.comment_count;
      if (me && !loaded) {
        lastRead = p.last_read_comment_id ?? null;
        serverUnread = p.unread_comments || 0;
      }
      if (me && p.last_read_comment_id && after(p.last_read_comment_id, sentRead)) sentRead = p.last_read_comment_id;
      post.reactions = p.reactions;
      post.my_reactions = p.my_reactions;
      postReactions.update(post);
      loaded = true;
      renderCount();
      if (postChanged) renderPost();
      renderCompose();
      showUnread();
      scheduleRead(READ_AFTER_MS);
      if (!scrolled && /^#c\d+$/.test(location.hash)) {
        scrolled = true;
        const target = document.getElementById(location.hash.slice(1));
        target?.classList.add("arrived");
        target?.scrollIntoView({ block: "center" });
      }
    },
    apply(ev) {
      const d = ev.data;
      switch (ev.type) {
        case "comment.created":
          if (comments.has(d.id)) return;
          if (nextCursor) {
            // Unread pages come first: it will be on the last of them.
            if (post && commentVisible(d)) post.comment_count += 1;
            renderCount();
            return;
          }
          applyComment(d);
          if (comments.has(d.id) && d.author.id !== me?.id) {
            typing.stop(d.author.id);
            ctx.announce(`New comment from ${d.author.username}: ${excerpt(d.body)}`);
            comments.get(d.id).el.classList.add("arrived");
          }
          return;
        case "comment.updated": {
          const e = comments.get(d.id);
          if (!e) {
            // Unhidden: members have never seen it; read the thread again.
            if (d.changes.hidden === false) room.reload();
            return;
          }
          if (d.version <= e.c.version) return;
          applyComment({ ...e.c, ...d.changes, version: d.version, updated_at: ev.at || e.c.updated_at });
          return;
        }
        case "comment.deleted":
          removeComment(d.id);
          return;
        case "post.updated": {
          if (!post || d.version <= post.version) return;
          post = { ...post, ...d.changes, version: d.version, updated_at: ev.at || post.updated_at };
          if (post.hidden && !mod) gone = "hidden";
          else if (gone === "hidden") {
            // Unhidden while we looked: what we hold may be incomplete.
            gone = null;
            room.reload();
          }
          if ("title" in d.changes) {
            setCrumbs();
            ctx.setTitle(post.title);
          }
          renderPost();
          // Lock or unlock changes who may edit: redraw the comments' buttons.
          for (const e of comments.values()) renderComment(e);
          renderCompose();
          return;
        }
        case "post.reactions":
          if (!post || d.id !== post.id) return;
          post.reactions = d.reactions;
          postReactions.update({ reactions: d.reactions });
          return;
        case "comment.reactions": {
          const e = comments.get(d.id);
          if (!e) return;
          e.c.reactions = d.reactions;
          e.reactions.update({ reactions: d.reactions });
          return;
        }
        case "post.deleted":
          gone = "deleted";
          renderPost();
          renderCompose();
          return;
      }
    },
    onPresence: (m) => presence.update(m),
    onTyping: (m) => typing.update(m),
  });

  // Board renames are board.updated events in the tenant room.
  const boards = ctx.client.subscribe("tenant", {
    onEvent(ev) {
      const d = ev.data;
      if (ev.type !== "board.updated" || !post || d.id !== post.board_id || typeof d.changes?.name !== "string") return;
      boardName = d.changes.name;
      setCrumbs();
    },
  });

  const setCrumbs = () => {
    if (!post) return;
    ctx.setCrumbs([
      [boardName || "Board", ctx.url(`/b/${post.board_id}`)],
      [excerpt(post.title, 40), ctx.url(`/p/${post.id}`)],
    ]);
  };

  setChildren(root, h("div", { class: "post-wrap" }, h("div", { class: "thread-bar" }, jump, presence.el), article, section));
  article.appendChild(h("p", { class: "loading" }, "Loading…"));
  section.hidden = true;

  room.start().catch((e) => {
    if (e.status === 404) {
      gone = "deleted";
      setChildren(
        article,
        h("h1", { tabindex: "-1" }, "Post not found"),
        h("p", null, "It may have been deleted or hidden. ", h("a", { href: ctx.url("/") }, "All boards")),
      );
      return;
    }
    setChildren(article, h("h1", { tabindex: "-1" }, "Cannot load this post"), h("p", null, describeError(e)));
  });
  return () => {
    clearTimeout(readTimer);
    document.removeEventListener("visibilitychange", onVisible);
    endSeen.disconnect();
    userRoom?.unsubscribe();
    room.dispose();
    boards.unsubscribe();
    typing.dispose();
  };
}

const doneWords = { lock: "locked", unlock: "unlocked", pin: "pinned", unpin: "unpinned", hide: "hidden", unhide: "visible again" };

/**
 * The edit history of a post or comment in a dialog, oldest first. Old
 * texts are shown as the Markdown their authors wrote, as text.
 */
function historyDialog(ctx, kind, id) {
  const list = h("ol", { class: "revisions", id: "revisions", "aria-busy": "true" }, h("li", { class: "loading" }, "Loading…"));
  const dlg = h(
    "dialog",
    { class: "dialog history", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, `History of this ${kind}`),
    list,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => dlg.close() }, "Close")),
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  ctx.api
    .all(`/${kind}s/${id}/revisions`)
    .then((items) => {
      setChildren(
        list,
        items.map((r, i) =>
          h(
            "li",
            { class: "revision", dataset: { version: String(r.version) } },
            h(
              "div",
              { class: "meta" },
              h("span", { class: "author" }, r.edited_by.username),
              i === 0 ? " wrote the original · " : i === items.length - 1 ? " made the current version · " : " edited · ",
              timeEl(r.edited_at),
            ),
            r.title !== undefined ? h("h3", { class: "revision-title" }, r.title) : null,
            h("pre", { class: "revision-body" }, r.body),
          ),
        ),
      );
    })
    .catch((e) => setChildren(list, h("li", { class: "form-error", role: "alert" }, describeError(e))))
    .finally(() => list.removeAttribute("aria-busy"));
}

/** "Report": asks for a reason in a small dialog and files it. */
function reportButton(ctx, targetType, targetId, author) {
  return h(
    "button",
    {
      type: "button",
      class: "link muted",
      dataset: { action: "report" },
      "aria-label": `Report ${targetType} by ${author}`,
      onclick: () => {
        const err = formError();
        const id = `report-reason`;
        const reason = h("textarea", { id, rows: "3", required: true, maxlength: "500" });
        const dlg = h(
          "dialog",
          { class: "dialog", "aria-labelledby": "report-title" },
          h(
            "form",
            { method: "dialog" },
            h("h2", { id: "report-title" }, `Report this ${targetType}`),
            h("label", { for: id }, "What is wrong with it?"),
            reason,
            err.el,
            h(
              "div",
              { class: "actions" },
              h("button", { type: "submit", class: "primary" }, "Send report"),
              h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
            ),
          ),
        );
        dlg.querySelector("form").addEventListener("submit", async (e) => {
          e.preventDefault();
          try {
            await ctx.api.post("/reports", { target_type: targetType, target_id: targetId, reason: reason.value.trim() });
            dlg.close();
            ctx.toast("Thanks: the moderators will have a look.");
          } catch (e2) {
            err.show(e2);
          }
        });
        dlg.addEventListener("close", () => dlg.remove());
        document.body.appendChild(dlg);
        dlg.showModal();
        reason.focus();
      },
    },
    "Report",
  );
}
