"""The lottery's invariants: deterministic, order-free, distinct, everyone wins when stock covers all."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from chalicelib.lottery import MAX_TICKETS, draw, rank

entries_st = st.dictionaries(st.text(min_size=1, max_size=12), st.integers(1, 10), max_size=60)


@given(entries_st, st.integers(0, 80), st.text(max_size=20))
def test_winners_are_distinct_registered_shoppers_in_rank_order(entries, k, seed):
    winners = draw(entries, k, seed)
    assert len(winners) == len(set(winners)) == min(k, len(entries))
    assert set(winners) <= set(entries)
    assert winners == rank(entries, seed)[: len(winners)]


@given(entries_st, st.text(max_size=20), st.randoms())
def test_the_order_of_entries_does_not_matter(entries, seed, rnd):
    items = list(entries.items())
    rnd.shuffle(items)
    assert rank(dict(items), seed) == rank(entries, seed)


def test_same_inputs_same_result_and_the_seed_changes_it():
    entries = {f"s{i}": 1 + i % 10 for i in range(500)}
    assert draw(entries, 50, "a") == draw(entries, 50, "a")
    assert draw(entries, 50, "a") != draw(entries, 50, "b")


def test_edge_cases():
    assert draw({}, 5, "x") == []
    assert sorted(draw({"a": 1, "b": 3}, 10, "x")) == ["a", "b"]
    with pytest.raises(ValueError):
        draw({"a": 0}, 1, "x")
    with pytest.raises(ValueError):
        draw({"a": 1}, -1, "x")
    with pytest.raises(ValueError):
        draw({"a": MAX_TICKETS + 1}, 1, "x")


def test_first_pick_probability_is_proportional_to_tickets():
    entries = {"one": 1, "two": 2, "seven": 7}
    trials = 6000
    firsts = [rank(entries, f"seed-{i}")[0] for i in range(trials)]
    for shopper, tickets in entries.items():
        p = tickets / 10
        se = (p * (1 - p) / trials) ** 0.5
        assert abs(firsts.count(shopper) / trials - p) < 4 * se


def test_second_pick_follows_sampling_without_replacement():
    entries = {"one": 1, "two": 2, "seven": 7}
    # P(one is 2nd) = P(two 1st)*1/8 + P(seven 1st)*1/3
    p = 0.2 * (1 / 8) + 0.7 * (1 / 3)
    trials = 6000
    hits = sum(rank(entries, f"s2-{i}")[1] == "one" for i in range(trials))
    se = (p * (1 - p) / trials) ** 0.5
    assert abs(hits / trials - p) < 4 * se


@settings(max_examples=30)
@given(st.integers(0, 2**32))
def test_memory_does_not_depend_on_tickets(seed):
    rnd = random.Random(seed)
    few = {f"s{i}": 1 for i in range(50)}
    many = {k: MAX_TICKETS for k in few}  # no pool: 50 keys, not 500,000 pool slots
    assert sorted(rank(many, str(seed))) == sorted(few)
    assert len(rank({f"s{i}": rnd.randint(1, MAX_TICKETS) for i in range(20)}, "x")) == 20
