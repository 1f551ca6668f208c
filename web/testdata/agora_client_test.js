// Scenarios for agora.js, run in Chromium by TestAgoraClient (agora_test.go)
// with a fake WebSocket and a fake fetch. run() returns one result per
// scenario: {name, ok, detail}.

import { AgoraClient, State } from "/static/agora.js";

class FakeWS {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWS.all.push(this);
  }
  send(s) {
    this.sent.push(JSON.parse(s));
  }
  close(code, reason) {
    this.readyState = 3;
    this.closedWith = { code, reason };
  }
  // What the server does:
  accept() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(...msgs) {
    this.onmessage?.({ data: msgs.map((m) => JSON.stringify(m)).join("\n") });
  }
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}
FakeWS.all = [];

function fakeFetch(calls, respond) {
  return async (url, init) => {
    calls.push({ url, init });
    return respond(url, init);
  };
}

const json = (status, body) => ({
  ok: status >= 200 && status < 300,
  status,
  headers: new Headers(),
  json: async () => body,
});

// until polls a condition with a deadline (no fixed sleeps).
async function until(what, cond, ms = 2000) {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function eq(a, b, what) {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}: got ${x}, want ${y}`);
}

function newClient(extra = {}) {
  FakeWS.all = [];
  const states = [];
  const client = new AgoraClient({
    tenant: "acme",
    baseURL: "http://example.test",
    WebSocket: FakeWS,
    fetch: fakeFetch([], () => json(500, {})),
    onState: (s) => states.push(s),
    minDelayMs: 10,
    maxDelayMs: 40,
    ...extra,
  });
  return { client, states, ws: () => FakeWS.all[FakeWS.all.length - 1] };
}

function recorder() {
  const got = { events: [], resets: [], presence: [], typing: [], errors: [], subscribed: [] };
  return {
    got,
    handlers: {
      onEvent: (m) => got.events.push(m.seq),
      onReset: (m) => got.resets.push(m.seq),
      onPresence: (m) => got.presence.push(m),
      onTyping: (m) => got.typing.push(m.user.username),
      onError: (e) => got.errors.push(e.code),
      onSubscribed: (m) => got.subscribed.push(m.seq),
    },
  };
}

const ev = (room, seq) => ({ op: "event", room, seq, type: "comment.created", data: { id: String(seq) }, at: "2030-01-01T00:00:00Z" });

const scenarios = {
  async anonymousConnectsWithoutTicketAndSubscribes() {
    const { client, ws } = newClient();
    client.subscribe("post:1", {});
    client.connect();
    await until("a socket", () => ws());
    eq(ws().url, "ws://example.test/api/v1/t/acme/ws", "url");
    ws().accept();
    eq(ws().sent, [{ op: "subscribe", room: "post:1" }], "sent on open");
    eq(client.state.state, State.LIVE, "state");
    client.close();
  },

  async tokenFetchesATicketFirst() {
    const calls = [];
    const { client, ws } = newClient({
      token: "tok",
      fetch: fakeFetch(calls, () => json(200, { ticket: "t/1", expires_at: "2030-01-01T00:00:00Z" })),
    });
    client.connect();
    await until("a socket", () => ws());
    eq(calls.length, 1, "ticket requests");
    eq(calls[0].url, "http://example.test/api/v1/t/acme/ws/ticket", "ticket url");
    eq(calls[0].init.method, "POST", "method");
    eq(calls[0].init.headers.Authorization, "Bearer tok", "auth header");
    eq(ws().url, "ws://example.test/api/v1/t/acme/ws?ticket=t%2F1", "ws url");
    client.close();
  },

  async unauthorizedTicketStopsAndTells() {
    let told = 0;
    const { client, states } = newClient({ token: "old", fetch: fakeFetch([], () => json(401, {})), onUnauthorized: () => told++ });
    client.connect();
    await until("offline", () => client.state.state === State.OFFLINE);
    eq(told, 1, "onUnauthorized calls");
    eq(FakeWS.all.length, 0, "sockets opened");
    if (!states.some((s) => s.reason)) throw new Error("no reason given");
    client.close();
  },

  async framesSplitGapsResyncDuplicatesDrop() {
    const { client, ws } = newClient();
    const r = recorder();
    client.subscribe("post:1", r.handlers);
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:1", seq: 5 }, ev("post:1", 6), ev("post:1", 7));
    eq(r.got.events, [6, 7], "two events in one frame");
    ws().frame(ev("post:1", 7), ev("post:1", 6));
    eq(r.got.events, [6, 7], "duplicates dropped");
    ws().sent = [];
    ws().frame(ev("post:1", 9));
    ws().frame(ev("post:1", 10));
    eq(r.got.events, [6, 7], "nothing past a gap");
    eq(ws().sent, [{ op: "subscribe", room: "post:1", since: 7 }], "one resubscribe with since");
    ws().frame({ op: "subscribed", room: "post:1", seq: 10 }, ev("post:1", 8), ev("post:1", 9), ev("post:1", 10), ev("post:1", 11));
    eq(r.got.events, [6, 7, 8, 9, 10, 11], "replay then live, each once");
    eq(client.seq("post:1"), 11, "last seq");
    client.close();
  },

  async resetAsksForAReload() {
    const { client, ws } = newClient();
    const r = recorder();
    client.subscribe("post:2", r.handlers);
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:2", seq: 3 }, { op: "reset", room: "post:2", seq: 90 }, ev("post:2", 91));
    eq(r.got.resets, [90], "resets");
    eq(r.got.events, [91], "events after the reset");
    client.close();
  },

  async presenceTypingAndErrorsReachTheRoom() {
    const { client, ws } = newClient();
    const r = recorder();
    const other = [];
    client.onError = (e) => other.push(e.code);
    client.subscribe("post:3", r.handlers);
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame(
      { op: "subscribed", room: "post:3", seq: 0 },
      { op: "presence", room: "post:3", state: [{ user: { id: "1", username: "al" }, since: "x" }], anonymous: 2 },
      { op: "typing", room: "post:3", user: { id: "1", username: "al" } },
      { op: "error", code: "bad_request", message: "?" },
      { op: "something_new", room: "post:3" },
      { op: "error", code: "not_found", message: "no", room: "post:3" },
    );
    eq(r.got.presence.length, 1, "presence");
    eq(r.got.typing, ["al"], "typing");
    eq(r.got.errors, ["not_found"], "room errors");
    eq(other, ["bad_request"], "connection errors");
    // A room that does not exist is not subscribed again after a reconnect.
    ws().drop(1006);
    await until("a new socket", () => FakeWS.all.length === 2);
    ws().accept();
    eq(ws().sent, [], "nothing resubscribed");
    client.close();
  },

  async reconnectResubscribesWithSince() {
    const { client, ws, states } = newClient();
    client.subscribe("post:4", {});
    client.subscribe("tenant", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:4", seq: 12 }, { op: "subscribed", room: "tenant", seq: 0 }, ev("post:4", 13));
    const first = ws();
    first.drop(1006);
    eq(states[states.length - 1].state, State.RECONNECTING, "state after a drop");
    if (!(states[states.length - 1].retryAt > Date.now() - 1)) throw new Error("no retryAt");
    await until("a new socket", () => ws() !== first);
    ws().accept();
    eq(ws().sent, [{ op: "subscribe", room: "post:4", since: 13 }, { op: "subscribe", room: "tenant", since: 0 }], "resubscribed");
    client.close();
  },

  async goingAwayReconnectsAtOnce() {
    // A long backoff: only the "at once" path can reconnect in time.
    const { client, ws } = newClient({ minDelayMs: 60000, maxDelayMs: 60000 });
    client.subscribe("post:5", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:5", seq: 1 });
    for (const code of [1001, 1013]) {
      const before = ws();
      before.drop(code, "bye");
      await until(`a reconnect after ${code}`, () => ws() !== before, 1500);
      ws().accept();
      eq(ws().sent, [{ op: "subscribe", room: "post:5", since: 1 }], `resubscribe after ${code}`);
      // The next at-once needs a healthy period; fake one.
      client._attempt = 0;
    }
    client.close();
  },

  async policyAndNormalClosesStop() {
    for (const [code, reason] of [
      [1008, "you are banned"],
      [1000, ""],
    ]) {
      const { client, ws } = newClient();
      client.connect();
      await until("a socket", () => ws());
      ws().accept();
      ws().drop(code, reason);
      eq(client.state.state, State.OFFLINE, `state after ${code}`);
      if (reason && client.state.reason !== reason) throw new Error(`reason ${client.state.reason}`);
      if (!client.state.reason) throw new Error(`no reason after ${code}`);
      // Longer than several backoff steps of 10-40 ms: still one socket.
      await new Promise((r) => setTimeout(r, 200));
      eq(FakeWS.all.length, 1, `sockets after ${code}`);
      // Retrying by hand works.
      client.reconnectNow();
      await until("a manual reconnect", () => FakeWS.all.length === 2);
      client.close();
    }
  },

  async backoffGrowsCapsAndResetsAfterHealthyPeriod() {
    const { client, ws, states } = newClient({ minDelayMs: 100, maxDelayMs: 400, healthyAfterMs: 50 });
    client.connect();
    const delays = [];
    for (let i = 0; i < 5; i++) {
      await until("a socket", () => FakeWS.all.length === i + 1, 3000);
      ws().drop(1006); // refused before it opened
      const s = states[states.length - 1];
      delays.push(s.retryAt - Date.now());
    }
    const within = (d, lo, hi) => d >= lo - 15 && d <= hi + 5;
    const want = [
      [50, 100],
      [100, 200],
      [200, 400],
      [200, 400],
      [200, 400],
    ];
    want.forEach(([lo, hi], i) => {
      if (!within(delays[i], lo, hi)) throw new Error(`delay ${i} = ${delays[i]}, want ${lo}..${hi} (all: ${delays})`);
    });
    await until("a socket", () => FakeWS.all.length === 6, 3000);
    ws().accept();
    await until("a healthy minute (50 ms here)", () => client._attempt === 0, 2000);
    ws().drop(1006);
    const d = states[states.length - 1].retryAt - Date.now();
    if (!within(d, 50, 100)) throw new Error(`delay after a healthy period = ${d}, want 50..100`);
    client.close();
  },

  async typingIsThrottledPerRoom() {
    const { client, ws } = newClient();
    const sub = client.subscribe("post:6", {});
    client.subscribe("post:7", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().sent = [];
    sub.typing();
    sub.typing();
    client.typing("post:6");
    client.typing("post:7");
    eq(ws().sent, [{ op: "typing", room: "post:6" }, { op: "typing", room: "post:7" }], "typing frames");
    client.close();
  },

  async unsubscribeWhenTheLastHandlerLeaves() {
    const { client, ws } = newClient();
    const a = client.subscribe("board:1", {});
    const b = client.subscribe("board:1", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    eq(ws().sent, [{ op: "subscribe", room: "board:1" }], "one subscription for two handlers");
    a.unsubscribe();
    eq(ws().sent.length, 1, "still subscribed");
    b.unsubscribe();
    eq(ws().sent[1], { op: "unsubscribe", room: "board:1" }, "unsubscribed");
    client.close();
  },

  async pingsAfterSilenceAndStaysLiveOnPong() {
    const { client, ws } = newClient({ idlePingMs: 40, pongTimeoutMs: 200 });
    client.subscribe("post:1", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:1", seq: 0 });
    await until("a ping", () => ws().sent.some((m) => m.op === "ping"));
    eq(ws().sent.filter((m) => m.op === "ping"), [{ op: "ping" }], "the ping frame");
    // Answered each time: still the same live socket after several rounds.
    for (let round = 0; round < 3; round++) {
      const n = ws().sent.filter((m) => m.op === "ping").length;
      ws().frame({ op: "pong" });
      await until(`ping ${n + 1}`, () => ws().sent.filter((m) => m.op === "ping").length === n + 1);
    }
    eq(FakeWS.all.length, 1, "sockets");
    eq(client.state.state, State.LIVE, "state");
    client.close();
  },

  async trafficPostponesThePing() {
    const { client, ws } = newClient({ idlePingMs: 150, pongTimeoutMs: 1000 });
    client.subscribe("post:1", {});
    client.connect();
    await until("a socket", () => ws());
    ws().accept();
    ws().frame({ op: "subscribed", room: "post:1", seq: 0 });
    const start = performance.now();
    // An event every 30 ms for 300 ms: the silence never reaches 150 ms.
    for (let seq = 1; seq <= 10; seq++) {
      await new Promise((r) => setTimeout(r, 30));
      ws().frame(ev("post:1", seq));
    }
    const pingsDuringTraffic = ws().sent.filter((m) => m.op === "ping").length;
    if (performance.now() - start < 300) throw new Error("the traffic was too quick to tell");
    eq(pingsDuringTraffic, 0, "pings while events arrive");
    await until("a ping once quiet", () => ws().sent.some((m) => m.op === "ping"));
    client.close();
  },

  async noPongMeansReconnecting() {
    const { client, states, ws } = newClient({ idlePingMs: 20, pongTimeoutMs: 60, minDelayMs: 5000, maxDelayMs: 5000 });
    client.subscribe("post:1", {});
    client.connect();
    await until("a socket", () => ws());
    const first = ws();
    first.accept();
    const pingedAt = await (async () => {
      await until("a ping", () => first.sent.some((m) => m.op === "ping"));
      return performance.now();
    })();
    await until("reconnecting", () => client.state.state === State.RECONNECTING, 1000);
    const waited = performance.now() - pingedAt;
    if (waited < 50) throw new Error(`gave up ${waited} ms after the ping, want the 60 ms timeout`);
    if (!first.closedWith) throw new Error("the silent socket was not closed");
    if (!states[states.length - 1].reason) throw new Error("no reason given");
    // The dead socket's late close changes nothing.
    first.drop(1006);
    eq(client.state.state, State.RECONNECTING, "state after the late close");
    client.reconnectNow();
    await until("a new socket", () => FakeWS.all.length === 2);
    ws().accept();
    eq(ws().sent, [{ op: "subscribe", room: "post:1" }], "resubscribed");
    eq(client.state.state, State.LIVE, "live again");
    client.close();
  },

  async unknownTenantStops() {
    const calls = [];
    const { client } = newClient({ token: "tok", fetch: fakeFetch(calls, () => json(404, { error: { code: "not_found" } })) });
    client.connect();
    await until("offline", () => client.state.state === State.OFFLINE);
    if (!/no such community/i.test(client.state.reason)) throw new Error(`reason ${client.state.reason}`);
    await new Promise((r) => setTimeout(r, 100)); // minDelayMs is 10: retries would have come
    eq(calls.length, 1, "ticket requests");
    eq(FakeWS.all.length, 0, "sockets opened");
    client.close();
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
