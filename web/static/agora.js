/**
 * agora.js: a client for Agora's realtime protocol (WebSocket, API.md
 * "Realtime"). An ES module with no dependencies; the forum UI uses it and
 * so can you:
 *
 *   import { AgoraClient } from "/static/agora.js";
 *
 *   const client = new AgoraClient({
 *     tenant: "demo",
 *     token: localStorage.getItem("token"),   // from POST auth/login; null: anonymous
 *     onState: (s) => show(s),               // {state, retryAt?, reason?, code?}
 *   });
 *   const sub = client.subscribe("post:17", {
 *     onSubscribed(msg) {},                  // {room, seq}
 *     onEvent(ev) {},                        // {room, seq, type, data, at}, in seq order, once
 *     onReset(msg) {},                       // {room, seq}: history was lost, reload over REST
 *     onPresence(msg) {},                    // {state, anonymous} after each subscribe, then {joins, leaves}
 *     onTyping(msg) {},                      // {room, user}
 *     onError(err) {},                       // {code, message, room}
 *   });
 *   client.connect();
 *   sub.typing();                            // throttled: at most one frame per 2 s per room
 *   sub.unsubscribe();
 *   client.close();
 *
 * What it does for you, so that a page sees every event of a room exactly
 * once and in order:
 *
 * - Browser auth: a WebSocket cannot carry an Authorization header, so with
 *   a token it first asks for a single-use ticket (POST /api/v1/t/{tenant}/ws/ticket
 *   with "Authorization: Bearer <token>") and connects to
 *   /api/v1/t/{tenant}/ws?ticket=<ticket>. Without a token it connects
 *   anonymously (read only). A 401 for the ticket means the token is no
 *   longer valid: the client goes offline and calls onUnauthorized; call
 *   setToken(null) (or a new token) to go on.
 * - Frames: a server frame may carry several JSON messages separated by
 *   "\n"; each is handled in order.
 * - Sequence numbers: it keeps the last seq of every room. An event at or
 *   below it is a duplicate and is dropped; one that skips ahead is a gap:
 *   the client subscribes again with `since` and the server replays what
 *   was missed. `reset` (the server no longer has that history) goes to
 *   onReset: reload the room's state over REST.
 * - Reconnection: every room is subscribed again with its last seq, so
 *   nothing committed while the connection was down is lost. Delays grow
 *   exponentially with jitter (1 s, 2 s, 4 s ... capped at 30 s) and start
 *   over once a connection has stayed up for a minute. Close codes follow
 *   API.md: 1001 (server going away) and 1013 (try again later) reconnect at
 *   once; 1008 (policy: token revoked, banned, flooding) and 1000 (normal)
 *   stop, with the reason in onState. The browser's "online" event skips a
 *   pending wait.
 * - Liveness: a browser never sees the server's WebSocket pings, and a
 *   connection whose peer vanished (a sleeping laptop, a dropped NAT entry)
 *   can look open for minutes. So when nothing has arrived for 25 s the
 *   client sends {"op":"ping"}; when no answer (the pong, or anything
 *   else) comes within 10 s it calls the connection lost and reconnects.
 * - An unknown tenant (404 for the ticket) stops with the reason in
 *   onState instead of retrying for ever.
 *
 * Loading a page without missing an event: subscribe first, and read the
 * room over REST after `subscribed` has arrived; events that arrive before
 * the REST answer are applied on top of it. They are idempotent when
 * applied by id and `version` (create: skip a known id; update: skip a
 * version at or below the one you hold; delete: remove if present).
 */

/** Connection states reported to onState. */
export const State = Object.freeze({
  CONNECTING: "connecting",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
});

const TYPING_INTERVAL_MS = 2000;

