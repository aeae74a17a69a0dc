import { test } from "node:test";
import assert from "node:assert/strict";
import { DropStream } from "../src/stream.js";

// A scriptable EventSource: the test opens it, sends events, fails it.
class FakeSource {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.closed = false;
    this.listeners = {};
    FakeSource.all.push(this);
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  close() { this.closed = true; this.readyState = 2; }
  open() { this.readyState = 1; this.onopen && this.onopen(); }
  emit(type, data) { for (const fn of this.listeners[type] || []) fn({ data: JSON.stringify(data) }); }
  fail(readyState) { this.readyState = readyState; this.onerror && this.onerror(); }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
async function until(predicate, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await tick(10);
  }
}

function setup(t, { staleMs = 0, onLine = true } = {}) {
  FakeSource.all = [];
  let n = 0;
  const api = { streamToken: async () => ({ token: `t${++n}`, expires_at: 0 }) };
  const target = new EventTarget();
  target.navigator = { onLine };
  const states = [];
  const events = [];
  const stream = new DropStream({
    api, eventsBase: "/events/", dropId: "d1", EventSourceImpl: FakeSource, target, staleMs,
    onEvent: (type, data) => events.push([type, data]),
    onConnection: (s) => states.push(s),
  });
  t.after(() => stream.stop()); // even when an assertion fails: no timer may keep the test run alive
  return { stream, target, states, events, tokens: () => n };
}

test("opens with a stream token and reports live on open and on events", async (t) => {
  const { stream, states, events } = setup(t);
  stream.start();
  await tick();
  const [src] = FakeSource.all;
  assert.equal(src.url, "/events/d1?token=t1");
  src.open();
  src.emit("drop", { phase: "LOTTERY" });
  assert.deepEqual(events, [["drop", { phase: "LOTTERY" }]]);
  assert.equal(states.at(-1), "live");
  stream.stop();
});

test("going offline closes the stream; coming back reopens it at once with a new token", async (t) => {
  const { stream, target, states, tokens } = setup(t);
  stream.start();
  await tick();
  FakeSource.all[0].open();
  target.dispatchEvent(new Event("offline"));
  assert.equal(FakeSource.all[0].closed, true);
  assert.equal(states.at(-1), "offline");
  await tick(20);
  assert.equal(FakeSource.all.length, 1, "nothing reopens while offline");
  target.dispatchEvent(new Event("online"));
  await tick();
  assert.equal(FakeSource.all.length, 2);
  assert.equal(tokens(), 2);
  assert.equal(states.at(-1), "reconnecting");
  FakeSource.all[1].open();
  assert.equal(states.at(-1), "live");
  stream.stop();
});

test("a page that starts offline waits for the network", async (t) => {
  const { stream, target, states } = setup(t, { onLine: false });
  stream.start();
  await tick();
  assert.equal(FakeSource.all.length, 0);
  assert.deepEqual(states, ["offline"]);
  target.dispatchEvent(new Event("online"));
  await tick();
  assert.equal(FakeSource.all.length, 1);
  stream.stop();
});

test("a stream that goes quiet (no event, not even a heartbeat) is reopened", async (t) => {
  const { stream, states } = setup(t, { staleMs: 300 });
  stream.start();
  await until(() => FakeSource.all.length === 1, "the first stream");
  const first = FakeSource.all[0];
  first.open();
  for (let i = 0; i < 4; i++) {
    await tick(50);
    first.emit("heartbeat", { server_time: 1 });
  }
  assert.equal(FakeSource.all.length, 1, "heartbeats keep it alive");
  await until(() => FakeSource.all.length === 2, "a reopened stream");
  assert.equal(first.closed, true);
  assert.ok(states.includes("reconnecting"));
  stream.stop();
});

test("a refused reconnect (CLOSED, e.g. 401) gets a new token and reopens", async (t) => {
  const { stream, tokens } = setup(t);
  stream.start();
  await until(() => FakeSource.all.length === 1, "the first stream");
  FakeSource.all[0].open();
  FakeSource.all[0].fail(0); // CONNECTING: the browser retries by itself
  await tick(5);
  assert.equal(FakeSource.all.length, 1);
  FakeSource.all[0].fail(2); // CLOSED: our turn (after a 1 s backoff + jitter)
  await until(() => FakeSource.all.length === 2, "a stream with a new token");
  assert.equal(tokens(), 2);
  stream.stop();
});
