"""Deterministic weighted lottery: successive weighted sampling without replacement.

Standard library only, so a shopper can run it (see verify.py) and get the same
ranking bit for bit on any machine.

Algorithm (Efraimidis & Spirakis, "A-ES"): every shopper gets a uniform number
U in (0, 1] from SHA-256(seed, shopper id) and the key U ** (1 / tickets); the
ranking is the keys in descending order. Drawing the top-k by this key has
exactly the distribution of drawing shoppers one by one with probability
proportional to tickets among those not yet drawn, which is also the
distribution of the seed's expand-into-a-pool, shuffle, dedupe algorithm,
without ever building the pool: memory grows with shoppers, not tickets.

Floating point: ``**`` comes from the platform's libm and may differ by an ulp
between machines, so floats only give a first order. Neighbours whose float
keys are closer than ``_NEAR`` (far above any libm error) are re-ordered with
exact integer arithmetic: U_a ** (1/w_a) > U_b ** (1/w_b)  <=>
A ** w_b * 2 ** (53 * w_a) > B ** w_a * 2 ** (53 * w_b)  with U = A / 2 ** 53.
Exact ties (probability ~2**-53) fall back to the shopper id. The result never
depends on platform floating point.
"""
from __future__ import annotations

import hashlib
from functools import cmp_to_key
from itertools import compress, count
from operator import sub
from typing import Iterable, Mapping

__all__ = ["draw", "rank", "uniform"]

_BITS = 53
_SCALE = 1.0 / (1 << _BITS)
_NEAR = 1e-9
# The exact comparison raises 53-bit integers to the other shopper's ticket count, so its cost
# grows with tickets; a drop allows at most 100 per shopper (CreateDropIn.max_tickets).
MAX_TICKETS = 10_000


def _prefix(seed: str) -> bytes:
    raw = seed.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def uniform(seed: str, shopper: str) -> int:
    """The shopper's integer A in [1, 2**53]: U = A / 2**53."""
    digest = hashlib.sha256(_prefix(seed) + shopper.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _BITS)) + 1


def _exact_cmp(a: tuple[int, int, str], b: tuple[int, int, str]) -> int:
    """-1 when a ranks before b (larger key), exactly."""
    (ua, wa, ia), (ub, wb, ib) = a, b
    left = ua**wb << (_BITS * wa)
    right = ub**wa << (_BITS * wb)
    if left != right:
        return -1 if left > right else 1
    return -1 if ia < ib else (1 if ia > ib else 0)


def rank(entries: Mapping[str, int], seed: str) -> list[str]:
    """Every shopper in draw order: winners first, then the waitlist."""
    shoppers = list(entries)
    tickets = list(entries.values())
    for t in tickets:
        if type(t) is not int or not 1 <= t <= MAX_TICKETS:
            raise ValueError(f"tickets must be an integer from 1 to {MAX_TICKETS}, got {t!r}")
    prefix = _prefix(seed)
    sha = hashlib.sha256
    from_bytes = int.from_bytes
    uniforms = [(from_bytes(sha(prefix + s.encode("utf-8")).digest()[:8], "big") >> 11) + 1 for s in shoppers]
    inverse = {t: 1.0 / t for t in set(tickets)}
    keys = list(map(pow, map(_SCALE.__mul__, uniforms), map(inverse.__getitem__, tickets)))
    order = sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
    ranked = list(map(shoppers.__getitem__, order))
    sorted_keys = list(map(keys.__getitem__, order))
    gaps = map(sub, sorted_keys, sorted_keys[1:])
    for start, end in _runs(compress(count(1), map(_NEAR.__ge__, gaps))):
        run = [(uniforms[i], tickets[i], shoppers[i]) for i in order[start : end + 1]]
        run.sort(key=cmp_to_key(_exact_cmp))
        ranked[start : end + 1] = [r[2] for r in run]
    return ranked


def _runs(close: Iterable[int]) -> list[tuple[int, int]]:
    """Index i in `close` means positions i-1 and i are too near for floats."""
    runs: list[list[int]] = []
    for i in close:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i - 1, i])
    return [(a, b) for a, b in runs]


def draw(entries: Mapping[str, int], winners: int, seed: str) -> list[str]:
    """Distinct winners in rank order; everyone wins when winners >= shoppers."""
    if winners < 0:
        raise ValueError("winners must be >= 0")
    return rank(entries, seed)[:winners]
