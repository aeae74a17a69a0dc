import { test } from "node:test";
import assert from "node:assert/strict";
import { ServerClock, smooth, formatCountdown } from "../src/clock.js";

test("EMA: offset = round(prev*0.7 + new*0.3), first sample taken as is", () => {
  assert.equal(smooth(null, 1000), 1000);
  assert.equal(smooth(1000, 2000), 1300);
  assert.equal(smooth(1300, 0), 910);
});

test("server now never goes backwards when the offset shrinks", () => {
  let local = 1_000_000;
  const clock = new ServerClock(() => local);
  clock.observe(local + 10_000, local); // offset +10s
  const a = clock.now();
  clock.observe(local - 50_000, local); // big negative correction
  const b = clock.now();
  assert.ok(b >= a, `${b} >= ${a}`);
  local += 250;
  assert.ok(clock.now() >= b);
});

test("countdown format", () => {
  assert.equal(formatCountdown(0), "00:00");
  assert.equal(formatCountdown(65_000), "01:05");
  assert.equal(formatCountdown(3_661_000), "01:01:01");
  assert.equal(formatCountdown(2 * 86_400_000 + 5_000), "2d 00:00:05");
  assert.equal(formatCountdown(-5), "00:00");
});
