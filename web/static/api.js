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

export class Api {
  constructor({ tenant, token = null, baseURL = location.origin }) {
    this.tenant = tenant;
    this.token = token;
    this.base = `${baseURL}/api/v1/t/${encodeURIComponent(tenant)}`;
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(this.base + path, init);
    } catch {
      throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    }
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

/** A human sentence for an error, including validation details. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return "Something went wrong. Please try again.";
  if (err.code === "rate_limited") {
    return `You are going a bit fast: try again in ${err.retryAfter || "a few"} seconds.`;
  }
  // A 422's message is already written for people, field by field.
  return err.message;
}
