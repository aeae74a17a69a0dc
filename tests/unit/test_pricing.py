"""Ticket pricing: rollover first, then one free entry, then quadratic paid entries."""
from hypothesis import given, strategies as st

from chalicelib.domain.pricing import breakdown, paid_cost


def test_one_to_ten_tickets_cost_the_published_table():
    costs = [breakdown(n, 0, 1).cost for n in range(1, 11)]
    assert costs == [0, 1, 5, 14, 30, 55, 91, 140, 204, 285]


def test_rollover_is_spent_before_the_free_entry():
    b = breakdown(4, 2, 1)
    assert (b.rollover, b.free, b.paid, b.cost) == (2, 1, 1, 1)
    assert breakdown(2, 5, 1) == breakdown(2, 2, 1)
    assert breakdown(2, 5, 1).free == 0 and breakdown(2, 5, 1).cost == 0


@given(st.integers(1, 100), st.integers(0, 200), st.integers(0, 1000))
def test_breakdown_accounts_for_every_ticket(tickets, rollover, unit):
    b = breakdown(tickets, rollover, unit)
    assert b.rollover + b.free + b.paid == tickets
    assert b.rollover == min(rollover, tickets)
    assert b.cost == unit * sum(i * i for i in range(1, b.paid + 1))
    assert b.credit_eligible == b.rollover + b.paid


@given(st.integers(0, 200))
def test_each_extra_paid_ticket_costs_more_than_the_last(n):
    assert paid_cost(n + 2, 1) - paid_cost(n + 1, 1) > paid_cost(n + 1, 1) - paid_cost(n, 1)
