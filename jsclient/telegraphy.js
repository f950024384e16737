// telegraphy.js: the browser client of Telegraphy. One ES module, no
// dependencies, no build step. Types: telegraphy.d.ts. Wire protocol:
// docs/protocol.md.

// Close codes that mean something the application should hear about.
const CLOSE_ERRORS = {
  1008: "policy",
  1009: "too_big",
  4001: "unauthorized",
  4008: "slow_consumer",
  4010: "revoked",
};

/** An error reported on "error": a protocol error, a close code or a failed getToken. */
export class TelegraphyError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = "TelegraphyError";
    this.code = code;
    Object.assign(this, extra);
  }
}

// A handler that throws must not stop delivery to the others.
const report = (err) =>
  typeof reportError == "function" ? reportError(err) : setTimeout(() => { throw err; });

class Emitter {
  constructor() {
    this._h = new Map();
  }
  on(type, fn) {
    let set = this._h.get(type);
    if (!set) this._h.set(type, (set = new Set()));
    set.add(fn);
    return this;
  }
  off(type, fn) {
    this._h.get(type)?.delete(fn);
    return this;
  }
  _emit(type, ...args) {
    const set = this._h.get(type);
    if (set) for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    }
  }
}

/** One subscriber's view of a channel; returned by Telegraphy#subscribe. */
export class Subscription extends Emitter {
  constructor(client, entry) {
    super();
    this.channel = entry.name;
    this._c = client;
    this._e = entry;
  }
  /** The last position seen on the channel, or null. */
  get position() {
    const p = this._e.pos;
    return p && { epoch: p.epoch, offset: p.offset };
  }
  /** Who is on the channel (a channel with presence): a promise of [{subject, info}]. */
  presence() {
    const c = this._c;
    return new Promise((ok, no) => {
      if (c.state != "connected" || this._e.state != 2) return no(new TelegraphyError("not_subscribed", "telegraphy: not subscribed"));
      const id = ++c._id;
      c._req.set(id, { p: [ok, no] });
      c._send({ type: "presence", id, channel: this.channel });
    });
  }
  /** Stops delivery to this subscription; the last one on a channel leaves it on the hub. */
  unsubscribe() {
    this._c._leave(this);
  }
}

// ws: or wss: URL from an absolute or page-relative http(s) or ws(s) URL; by
// default the "ws" endpoint beside this module.
function wsURL(url) {
  const u = url ? new URL(url, globalThis.location?.href) : new URL("ws", import.meta.url);
  if (u.protocol == "http:") u.protocol = "ws:";
  else if (u.protocol == "https:") u.protocol = "wss:";
  return u.href;
}

/** A connection to a Telegraphy hub that reconnects until closed. */
export class Telegraphy extends Emitter {
  constructor(options = {}) {
    super();
    const o = (this._o = {
      minDelay: 500,
      maxDelay: 20000,
      connectTimeout: 10000,
      pingInterval: 25000,
      maxSeen: 1000,
      ...options,
    });
    this._WS = o.WebSocket || globalThis.WebSocket;
    if (!this._WS) throw new TypeError("telegraphy: no WebSocket; pass the WebSocket option");
    this.url = wsURL(o.url);
    this.state = "disconnected";
    this.closed = false;
    this.session = this.subject = null;
    this._token = o.token;
    this._ch = new Map(); // channel name -> entry
    this._colls = new Set(); // open collections, closed with the client
    this._req = new Map(); // request id -> {entry, since}
    this._id = this._gen = this._attempt = 0;
    this._online = () => {
      if (this._timer) this._connect();
    };
    globalThis.addEventListener?.("online", this._online);
    // Connect after the caller's synchronous setup, so its "state" handler
    // sees "connecting".
    queueMicrotask(() => this._connect());
  }

  /** Subscribes to a channel; since (or options.positions[name]) asks for the events after it. */
  subscribe(name, { since, presence } = {}) {
    if (this.closed) throw new TelegraphyError("closed", "telegraphy: client closed");
    // A channel the hub refused (state 0 while connected) is asked again:
    // the new subscription hears the answer.
    let e = this._ch.get(name), go = !e || (!e.state && this.state == "connected");
    if (!e) this._ch.set(name, (e = { name, pos: since || this._o.positions?.[name] || null, seen: new Set(), subs: new Set(), state: 0 }));
    if (presence && !e.pres) {
      // Notices are asked for in subscribe: subscribe again, from the
      // position of the first answer (while it is awaited, once it has
      // come), so that no event goes by in between.
      e.pres = 1;
      if (e.state == 1) e.again = 1;
      else {
        go = 1;
        if (e.state) this._send({ type: "unsubscribe", id: ++this._id, channel: name });
      }
    }
    if (go && this.state == "connected") this._subscribe(e);
    const s = new Subscription(this, e);
    s._p = presence;
    e.subs.add(s);
    if (e.state == 2) queueMicrotask(() => e.subs.has(s) && s._emit("subscribed", e.info));
    return s;
  }