export class AgoraClient {
  /**
   * @param {object} opts
   * @param {string} opts.tenant         tenant slug
   * @param {string|null} [opts.token]  bearer token; null or absent: anonymous
   * @param {string} [opts.baseURL]      http(s) origin of the server; default: the page's
   * @param {(s: {state: string, retryAt?: number, reason?: string, code?: number, attempt?: number}) => void} [opts.onState]
   * @param {(err: {code: string, message: string, room?: string}) => void} [opts.onError]
   *        errors not tied to a subscribed room
   * @param {() => void} [opts.onUnauthorized] the token was refused
   * @param {number} [opts.minDelayMs=1000]  first reconnect delay
   * @param {number} [opts.maxDelayMs=30000] cap of the reconnect delay
   * @param {number} [opts.healthyAfterMs=60000] uptime after which delays start over
   * @param {number} [opts.idlePingMs=25000] silence after which the client pings
   * @param {number} [opts.pongTimeoutMs=10000] how long it then waits for an answer
   * @param {typeof fetch} [opts.fetch]
   * @param {typeof WebSocket} [opts.WebSocket]
   */
  constructor(opts) {
    if (!opts || !opts.tenant) throw new Error("AgoraClient: tenant is required");
    this.tenant = opts.tenant;
    this.token = opts.token || null;
    this.baseURL = (opts.baseURL || globalThis.location?.origin || "").replace(/\/$/, "");
    this.onState = opts.onState || (() => {});
    this.onError = opts.onError || (() => {});
    this.onUnauthorized = opts.onUnauthorized || (() => {});
    this.minDelayMs = opts.minDelayMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 30000;
    this.healthyAfterMs = opts.healthyAfterMs ?? 60000;
    this.idlePingMs = opts.idlePingMs ?? 25000;
    this.pongTimeoutMs = opts.pongTimeoutMs ?? 10000;
    this._fetch = opts.fetch || globalThis.fetch.bind(globalThis);
    this._WebSocket = opts.WebSocket || globalThis.WebSocket;

    /** @type {Map<string, {seq: number|null, handlers: Set<object>, resyncing: boolean, lastTyping: number}>} */
    this._rooms = new Map();
    this._ws = null;
    this._gen = 0; // bumped by every (re)connect; stale callbacks compare it
    this._attempt = 0;
    this._retryTimer = null;
    this._healthyTimer = null;
    this._idleTimer = null;
    this._pongTimer = null;
    this._started = false;
    this._state = { state: State.OFFLINE };
    this._onOnline = () => {
      if (this._state.state === State.RECONNECTING) this.reconnectNow();
    };
  }

  /** The last state reported to onState. */
  get state() {
    return this._state;
  }

  /** Opens the connection (no-op when already started). */
  connect() {
    if (this._started) return;
    this._started = true;
    globalThis.addEventListener?.("online", this._onOnline);
    this._open();
  }

  /** Closes for good (code 1000); subscriptions are kept for a later connect(). */
  close() {
    this._started = false;
    globalThis.removeEventListener?.("online", this._onOnline);
    this._teardown(1000, "client closed");
    this._setState({ state: State.OFFLINE, reason: "closed" });
  }

  /**
   * Switches identity (after login or logout): reconnects at once with the
   * new token. Rooms are subscribed again from their last seq.
   */
  setToken(token) {
    this.token = token || null;
    if (!this._started) return;
    this._teardown(1000, "switching user");
    this._attempt = 0;
    this._open();
  }

  /** Skips a pending reconnect delay (or retries after an offline stop). */
  reconnectNow() {
    if (!this._started) {
      this.connect();
      return;
    }
    this._teardown(1000, "reconnecting");
    this._open();
  }

  /**
   * Subscribes to a room. Several subscriptions to one room share one
   * server subscription.
   * @returns {{unsubscribe: () => void, typing: () => void, room: string}}
   */
  subscribe(room, handlers = {}) {
    let r = this._rooms.get(room);
    const fresh = !r;
    if (!r) {
      r = { seq: null, handlers: new Set(), resyncing: false, lastTyping: 0 };
      this._rooms.set(room, r);
    }
    r.handlers.add(handlers);
    if (fresh) this._sendSubscribe(room, r);
    return {
      room,
      unsubscribe: () => this._unsubscribe(room, handlers),
      typing: () => this.typing(room),
    };
  }

  /** Tells the room you are typing; call it on every keystroke, it throttles. */
  typing(room) {
    const r = this._rooms.get(room);
    const now = Date.now();
    if (!r || now - r.lastTyping < TYPING_INTERVAL_MS) return;
    if (this._send({ op: "typing", room })) r.lastTyping = now;
  }

  /** The last seq seen in a room, or null before `subscribed`. */
  seq(room) {
    return this._rooms.get(room)?.seq ?? null;
  }

