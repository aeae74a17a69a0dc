// Development only: serves dist/ and a fake drop API so every panel can be
// looked at in a browser without the backend. Not deployed.
//   node dev/mock-server.mjs [port]     then open http://127.0.0.1:8787/?drop=<scenario>
// Scenarios (the drop id picks one): scheduled, open, registered, lottery,
// won, promoted, purchased, waitlisted, lost, expired, missed-lottery,
// missed-purchase, missed-ended, soldout, bot, failed, ratelimited, slowpow, flaky.
import { createServer } from "node:http";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const port = Number(process.argv[2] || process.env.PORT || 8787);
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml" };
const MIN = 60000;
const registered = new Map(); // token -> entry (per scenario)
const orders = new Map(); // idempotency key -> order
const usedStreamTokens = new Set();

function status(id, now = Date.now()) {
  const base = {
    drop_id: id,
    name: "Drop 07 · Alpine Shell",
    product: { title: "Kestrel Alpine Shell", image_url: "jacket.svg", price: 650 },
    inventory: 50,
    remaining: 50,
    phase: "REGISTRATION",
    registration_start: now - 10 * MIN,
    registration_end: now + 42 * MIN + 17000,
    purchase_deadline: null,
    round: 0,
    registered: 1834,
    max_tickets: 10,
    ticket_price_unit: 1,
    server_time: now + 1234,
  };
  const s = {
    scheduled: { phase: "SCHEDULED", registration_start: now + 2 * 3600000 + 14 * MIN + 9000, registration_end: now + 3 * 3600000, registered: 0 },
    lottery: { phase: "LOTTERY", registration_end: now - MIN },
    "missed-lottery": { phase: "LOTTERY", registration_end: now - MIN },
    won: { phase: "PURCHASE", round: 1, remaining: 38, purchase_deadline: now + 9 * MIN + 41000, registration_end: now - 20 * MIN },
    promoted: { phase: "PURCHASE", round: 2, remaining: 3, purchase_deadline: now + 10 * MIN, registration_end: now - 40 * MIN },
    purchased: { phase: "PURCHASE", round: 1, remaining: 21, purchase_deadline: now + 4 * MIN, registration_end: now - 20 * MIN },
    waitlisted: { phase: "PURCHASE", round: 1, remaining: 12, purchase_deadline: now + 6 * MIN + 30000, registration_end: now - 20 * MIN },
    "missed-purchase": { phase: "PURCHASE", round: 1, remaining: 12, purchase_deadline: now + 6 * MIN, registration_end: now - 20 * MIN },
    expired: { phase: "PURCHASE", round: 2, remaining: 4, purchase_deadline: now + 6 * MIN, registration_end: now - 60 * MIN },
    lost: { phase: "COMPLETED", round: 3, remaining: 0, registration_end: now - 90 * MIN },
    soldout: { phase: "PURCHASE", round: 2, remaining: 0, registration_end: now - 90 * MIN, purchase_deadline: now + 2 * MIN },
    "missed-ended": { phase: "COMPLETED", round: 3, remaining: 0, registration_end: now - 90 * MIN },
    failed: { phase: "FAILED", registration_end: now - 5 * MIN },
  }[id] || {};
  return { ...base, ...s };
}

function me(id, token, now = Date.now()) {
  const base = {
    drop_id: id, shopper_id: "shp_" + (token || "anon").slice(0, 8), status: "NOT_REGISTERED", tickets: 0, cost: 0,
    rollover_used: 0, position: null, purchase_deadline: null, order_id: null, rollover_balance: id === "open" ? 2 : 0,
    rollover_earned: 0, server_time: now + 1234,
  };
  const reg = registered.get(`${id}:${token}`);
  if (reg) return { ...base, ...reg, server_time: now + 1234 };
  const st = status(id, now);
  const s = {
    registered: { status: "REGISTERED", tickets: 3, cost: 5 },
    lottery: { status: "REGISTERED", tickets: 3, cost: 5 },
    won: { status: "WINNER", tickets: 3, cost: 5, purchase_deadline: st.purchase_deadline },
    promoted: { status: "WINNER", tickets: 1, cost: 0, purchase_deadline: st.purchase_deadline },
    purchased: { status: "PURCHASED", tickets: 2, cost: 1, order_id: "ord_7Q4KX2M9" },
    waitlisted: { status: "WAITLISTED", tickets: 4, cost: 14, position: 3 },
    lost: { status: "LOST", tickets: 4, cost: 14, rollover_earned: 3 },
    expired: { status: "EXPIRED", tickets: 2, cost: 1 },
    soldout: { status: "WAITLISTED", tickets: 2, cost: 1, position: 1 },
    failed: { status: "REGISTERED", tickets: 1 },
  }[id] || {};
  return { ...base, ...s };
}

