"""Trust score 0-100: 40 fingerprint + 30 timing + 30 proof-of-work; pure functions, no I/O.

Timing is the server's clock from challenge issue to registration. Under FAST_MS is suspicious
unless the work the nonce shows (the storefront searches nonces from 0, so nonce + 1 hashes)
could be done that fast by a browser (a lucky solve); work done faster than max_hps means a
native solver. The client's signals (interactions, page time) scale the timing points a little
but only within what the server clock allows: they never replace it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

WEIGHTS = {"fingerprint": 40, "timing": 30, "pow": 30}
FLOOR_MS = 50  # nothing human answers a challenge this fast: two network trips and a worker start
FAST_MS = 300  # below: suspicious unless a lucky solve at browser speed
HUMAN_MS = 1000  # from here on: full timing points
LUCKY = 0.5  # the timing fraction of a short but browser-paced solve
SIGNALS_SHARE = 0.2  # the part of the timing points that needs the client's signals to agree
OSS_MAX_CONFIDENCE = 0.7  # the open-source FingerprintJS agent never reports more (0.3-0.7)
DEFAULT_MAX_HPS = 500_000  # 3x the browser rate the 17-bit difficulty is calibrated for (2^17 in ~0.8 s)


@dataclass(frozen=True)
class Trust:
    """The score, each layer's points and the reasons for points withheld (reasons go to logs only)."""

    score: int
    parts: dict[str, int]
    elapsed_ms: int
    verified: bool = False
    reasons: list[str] = field(default_factory=list)

    def passes(self, threshold: int) -> bool:
        return self.score >= threshold

    def to_dict(self) -> dict:
        """What the entry stores for operators (ints only: DynamoDB numbers)."""
        return {"score": self.score, **self.parts, "elapsed_ms": self.elapsed_ms, "verified": self.verified,
                "reasons": list(self.reasons)}


def fingerprint_points(confidence: float, *, present: bool, verified: bool, bot: bool = False) -> float:
    """Verified: the full weight times Fingerprint's confidence. Unverified: at most half, capped at OSS confidence."""
    if not present or bot:
        return 0.0
    confidence = min(1.0, max(0.0, confidence))
    if verified:
        return WEIGHTS["fingerprint"] * confidence
    return WEIGHTS["fingerprint"] / 2 * min(confidence, OSS_MAX_CONFIDENCE)


def server_timing(elapsed_ms: int, tried: int, max_hps: int = DEFAULT_MAX_HPS) -> float:
    """0..1 from the server's clock alone."""
    if elapsed_ms < FLOOR_MS:
        return 0.0
    if tried * 1000 > max_hps * elapsed_ms:
        return 0.0  # more hashes than a browser does in that time
    if elapsed_ms >= HUMAN_MS:
        return 1.0
    if elapsed_ms < FAST_MS:
        return LUCKY
    return LUCKY + (1 - LUCKY) * (elapsed_ms - FAST_MS) / (HUMAN_MS - FAST_MS)


def client_signals(interactions: int, page_ms: int, elapsed_ms: int) -> float:
    """0..1 from what the page says: someone touched it, and it was open at least as long as the challenge."""
    touched = 1.0 if interactions > 0 else 0.0
    consistent = 1.0 if page_ms >= max(elapsed_ms, HUMAN_MS) else 0.0
    return (touched + consistent) / 2


def timing_points(elapsed_ms: int, tried: int, *, interactions: int = 0, page_ms: int = 0,
                  max_hps: int = DEFAULT_MAX_HPS) -> float:
    server = server_timing(elapsed_ms, tried, max_hps)
    client = client_signals(interactions, page_ms, elapsed_ms)
    return WEIGHTS["timing"] * server * ((1 - SIGNALS_SHARE) + SIGNALS_SHARE * client)


def pow_points(valid: bool) -> float:
    return float(WEIGHTS["pow"]) if valid else 0.0


def assess(*, pow_valid: bool, elapsed_ms: int, tried: int, fp_present: bool, fp_confidence: float,
           fp_verified: bool, fp_bot: bool = False, fp_reason: str = "", interactions: int = 0,
           page_ms: int = 0, max_hps: int = DEFAULT_MAX_HPS) -> Trust:
    """Score one registration attempt."""
    parts = {
        "fingerprint": fingerprint_points(fp_confidence, present=fp_present, verified=fp_verified, bot=fp_bot),
        "timing": timing_points(elapsed_ms, tried, interactions=interactions, page_ms=page_ms, max_hps=max_hps),
        "pow": pow_points(pow_valid),
    }
    reasons = [fp_reason] if fp_reason else []
    if not fp_present and "no fingerprint" not in reasons:
        reasons.append("no fingerprint")
    if elapsed_ms < FAST_MS or server_timing(elapsed_ms, tried, max_hps) == 0:
        reasons.append(f"too fast: {elapsed_ms} ms for {tried} hashes")
    if not pow_valid:
        reasons.append("proof-of-work invalid")
    score = int(sum(parts.values()))
    return Trust(score=min(100, score), parts={k: int(round(v)) for k, v in parts.items()},
                 elapsed_ms=int(elapsed_ms), verified=fp_verified, reasons=reasons)
