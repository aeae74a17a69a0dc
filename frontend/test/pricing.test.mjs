import { test } from "node:test";
import assert from "node:assert/strict";
import { breakdown, paidCost } from "../src/pricing.js";

test("1..10 tickets with unit 1 and no rollover", () => {
  const costs = Array.from({ length: 10 }, (_, i) => breakdown(i + 1, 0, 1).cost);
  assert.deepEqual(costs, [0, 1, 5, 14, 30, 55, 91, 140, 204, 285]);
});

test("rollover credits are spent first, then the free entry", () => {
  assert.deepEqual(breakdown(4, 2, 1), { tickets: 4, rollover: 2, free: 1, paid: 1, cost: 1 });
  assert.deepEqual(breakdown(2, 5, 1), { tickets: 2, rollover: 2, free: 0, paid: 0, cost: 0 });
  assert.deepEqual(breakdown(3, 0, 7), { tickets: 3, rollover: 0, free: 1, paid: 2, cost: 35 });
});

test("paid cost is unit * n(n+1)(2n+1)/6", () => {
  for (let n = 0; n <= 20; n++) {
    let sum = 0;
    for (let k = 1; k <= n; k++) sum += k * k;
    assert.equal(paidCost(n, 3), 3 * sum);
  }
});
