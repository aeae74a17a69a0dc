"""A proposed faster rank() with output identical to chalicelib.lottery.rank (bench/lottery.py checks it).

Same definition: A = first 53 bits of SHA-256(len(seed) || seed || shopper) + 1, key (A / 2**53) ** (1 / tickets),
descending, exact integer comparison wherever float keys are near, ties by shopper id. What changes:

* the digests' first 8 bytes go into one bytearray read as array('Q') (byteswapped), not one
  int.from_bytes per shopper, and no list of 1M Python ints A is kept (A is re-hashed for the few
  shoppers in near runs);
* shoppers are sorted directly (key=partial(next, iter(keys))) and the keys sorted beside them,
  instead of argsorting indices and gathering shoppers and keys through them;
* the float first order uses top64 * 2**-64 instead of A * 2**-53: it differs from A / 2**53 by at most
  2**-53, so keys move by far less than _NEAR and every pair whose order could differ is still inside
  a near run, re-ordered exactly. The exact ranking is unique, so the output is the same bit for bit;
* the tickets check, the key computation and the near-pair scan are C-level map() chains.

top(entries, k, seed) is rank(entries, seed)[:k] without ordering the others (heapq.nlargest): what a
drop can use is at most inventory * max_rounds ranks (each round offers at most the units left).
Standard library only, like chalicelib/lottery.py.
"""
from __future__ import annotations

import hashlib
import heapq
import sys
from array import array
from collections import deque
from functools import cmp_to_key, partial
from itertools import compress, count, islice
from operator import itemgetter, methodcaller, sub
from typing import Mapping

from chalicelib.lottery import _NEAR, MAX_TICKETS, _exact_cmp, _prefix, _runs, uniform

_TOP_SCALE = 2.0 ** -64
_LITTLE = sys.byteorder == "little"


def rank(entries: Mapping[str, int], seed: str) -> list[str]:
    shoppers = list(entries)
    tickets = list(entries.values())
    _check(tickets)
    keys = _float_keys(shoppers, tickets, seed)
    # Two stable sorts on the same keys give the same permutation: shoppers and their keys, in rank order,
    # with no index list and no gather pass over randomly placed objects (the costly part at 1M).
    ranked = sorted(shoppers, key=partial(next, iter(keys)), reverse=True)
    keys.sort(reverse=True)
    for start, end in _runs(compress(count(1), map(_NEAR.__ge__, map(sub, keys, islice(keys, 1, None))))):
        _exact(ranked, entries, seed, start, end)
    return ranked


def _float_keys(shoppers: list[str], tickets: list[int], seed: str) -> list[float]:
    """First-order float keys: (first 64 digest bits * 2**-64) ** (1 / tickets), within 2**-52 of the exact key."""
    prefix = _prefix(seed)
    encode = methodcaller("encode", "utf-8")
    digests = map(methodcaller("digest"), map(hashlib.sha256, map(prefix.__add__, map(encode, shoppers))))
    heads = bytearray()
    deque(map(heads.extend, map(itemgetter(slice(0, 8)), digests)), maxlen=0)  # C loop, 8 bytes per shopper
    top = array("Q")
    assert top.itemsize == 8
    top.frombytes(heads)  # the first 8 bytes of every digest, as unsigned 64-bit
    del heads
    if _LITTLE:
        top.byteswap()
    inverse = {t: 1.0 / t for t in set(tickets)}
    return list(map(pow, map(_TOP_SCALE.__mul__, top), map(inverse.__getitem__, tickets)))


def _check(tickets: list[int]) -> None:
    if tickets and (not set(map(type, tickets)) <= {int} or not 1 <= min(tickets) <= max(tickets) <= MAX_TICKETS):
        bad = next(t for t in tickets if type(t) is not int or not 1 <= t <= MAX_TICKETS)
        raise ValueError(f"tickets must be an integer from 1 to {MAX_TICKETS}, got {bad!r}")


def top(entries: Mapping[str, int], k: int, seed: str, margin: int = 64) -> list[str]:
    """rank(entries, seed)[:k], without ordering the rest: heapq.nlargest over the float keys, then the
    same exact re-ordering of near runs. A near run reaching past the k + margin candidates (never seen
    in practice) falls back to the full rank()."""
    if k < 0:
        raise ValueError("winners must be >= 0")
    margin = max(1, margin)  # at least one candidate past the cut, so a near run across it is seen
    shoppers = list(entries)
    tickets = list(entries.values())
    _check(tickets)
    if k == 0:
        return []
    if k + margin >= len(shoppers):
        return rank(entries, seed)[:k]
    keys = _float_keys(shoppers, tickets, seed)
    order = heapq.nlargest(k + margin, range(len(keys)), key=keys.__getitem__)
    ranked = list(map(shoppers.__getitem__, order))
    near = list(map(_NEAR.__ge__, map(sub, map(keys.__getitem__, order), map(keys.__getitem__, islice(order, 1, None)))))
    if near and near[-1]:  # the last candidates are near each other: the cut may be wrong, order everyone
        return rank(entries, seed)[:k]
    for start, end in _runs(compress(count(1), near)):
        _exact(ranked, entries, seed, start, end)
    return ranked[:k]


def _exact(ranked: list[str], entries: Mapping[str, int], seed: str, start: int, end: int) -> None:
    run = [(uniform(seed, s), entries[s], s) for s in ranked[start : end + 1]]
    run.sort(key=cmp_to_key(_exact_cmp))
    ranked[start : end + 1] = [r[2] for r in run]


def draw(entries: Mapping[str, int], winners: int, seed: str) -> list[str]:
    if winners < 0:
        raise ValueError("winners must be >= 0")
    return rank(entries, seed)[:winners]
