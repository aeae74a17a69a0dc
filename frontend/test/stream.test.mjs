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

function setup({ staleMs = 0, onLine = true } = {}) {
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
  return { stream, target, states, events, tokens: () => n };
}

test("opens with a stream token and reports live on open and on events", async () => {
  const { stream, states, events } = setup();
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

test("going offline closes the stream; coming back reopens it at once with a new token", async () => {
  const { stream, target, states, tokens } = setup();
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

test("a page that starts offline waits for the network", async () => {
  const { stream, target, states } = setup({ onLine: false });
  stream.start();
  await tick();
  assert.equal(FakeSource.all.length, 0);
  assert.deepEqual(states, ["offline"]);
  target.dispatchEvent(new Event("online"));
  await tick();
  assert.equal(FakeSource.all.length, 1);
  stream.stop();
});

test("a stream that goes quiet (no event, not even a heartbeat) is reopened", async () => {
  const { stream, states } = setup({ staleMs: 40 });
  stream.start();
  await tick();
  const first = FakeSource.all[0];
  first.open();
  for (let i = 0; i < 3; i++) {
    await tick(20);
    first.emit("heartbeat", { server_time: 1 });
  }
  assert.equal(FakeSource.all.length, 1, "heartbeats keep it alive");
  await tick(80);
  assert.equal(first.closed, true);
  assert.equal(FakeSource.all.length, 2);
  assert.ok(states.includes("reconnecting"));
  first.emit("drop", { phase: "OLD" }); // a late event from the closed source is ignored
  stream.stop();
});

test("a refused reconnect (CLOSED, e.g. 401) gets a new token and reopens", async () => {
  const { stream, tokens } = setup();
  stream.start();
  await tick();
  FakeSource.all[0].open();
  FakeSource.all[0].fail(0); // CONNECTING: the browser retries by itself
  await tick(5);
  assert.equal(FakeSource.all.length, 1);
  FakeSource.all[0].fail(2); // CLOSED: our turn
  await tick(1700); // first backoff is 1 s + up to 0.5 s jitter
  assert.equal(FakeSource.all.length, 2);
  assert.equal(tokens(), 2);
  stream.stop();
});
