// Storefront for a limited drop. Vanilla ES modules, bundled by esbuild.
import FingerprintJS from "@fingerprintjs/fingerprintjs";
import { Api, ApiError, registrationBody, uuid } from "./api.js";
import { ServerClock, formatCountdown } from "./clock.js";
import { breakdown } from "./pricing.js";
import { deriveView, isStaleMe, isStaleStatus } from "./view.js";
import { DropStream } from "./stream.js";
import { solve, expectedWork } from "./pow.js";

const POLL_MS = 15000;
const TICK_MS = 250;
const DEFAULT_CONFIG = { apiBase: "/api", eventsBase: "/events", dropId: "demo", currency: "USD", priceScale: 1 };

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const els = {
  main: document.querySelector("main"),
  connection: $("connection"),
  connectionText: document.querySelector(".connection__text"),
  dropName: $("drop-name"),
  title: $("product-title"),
  productPrice: $("product-price"),
  image: $("product-image"),
  inventory: $("inventory"),
  phase: $("phase"),
  stock: $("stock"),
  registered: $("registered"),
  clockBlock: $("countdown-block"),
  countdownLabel: $("countdown-label"),
  countdown: $("countdown"),
  status: $("status-message"),
  form: $("register-form"),
  tickets: $("tickets"),
  price: $("price"),
  rolloverApplied: $("rollover-applied"),
  priceBreakdown: $("price-breakdown"),
  registerButton: $("register-button"),
  pow: $("pow-progress"),
  powCount: $("pow-count"),
  powTrack: document.querySelector(".pow__track"),
  powBar: document.querySelector(".pow__bar"),
  myTickets: $("my-tickets"),
  wonTitle: $("won-title"),
  wonLede: $("won-lede"),
  buyButton: $("buy-button"),
  orderId: $("order-id"),
  waitlistPosition: $("waitlist-position"),
  rolloverEarned: $("rollover-earned"),
  missedTitle: $("missed-title"),
  missedLede: $("missed-lede"),
  retryButton: $("retry-button"),
  panels: Array.from(document.querySelectorAll("[data-panel]")),
};

const startedAt = performance.now();
let interactions = 0;
for (const type of ["pointerdown", "pointermove", "keydown", "touchstart"]) {
  window.addEventListener(type, () => { interactions += 1; }, { passive: true, capture: true });
}

const clock = new ServerClock();
let config = { ...DEFAULT_CONFIG };
let api;
let dropId;
let status = null;
let me = null;
const local = { bot: false, soldOut: false, expired: false, order: null, wasWaitlisted: false, error: false, notFound: false };
const ui = { registering: false, buying: false, rateLimitedUntil: 0 };
let lastView = null;
let lastPhase = null;
let firedTargets = new Set();
let fingerprintPromise = null;
let connection = "connecting";
let booted = false; // show "loading" until both /status and /me had their say

