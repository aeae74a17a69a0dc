// Proof of work: find the smallest non-negative integer nonce such that
// SHA-256(utf8(salt + String(nonce))) starts with at least `difficulty` zero bits.
import { sha256 } from "./sha256.js";

const encoder = new TextEncoder();

export function leadingZeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

export function expectedWork(difficulty) {
  return 2 ** Math.max(0, Number(difficulty) || 0);
}

/** The best digest available: crypto.subtle when present (secure contexts), else pure JS. */
export function makeDigest(subtle = globalThis.crypto && globalThis.crypto.subtle) {
  if (subtle && typeof subtle.digest === "function") {
    return async (bytes) => new Uint8Array(await subtle.digest("SHA-256", bytes));
  }
  return async (bytes) => sha256(bytes);
}

/**
 * Search nonces in order from `start`. Calls onProgress(tried) after every
 * `batch` hashes and lets the caller stop via shouldStop(). Each batch's
 * digests run concurrently, but the smallest matching nonce always wins.
 */
export async function solve({ salt, difficulty }, {
  digest = makeDigest(),
  batch = 2000,
  start = 0,
  onProgress = () => {},
  shouldStop = () => false,
} = {}) {
  const prefix = String(salt ?? "");
  const need = Number(difficulty) || 0;
  for (let base = start; ; base += batch) {
    if (shouldStop()) return null;
    const hashes = [];
    for (let i = 0; i < batch; i++) hashes.push(digest(encoder.encode(prefix + String(base + i))));
    const results = await Promise.all(hashes);
    for (let i = 0; i < batch; i++) {
      if (leadingZeroBits(results[i]) >= need) {
        onProgress(base + i + 1);
        return { nonce: base + i, tried: base + i + 1 };
      }
    }
    onProgress(base + batch);
  }
}
