"""Commit-reveal, Merkle proofs, beacon seeds, and the lottery's exactness and distribution."""
from __future__ import annotations

import hashlib
import itertools
from fractions import Fraction
from functools import cmp_to_key

import pytest
from hypothesis import given, settings, strategies as st

from chalicelib import fairness, lottery

BITS = 53


# -- commitment, Merkle tree, proofs ------------------------------------------------------
def test_commitment_is_sha256_of_the_secret_bytes():
    secret = "ab" * 32
    assert fairness.commitment(secret) == hashlib.sha256(bytes.fromhex(secret)).hexdigest()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_every_entry_has_a_proof_that_reaches_the_root_and_only_for_its_tickets(n):
    entries = {f"p{i:03d}": 1 + i % 7 for i in range(n)}
    root = fairness.merkle_root(entries.items())
    for pseudonym, tickets in entries.items():
        path = fairness.merkle_proof(entries.items(), pseudonym)
        assert fairness.verify_proof(pseudonym, tickets, path, root)
        assert not fairness.verify_proof(pseudonym, tickets + 1, path, root)
        assert not fairness.verify_proof(pseudonym + "x", tickets, path, root)
        for i, step in enumerate(path):
            flipped = [dict(s) for s in path]
            flipped[i]["side"] = "left" if step["side"] == "right" else "right"
            assert not fairness.verify_proof(pseudonym, tickets, flipped, root)
            forged = [dict(s) for s in path]
            forged[i]["hash"] = hashlib.sha256(step["hash"].encode()).hexdigest()
            assert not fairness.verify_proof(pseudonym, tickets, forged, root)
    assert fairness.merkle_proof(entries.items(), "absent") is None


def test_the_root_commits_to_every_entry_and_not_to_their_order():
    entries = {f"p{i}": 1 + i % 3 for i in range(10)}
    root = fairness.merkle_root(entries.items())
    assert fairness.merkle_root(reversed(list(entries.items()))) == root
    assert fairness.merkle_root({**entries, "p3": 9}.items()) != root
    assert fairness.merkle_root({k: v for k, v in entries.items() if k != "p9"}.items()) != root
    assert fairness.merkle_root({**entries, "p99": 1}.items()) != root
    assert fairness.merkle_root([]) == fairness.EMPTY_ROOT
    assert fairness.entry_list(entries) == sorted([k, v] for k, v in entries.items())


def test_a_leaf_cannot_pass_for_an_inner_node():
    """Domain separation: the pair of leaves under a node is not itself a valid two-entry list."""
    entries = [("a", 1), ("b", 2)]
    root = fairness.merkle_root(entries)
    assert fairness.merkle_root([(fairness.leaf("a", 1).hex() + fairness.leaf("b", 2).hex(), 1)]) != root


def test_the_seed_depends_on_secret_root_and_every_part_of_the_beacon():
    secret, root = "11" * 32, "22" * 32
    beacon = {"source": "drand-quicknet", "round": 100, "value": "33" * 32}
    seeds = {
        fairness.draw_seed(secret, root, ""),
        fairness.draw_seed(secret, root, fairness.beacon_material(beacon)),
        fairness.draw_seed("44" * 32, root, fairness.beacon_material(beacon)),
        fairness.draw_seed(secret, "55" * 32, fairness.beacon_material(beacon)),
        fairness.draw_seed(secret, root, fairness.beacon_material({**beacon, "round": 101})),
        fairness.draw_seed(secret, root, fairness.beacon_material({**beacon, "value": "66" * 32})),
    }
    assert len(seeds) == 6
    assert fairness.beacon_material(None) == ""


def test_drand_quicknet_round_times():
    assert fairness.beacon_round_time("drand-quicknet", 1) == 1692803367
    assert fairness.beacon_round_time("drand-quicknet", 11) == 1692803367 + 30
    assert fairness.beacon_round_time("other", 5) is None


# -- the ranking never depends on floating point ------------------------------------------
def reference_rank(uniforms: dict[str, int], entries: dict[str, int]) -> list[str]:
    """Slow and exact: U_a^(1/w_a) > U_b^(1/w_b) <=> U_a^w_b > U_b^w_a with U = A / 2^53 as Fractions."""

    def cmp(a: str, b: str) -> int:
        left = Fraction(uniforms[a], 1 << BITS) ** entries[b]
        right = Fraction(uniforms[b], 1 << BITS) ** entries[a]
        if left != right:
            return -1 if left > right else 1
        return (a > b) - (a < b)

    return sorted(entries, key=cmp_to_key(cmp))


class _ForcedDigest:
    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def digest(self) -> bytes:
        return self._digest