// ---------------------------------------------------------------- helpers

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}
function setAttr(el, name, value) {
  if (el && el.getAttribute(name) !== String(value)) el.setAttribute(name, String(value));
}
function show(el, visible) {
  if (el && el.hidden === visible) el.hidden = !visible;
}
function announce(text) {
  // Re-set even when unchanged so screen readers hear a repeated error.
  els.status.textContent = "";
  if (text) window.setTimeout(() => { els.status.textContent = text; }, 30);
}
function money(amount) {
  const value = Number(amount) / (Number(config.priceScale) || 1);
  if (!Number.isFinite(value)) return "";
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency: config.currency || "USD",
      maximumFractionDigits: Number.isInteger(value) ? 0 : 2,
    }).format(value);
  } catch {
    return String(value);
  }
}
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const storageKey = (what) => `drop.${what}.${dropId}`;
function store(kind) {
  try {
    return kind === "session" ? window.sessionStorage : window.localStorage;
  } catch {
    return null;
  }
}
function readJSON(kind, key) {
  try {
    const raw = store(kind) && store(kind).getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}
function writeJSON(kind, key, value) {
  try {
    const s = store(kind);
    if (!s) return;
    if (value === null || value === undefined) s.removeItem(key);
    else s.setItem(key, JSON.stringify(value));
  } catch {
    /* storage full or disabled: the attempt lives in memory only */
  }
}
function sameOrigin(url) {
  try {
    return new URL(url, window.location.href).origin === window.location.origin;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- data

function setStatus(next) {
  if (!next || typeof next !== "object") return;
  if (next.server_time) clock.observe(next.server_time);
  if (isStaleStatus(status, next)) return;
  const phaseChanged = lastPhase !== null && next.phase !== lastPhase;
  status = next;
  lastPhase = next.phase;
  local.error = false;
  local.notFound = false;
  if (phaseChanged) refreshMe();
  render();
}

function setMe(next) {
  if (!next || typeof next !== "object") return;
  if (next.server_time) clock.observe(next.server_time);
  if (isStaleMe(me, next)) {
    // Still take a fresher rollover balance if this answer has one.
    if ("rollover_balance" in next && me) me = { ...me, rollover_balance: next.rollover_balance };
    return;
  }
  // Only GET /me reads the shopper's rollover balance; the stream's `me` events and the
  // register answer leave it out. Keep the last known balance rather than forget it.
  me = "rollover_balance" in next || !me || !("rollover_balance" in me)
    ? next
    : { ...next, rollover_balance: me.rollover_balance };
  if (me.status === "WAITLISTED" && !local.wasWaitlisted) {
    local.wasWaitlisted = true;
    writeJSON("local", storageKey("waitlisted"), true);
  }
  if (me.status === "NOT_REGISTERED" || me.status === "REGISTERED") local.bot = local.bot && me.status === "NOT_REGISTERED";
  render();
}

async function refreshStatus() {
  try {
    setStatus(await api.status(dropId));
  } catch (err) {
    if (err instanceof ApiError && err.code === "drop_not_found") {
      // Definitive (a mistyped link, or the drop was taken down): not a connection problem.
      local.notFound = true;
      status = null;
      me = null;
      render();
    } else if (!status) {
      local.error = true;
      render();
    }
  }
}

async function refreshMe() {
  try {
    setMe(await api.me(dropId));
  } catch {
    /* the stream or the next poll will catch up */
  }
}

// ---------------------------------------------------------------- render

const PHASE_NAMES = {
  SCHEDULED: "Opening soon",
  REGISTRATION: "Registration open",
  LOTTERY: "Lottery",
  PURCHASE: "Purchasing",
  COMPLETED: "Ended",
  FAILED: "Paused",
};

const ANNOUNCE = {
  scheduled: "Registration hasn't opened yet. The countdown shows when it does.",
  "registration-open": "Registration is open. Choose your tickets to enter the draw.",
  registered: "You're registered. The lottery runs when registration closes.",
  lottery: "The lottery is running. Your result will appear here.",
  won: "You won! Complete your purchase before the timer runs out.",
  purchased: "Purchase complete. Your order is confirmed.",
  waitlisted: "You're on the waitlist.",
  lost: "The draw has finished. You weren't selected this time.",
  expired: "Your buying window has closed.",
  missed: "Registration for this drop has closed.",
  "sold-out": "This drop is sold out.",
  bot: "We couldn't verify this browser.",
  failed: "This drop hit a problem. Our operators have been notified.",
  error: "We can't reach the drop right now. Retrying.",
  "not-found": "We can't find this drop.",
};

function countdownFor(view) {
  if (!status) return null;
  switch (view.state) {
    case "scheduled":
      return { label: "Registration opens in", target: status.registration_start };
    case "registration-open":
      return { label: "Registration closes in", target: status.registration_end };
    case "registered":
      return { label: "Lottery in", target: status.registration_end };
    case "won":
      return { label: "Time left to buy", target: (me && me.purchase_deadline) || status.purchase_deadline };
    case "waitlisted":
      return status.purchase_deadline ? { label: "This round ends in", target: status.purchase_deadline } : null;
    default:
      return null;
  }
}

function render() {
  const now = clock.now();
  const view = booted || local.error || local.notFound ? deriveView(status, me, local, now) : { state: "loading", phase: "" };
  const state = view.state;
  setAttr(els.main, "data-state", state);
  setAttr(els.main, "data-promoted", state === "won" && view.promoted ? "true" : "false");
  setAttr(els.main, "aria-busy", state === "loading" ? "true" : "false");
  const focused = document.activeElement;
  const focusedPanel = focused && focused !== document.body && focused.closest
    ? focused.closest("[data-panel]")
    : lastFocusPanel; // focus fell to <body> (e.g. the pressed button was disabled)
  for (const panel of els.panels) show(panel, panel.dataset.panel === state);
  if (focusedPanel && focusedPanel.hidden) focusPanel(state);

  if (status) renderDrop(view);
  else if (state === "error") setText(els.title, "Limited drop");
  show(els.connection, state !== "not-found"); // no drop, no live updates to speak of
  if (state === "not-found") {
    setText(els.title, "Drop not found");
    setText(els.dropName, "Limited release");
    setText(els.phase, "—");
    setAttr(els.phase, "data-phase", "");
    if (document.title !== "Drop not found · Limited drop") document.title = "Drop not found · Limited drop";
  }
  renderCountdown(view, now);
  renderPanel(view);

  if (lastView !== state) {
    if (lastView !== null && lastView !== "loading" && state !== "loading") announce(announcementFor(view));
    lastView = state;
  }
}

// Keyboard and screen-reader users keep their place: when the panel holding focus is
// replaced (the button they pressed is gone), focus moves to the new panel's title.
let lastFocusPanel = null; // the panel focus was last in, unless the shopper clicked elsewhere since
document.addEventListener("focusin", (ev) => {
  lastFocusPanel = ev.target && ev.target.closest ? ev.target.closest("[data-panel]") : null;
});
document.addEventListener("pointerdown", (ev) => {
  if (!(ev.target && ev.target.closest && ev.target.closest("[data-panel]"))) lastFocusPanel = null;
}, { capture: true, passive: true });

function focusPanel(state) {
  const panel = els.panels.find((p) => p.dataset.panel === state);
  const target = panel && (panel.querySelector(".panel__title") || panel);
  if (!target) return;
  if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus({ preventScroll: false });
  lastFocusPanel = panel;
}

function announcementFor(view) {
  if (view.state === "won" && view.promoted) return "A unit opened up for you. Complete your purchase before the timer runs out.";
  if (view.state === "waitlisted" && me && me.position) return `You're number ${me.position} in line.`;
  return ANNOUNCE[view.state] || "";
}

function renderDrop(view) {
  const product = status.product || {};
  setText(els.dropName, status.name || "Limited release");
  setText(els.title, product.title || status.name || "Limited drop");
  if (document.title !== `${product.title || status.name || "Drop"} · Limited drop`) {
    document.title = `${product.title || status.name || "Drop"} · Limited drop`;
  }
  setText(els.productPrice, product.price !== undefined && product.price !== null ? money(product.price) : "");
  if (product.image_url && sameOrigin(product.image_url) && els.image.getAttribute("src") !== product.image_url) {
    els.image.setAttribute("src", product.image_url);
  }
  setAttr(els.image, "alt", product.title ? `${product.title}, product image` : "Product image");
  setText(els.inventory, status.inventory !== undefined ? String(status.inventory) : "—");
  setText(els.phase, PHASE_NAMES[view.phase] || view.phase || "—");
  setAttr(els.phase, "data-phase", view.phase || "");
  const remaining = Number(status.remaining);
  const soldOut = remaining === 0;
  setText(els.stock, soldOut ? "Sold out" : Number.isFinite(remaining) ? `${remaining} of ${status.inventory} left` : "—");
  setAttr(els.stock, "data-remaining", Number.isFinite(remaining) ? remaining : "");
  setText(els.registered, Number.isFinite(Number(status.registered)) ? Number(status.registered).toLocaleString() : "—");
}

function renderCountdown(view, now) {
  const c = countdownFor(view);
  show(els.clockBlock, Boolean(c && c.target));
  if (!c || !c.target) {
    setAttr(els.countdown, "data-target", "");
    return;
  }
  const left = Math.max(0, c.target - now);
  setText(els.countdownLabel, c.label);
  setText(els.countdown, formatCountdown(left));
  setAttr(els.countdown, "data-target", c.target);
  setAttr(els.countdown, "data-remaining-ms", Math.ceil(left / 1000) * 1000);
  els.clockBlock.classList.toggle("clock--urgent", view.state === "won" && left < 60000);
  // When a boundary passes, ask the server what happened (once per boundary).
  if (left === 0 && !firedTargets.has(c.target)) {
    firedTargets.add(c.target);
    window.setTimeout(() => { refreshStatus(); refreshMe(); }, 600);
  }
}

function renderPanel(view) {
  switch (view.state) {
    case "registration-open":
      renderForm();
      break;
    case "registered": {
      const t = me && me.tickets;
      setText(els.myTickets, t ? `Your ${plural(t, "ticket")} ${t === 1 ? "is" : "are"}` : "Your tickets are");
      break;
    }
    case "won":
      setText(els.wonTitle, view.promoted ? "You're up." : "You won.");
      setText(els.wonLede, view.promoted
        ? "A winner didn't buy, so their unit is now held for you. Complete your purchase before the timer runs out."
        : "Your unit is held for you. Complete your purchase before the timer runs out.");
      renderBuyButton();
      break;
    case "purchased": {
      const id = (local.order && local.order.order_id) || (me && me.order_id) || "";
      setText(els.orderId, id);
      break;
    }
    case "waitlisted": {
      const pos = me && me.position;
      setText(els.waitlistPosition, pos ? `#${pos}` : "#—");
      setAttr(els.waitlistPosition, "data-position", pos || "");
      break;
    }
    case "lost": {
      const earned = Number(me && me.rollover_earned) || 0;
      show(els.rolloverEarned, earned > 0);
      setText(els.rolloverEarned, earned > 0 ? `${plural(earned, "rollover credit")} earned for the next drop` : "");
      setAttr(els.rolloverEarned, "data-credits", earned);
      break;
    }
    case "missed": {
      const p = view.missedPhase;
      setAttr(els.missedTitle, "data-phase", p || "");
      if (p === "LOTTERY") {
        setText(els.missedTitle, "Registration has closed.");
        setText(els.missedLede, "The lottery is running now, so new entries can't join this drop. The next drop is a fresh start for everyone.");
      } else if (p === "PURCHASE") {
        setText(els.missedTitle, "Registration has closed.");
        setText(els.missedLede, "Winners are buying now. New entries can't join this drop, but the next one is a fresh start for everyone.");
      } else {
        setText(els.missedTitle, "This drop has ended.");
        setText(els.missedLede, "Registration is closed and every round is finished. Thanks for stopping by: the next drop is a fresh start for everyone.");
      }
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------- registration

function rolloverBalance() {
  return Math.max(0, Number(me && me.rollover_balance) || 0);
}

function renderForm() {
  const max = Math.max(1, Number(status.max_tickets) || 1);
  if (els.tickets.options.length !== max) {
    const keep = Number(els.tickets.value) || 1;
    els.tickets.textContent = "";
    for (let n = 1; n <= max; n++) {
      const opt = document.createElement("option");
      opt.value = String(n);
      opt.textContent = plural(n, "ticket");
      els.tickets.append(opt);
    }
    els.tickets.value = String(Math.min(keep, max));
  }
  const n = Number(els.tickets.value) || 1;
  const b = breakdown(n, rolloverBalance(), Number(status.ticket_price_unit) || 1);
  setText(els.price, b.cost === 0 ? "Free" : money(b.cost));
  setAttr(els.price, "data-cost", b.cost);
  show(els.rolloverApplied, b.rollover > 0);
  setText(els.rolloverApplied, b.rollover > 0 ? `${plural(b.rollover, "rollover credit")} applied` : "");
  const bits = [];
  if (b.rollover) bits.push(`${b.rollover} from rollover`);
  if (b.free) bits.push("1 free");
  if (b.paid) bits.push(`${b.paid} paid`);
  setText(els.priceBreakdown, bits.join(" · "));

  const waitMs = ui.rateLimitedUntil - Date.now();
  const label = ui.registering
    ? "Entering…"
    : waitMs > 0 ? `Try again in ${Math.ceil(waitMs / 1000)}s` : "Enter the draw";
  setText(els.registerButton, label);
  els.registerButton.disabled = ui.registering || waitMs > 0;
  setAttr(els.registerButton, "aria-busy", ui.registering ? "true" : "false");
  els.tickets.disabled = ui.registering;
}

function setPow(state, tried = 0, expected = 1) {
  setAttr(els.pow, "data-state", state);
  show(els.pow, state !== "idle");
  const pct = state === "done" ? 100 : Math.min(99, Math.floor((tried / expected) * 100));
  els.powBar.style.transform = `scaleX(${pct / 100})`;
  setAttr(els.powTrack, "aria-valuenow", pct);
  setAttr(els.pow, "data-tried", tried);
  setAttr(els.pow, "data-expected", expected);
  setText(els.powCount, state === "done"
    ? "Verified"
    : `${tried.toLocaleString()} / ~${expected.toLocaleString()} hashes`);
}

function solveChallenge(challenge) {
  const expected = expectedWork(challenge.difficulty);
  setPow("solving", 0, expected);
  if (typeof Worker === "undefined") {
    return solve(challenge, { onProgress: (tried) => setPow("solving", tried, expected) })
      .then((r) => r.nonce);
  }
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL("pow-worker.js", document.baseURI));
    } catch (err) {
      solve(challenge, { onProgress: (tried) => setPow("solving", tried, expected) })
        .then((r) => resolve(r.nonce), reject);
      return;
    }
    worker.onmessage = (ev) => {
      const msg = ev.data || {};
      if (msg.type === "progress") setPow("solving", msg.tried, expected);
      else if (msg.type === "solved") {
        worker.terminate();
        setPow("done", msg.tried, expected);
        resolve(msg.nonce);
      } else if (msg.type === "error") {
        worker.terminate();
        reject(new Error(msg.message));
      }
    };
    worker.onerror = (ev) => {
      worker.terminate();
      reject(new Error((ev && ev.message) || "worker failed"));
    };
    worker.postMessage({ type: "solve", challenge });
  });
}

function fingerprint() {
  if (!fingerprintPromise) {
    fingerprintPromise = FingerprintJS.load({ monitoring: false })
      .then((agent) => agent.get())
      .then((r) => (r && r.visitorId ? { visitor_id: r.visitorId, confidence: r.confidence ? r.confidence.score : 0 } : null))
      .catch(() => null); // blocked or broken: register without it (that layer then scores 0)
  }
  return fingerprintPromise;
}

async function register(event) {
  if (event) event.preventDefault();
  if (ui.registering || ui.rateLimitedUntil > Date.now()) return;
  ui.registering = true;
  render();
  const tickets = Number(els.tickets.value) || 1;
  // One Idempotency-Key per entry, kept until a definite answer: a retry after a lost reply
  // gets the entry that landed (201) instead of "already registered".
  const keyName = storageKey("register");
  const kept = readJSON("session", keyName);
  const key = kept && kept.tickets === tickets ? kept.key : uuid();
  writeJSON("session", keyName, { key, tickets });
  try {
    let entry;
    for (let attempt = 0; ; attempt++) {
      announce("Verifying you're human…");
      const [challenge, fp] = await Promise.all([api.challenge(dropId), fingerprint()]);
      const nonce = await solveChallenge(challenge);
      const body = registrationBody({
        tickets,
        rollover: Math.min(rolloverBalance(), tickets),
        challenge,
        nonce,
        fingerprint: fp,
        signals: { interactions, elapsed_ms: Math.round(performance.now() - startedAt) },
      });
      try {
        entry = (await sendRegistration(body, key)).entry;
        break;
      } catch (err) {
        // A challenge that expired while solving deserves one fresh try.
        if (attempt === 0 && err instanceof ApiError && /pow|challenge/i.test(err.code)) continue;
        throw err;
      }
    }
    writeJSON("session", keyName, null);
    if (entry) setMe(entry);
    else refreshMe();
    announce(`You're in the draw with ${plural(tickets, "ticket")}.`);
  } catch (err) {
    if (!retryable(err)) writeJSON("session", keyName, null);
    handleRegisterError(err);
  } finally {
    ui.registering = false;
    setPow("idle");
    render();
  }
}

const retryable = (err) => err instanceof ApiError && (err.status === 0 || err.status === 503);

/** The same request (same body, same Idempotency-Key) again while the network or the store is down. */
async function sendRegistration(body, key) {
  for (let tries = 1; ; tries++) {
    try {
      return await api.register(dropId, body, key);
    } catch (err) {
      if (!retryable(err) || tries >= 4) throw err;
      announce("Connection trouble, trying again…");
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** tries));
    }
  }
}

