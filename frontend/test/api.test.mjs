import { test } from "node:test";
import assert from "node:assert/strict";
import { Api, ApiError, SESSION_KEY, parseRetryAfter, registrationBody, uuid } from "../src/api.js";

class MemoryStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
  removeItem(k) { this.m.delete(k); }
}

function fakeFetch(routes) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    const [code, body, headers = {}] = routes(url, init, calls.length);
    return new Response(body === undefined ? "" : JSON.stringify(body), { status: code, headers });
  };
  return { impl, calls };
}

test("reuses the stored token, renews once on 401 invalid_token and retries", async () => {
  globalThis.localStorage = new MemoryStorage();
  localStorage.setItem(SESSION_KEY, "old");
  const { impl, calls } = fakeFetch((url, init) => {
    if (url.endsWith("/session")) return [201, { token: "new", shopper_id: "s1", expires_at: 1 }];
    if (init.headers.Authorization === "Bearer old") return [401, { error: "invalid_token", message: "expired" }];
    return [200, { ok: true, server_time: Date.now() }];
  });
  const api = new Api({ base: "/api", fetchImpl: impl });
  assert.deepEqual((await api.me("demo")).ok, true);
  assert.equal(localStorage.getItem(SESSION_KEY), "new");
  assert.deepEqual(calls.map((c) => c.url), ["/api/drop/demo/me", "/api/session", "/api/drop/demo/me"]);
});

test("a second 401 surfaces instead of looping", async () => {
  globalThis.localStorage = new MemoryStorage();
  const { impl, calls } = fakeFetch((url) => url.endsWith("/session")
    ? [201, { token: "t" + Math.random() }]
    : [401, { error: "invalid_token", message: "no" }]);
  const api = new Api({ base: "/api", fetchImpl: impl });
  await assert.rejects(api.status("demo"), (e) => e instanceof ApiError && e.status === 401);
  assert.equal(calls.filter((c) => c.url.endsWith("/session")).length, 2);
});

test("errors carry code and Retry-After; purchase sends the Idempotency-Key", async () => {
  globalThis.localStorage = new MemoryStorage();
  localStorage.setItem(SESSION_KEY, "tok");
  const { impl, calls } = fakeFetch((url) => url.endsWith("/register")
    ? [429, { error: "rate_limited", message: "slow" }, { "Retry-After": "12" }]
    : [201, { order: { order_id: "o1" } }]);
  const api = new Api({ base: "/api", fetchImpl: impl });
  await assert.rejects(api.register("d", { tickets: 1 }), (e) => e.code === "rate_limited" && e.retryAfter === 12);
  await assert.rejects(api.register("d", { tickets: 1 }, "reg-1"));
  assert.equal(calls.at(-1).init.headers["Idempotency-Key"], "reg-1");
  await api.purchase("d", "pt", "key-1");
  const last = calls.at(-1).init;
  assert.equal(last.headers["Idempotency-Key"], "key-1");
  assert.deepEqual(JSON.parse(last.body), { purchase_token: "pt" });
});

test("helpers", () => {
  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(null), null);
  assert.match(uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test("a missing fingerprint is left out of the register body, never sent as null", () => {
  const base = { tickets: 2, rollover: 0, challenge: { salt: "s" }, nonce: 7, signals: { interactions: 1, elapsed_ms: 900 } };
  assert.deepEqual(Object.keys(registrationBody({ ...base, fingerprint: null })).sort(), ["pow", "rollover", "signals", "tickets"]);
  assert.deepEqual(registrationBody({ ...base, fingerprint: { visitor_id: "v1", confidence: 0.6 } }).fingerprint,
    { visitor_id: "v1", confidence: 0.6 });
  assert.deepEqual(registrationBody({ ...base, fingerprint: undefined }).pow, { challenge: { salt: "s" }, nonce: 7 });
});