  /**
   * Headers for the app's own requests (fetch(url, { headers: t.headers() })):
   * the hub does not send this connection the events of the writes they make.
   * Empty while not connected.
   */
  headers() {
    return this.state == "connected" && this.session ? { "X-Telegraphy-Session": this.session } : {};
  }

  /** A live list of the channel's rows: see Collection. */
  collection(name, options) {
    return new Collection(this, name, options);
  }

  /** Closes the connection for good: no more events, reconnects or timers. */
  close() {
    if (this.closed) return;
    this.closed = true;
    globalThis.removeEventListener?.("online", this._online);
    this._stop(1000);
    for (const e of this._ch.values()) for (const s of e.subs) s._h.clear();
    this._ch.clear();
    for (const c of [...this._colls]) c.close();
    this._setState("disconnected");
    this._h.clear();
  }

  _setState(s) {
    if (this.state != s) this._emit("state", (this.state = s));
  }

  _error(code, message, extra) {
    const err = new TelegraphyError(code, message, extra);
    this._emit("error", err);
    return err;
  }

  // Ends the current attempt or connection: timers, socket, requests.
  _stop(code) {
    this._gen++;
    clearTimeout(this._timer);
    clearTimeout(this._wait);
    clearInterval(this._ping);
    this._timer = this._wait = this._ping = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(code);
      } catch {
        // Closing a socket that never opened may throw; it is gone either way.
      }
    }
    for (const r of this._req.values()) r.p?.[1](new TelegraphyError("disconnected", "telegraphy: disconnected"));
    this._req.clear();
    for (const e of this._ch.values()) e.state = e.again = 0;
  }

  async _connect() {
    if (this.closed) return;
    this._stop(1000);
    const gen = this._gen;
    this._setState("connecting");
    if (gen != this._gen) return; // a "state" handler closed the client
    // The timeout covers getToken too: a hung token endpoint is retried.
    this._wait = setTimeout(() => this._down(), this._o.connectTimeout);
    this._told = false;
    let token = this._token;
    this._token = null; // each token connects once
    if (token == null && this._o.getToken) {
      try {
        token = await this._o.getToken();
      } catch (err) {
        if (gen != this._gen) return;
        this._error("token", "telegraphy: getToken: " + (err?.message || err), { cause: err });
        return this._down();
      }
      if (gen != this._gen) return;
    }
    let ws;
    try {
      ws = this._ws = new this._WS(this.url);
    } catch (err) {
      this._error("bad_request", "telegraphy: " + err.message, { cause: err });
      return this._down();
    }
    ws.onopen = () => ws.send(JSON.stringify(token ? { type: "hello", token } : { type: "hello" }));
    ws.onmessage = (m) => this._frame(ws, m.data);
    // Browsers follow an error with a close; some WebSocket implementations
    // (Node 20's) do not when the connection fails.
    ws.onerror = () => ws == this._ws && this._down();
    ws.onclose = (ev) => {
      if (ws != this._ws) return;
      const code = CLOSE_ERRORS[ev.code];
      // An error message that came before the close already said why.
      if (code && !this._told) this._error(code, ev.reason || "telegraphy: connection closed (" + ev.code + ")", { closeCode: ev.code });
      this._down();
    };
  }

  // The connection is gone: wait, then try again. After the n-th failure
  // in a row the delay is uniformly random between minDelay and
  // min(maxDelay, minDelay * 2^n): spread out, never shorter than minDelay.
  _down() {
    if (this.closed) return;
    this._stop(1000);
    this._setState("disconnected");
    if (this.closed) return; // a "state" handler closed the client
    const { minDelay: lo, maxDelay: hi } = this._o;
    const cap = Math.min(hi, lo * 2 ** Math.min(++this._attempt, 30));
    this._timer = setTimeout(() => this._connect(), lo + Math.random() * Math.max(0, cap - lo));
  }

  _send(msg) {
    try {
      this._ws.send(JSON.stringify(msg));
    } catch {
      // The socket is closing; onclose reconnects.
    }
  }

  _subscribe(e) {
    const id = ++this._id;
    e.state = 1;
    this._req.set(id, { entry: e, since: e.pos });
    const m = { type: "subscribe", id, channel: e.name };
    if (e.pos) m.since = e.pos;
    if (e.pres) m.presence = true;
    this._send(m);
  }

  _leave(s) {
    const e = s._e;
    if (!e.subs.delete(s)) return;
    s._h.clear();
    if (e.subs.size || this._ch.get(e.name) != e) return;
    this._ch.delete(e.name);
    if (e.state && this.state == "connected") this._send({ type: "unsubscribe", id: ++this._id, channel: e.name });
    e.state = 0;
  }

  // A frame holds one or more messages separated by "\n".
  _frame(ws, data) {
    for (const line of String(data).split("\n")) {
      if (ws != this._ws) return; // a handler closed or dropped the connection
      if (!line.trim()) continue;
      let m;
      try {
        m = JSON.parse(line);
        if (!m || typeof m != "object") throw new TypeError("not an object");
        this._message(m);
      } catch (err) {
        // Handlers' own errors are reported by _emit: this is the hub's message.
        this._error("bad_message", "telegraphy: unreadable message from hub", { cause: err });
      }
    }
  }

  _message(m) {
    switch (m.type) {
      case "welcome": {
        clearTimeout(this._wait);
        this._attempt = 0;
        this.session = m.session ?? null;
        this.subject = m.subject ?? null;
        this._setState("connected");
        if (this.state != "connected") return;
        // Channels a "connected" handler subscribed to are asked already.
        for (const e of this._ch.values()) if (!e.state) this._subscribe(e);
        if (this._o.pingInterval > 0) {
          let waiting = false;
          this._ping = setInterval(() => {
            if (waiting) return this._down(); // no pong within an interval: the link is dead
            waiting = true;
            this._pong = () => (waiting = false);
            this._send({ type: "ping", id: ++this._id });
          }, this._o.pingInterval);
        }
        return;
      }
      case "pong":
        this._pong?.();
        return;
      case "subscribed": {
        if (m.id == null) {
          // Unasked: the hub lost events of this channel for us (a gap it
          // could not fill from history) and goes on from this position.
          const e = this._ch.get(m.channel);
          if (!e || m.recovered) return;
          e.epoch = m.epoch;
          e.pos = { epoch: m.epoch, offset: m.offset };
          e.info = { epoch: m.epoch, offset: m.offset, recovered: false };
          for (const s of [...e.subs]) s._emit("lost", e.info);
          return;
        }
        const r = this._req.get(m.id);
        this._req.delete(m.id);
        const e = r?.entry;
        if (!e || this._ch.get(e.name) != e) return;
        e.state = 2;
        e.epoch = m.epoch;
        for (const x of m.missed || []) this._event(e, x.offset, x.event || x);
        // Not recovered: the hub goes on from its position, even one below
        // ours (a since ahead of the channel): live events follow from it.
        const p = e.pos;
        if (!m.recovered || !p || p.epoch != m.epoch || p.offset < m.offset) e.pos = { epoch: m.epoch, offset: m.offset };
        const info = (e.info = { epoch: m.epoch, offset: m.offset, recovered: !!m.recovered });
        for (const s of [...e.subs]) {
          if (r.since && !m.recovered) s._emit("lost", info);
          s._emit("subscribed", info);
        }
        if (e.again && this._ch.get(e.name) == e && this.state == "connected") {
          e.again = 0;
          this._send({ type: "unsubscribe", id: ++this._id, channel: e.name });
          this._subscribe(e);
        }
        return;
      }
      case "event": {
        const e = this._ch.get(m.channel);
        if (e) this._event(e, m.offset, m.event);
        return;
      }
      case "presence":
      case "join":
      case "leave": {
        const r = this._req.get(m.id);
        this._req.delete(m.id);
        if (r?.p) return r.p[0](m.members);
        const e = this._ch.get(m.channel);
        if (e && m.member) for (const s of [...e.subs]) s._p && s._emit(m.type, m.member, { channel: e.name, presence: true });
        return;
      }
      case "error": {
        const r = this._req.get(m.id);
        this._req.delete(m.id);
        if (r?.p) return r.p[1](new TelegraphyError(m.code || "internal", m.message, { id: m.id }));
        const e = r && this._ch.get(r.entry.name) == r.entry ? r.entry : null;
        if (e) e.state = e.again = 0;
        else if (m.id == null) this._told = true;
        const err = this._error(m.code || "internal", m.message, { id: m.id, channel: e?.name });
        if (e) for (const s of [...e.subs]) s._emit("error", err);
        return;
      }
    }
  }

  // Hands an event to the channel's subscriptions once, by meta.id.
  _event(e, offset, ev) {
    if (!ev || !ev.meta) return;
    if (offset > 0 && e.epoch && (!e.pos || e.pos.epoch != e.epoch || e.pos.offset < offset)) {
      e.pos = { epoch: e.epoch, offset };
    }
    const id = ev.meta.id;
    if (id) {
      if (e.seen.has(id)) return;
      e.seen.add(id);
      if (e.seen.size > this._o.maxSeen) e.seen.delete(e.seen.values().next().value);
    }
    const info = { channel: e.name, offset };
    for (const s of [...e.subs]) {
      s._emit(ev.meta.event_type, ev, info);
      s._emit("*", ev, info);
    }
  }
}

