"""The fingerprint layer: the browser's FingerprintJS result, verified with the Fingerprint Server API when a key is set."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import urllib3
from fingerprint_server_sdk import ApiException, Configuration, FingerprintApi

log = logging.getLogger("drops.fingerprint")
TIMEOUT_S = 2.0
MAX_EVENT_AGE_MS = 15 * 60 * 1000  # an identification event older than this is not evidence for this request


@dataclass(frozen=True)
class FingerprintCheck:
    """What the layer learnt: a device id, how sure we are of it, and why it earns nothing if it doesn't."""

    visitor_id: str = ""
    confidence: float = 0.0
    verified: bool = False
    bot: bool = False
    reason: str = ""


@lru_cache(maxsize=4)
def _api(api_key: str, host: str) -> FingerprintApi:
    return FingerprintApi(Configuration(api_key=api_key, host=host or None, retries=0))


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def check(reported: Any, *, api_key: str = "", api_url: str = "", now_ms: int | None = None) -> FingerprintCheck:
    """Check what the browser reported ({visitor_id, confidence, request_id?}, dict or model).

    Without api_key the report is taken at its word (the score gives it at most half weight).
    With it, the event named by request_id is fetched: its visitor id must match, its confidence
    replaces the reported one, and Fingerprint's bot detection saying "bad" zeroes the layer.
    """
    visitor = str(_field(reported, "visitor_id") or "") if reported is not None else ""
    if not visitor:
        return FingerprintCheck(reason="no fingerprint")
    confidence = min(1.0, max(0.0, float(_field(reported, "confidence") or 0.0)))
    if not api_key:
        return FingerprintCheck(visitor, confidence, verified=False)
    request_id = str(_field(reported, "request_id") or "")
    if not request_id:
        return FingerprintCheck(visitor, 0.0, reason="no request_id to verify")
    try:
        event = _api(api_key, api_url).get_event(request_id, _request_timeout=TIMEOUT_S)
    except ApiException as exc:
        return FingerprintCheck(visitor, 0.0, reason=f"fingerprint api answered {exc.status}")
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        log.warning("fingerprint api unreachable: %s", type(exc).__name__)
        return FingerprintCheck(visitor, 0.0, reason="fingerprint api unreachable")
    return _judge(event, visitor, now_ms)


def _judge(event: Any, visitor: str, now_ms: int | None) -> FingerprintCheck:
    ident = event.identification
    if ident is None or ident.visitor_id != visitor:
        return FingerprintCheck(visitor, 0.0, reason="visitor id does not match the verified event")
    if now_ms is not None and event.timestamp and now_ms - int(event.timestamp) > MAX_EVENT_AGE_MS:
        return FingerprintCheck(visitor, 0.0, verified=True, reason="identification event is stale")
    score = float(ident.confidence.score) if ident.confidence and ident.confidence.score is not None else 0.0
    bot = str(getattr(event.bot, "value", event.bot) or "") == "bad"
    return FingerprintCheck(visitor, 0.0 if bot else score, verified=True, bot=bot,
                            reason="fingerprint bot detection: bad" if bot else "")
