"""Commit-reveal and the frozen entry list: what makes a draw checkable. Standard library only."""
from __future__ import annotations

import hashlib
from typing import Iterable

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def commitment(secret_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(secret_hex)).hexdigest()


def leaf(pseudonym: str, tickets: int) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + f"{pseudonym}:{tickets}".encode()).digest()


def merkle_levels(entries: Iterable[tuple[str, int]]) -> list[list[bytes]]:
    """Levels of the tree over entries sorted by pseudonym; an odd node is promoted unchanged."""
    level = [leaf(p, t) for p, t in sorted(entries)]
    levels = [level]
    while len(level) > 1:
        level = [
            hashlib.sha256(NODE_PREFIX + level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        levels.append(level)
    return levels


def merkle_root(entries: Iterable[tuple[str, int]]) -> str:
    levels = merkle_levels(entries)
    return levels[-1][0].hex() if levels[-1] else hashlib.sha256(b"").hexdigest()


def draw_seed(secret_hex: str, root_hex: str, beacon: str = "") -> str:
    """Seed = H(secret || root || beacon): fixed only once the entries are frozen."""
    material = b"|".join([bytes.fromhex(secret_hex), bytes.fromhex(root_hex), beacon.encode()])
    return hashlib.sha256(material).hexdigest()