// The map key of a primary key: a scalar as text, a composite key (an
// object) by its fields in sorted order.
const keyOf = (pk) =>
  pk && typeof pk == "object" ? JSON.stringify(Object.keys(pk).sort().map((f) => [f, pk[f]])) : String(pk);

// Compares two versions: < 0 when a is older. Numbers compare as numbers;
// RFC 3339 times as times, to the nanosecond, whatever their zone or
// digits; other strings as text. NaN when they cannot be compared.
function compare(a, b) {
  if (typeof a != typeof b) return NaN;
  if (typeof a == "string") {
    const d = Date.parse(a) - Date.parse(b);
    if (d) return d;
    if (d == 0) {
      const frac = (s) => (s.match(/\.\d{3}(\d*)/)?.[1] || "").padEnd(9, "0");
      a = frac(a);
      b = frac(b);
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The rows of a channel, kept up to date: returned by Telegraphy#collection.
 * rows is a new array after each change; "change" reports each batch.
 */
export class Collection extends Emitter {
  constructor(client, channel, o = {}) {
    super();
    if (typeof o.refetch != "function") throw new TypeError("telegraphy: collection needs a refetch function");
    this.channel = channel;
    this.closed = false;
    this.rows = [];
    this._c = client;
    this._o = o;
    const k = o.key || "id", v = o.version;
    this._key = typeof k == "function" ? k : Array.isArray(k) ? (r) => Object.fromEntries(k.map((f) => [f, r[f]])) : (r) => r[k];
    this._ver = typeof v == "function" ? v : (r) => (v && r ? r[v] : undefined);
    this._m = new Map(); // key -> row
    this._v = new Map(); // key -> version of the row held
    this._dead = new Map(); // key -> version of its delete or leave
    this._d = new Map(); // key -> row before the current batch
    this._g = this._n = 0;
    this._q = null; // events that came during a refetch
    const pos = (this._pos = o.position || client._o.positions?.[channel] || null);
    const shared = client._ch.get(channel);
    for (const row of o.rows || []) this._put(row);
    this._d.clear();
    this.rows = [...this._m.values()];
    const s = (this._s = client.subscribe(channel, pos ? { since: pos } : {}));
    client._colls.add(this);
    s.on("*", (ev, info) => this._event(ev, info.offset, s._e.epoch));
    // Events were lost: the rendered position says nothing any more (the
    // hub's offsets may even be below it).
    s.on("lost", () => {
      this._pos = null;
      this.refetch();
    });
    // The channel was already subscribed: events after the rendered
    // position may have gone by, unless it is not past that position yet.
    // Until the hub has confirmed the subscription, events may still go by
    // unseen: the refetch waits for it.
    const p = shared?.pos;
    if (shared && !(p && pos && p.epoch == pos.epoch && p.offset <= pos.offset)) {
      if (shared.state == 2) this.refetch();
      else {
        const once = () => {
          s.off("subscribed", once);
          this.refetch();
        };
        s.on("subscribed", once);
      }
    }
  }

  /** The row with this primary key, or undefined. */
  get(pk) {
    return this._m.get(keyOf(pk));
  }

  /**
   * Calls options.refetch() and replaces the rows with what it returns.
   * Events that arrive meanwhile are applied on top once it has returned.
   */
  refetch() {
    if (this.closed) return;
    const g = ++this._g;
    this._q ||= [];
    clearTimeout(this._retry);
    Promise.resolve()
      .then(() => this._o.refetch())
      .then((r) => {
        if (g != this._g) return;
        const rows = Array.isArray(r) ? r : r?.rows;
        if (!Array.isArray(rows)) throw new TypeError("no rows in the answer");
        const q = this._q, seen = new Set();
        this._q = null;
        this._n = 0;
        if (r.position) this._pos = r.position;
        for (const row of rows) seen.add(this._put(row));
        for (const k of [...this._m.keys()]) if (!seen.has(k)) this._drop(k);
        for (const x of q) this._event(...x);
        this._flush();
      })
      .catch((err) => {
        if (g != this._g) return;
        this._emit("error", new TelegraphyError("refetch", "telegraphy: refetch: " + (err?.message || err), { cause: err, channel: this.channel }));
        const { minDelay: lo, maxDelay: hi } = this._c._o;
        this._retry = setTimeout(() => this.refetch(), Math.min(hi, lo * 2 ** Math.min(++this._n, 30)));
      });
  }

  /**
   * Applies the page's own change at once, as its event would: row as the
   * app answered it (held unless older than the row held), or remove(pk).
   * With t.headers() on the request, that event does not come back.
   */
  put(row) {
    this._event({ meta: { event_type: "update", pk: this._key(row) }, data: row }, 0);
  }

  remove(pk) {
    // With the version held, as a delete event carries it: a late event of
    // that version does not bring the row back.
    this._event({ meta: { event_type: "delete", pk, version: this._v.get(keyOf(pk)) } }, 0);
  }

  /** Stops following the channel. */
  close() {
    this.closed = true;
    this._g++;
    clearTimeout(this._retry);
    this._c._colls.delete(this);
    this._s.unsubscribe();
    this._h.clear();
  }

  // Holds row under its key; returns the key. A row without a version
  // keeps the version held: it is at least that new.
  _put(row, k = keyOf(this._key(row)), v = this._ver(row)) {
    if (!this._d.has(k)) this._d.set(k, this._m.get(k));
    this._m.set(k, row);
    if (v != null) this._v.set(k, v);
    return k;
  }

  _drop(k) {
    if (!this._d.has(k)) this._d.set(k, this._m.get(k));
    this._m.delete(k);
    this._v.delete(k);
  }

  _event(ev, offset, epoch) {
    if (this.closed) return;
    if (this._q) return void this._q.push([ev, offset, epoch]);
    const p = this._pos, m = ev.meta, t = m.event_type;
    // Already in the rows the page rendered (or the last refetch returned).
    if (p && offset > 0 && p.epoch == epoch && offset <= p.offset) return;
    if (t == "bulk_update" || t == "bulk_delete") return this.refetch();
    if (m.pk == null) return;
    const k = keyOf(m.pk), v = m.version ?? (ev.data && this._ver(ev.data)), has = this._m.has(k);
    const held = has ? this._v.get(k) : this._dead.get(k), c = v != null && held != null ? compare(v, held) : NaN;
    // Older than the row held, or not newer than its delete: an event that
    // another process published late.
    if (has ? c < 0 : c <= 0) return;
    if (t == "create" || t == "update" || t == "enter") this._put(ev.data, k, v);
    else if (t == "delete" || t == "leave") {
      if (has) this._drop(k);
      if (v != null) {
        this._dead.delete(k);
        this._dead.set(k, v);
        if (this._dead.size > (this._o.maxDeleted ?? 1000)) this._dead.delete(this._dead.keys().next().value);
      }
    } else return;
    if (!this._t) {
      this._t = 1;
      queueMicrotask(() => this._flush());
    }
  }

  // Emits one "change" for what changed since the last one.
  _flush() {
    this._t = 0;
    const c = { added: [], updated: [], removed: [] };
    for (const [k, old] of this._d) {
      const row = this._m.get(k);
      if (old === undefined) row !== undefined && c.added.push(row);
      else if (row === undefined) c.removed.push(old);
      else if (row !== old && JSON.stringify(row) != JSON.stringify(old)) c.updated.push(row);
    }
    this._d.clear();
    if (this.closed || !(c.added.length + c.updated.length + c.removed.length)) return;
    this.rows = [...this._m.values()];
    this._emit("change", c);
  }
}

let page;

/**
 * Returns the page's client, configured by the JSON that the Go template
 * helper renders into <script type="application/json" id="telegraphy-config">;
 * options override it. Later calls return the same client until it is closed.
 */
export function fromPage(options = {}) {
  if (page && !page.closed) return page;
  const el = globalThis.document?.getElementById("telegraphy-config");
  const cfg = el ? JSON.parse(el.textContent) : {};
  const o = { ...cfg, ...options };
  if (!o.getToken && cfg.tokenURL) {
    o.getToken = async () => {
      const res = await fetch(cfg.tokenURL, { method: "POST", credentials: "same-origin", cache: "no-store" });
      if (!res.ok) throw new Error("token endpoint answered " + res.status);
      return res.text();
    };
  }
  return (page = new Telegraphy(o));
}
