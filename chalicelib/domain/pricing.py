"""Ticket pricing: rollover credits first, then one free entry, then quadratic paid entries."""
from __future__ import annotations

from dataclasses import dataclass


def paid_cost(paid: int, unit: int) -> int:
    """n paid entries cost unit * (1^2 + ... + n^2) = unit * n(n+1)(2n+1)/6."""
    if paid < 0:
        raise ValueError("paid entries must be >= 0")
    return unit * paid * (paid + 1) * (2 * paid + 1) // 6


@dataclass(frozen=True)
class Breakdown:
    """How a shopper's tickets are funded."""

    tickets: int
    rollover: int
    free: int
    paid: int
    cost: int

    @property
    def credit_eligible(self) -> int:
        """Entries that become rollover credits if the shopper never wins."""
        return self.rollover + self.paid


def breakdown(tickets: int, rollover_balance: int, unit: int) -> Breakdown:
    """Spend rollover first, then one free entry, then paid entries."""
    if tickets < 1:
        raise ValueError("tickets must be >= 1")
    rollover = max(0, min(rollover_balance, tickets))
    rest = tickets - rollover
    free = 1 if rest > 0 else 0
    paid = max(0, rest - free)
    return Breakdown(tickets, rollover, free, paid, paid_cost(paid, unit))
