// Which panel to show, derived from the drop status, the shopper's entry and
// a little local knowledge (bot refusal, purchase outcome, waitlist history).
// Pure, so it is unit-tested in test/view.test.mjs.

export const STATES = [
  "loading",
  "scheduled",
  "registration-open",
  "registered",
  "lottery",
  "won",
  "purchased",
  "waitlisted",
  "lost",
  "expired",
  "missed",
  "sold-out",
  "bot",
  "failed",
  "error",
  "not-found",
];

/**
 * @param {object|null} status  GET /status body
 * @param {object|null} me      GET /me body
 * @param {object} local        {bot, soldOut, expired, order, wasWaitlisted, error, notFound}
 * @param {number} now          server time (ms)
 * @returns {{state: string, phase: string, promoted?: boolean, missedPhase?: string}}
 */
export function deriveView(status, me, local = {}, now = Date.now()) {
  if (!status) return { state: local.notFound ? "not-found" : local.error ? "error" : "loading", phase: "" };
  const phase = effectivePhase(status, now);
  const meStatus = (me && me.status) || "NOT_REGISTERED";
  const v = (state, extra = {}) => ({ state, phase, ...extra });

  if (local.order || meStatus === "PURCHASED") return v("purchased");
  if (phase === "FAILED") return v("failed");
  if (local.bot && meStatus === "NOT_REGISTERED") return v("bot");

  switch (meStatus) {
    case "WINNER": {
      if (local.soldOut) return v("sold-out");
      if (local.expired) return v("expired");
      const deadline = (me && me.purchase_deadline) || status.purchase_deadline;
      if (deadline && now >= deadline) return v("expired");
      return v("won", { promoted: Boolean(local.wasWaitlisted) });
    }
    case "EXPIRED":
      return v("expired");
    case "WAITLISTED":
      if (local.soldOut || status.remaining === 0) return v("sold-out");
      return v("waitlisted");
    case "LOST":
      if (local.soldOut) return v("sold-out");
      if (status.remaining === 0 && !(me && me.rollover_earned > 0)) return v("sold-out");
      return v("lost");
    case "REGISTERED":
      if (phase === "SCHEDULED" || phase === "REGISTRATION") return v("registered");
      return v("lottery");
    default: // NOT_REGISTERED
      if (phase === "SCHEDULED") return v("scheduled");
      if (phase === "REGISTRATION") return v("registration-open");
      // Nothing left to miss: say so plainly rather than "winners are buying now".
      if ((phase === "PURCHASE" || phase === "COMPLETED") && status.remaining === 0) return v("sold-out");
      return v("missed", { missedPhase: phase });
  }
}

/** Timestamps rule before the workflow catches up (mirrors Drop.effective_phase). */
export function effectivePhase(status, now) {
  const phase = status.phase || "SCHEDULED";
  if (phase === "SCHEDULED" || phase === "REGISTRATION") {
    if (status.registration_start && now < status.registration_start) return "SCHEDULED";
    if (status.registration_end && now >= status.registration_end) return "LOTTERY";
    if (status.registration_start && now >= status.registration_start) return "REGISTRATION";
  }
  return phase;
}

// Answers can arrive out of order: a GET /me sent before the draw (or answered from a
// cache that predates it) may land after the stream already said WINNER. A drop only
// moves forward, so an answer that would move it backwards is stale and is ignored.
const PHASE_ORDER = { SCHEDULED: 0, REGISTRATION: 1, LOTTERY: 2, PURCHASE: 3, COMPLETED: 4 };
const ME_ORDER = { NOT_REGISTERED: 0, REGISTERED: 1 }; // anything else: after the draw (2)

const sameDrop = (a, b) => !a.commitment || !b.commitment || a.commitment === b.commitment;

/** True when `next` (a /status body or `drop` event) is older than `current`. */
export function isStaleStatus(current, next) {
  if (!current || !next || !sameDrop(current, next)) return false;
  const a = PHASE_ORDER[current.phase];
  const b = PHASE_ORDER[next.phase];
  if (a === undefined || b === undefined) return false; // FAILED and back are always taken
  if (a !== b) return b < a;
  return (Number(next.round) || 0) < (Number(current.round) || 0);
}

/** True when `next` (a /me body or `me` event) would undo what `current` already showed. */
export function isStaleMe(current, next) {
  if (!current || !next || (current.drop_id && next.drop_id && current.drop_id !== next.drop_id)) return false;
  const rank = (m) => ME_ORDER[m.status] ?? 2;
  return rank(next) < rank(current);
}