  _unsubscribe(room, handlers) {
    const r = this._rooms.get(room);
    if (!r || !r.handlers.delete(handlers) || r.handlers.size > 0) return;
    this._rooms.delete(room);
    this._send({ op: "unsubscribe", room });
  }

  _sendSubscribe(room, r) {
    const msg = { op: "subscribe", room };
    if (r.seq !== null) msg.since = r.seq;
    r.sentSince = r.seq;
    this._send(msg);
  }

  _send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  _setState(s) {
    this._state = s;
    try {
      this.onState(s);
    } catch (e) {
      rethrow(e);
    }
  }

  // _teardown drops the current socket without triggering a reconnect.
  _teardown(code, reason) {
    this._gen++;
    clearTimeout(this._retryTimer);
    clearTimeout(this._healthyTimer);
    this._retryTimer = this._healthyTimer = null;
    this._stopLiveness();
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing: nothing to do.
      }
    }
  }

  async _open() {
    const gen = ++this._gen;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._setState({ state: State.CONNECTING, attempt: this._attempt });
    let url = this.baseURL.replace(/^http/, "ws") + `/api/v1/t/${encodeURIComponent(this.tenant)}/ws`;
    if (this.token) {
      let res;
      try {
        res = await this._fetch(`${this.baseURL}/api/v1/t/${encodeURIComponent(this.tenant)}/ws/ticket`, {
          method: "POST",
          headers: { Authorization: `Bearer ${this.token}` },
        });
      } catch {
        if (gen === this._gen) this._retryLater("network error");
        return;
      }
      if (gen !== this._gen) return;
      if (res.status === 404) {
        // No such tenant: retrying cannot make it exist.
        this._setState({ state: State.OFFLINE, code: 404, reason: "There is no such community." });
        return;
      }
      if (res.status === 401) {
        this._setState({ state: State.OFFLINE, reason: "Your session has ended: sign in again." });
        try {
          this.onUnauthorized();
        } catch (e) {
          rethrow(e);
        }
        return;
      }
      if (!res.ok) {
        this._retryLater(`ticket: HTTP ${res.status}`, retryAfterMs(res));
        return;
      }
      let body;
      try {
        body = await res.json();
      } catch {
        if (gen === this._gen) this._retryLater("bad ticket response");
        return;
      }
      if (gen !== this._gen) return;
      url += `?ticket=${encodeURIComponent(body.ticket)}`;
    }
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch {
      this._retryLater("cannot open WebSocket");
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (gen !== this._gen) return;
      opened = true;
      this._setState({ state: State.LIVE });
      this._healthyTimer = setTimeout(() => {
        this._attempt = 0;
      }, this.healthyAfterMs);
      for (const [room, r] of this._rooms) {
        r.resyncing = false;
        this._sendSubscribe(room, r);
      }
      this._heard();
    };
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      this._heard();
      this._onFrame(ev.data);
    };
    // An error is always followed by close, which decides what to do.
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._ws = null;
      clearTimeout(this._healthyTimer);
      this._healthyTimer = null;
      this._stopLiveness();
      this._onClose(ev, opened);
    };
  }

  // _heard restarts the silence count: anything from the server proves the
  // connection alive, so a busy room never pings.
  _heard() {
    clearTimeout(this._pongTimer);
    this._pongTimer = null;
    clearTimeout(this._idleTimer);
    this._idleTimer = setTimeout(() => this._ping(), this.idlePingMs);
  }

  _ping() {
    this._idleTimer = null;
    if (!this._send({ op: "ping" })) return;
    this._pongTimer = setTimeout(() => {
      // The socket looks open but nothing comes back: drop it (its close
      // handshake may never finish) and reconnect with the usual backoff.
      this._teardown(4000, "no pong");
      this._retryLater("The server stopped answering.");
    }, this.pongTimeoutMs);
  }

  _stopLiveness() {
    clearTimeout(this._idleTimer);
    clearTimeout(this._pongTimer);
    this._idleTimer = this._pongTimer = null;
  }

  _onClose(ev, opened) {
    const reason = ev.reason || "";
    switch (ev.code) {
      case 1000:
        this._setState({ state: State.OFFLINE, code: ev.code, reason: reason || "The server closed the connection." });
        return;
      case 1008:
        this._setState({
          state: State.OFFLINE,
          code: ev.code,
          reason: reason || "The server refused this connection (policy).",
        });
        return;
      case 1001:
      case 1013:
        // "Reconnect at once with since" (API.md), once per healthy
        // period: a server that keeps closing gets the usual backoff.
        if (opened && this._attempt === 0) {
          this._attempt = 1;
          this._retryIn(Math.random() * 250, reason || `closed (${ev.code})`);
          return;
        }
        break;
    }
    this._retryLater(reason || `connection lost (${ev.code})`);
  }

  // _retryLater waits for the next backoff step: an exponential delay with
  // "equal jitter" (half fixed, half random) so that clients dropped
  // together do not come back together.
  _retryLater(reason, atLeastMs = 0) {
    const exp = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this._attempt);
    const delay = Math.max(atLeastMs, exp / 2 + Math.random() * (exp / 2));
    this._attempt++;
    this._retryIn(delay, reason);
  }

  _retryIn(delay, reason) {
    clearTimeout(this._retryTimer);
    const retryAt = Date.now() + delay;
    this._setState({ state: State.RECONNECTING, retryAt, reason, attempt: this._attempt });
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _onFrame(data) {
    if (typeof data !== "string") return;
    for (const line of data.split("\n")) {
      if (line.trim() === "") continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        this._emitError({ code: "bad_frame", message: "unparsable message from the server" });
        continue;
      }
      this._dispatch(msg);
    }
  }

  _dispatch(msg) {
    const r = msg.room !== undefined ? this._rooms.get(msg.room) : undefined;
    switch (msg.op) {
      case "subscribed": {
        if (!r) return;
        r.resyncing = false;
        if (r.sentSince === null || r.sentSince === undefined || r.seq === null) {
          r.seq = msg.seq;
        } else if (msg.seq < r.seq) {
          // The room's history went backwards (a restored database): what
          // we hold cannot be patched up by a replay.
          r.seq = msg.seq;
          this._call(r, "onReset", { op: "reset", room: msg.room, seq: msg.seq });
        }
        // Otherwise keep our seq: the replay after `since` follows.
        this._call(r, "onSubscribed", msg);
        return;
      }
      case "event": {
        if (!r || r.seq === null) return;
        if (msg.seq <= r.seq) return; // already seen (replay overlap)
        if (msg.seq !== r.seq + 1) {
          // A gap: ask for a replay once; later events arrive through it.
          if (!r.resyncing) {
            r.resyncing = true;
            this._sendSubscribe(msg.room, r);
          }
          return;
        }
        r.seq = msg.seq;
        this._call(r, "onEvent", msg);
        return;
      }
      case "reset":
        if (!r) return;
        r.seq = msg.seq;
        r.resyncing = false;
        this._call(r, "onReset", msg);
        return;
      case "presence":
        if (r) this._call(r, "onPresence", msg);
        return;
      case "typing":
        if (r) this._call(r, "onTyping", msg);
        return;
      case "pong":
        return; // _heard has done its work

      case "error": {
        const err = { code: msg.code, message: msg.message, room: msg.room };
        if (r) {
          if (msg.code === "not_found" || msg.code === "forbidden" || msg.code === "unauthorized") {
            // The room is gone for us; do not subscribe again on reconnect.
            this._rooms.delete(msg.room);
          }
          this._call(r, "onError", err);
        } else {
          this._emitError(err);
        }
        return;
      }
      default:
        // Unknown ops are ignored, so the server can add new ones.
        return;
    }
  }

  _call(r, name, msg) {
    for (const h of [...r.handlers]) {
      const fn = h[name];
      if (!fn) continue;
      try {
        fn(msg);
      } catch (e) {
        rethrow(e);
      }
    }
  }

  _emitError(err) {
    try {
      this.onError(err);
    } catch (e) {
      rethrow(e);
    }
  }
}

function retryAfterMs(res) {
  const s = Number(res.headers?.get?.("Retry-After"));
  return Number.isFinite(s) && s > 0 ? s * 1000 : 0;
}

// rethrow reports a handler's exception without breaking the message loop.
function rethrow(e) {
  setTimeout(() => {
    throw e;
  });
}