function send(res, code, body, headers = {}) {
  res.writeHead(code, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(body === undefined ? "" : JSON.stringify(body));
}

async function readBody(req) {
  let data = "";
  for await (const chunk of req) data += chunk;
  try { return data ? JSON.parse(data) : {}; } catch { return {}; }
}

function leadingZeroBits(buf) {
  let bits = 0;
  for (const b of buf) { if (b === 0) { bits += 8; continue; } return bits + Math.clz32(b) - 24; }
  return bits;
}

createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const path = url.pathname;
  const token = (req.headers.authorization || "").replace(/^Bearer /, "") || url.searchParams.get("token") || "";
  let m;
  if (path === "/api/session" && req.method === "POST") return send(res, 201, { token: randomUUID(), shopper_id: "shp_" + randomBytes(4).toString("hex"), expires_at: Date.now() + 3600000 });
  if (path.startsWith("/api/") && !token) return send(res, 401, { error: "invalid_token", message: "Missing token" });
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/status$/))) return send(res, 200, status(m[1]));
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/me$/))) return send(res, 200, me(m[1], token));
  if (path === "/api/pow/challenge") {
    return send(res, 200, { algorithm: "SHA-256", challenge: randomBytes(16).toString("hex"), salt: randomBytes(8).toString("hex") + ":", difficulty: url.searchParams.get("drop_id") === "slowpow" ? 20 : 15, expires: Date.now() + 120000, signature: randomBytes(32).toString("hex") });
  }
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/register$/)) && req.method === "POST") {
    const body = await readBody(req);
    const id = m[1];
    if (id === "bot") return send(res, 403, { error: "bot_suspected", message: "We couldn't verify this browser." });
    if (id === "ratelimited") return send(res, 429, { error: "rate_limited", message: "Slow down" }, { "Retry-After": "7" });
    const { challenge, nonce } = body.pow || {};
    const digest = createHash("sha256").update(String(challenge && challenge.salt) + String(nonce)).digest();
    if (!challenge || leadingZeroBits(digest) < challenge.difficulty) return send(res, 400, { error: "invalid_pow", message: "Proof of work failed" });
    console.log("register", JSON.stringify({ tickets: body.tickets, rollover: body.rollover, nonce, fingerprint: body.fingerprint, signals: body.signals }));
    const entry = { status: "REGISTERED", tickets: body.tickets, cost: 0, rollover_used: body.rollover };
    registered.set(`${id}:${token}`, entry);
    return send(res, 201, { entry: me(id, token) });
  }
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/stream-token$/))) return send(res, 200, { token: "st_" + randomUUID(), expires_at: Date.now() + 60000 });
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/purchase\/start$/))) {
    if (m[1] === "soldout") return send(res, 409, { error: "sold_out", message: "Sold out" });
    return send(res, 200, { purchase_token: "pt_" + randomUUID(), purchase_deadline: Date.now() + 5 * MIN, price: 650 });
  }
  if ((m = path.match(/^\/api\/drop\/([^/]+)\/purchase$/))) {
    const key = req.headers["idempotency-key"];
    if (!key) return send(res, 400, { error: "missing_idempotency_key", message: "Idempotency-Key required" });
    if (!orders.has(key)) orders.set(key, { order_id: "ord_" + randomBytes(4).toString("hex").toUpperCase(), drop_id: m[1], price: 650, purchased_at: Date.now() });
    console.log("purchase", key, orders.get(key).order_id);
    return send(res, 201, { order: orders.get(key) });
  }
  if ((m = path.match(/^\/events\/([^/]+)$/))) {
    const id = m[1];
    // "flaky": each stream token works once and the stream drops after 2 s,
    // so the browser's own reconnect gets 401 and the page must fetch a new token.
    if (id === "flaky") {
      if (usedStreamTokens.has(token)) return send(res, 401, { error: "invalid_token", message: "stream token expired" });
      usedStreamTokens.add(token);
      setTimeout(() => res.end(), 2000);
    }
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
    const push = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    push("drop", status(id));
    if (id === "promoted") {
      push("me", { ...me(id, token), status: "WAITLISTED", position: 1, purchase_deadline: null });
      setTimeout(() => push("me", me(id, token)), 1500);
    }
    const hb = setInterval(() => push("heartbeat", { server_time: Date.now() + 1234 }), 5000);
    req.on("close", () => clearInterval(hb));
    return;
  }
  if (path.startsWith("/api/")) return send(res, 404, { error: "not_found", message: path });
  const file = normalize(join(dist, path === "/" ? "index.html" : path));
  if (!file.startsWith(dist)) return send(res, 403, { error: "forbidden" });
  try {
    const data = await readFile(file);
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] || "application/octet-stream", "Cache-Control": "no-store" });
    res.end(data);
  } catch {
    send(res, 404, { error: "not_found" });
  }
}).listen(port, "127.0.0.1", () => console.log(`mock drop API + dist on http://127.0.0.1:${port}/?drop=open`));
