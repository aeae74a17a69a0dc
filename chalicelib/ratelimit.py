"""Fixed-window rate limits per client IP and per shopper, counted with DropStore.hit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.config import Settings
from chalicelib.domain.errors import RateLimited

TTL_SLACK_S = 60  # counters outlive their window a little; DynamoDB TTL deletes them later anyway


class Counter(Protocol):
    def hit(self, key: str, window: int, expires_at: int) -> int: ...


@dataclass(frozen=True)
class Limit:
    """At most `limit` requests per `window_s` for one key; limit 0 means no limit."""

    action: str
    scope: str  # "ip" or "shopper"
    limit: int
    window_s: int = 60


def retry_after(now_ms: int, window_s: int) -> int:
    """Whole seconds until the current window ends (at least 1)."""
    window_ms = window_s * 1000
    end = (now_ms // window_ms + 1) * window_ms
    return max(1, -(-(end - now_ms) // 1000))


def check(counter: Counter, limit: Limit, who: str, now_ms: int) -> int:
    """Count one request; raise RateLimited (with retry_after) once the window is full."""
    if limit.limit <= 0:
        return 0
    window = now_ms // (limit.window_s * 1000)
    expires_at = (window + 1) * limit.window_s + TTL_SLACK_S
    count = counter.hit(f"{limit.action}#{limit.scope}#{who}", window, expires_at)
    if count > limit.limit:
        raise RateLimited("Too many requests; please retry shortly.",
                          retry_after=retry_after(now_ms, limit.window_s), action=limit.action, scope=limit.scope)
    return count


def limits(cfg: Settings, action: str) -> list[Limit]:
    """The configured limits of one action: session, challenge or register."""
    w = cfg.rate_window_s
    table = {
        "session": [Limit("session", "ip", cfg.rate_session_ip, w)],
        "challenge": [Limit("challenge", "shopper", cfg.rate_challenge_shopper, w),
                      Limit("challenge", "ip", cfg.rate_challenge_ip, w)],
        "register": [Limit("register", "shopper", cfg.rate_register_shopper, w),
                     Limit("register", "ip", cfg.rate_register_ip, w)],
    }
    return table[action]


def enforce(counter: Counter, cfg: Settings, action: str, *, ip: str, shopper: str = "", now_ms: int) -> None:
    """Apply every limit of `action`; the shopper's own limit is counted first."""
    for lim in limits(cfg, action):
        who = shopper if lim.scope == "shopper" else ip
        if who:
            check(counter, lim, who, now_ms)
