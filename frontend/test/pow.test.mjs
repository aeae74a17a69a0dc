import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sha256 } from "../src/sha256.js";
import { solve, leadingZeroBits, makeDigest } from "../src/pow.js";

const enc = new TextEncoder();
const nodeHash = (s) => new Uint8Array(createHash("sha256").update(s).digest());

test("pure-JS SHA-256 matches node:crypto", () => {
  for (const s of ["", "abc", "a".repeat(55), "a".repeat(56), "a".repeat(64), "salt:12345", "ü€𝄞".repeat(40)]) {
    assert.deepEqual(sha256(enc.encode(s)), nodeHash(s));
  }
});

test("leading zero bits", () => {
  assert.equal(leadingZeroBits(new Uint8Array([0, 0, 0x10, 0xff])), 19);
  assert.equal(leadingZeroBits(new Uint8Array([0x80])), 0);
  assert.equal(leadingZeroBits(new Uint8Array([0, 1])), 15);
});

function smallestNonce(salt, difficulty) {
  for (let n = 0; ; n++) if (leadingZeroBits(nodeHash(salt + n)) >= difficulty) return n;
}

for (const [name, digest] of [["crypto.subtle", makeDigest()], ["pure JS", makeDigest(null)]]) {
  test(`solve finds the smallest nonce (${name})`, async () => {
    const challenge = { algorithm: "SHA-256", salt: "c0ffee:", difficulty: 12 };
    const progress = [];
    const result = await solve(challenge, { digest, batch: 500, onProgress: (t) => progress.push(t) });
    assert.equal(result.nonce, smallestNonce(challenge.salt, 12));
    assert.ok(progress.length >= 1);
  });
}