function handleRegisterError(err) {
  const code = err instanceof ApiError ? err.code : "unknown";
  switch (code) {
    case "already_registered":
      announce("You're already registered for this drop.");
      refreshMe();
      break;
    case "bot_suspected":
      local.bot = true;
      render();
      announce("We couldn't verify this browser, so your entry wasn't recorded.");
      break;
    case "registration_closed":
      announce("Registration closed just before your entry arrived.");
      refreshStatus();
      break;
    case "registration_not_open":
      announce("Registration hasn't opened yet. Hold tight.");
      refreshStatus();
      break;
    case "rate_limited": {
      const secs = err.retryAfter ?? 10;
      ui.rateLimitedUntil = Date.now() + secs * 1000;
      announce(`Lots of people are entering right now. Please try again in ${plural(secs, "second")}.`);
      break;
    }
    case "network":
      announce("We couldn't reach the server. Check your connection and try again.");
      break;
    default:
      announce((err && err.message && err instanceof ApiError) ? `${err.message} Please try again.` : "Something went wrong. Please try again.");
  }
}

// ---------------------------------------------------------------- purchase

let attempt = null; // {key, token}: one Idempotency-Key per purchase attempt

function renderBuyButton() {
  const price = status && status.product ? status.product.price : undefined;
  const label = ui.buying ? "Processing…" : price !== undefined ? `Buy now · ${money(price)}` : "Buy now";
  setText(els.buyButton, label);
  els.buyButton.disabled = ui.buying;
  setAttr(els.buyButton, "aria-busy", ui.buying ? "true" : "false");
}

