// Scenarios for the page components (components.js), run in Chromium by
// TestComponents (components_test.go): the views are fed the messages the
// server sends and their text is checked. run() returns one result per
// scenario: {name, ok, detail}.

import { presenceView } from "/static/components.js";

function eq(a, b, what) {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}: got ${x}, want ${y}`);
}

const entry = (n) => ({ user: { id: String(n), username: `u${String(n).padStart(4, "0")}` }, since: "2030-01-01T00:00:00Z" });
const entries = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i));

// What a presence view shows: its count line, the "+N" avatar, how many
// avatars, and what a screen reader hears.
function shown(p) {
  const c = p.el.querySelector(".presence-count");
  return {
    text: c.textContent,
    users: c.dataset.users,
    anonymous: c.dataset.anonymous,
    avatars: p.el.querySelectorAll(".avatars .avatar:not(.more)").length,
    more: p.el.querySelector(".avatars .more")?.textContent ?? "",
    heard: p.el.querySelector(".sr-only").textContent,
  };
}

const scenarios = {
  smallRoomCountsItsList() {
    const p = presenceView();
    p.update({ op: "presence", room: "post:1", state: entries(1, 2), count: 2, anonymous: 1 });
    eq(shown(p), { text: "3 here (1 anonymous)", users: "2", anonymous: "1", avatars: 2, more: "", heard: "Here now: u0001, u0002" }, "state");
    p.update({ op: "presence", room: "post:1", joins: [entry(3)], leaves: [entry(1)], count: 2, anonymous: 0 });
    eq(shown(p), { text: "2 here", users: "2", anonymous: "0", avatars: 2, more: "", heard: "Here now: u0002, u0003" }, "joins and leaves");
  },

  anonymousOnly() {
    const p = presenceView();
    p.update({ op: "presence", room: "post:1", state: [], count: 0, anonymous: 4 });
    eq(shown(p).text, "4 here (anonymous)", "count line");
  },

  // API.md "Large rooms": state lists 100 of them, then only counts.
  largeRoomShowsTheServersCount() {
    const p = presenceView();
    p.update({ op: "presence", room: "post:1", state: entries(1, 100), truncated: true, count: 1234, anonymous: 56 });
    eq(shown(p), {
      text: "1,290 here (56 anonymous)", users: "1234", anonymous: "56", avatars: 8, more: "+1,226",
      heard: shown(p).heard,
    }, "truncated state");
    if (!shown(p).heard.endsWith("and 1,134 more")) throw new Error(`screen reader hears ${JSON.stringify(shown(p).heard)}`);
    p.update({ op: "presence", room: "post:1", count: 1530, anonymous: 212 });
    eq([shown(p).text, shown(p).users, shown(p).more], ["1,742 here (212 anonymous)", "1530", "+1,522"], "count message");
    // Back under 100: the whole list again, and its count.
    p.update({ op: "presence", room: "post:1", state: entries(1, 99), count: 99, anonymous: 0 });
    eq([shown(p).text, shown(p).more], ["99 here", "+91"], "small again");
    if (shown(p).heard.includes("more")) throw new Error(`screen reader hears ${JSON.stringify(shown(p).heard)} of a complete list`);
  },

  // A room that grows past 100 sends counts without a state: the count
  // follows them, not the list the page last had.
  roomThatGrowsPastTheCap() {
    const p = presenceView();
    p.update({ op: "presence", room: "post:1", state: entries(1, 100), count: 100, anonymous: 0 });
    p.update({ op: "presence", room: "post:1", count: 101, anonymous: 0 });
    eq([shown(p).text, shown(p).users], ["101 here", "101"], "after growing");
  },
};

export async function run() {
  const results = [];
  for (const [name, fn] of Object.entries(scenarios)) {
    try {
      await fn();
      results.push({ name, ok: true, detail: "" });
    } catch (e) {
      results.push({ name, ok: false, detail: String(e && e.stack ? e.stack : e) });
    }
  }
  return results;
}
