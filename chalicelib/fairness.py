"""Commit-reveal, the frozen entry list and the public beacon: what makes a draw checkable. Standard library only.

This file is shipped to shoppers beside verify/verify_drop.py: keep it free of
third-party and project imports so the verifier runs on a bare Python 3.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# drand chains whose round times are public: name -> (genesis unix seconds, period seconds)
DRAND_CHAINS = {"drand-quicknet": (1692803367, 3)}


def commitment(secret_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(secret_hex)).hexdigest()


def leaf(pseudonym: str, tickets: int) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + f"{pseudonym}:{tickets}".encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def entry_list(entries: Mapping[str, int] | Iterable[tuple[str, int]]) -> list[list]:
    """The frozen entry list as published: [[pseudonym, tickets], ...] sorted by pseudonym."""
    items = entries.items() if isinstance(entries, Mapping) else entries
    return [[p, t] for p, t in sorted(items)]


def merkle_levels(entries: Iterable[tuple[str, int]]) -> list[list[bytes]]:
    """Levels of the tree over entries sorted by pseudonym; an odd node is promoted unchanged."""
    level = [leaf(p, t) for p, t in sorted(entries)]
    levels = [level]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def root_of(levels: list[list[bytes]]) -> str:
    return levels[-1][0].hex() if levels[-1] else EMPTY_ROOT


def merkle_root(entries: Iterable[tuple[str, int]]) -> str:
    return root_of(merkle_levels(entries))


def proof_from_levels(levels: list[list[bytes]], index: int) -> list[dict]:
    """Sibling hashes from leaf `index` up to the root; side says where the sibling sits."""
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # no sibling: the node is promoted unchanged
            path.append({"hash": level[sibling].hex(), "side": "left" if sibling < index else "right"})
        index //= 2
    return path


def encode_path(levels: list[list[bytes]], index: int) -> str:
    """proof_from_levels as one compact string ("L<hex>,R<hex>,..."), stored with the shopper's entry."""
    return ",".join(("L" if step["side"] == "left" else "R") + step["hash"] for step in proof_from_levels(levels, index))


def decode_path(text: str) -> list[dict]:
    return [{"hash": part[1:], "side": "left" if part[0] == "L" else "right"} for part in text.split(",") if part]


def merkle_proof(entries: Iterable[tuple[str, int]], pseudonym: str) -> list[dict] | None:
    """The inclusion proof of `pseudonym`, or None when it is not in the entries."""
    ordered = sorted(entries)
    index = next((i for i, (p, _) in enumerate(ordered) if p == pseudonym), None)
    return None if index is None else proof_from_levels(merkle_levels(ordered), index)


def verify_proof(pseudonym: str, tickets: int, path: list[dict], root_hex: str) -> bool:
    """True when (pseudonym, tickets) hashes up `path` to root_hex."""
    node = leaf(pseudonym, tickets)
    for step in path:
        sibling = bytes.fromhex(step["hash"])
        if step["side"] == "left":
            node = _node(sibling, node)
        elif step["side"] == "right":
            node = _node(node, sibling)
        else:
            return False
    return node.hex() == root_hex


def beacon_material(beacon: Mapping | None) -> str:
    """The beacon as it enters the seed: '' without one, else 'source:round:value'."""
    if not beacon:
        return ""
    return f"{beacon['source']}:{int(beacon['round'])}:{str(beacon['value']).lower()}"


def beacon_round_time(source: str, round_no: int) -> int | None:
    """Unix seconds at which a drand round is published, for chains we know; else None."""
    chain = DRAND_CHAINS.get(source)
    if chain is None or round_no < 1:
        return None
    genesis, period = chain
    return genesis + (round_no - 1) * period


def draw_seed(secret_hex: str, root_hex: str, beacon: str = "") -> str:
    """Seed = H(secret || root || beacon): fixed only once the entries are frozen."""
    material = b"|".join([bytes.fromhex(secret_hex), bytes.fromhex(root_hex), beacon.encode()])
    return hashlib.sha256(material).hexdigest()
