// Unread markers: what this browser has seen of each post, kept in
// localStorage per tenant. Times are the server's (last_activity_at), so a
// wrong local clock cannot hide activity.

const MAX_POSTS = 2000;

export class Seen {
  constructor(storage, tenant) {
    this.storage = storage;
    this.key = `agora:${tenant}:seen`;
    this.baseKey = `agora:${tenant}:since`;
    this.data = {};
    try {
      this.data = JSON.parse(storage?.getItem(this.key) || "{}") || {};
    } catch {
      this.data = {};
    }
  }

  /**
   * The time before which everything counts as read: set on the first
   * visit, so a newcomer does not see every old post marked.
   */
  baseline(fallbackISO) {
    let b = this.storage?.getItem(this.baseKey);
    if (!b) {
      b = fallbackISO || new Date().toISOString();
      this.storage?.setItem(this.baseKey, b);
    }
    return b;
  }

  /** {state: "new"|"activity"|"read", newComments} for a post. */
  status(post, baselineISO) {
    const seen = this.data[post.id];
    const active = Date.parse(post.last_activity_at || post.created_at);
    if (seen) {
      if (active <= Date.parse(seen.at)) return { state: "read", newComments: 0 };
      return { state: "activity", newComments: Math.max(0, (post.comment_count || 0) - (seen.c || 0)) };
    }
    if (Date.parse(post.created_at) > Date.parse(baselineISO)) return { state: "new", newComments: 0 };
    if (active > Date.parse(baselineISO)) return { state: "activity", newComments: 0 };
    return { state: "read", newComments: 0 };
  }

  /** Records that the post was read up to lastActivityISO with that many comments. */
  mark(postId, lastActivityISO, commentCount) {
    const prev = this.data[postId];
    if (prev && Date.parse(prev.at) >= Date.parse(lastActivityISO) && prev.c === commentCount) return;
    delete this.data[postId];
    this.data[postId] = { at: lastActivityISO, c: commentCount };
    const ids = Object.keys(this.data);
    if (ids.length > MAX_POSTS) {
      // Digit keys iterate in numeric order: the oldest posts go first.
      for (const id of ids.slice(0, ids.length - MAX_POSTS)) delete this.data[id];
    }
    try {
      this.storage?.setItem(this.key, JSON.stringify(this.data));
    } catch {
      // Quota: markers are a convenience.
    }
  }
}
