import { test } from "node:test";
import assert from "node:assert/strict";
import { deriveView, isStaleMe, isStaleStatus } from "../src/view.js";

const NOW = 1_000_000;
const drop = (o = {}) => ({
  phase: "REGISTRATION", registration_start: NOW - 1000, registration_end: NOW + 60_000,
  remaining: 10, inventory: 10, purchase_deadline: null, ...o,
});
const me = (status, o = {}) => ({ status, ...o });
const view = (s, m, local = {}) => deriveView(s, m, local, NOW).state;

test("before data arrives", () => {
  assert.equal(view(null, null), "loading");
  assert.equal(view(null, null, { error: true }), "error");
});

test("registration lifecycle", () => {
  assert.equal(view(drop({ phase: "SCHEDULED", registration_start: NOW + 5000 }), me("NOT_REGISTERED")), "scheduled");
  assert.equal(view(drop({ phase: "SCHEDULED" }), me("NOT_REGISTERED")), "registration-open", "timestamps rule");
  assert.equal(view(drop(), me("NOT_REGISTERED")), "registration-open");
  assert.equal(view(drop(), me("REGISTERED")), "registered");
  assert.equal(view(drop({ registration_end: NOW - 1 }), me("REGISTERED")), "lottery");
  assert.equal(view(drop({ phase: "LOTTERY" }), me("REGISTERED")), "lottery");
});

test("missed registration is worded by phase", () => {
  for (const phase of ["LOTTERY", "PURCHASE", "COMPLETED"]) {
    const v = deriveView(drop({ phase }), me("NOT_REGISTERED"), {}, NOW);
    assert.equal(v.state, "missed");
    assert.equal(v.missedPhase, phase);
  }
});

test("a visitor who arrives after every unit sold sees sold out, not the missed wording", () => {
  assert.equal(view(drop({ phase: "PURCHASE", remaining: 0 }), me("NOT_REGISTERED")), "sold-out");
  assert.equal(view(drop({ phase: "COMPLETED", remaining: 0 }), me("NOT_REGISTERED")), "sold-out");
  assert.equal(view(drop({ phase: "LOTTERY", remaining: 0 }), me("NOT_REGISTERED")), "missed", "nothing is sold before the draw");
  assert.equal(view(drop({ phase: "COMPLETED", remaining: 2 }), me("NOT_REGISTERED")), "missed");
});

test("an unknown drop is not a connection problem", () => {
  assert.equal(view(null, null, { notFound: true }), "not-found");
  assert.equal(view(null, null, { notFound: true, error: true }), "not-found");
});

test("results", () => {
  const buying = drop({ phase: "PURCHASE", purchase_deadline: NOW + 60_000 });
  assert.equal(view(buying, me("WINNER", { purchase_deadline: NOW + 60_000 })), "won");
  assert.equal(view(buying, me("WINNER", { purchase_deadline: NOW - 1 })), "expired");
  assert.equal(deriveView(buying, me("WINNER"), { wasWaitlisted: true }, NOW).promoted, true);
  assert.equal(view(buying, me("PURCHASED", { order_id: "o1" })), "purchased");
  assert.equal(view(buying, me("WINNER"), { order: { order_id: "o1" } }), "purchased");
  assert.equal(view(buying, me("WINNER"), { soldOut: true }), "sold-out");
  assert.equal(view(buying, me("WAITLISTED", { position: 3 })), "waitlisted");
  assert.equal(view({ ...buying, remaining: 0 }, me("WAITLISTED", { position: 3 })), "sold-out");
  assert.equal(view(buying, me("EXPIRED")), "expired");
  assert.equal(view(drop({ phase: "COMPLETED", remaining: 2 }), me("LOST", { rollover_earned: 3 })), "lost");
  assert.equal(view(drop({ phase: "COMPLETED", remaining: 0 }), me("LOST", { rollover_earned: 0 })), "sold-out");
});

test("bot refusal and failure", () => {
  assert.equal(view(drop(), me("NOT_REGISTERED"), { bot: true }), "bot");
  assert.equal(view(drop({ phase: "FAILED" }), me("REGISTERED")), "failed");
  assert.equal(view(drop({ phase: "FAILED" }), me("PURCHASED")), "purchased");
});

test("an answer that would move the drop backwards is stale", () => {
  const c = "abc";
  assert.equal(isStaleStatus(drop({ phase: "PURCHASE", round: 1, commitment: c }), drop({ phase: "LOTTERY", commitment: c })), true);
  assert.equal(isStaleStatus(drop({ phase: "PURCHASE", round: 2, commitment: c }), drop({ phase: "PURCHASE", round: 1, commitment: c })), true);
  assert.equal(isStaleStatus(drop({ phase: "LOTTERY", commitment: c }), drop({ phase: "PURCHASE", round: 1, commitment: c })), false);
  assert.equal(isStaleStatus(drop({ phase: "PURCHASE", round: 1 }), drop({ phase: "PURCHASE", round: 1 })), false, "same is not stale");
  assert.equal(isStaleStatus(drop({ phase: "FAILED" }), drop({ phase: "PURCHASE" })), false, "out of FAILED is taken");
  assert.equal(isStaleStatus(drop({ phase: "PURCHASE", commitment: "old" }), drop({ phase: "SCHEDULED", commitment: "new" })), false,
    "a drop re-created under the same id starts over");
  assert.equal(isStaleStatus(null, drop()), false);
});

test("a result is never undone by an older answer", () => {
  assert.equal(isStaleMe(me("WINNER"), me("REGISTERED")), true, "a /me from before the draw after the stream said WINNER");
  assert.equal(isStaleMe(me("REGISTERED"), me("NOT_REGISTERED")), true);
  assert.equal(isStaleMe(me("LOST"), me("NOT_REGISTERED")), true);
  assert.equal(isStaleMe(me("REGISTERED"), me("WINNER")), false);
  assert.equal(isStaleMe(me("WAITLISTED"), me("WINNER")), false, "promotion");
  assert.equal(isStaleMe(me("WINNER"), me("EXPIRED")), false);
  assert.equal(isStaleMe(me("WINNER"), me("LOST")), false);
  assert.equal(isStaleMe(me("WINNER", { drop_id: "a" }), me("REGISTERED", { drop_id: "b" })), false);
  assert.equal(isStaleMe(null, me("REGISTERED")), false);
});
