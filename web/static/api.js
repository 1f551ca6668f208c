// A thin client for the REST side of API.md: one tenant, an optional bearer
// token, errors as ApiError with the contract's machine code.

export class ApiError extends Error {
  constructor(status, code, message, fields, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "internal";
    this.fields = fields || null;
    this.retryAfter = retryAfter || 0;
  }
}

// Every POST carries an Idempotency-Key (API.md, safe retries), and one
// that may not have arrived is sent again with the same key: the server
// carries a POST out once however many times it is sent. Retried: a
// network error, no answer within POST_TIMEOUT_MS, a 502/503/504 from the
// server or a proxy in front of it, and the 409 with Retry-After that means
// "the first one is still running".
const POST_ATTEMPTS = 3;
const POST_TIMEOUT_MS = 20000;
const MAX_RETRY_DELAY_MS = 5000;

export class Api {
  /**
   * @param {object} opts
   * @param {string} opts.tenant
   * @param {string|null} [opts.token]
   * @param {string} [opts.baseURL]
   * @param {typeof fetch} [opts.fetch] default: the page's fetch at call time
   * @param {number} [opts.retryDelayMs=500] first delay before a retry; doubles
   * @param {number} [opts.timeoutMs] how long a POST waits for an answer
   */
  constructor({ tenant, token = null, baseURL = location.origin, fetch = null, retryDelayMs = 500, timeoutMs = POST_TIMEOUT_MS }) {
    this.tenant = tenant;
    this.token = token;
    this.base = `${baseURL}/api/v1/t/${encodeURIComponent(tenant)}`;
    this._fetch = fetch;
    this.retryDelayMs = retryDelayMs;
    this.timeoutMs = timeoutMs;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "POST") return this._read(await this._send(init, path));
    headers["Idempotency-Key"] = newIdempotencyKey();
    for (let attempt = 1; ; attempt++) {
      const last = attempt === POST_ATTEMPTS;
      let res;
      try {
        res = await this._send({ ...init, signal: AbortSignal.timeout(this.timeoutMs) }, path);
      } catch (e) {
        if (last) throw e;
        await sleep(this._retryDelay(attempt, 0));
        continue;
      }
      if (last || !retryable(res)) return this._read(res);
      await sleep(this._retryDelay(attempt, Number(res.headers.get("Retry-After")) || 0));
    }
  }

  async _send(init, path) {
    try {
      return await (this._fetch || fetch)(this.base + path, init);
    } catch {
      throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    }
  }

  async _read(res) {
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      // A proxy's HTML error page, for instance.
    }
    if (!res.ok) {
      const e = data?.error || {};
      throw new ApiError(res.status, e.code, e.message, e.fields, Number(res.headers.get("Retry-After")) || 0);
    }
    return data;
  }

  _retryDelay(attempt, retryAfterSeconds) {
    const ms = retryAfterSeconds > 0 ? retryAfterSeconds * 1000 : this.retryDelayMs * 2 ** (attempt - 1);
    return Math.min(ms, MAX_RETRY_DELAY_MS);
  }

  get(path) {
    return this.request("GET", path);
  }
  post(path, body) {
    return this.request("POST", path, body ?? {});
  }
  patch(path, body) {
    return this.request("PATCH", path, body);
  }
  put(path, body) {
    return this.request("PUT", path, body);
  }
  del(path) {
    return this.request("DELETE", path);
  }

  /** Fetches every page of a list (threads are read whole). */
  async all(path, max = 5000) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await this.get(`${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...(page.items || []));
      cursor = page.next_cursor;
    } while (cursor && items.length < max);
    return items;
  }
}

function retryable(res) {
  return res.status === 502 || res.status === 503 || res.status === 504 ||
    (res.status === 409 && res.headers.has("Retry-After"));
}

/**
 * A random key for one action. Not crypto.randomUUID(): that exists only on
 * https and localhost pages, and Agora may be served over plain http.
 */
function newIdempotencyKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A human sentence for an error, including validation details. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return "Something went wrong. Please try again.";
  if (err.code === "rate_limited") {
    return `You are going a bit fast: try again in ${err.retryAfter || "a few"} seconds.`;
  }
  // A 422's message is already written for people, field by field.
  return err.message;
}