class _ForcedHashlib:
    """Stands in for hashlib inside lottery: chosen inputs hash to chosen uniforms."""

    def __init__(self, forced: dict[bytes, int]) -> None:
        self.forced = forced

    def sha256(self, data: bytes = b""):
        if data in self.forced:
            return _ForcedDigest(((self.forced[data] - 1) << 11).to_bytes(8, "big") + bytes(24))
        return hashlib.sha256(data)


def _forced_rank(seed: str, entries: dict[str, int], uniforms: dict[str, int]) -> list[str]:
    prefix = lottery._prefix(seed)
    real = lottery.hashlib
    lottery.hashlib = _ForcedHashlib({prefix + s.encode(): a for s, a in uniforms.items()})
    try:
        return lottery.rank(entries, seed)
    finally:
        lottery.hashlib = real


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=4), st.integers(1, 12), max_size=25), st.text(max_size=8))
def test_rank_equals_the_exact_reference_on_real_hashes(entries, seed):
    uniforms = {s: lottery.uniform(seed, s) for s in entries}
    assert lottery.rank(entries, seed) == reference_rank(uniforms, entries)


twins = st.lists(
    st.tuples(st.integers(1, 1 << BITS), st.integers(1, 6), st.integers(1, 3), st.integers(-3, 3)),
    min_size=1, max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(twins, st.text(max_size=6))
def test_rank_equals_the_exact_reference_on_forced_near_ties(pairs, seed):
    """Each pair: (A, w) and a twin (A^m / 2^(53(m-1)) + d, w*m) whose key is equal or within an ulp."""
    entries: dict[str, int] = {}
    uniforms: dict[str, int] = {}
    for i, (a, w, m, d) in enumerate(pairs):
        twin = min(max((a**m >> (BITS * (m - 1))) + d, 1), 1 << BITS)
        entries[f"a{i}"], uniforms[f"a{i}"] = w, a
        entries[f"b{i}"], uniforms[f"b{i}"] = w * m, twin
    assert _forced_rank(seed, entries, uniforms) == reference_rank(uniforms, entries)


def test_forced_exact_ties_fall_back_to_the_shopper_id():
    a = 3 << 50
    entries = {"zed": 1, "amy": 1, "bob": 2, "cat": 2}
    # bob's U is exactly (a / 2^53)^2, so U^(1/2) ties with zed and amy; cat is one step above
    uniforms = {"zed": a, "amy": a, "bob": (a * a) >> BITS, "cat": ((a * a) >> BITS) + 1}
    ranked = _forced_rank("s", entries, uniforms)
    assert ranked == reference_rank(uniforms, entries) == ["cat", "amy", "bob", "zed"]


# -- the lottery's distribution and edge cases ----------------------------------------------
WEIGHTS = {"one": 1, "two": 2, "seven": 7}


def successive_sampling(weights: dict[str, int]) -> dict[tuple[str, ...], Fraction]:
    """Exact probability of every full order when drawing one by one proportionally to tickets."""
    out = {}
    for order in itertools.permutations(weights):
        p, left = Fraction(1), sum(weights.values())
        for s in order:
            p *= Fraction(weights[s], left)
            left -= weights[s]
        out[order] = p
    return out


def test_orders_and_win_rates_match_successive_weighted_sampling():
    trials = 6000
    exact = successive_sampling(WEIGHTS)
    seen = dict.fromkeys(exact, 0)
    for i in range(trials):
        seen[tuple(lottery.rank(WEIGHTS, f"family-{i}"))] += 1
    for order, p in exact.items():
        se = (float(p) * (1 - float(p)) / trials) ** 0.5
        assert abs(seen[order] / trials - float(p)) < 4.5 * se, (order, seen[order], float(p))
    for k in (1, 2):
        for shopper in WEIGHTS:
            p = float(sum(q for order, q in exact.items() if shopper in order[:k]))
            wins = sum(n for order, n in seen.items() if shopper in order[:k])
            se = (p * (1 - p) / trials) ** 0.5
            assert abs(wins / trials - p) < 4.5 * se, (k, shopper, wins, p)


def test_entry_order_does_not_matter():
    entries = {f"s{i}": 1 + i % 10 for i in range(200)}
    backwards = dict(reversed(list(entries.items())))
    assert lottery.rank(backwards, "seed") == lottery.rank(entries, "seed")


def test_everyone_wins_when_stock_covers_everyone_and_nobody_without_entries():
    assert sorted(lottery.draw(WEIGHTS, 3, "x")) == sorted(WEIGHTS)
    assert sorted(lottery.draw(WEIGHTS, 50, "x")) == sorted(WEIGHTS)
    assert lottery.draw({}, 5, "x") == []
    assert lottery.rank({}, "x") == []
