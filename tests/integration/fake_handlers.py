"""Tiny Lambda handlers that the devstack moto server runs in-process during integration tests."""

import datetime
from collections import Counter
from typing import Any

CALLS: list[dict[str, Any]] = []
_attempts: Counter = Counter()
# drop_id prefix -> the 'next' values drop_tick returns, in order (the last one repeats).
SCRIPTS = {
    "flaky-": ["lottery", "done"],
    "slow-": ["wait"],
    "": ["wait", "lottery", "promote", "complete", "done"],
}
WAIT_SECONDS = 1
SLOW_WAIT_SECONDS = 300


class DropNotFound(Exception):
    """Same name as chalicelib.domain.errors.DropNotFound: not retried by the ASL."""


class TransientStoreError(Exception):
    """Same name as chalicelib.domain.errors.TransientStoreError: retried by the ASL."""


def _record(event: Any, context: Any) -> str:
    CALLS.append({"function": context.function_name, "event": event})
    return event.get("drop_id", "") if isinstance(event, dict) else ""


def _wake_at(seconds: int) -> str:
    due = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def echo(event: Any, context: Any) -> dict[str, Any]:
    _record(event, context)
    return {"event": event, "function_name": context.function_name}


def explode(event: Any, context: Any) -> None:
    drop_id = _record(event, context)
    raise DropNotFound(f"drop {drop_id!r} not found")


def tick(event: Any, context: Any) -> dict[str, str]:
    drop_id = _record(event, context)
    if drop_id.startswith("missing-"):
        raise DropNotFound(f"drop {drop_id!r} not found")
    script = next(steps for prefix, steps in SCRIPTS.items() if drop_id.startswith(prefix))
    step = _attempts[("tick", drop_id)]
    _attempts[("tick", drop_id)] += 1
    wait = SLOW_WAIT_SECONDS if drop_id.startswith("slow-") else WAIT_SECONDS
    return {"drop_id": drop_id, "next": script[min(step, len(script) - 1)], "wake_at": _wake_at(wait)}


def run_lottery(event: Any, context: Any) -> dict[str, Any]:
    drop_id = _record(event, context)
    _attempts[("lottery", drop_id)] += 1
    if drop_id.startswith("flaky-") and _attempts[("lottery", drop_id)] <= 2:
        raise TransientStoreError("store busy, try again")
    return {"drop_id": drop_id, "winners": 3}


def promote(event: Any, context: Any) -> dict[str, Any]:
    return {"drop_id": _record(event, context), "promoted": 1}


def complete(event: Any, context: Any) -> dict[str, Any]:
    return {"drop_id": _record(event, context), "phase": "COMPLETED"}


def mark_failed(event: Any, context: Any) -> dict[str, Any]:
    return {"drop_id": _record(event, context), "phase": "FAILED"}


def calls(event: Any, context: Any) -> list[dict[str, Any]]:
    """Calls recorded so far for event['drop_id'], so tests can look inside the server process."""
    return [c for c in CALLS if isinstance(c["event"], dict) and c["event"].get("drop_id") == event["drop_id"]]
