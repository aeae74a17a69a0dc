// Web Worker: solves a proof-of-work challenge off the main thread and posts
// progress every 2,000 hashes.
//   in:  {type: "solve", challenge}        out: {type: "progress", tried, expected}
//                                               {type: "solved", nonce, tried}
//                                               {type: "error", message}
import { solve, expectedWork } from "./pow.js";

let run = 0;

self.onmessage = async (event) => {
  const msg = event.data || {};
  if (msg.type === "cancel") {
    run++;
    return;
  }
  if (msg.type !== "solve") return;
  const mine = ++run;
  const challenge = msg.challenge || {};
  const expected = expectedWork(challenge.difficulty);
  try {
    const result = await solve(challenge, {
      batch: 2000,
      onProgress: (tried) => self.postMessage({ type: "progress", tried, expected }),
      shouldStop: () => mine !== run,
    });
    if (result && mine === run) self.postMessage({ type: "solved", ...result, expected });
  } catch (err) {
    self.postMessage({ type: "error", message: String((err && err.message) || err) });
  }
};
