// Thin client for the drop API: bearer session kept in localStorage,
// one transparent re-session on 401, server_time fed to the clock.

export const SESSION_KEY = "drop.session";

export class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || (status ? `http_${status}` : "network");
    this.body = body || {};
    this.retryAfter = parseRetryAfter(headers && headers.get && headers.get("Retry-After"));
  }
}

export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return null;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, secs);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : null;
}

function storage() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null; // storage disabled (privacy mode): keep the token in memory
  }
}

export class Api {
  constructor({ base = "/api", clock = null, fetchImpl = (...a) => globalThis.fetch(...a) } = {}) {
    this.base = base.replace(/\/+$/, "");
    this.clock = clock;
    this.fetch = fetchImpl;
    this.memoryToken = null;
    this.pendingSession = null;
  }

  get token() {
    const s = storage();
    return (s && s.getItem(SESSION_KEY)) || this.memoryToken;
  }

  set token(value) {
    this.memoryToken = value;
    const s = storage();
    if (!s) return;
    if (value) s.setItem(SESSION_KEY, value);
    else s.removeItem(SESSION_KEY);
  }

  /** POST /session, deduplicated so concurrent 401s create only one session. */
  newSession() {
    if (!this.pendingSession) {
      this.pendingSession = this.raw("POST", "/session", { body: {} })
        .then((s) => {
          this.token = s.token;
          this.shopperId = s.shopper_id;
          return s.token;
        })
        .finally(() => {
          this.pendingSession = null;
        });
    }
    return this.pendingSession;
  }

  async ensureSession() {
    return this.token || this.newSession();
  }

  /** A shopper call: bearer token, and on 401 one new session and one retry. */
  async call(method, path, { body, headers = {} } = {}) {
    const used = await this.ensureSession();
    try {
      return await this.raw(method, path, { body, headers, token: used });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      // Another request may already have replaced the token; else make one.
      const fresh = this.token && this.token !== used ? this.token : await this.newSession();
      return this.raw(method, path, { body, headers, token: fresh });
    }
  }

  async raw(method, path, { body, headers = {}, token } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (token) h.Authorization = `Bearer ${token}`;
    const sent = Date.now();
    let res;
    try {
      res = await this.fetch(this.base + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch (err) {
      throw new ApiError(0, { error: "network", message: "We couldn't reach the server." });
    }
    const received = Date.now();
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (this.clock && data && typeof data === "object" && data.server_time) {
      this.clock.observe(data.server_time, Math.round((sent + received) / 2));
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers);
    return data;
  }

  status(dropId) {
    return this.call("GET", `/drop/${encodeURIComponent(dropId)}/status`);
  }
  me(dropId) {
    return this.call("GET", `/drop/${encodeURIComponent(dropId)}/me`);
  }
  challenge(dropId) {
    return this.call("GET", `/pow/challenge?drop_id=${encodeURIComponent(dropId)}`);
  }
  register(dropId, body, idempotencyKey) {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
    return this.call("POST", `/drop/${encodeURIComponent(dropId)}/register`, { body, headers });
  }
  streamToken(dropId) {
    return this.call("POST", `/drop/${encodeURIComponent(dropId)}/stream-token`, { body: {} });
  }
  purchaseStart(dropId) {
    return this.call("POST", `/drop/${encodeURIComponent(dropId)}/purchase/start`, { body: {} });
  }
  purchase(dropId, purchaseToken, idempotencyKey) {
    return this.call("POST", `/drop/${encodeURIComponent(dropId)}/purchase`, {
      body: { purchase_token: purchaseToken },
      headers: { "Idempotency-Key": idempotencyKey },
    });
  }
}

/** The register body: a missing fingerprint (blocked, failed) is left out, never sent as null. */
export function registrationBody({ tickets, rollover, challenge, nonce, fingerprint, signals }) {
  const body = { tickets, rollover, pow: { challenge, nonce }, signals };
  if (fingerprint && fingerprint.visitor_id) body.fingerprint = fingerprint;
  return body;
}

/** RFC 4122 v4; crypto.randomUUID only exists in secure contexts. */
export function uuid() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