async function buy() {
  if (ui.buying) return;
  ui.buying = true;
  render();
  announce("Securing your order…");
  try {
    if (!attempt) {
      attempt = { key: uuid(), token: null };
      writeJSON("session", storageKey("purchase"), attempt);
    }
    if (!attempt.token) {
      const started = await api.purchaseStart(dropId);
      attempt.token = started.purchase_token;
      writeJSON("session", storageKey("purchase"), attempt);
    }
    const res = await api.purchase(dropId, attempt.token, attempt.key);
    finishPurchase(res && res.order);
  } catch (err) {
    handlePurchaseError(err);
  } finally {
    ui.buying = false;
    render();
  }
}

function finishPurchase(order) {
  attempt = null;
  writeJSON("session", storageKey("purchase"), null);
  if (order) local.order = order;
  render();
  announce(order && order.order_id ? `Purchase complete. Order ${order.order_id}.` : "Purchase complete.");
  refreshMe();
  refreshStatus();
}

function handlePurchaseError(err) {
  const code = err instanceof ApiError ? err.code : "unknown";
  const status = err instanceof ApiError ? err.status : 0;
  switch (code) {
    case "already_purchased":
      if (err.body && err.body.order) finishPurchase(err.body.order);
      else {
        attempt = null;
        writeJSON("session", storageKey("purchase"), null);
        announce("You've already bought this. Here's your order.");
        refreshMe();
      }
      return;
    case "sold_out":
      attempt = null;
      writeJSON("session", storageKey("purchase"), null);
      local.soldOut = true;
      render();
      return;
    case "purchase_expired":
      attempt = null;
      writeJSON("session", storageKey("purchase"), null);
      local.expired = true;
      render();
      return;
    case "rate_limited":
      announce(`Busy moment. Please try again in ${plural(err.retryAfter ?? 5, "second")}. You won't be charged twice.`);
      return;
    default:
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        // The server rejected this attempt outright (e.g. a stale purchase
        // token): start a clean attempt next time.
        attempt = null;
        writeJSON("session", storageKey("purchase"), null);
        announce(`${err.message || "That didn't go through."} Please try again.`);
      } else {
        // Unknown outcome (network drop, 5xx): keep the same key so a retry
        // can never buy twice.
        announce("The connection dropped before we heard back. Press Buy again: it's safe, you won't be charged twice.");
      }
      refreshMe();
  }
}

