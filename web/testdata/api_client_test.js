// Scenarios for api.js, run in Chromium by TestApiClient (api_client_test.go)
// with a fake fetch: every POST carries an Idempotency-Key and is retried
// with that same key when it may not have arrived. run() returns one
// result per scenario: {name, ok, detail}.

import { Api, ApiError } from "/static/api.js";

const answer = (status, body, headers = {}) => ({
  ok: status >= 200 && status < 300,
  status,
  headers: new Headers(headers),
  json: async () => body,
});

// newApi returns a client whose fetch plays the given answers in order: a
// value is returned, a function is called with the request, an Error is
// thrown (a network failure).
function newApi(answers, extra = {}) {
  const calls = [];
  const api = new Api({
    tenant: "acme",
    baseURL: "http://example.test",
    retryDelayMs: 1,
    fetch: async (url, init) => {
      calls.push({ url, init, key: init.headers["Idempotency-Key"] });
      const a = answers[Math.min(calls.length, answers.length) - 1];
      if (a instanceof Error) throw a;
      return typeof a === "function" ? a(init) : a;
    },
    ...extra,
  });
  return { api, calls };
}

function eq(a, b, what) {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  if (x !== y) throw new Error(`${what}: got ${x}, want ${y}`);
}

async function rejects(p, what) {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ApiError)) throw new Error(`${what}: threw ${e}, want an ApiError`);
    return e;
  }
  throw new Error(`${what}: resolved, want an error`);
}

const created = answer(201, { id: "7" });

const scenarios = {
  async everyPostHasItsOwnKey() {
    const { api, calls } = newApi([created]);
    eq(await api.post("/posts/1/comments", { body: "a" }), { id: "7" }, "answer");
    await api.post("/posts/1/comments", { body: "a" });
    eq(calls.length, 2, "requests");
    if (!/^[0-9a-f]{32}$/.test(calls[0].key)) throw new Error(`key ${calls[0].key}: want 32 hex digits`);
    if (calls[0].key === calls[1].key) throw new Error("two posts shared a key");
  },

  async networkErrorIsRetriedWithTheSameKey() {
    const { api, calls } = newApi([new TypeError("Failed to fetch"), created]);
    eq(await api.post("/posts/1/comments", { body: "a" }), { id: "7" }, "answer");
    eq(calls.length, 2, "requests");
    eq(calls[1].key, calls[0].key, "retry key");
    eq(calls[1].init.body, calls[0].init.body, "retry body");
  },

  async timeoutIsRetriedWithTheSameKey() {
    const hang = (init) =>
      new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason)));
    const { api, calls } = newApi([hang, created], { timeoutMs: 20 });
    eq(await api.post("/posts/1/comments", { body: "a" }), { id: "7" }, "answer");
    eq(calls.length, 2, "requests");
    eq(calls[1].key, calls[0].key, "retry key");
  },

  async stillRunningIsRetried() {
    const { api, calls } = newApi([answer(409, { error: { code: "conflict" } }, { "Retry-After": "0" }), created]);
    eq(await api.post("/posts/1/comments", { body: "a" }), { id: "7" }, "answer");
    eq(calls.length, 2, "requests");
    eq(calls[1].key, calls[0].key, "retry key");
  },

  async otherConflictIsNotRetried() {
    const { api, calls } = newApi([answer(409, { error: { code: "conflict", message: "the post is locked" } }), created]);
    const e = await rejects(api.post("/posts/1/comments", { body: "a" }), "locked post");
    eq([e.status, e.code, calls.length], [409, "conflict", 1], "status, code, requests");
  },

  async unavailableIsRetriedThenGivesUp() {
    const { api, calls } = newApi([answer(503, { error: { code: "unavailable", message: "down" } })]);
    const e = await rejects(api.post("/posts/1/comments", { body: "a" }), "database down");
    eq([e.status, calls.length], [503, 3], "status, requests");
    eq(new Set(calls.map((c) => c.key)).size, 1, "distinct keys");
  },

  async networkErrorOnEveryAttemptIsReported() {
    const { api, calls } = newApi([new TypeError("Failed to fetch")]);
    const e = await rejects(api.post("/posts/1/comments", { body: "a" }), "offline");
    eq([e.status, e.code, calls.length], [0, "network", 3], "status, code, requests");
  },

  async rateLimitIsNotRetried() {
    const { api, calls } = newApi([answer(429, { error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "3" }), created]);
    const e = await rejects(api.post("/posts/1/comments", { body: "a" }), "rate limited");
    eq([e.status, e.retryAfter, calls.length], [429, 3, 1], "status, retryAfter, requests");
  },

  async otherMethodsAreNeitherKeyedNorRetried() {
    const { api, calls } = newApi([new TypeError("Failed to fetch"), created]);
    await rejects(api.get("/boards"), "GET offline");
    await api.patch("/comments/1", { body: "b" });
    eq(calls.map((c) => [c.init.method, c.key ?? null]), [["GET", null], ["PATCH", null]], "requests");
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
