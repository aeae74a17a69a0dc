"""Operator use cases: who entered a drop, how they stand, and how human they looked."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from chalicelib.domain.drop import Drop, Participant, Status, standing
from chalicelib.domain.errors import InvalidInput

MAX_PAGE = 500
SCORE_BINS = 10  # 0-9, 10-19, ..., 90-100
WON = (Status.WINNER, Status.PURCHASED, Status.EXPIRED)


def parse_statuses(raw: str | None) -> set[Status] | None:
    """'WINNER,PURCHASED' -> {Status...}; None or '' means every status."""
    if not raw:
        return None
    try:
        return {Status(part.strip().upper()) for part in raw.split(",") if part.strip()}
    except ValueError as exc:
        raise InvalidInput(f"status must be among {', '.join(s.value for s in Status)}.") from exc


def parse_page(limit: str | None, offset: str | None) -> tuple[int, int]:
    try:
        size, start = int(limit or 50), int(offset or 0)
    except ValueError as exc:
        raise InvalidInput("limit and offset must be integers.") from exc
    if not 0 <= size <= MAX_PAGE or start < 0:
        raise InvalidInput(f"limit must be 0..{MAX_PAGE} and offset >= 0.")
    return size, start


def trust_score(p: Participant) -> int | None:
    score = (p.trust or {}).get("score")
    return int(score) if isinstance(score, (int, float)) else None


def score_histogram(scores: Iterable[int | None]) -> dict:
    """Counts per 10-point bucket of the 0-100 trust score, plus entries without a score."""
    bins, unscored = [0] * SCORE_BINS, 0
    for score in scores:
        if score is None:
            unscored += 1
        else:
            bins[min(SCORE_BINS - 1, max(0, score) // 10)] += 1
    labels = [f"{10 * i}-{10 * i + 9 if i < SCORE_BINS - 1 else 100}" for i in range(SCORE_BINS)]
    return {"buckets": dict(zip(labels, bins)), "unscored": unscored}


def _row(p: Participant, status: Status) -> dict:
    return {"shopper_id": p.shopper_id, "pseudonym": p.pseudonym, "status": status.value, "rank": p.rank,
            "tickets": p.tickets, "cost": p.cost, "rollover_used": p.rollover_used, "registered_at": p.registered_at,
            "trust_score": trust_score(p), "reasons": list((p.trust or {}).get("reasons") or []),
            "order_id": p.order_id, "purchased_at": p.purchased_at or None}


def participants_summary(drop: Drop, participants: Iterable[Participant], now: int, *,
                         statuses: set[Status] | None = None, limit: int = 50, offset: int = 0) -> dict:
    """Counts by status and a trust-score histogram over every entry; one page of entries (by rank, then time)."""
    rows = [(p, standing(drop, p, now).status) for p in participants]
    counts = Counter(status.value for _, status in rows)
    picked = [(p, s) for p, s in rows if statuses is None or s in statuses]
    picked.sort(key=lambda row: (row[0].rank is None, row[0].rank or 0, row[0].registered_at, row[0].shopper_id))
    page = picked[offset : offset + limit]
    return {
        "drop_id": drop.drop_id, "phase": drop.effective_phase(now).value, "failure": drop.failure or None,
        "total": len(rows),
        "tickets": sum(p.tickets for p, _ in rows),
        "by_status": {s.value: counts.get(s.value, 0) for s in Status if s is not Status.NOT_REGISTERED},
        "trust": score_histogram(trust_score(p) for p, _ in rows),
        "matching": len(picked), "offset": offset, "limit": limit,
        "next_offset": offset + limit if offset + limit < len(picked) else None,
        "participants": [_row(p, s) for p, s in page],
    }