// ---------------------------------------------------------------- live updates

const CONNECTION_TITLES = {
  connecting: "Connecting to live updates",
  live: "Live updates on",
  reconnecting: "Live updates reconnecting",
  offline: "You're offline: live updates resume when you're back",
};

function setConnection(state) {
  const was = connection;
  connection = state;
  setAttr(els.connection, "data-state", state);
  setText(els.connectionText, state);
  setAttr(els.connection, "title", CONNECTION_TITLES[state] || "Live updates");
  if (state === "offline" && was !== "offline" && typeof EventSource !== "undefined") {
    announce("You're offline. This page will catch up as soon as your connection is back.");
  }
}

function onStreamEvent(type, data) {
  if (data && data.server_time) clock.observe(data.server_time);
  if (type === "drop") setStatus(data);
  else if (type === "me") setMe(data);
}

// ---------------------------------------------------------------- boot

async function loadConfig() {
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (res.ok) config = { ...DEFAULT_CONFIG, ...(await res.json()) };
  } catch {
    /* defaults */
  }
  const fromQuery = new URLSearchParams(window.location.search).get("drop");
  dropId = (fromQuery && fromQuery.trim()) || config.dropId || "demo";
}

async function boot() {
  await loadConfig();
  api = new Api({ base: config.apiBase, clock });
  local.wasWaitlisted = Boolean(readJSON("local", storageKey("waitlisted")));
  attempt = readJSON("session", storageKey("purchase"));

  els.form.addEventListener("submit", register);
  els.tickets.addEventListener("change", render);
  els.buyButton.addEventListener("click", buy);
  els.retryButton.addEventListener("click", () => {
    local.bot = false;
    render();
    announce("Registration form restored. You can try again.");
  });

  await Promise.all([refreshStatus(), refreshMe()]);
  booted = true;
  render();

  const stream = new DropStream({
    api,
    eventsBase: config.eventsBase,
    dropId,
    onEvent: onStreamEvent,
    onConnection: setConnection,
  });
  stream.start();
  // Back online: ask for the latest at once (the stream reopens by itself too).
  window.addEventListener("online", () => { refreshStatus(); refreshMe(); });

  window.setInterval(render, TICK_MS);
  window.setInterval(() => {
    refreshStatus();
    if (connection !== "live") refreshMe();
  }, POLL_MS);

  // Fingerprinting is slow-ish: start it while the shopper reads the page.
  const idle = window.requestIdleCallback || ((fn) => window.setTimeout(fn, 500));
  idle(() => fingerprint());
}

boot();
