"""The drop: its phases, purchase rounds and how a shopper's status follows from them."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

DEFAULT_MAX_TICKETS = 10
DEFAULT_ROLLOVER_CAP = 10
DEFAULT_MAX_ROUNDS = 3


class Phase(str, Enum):
    SCHEDULED = "SCHEDULED"
    REGISTRATION = "REGISTRATION"
    LOTTERY = "LOTTERY"
    PURCHASE = "PURCHASE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Status(str, Enum):
    """A shopper's standing in one drop."""

    NOT_REGISTERED = "NOT_REGISTERED"
    REGISTERED = "REGISTERED"
    WINNER = "WINNER"
    WAITLISTED = "WAITLISTED"
    LOST = "LOST"
    PURCHASED = "PURCHASED"
    EXPIRED = "EXPIRED"


class Step(str, Enum):
    """What the state machine should do next for a drop."""

    WAIT = "wait"
    LOTTERY = "lottery"
    PROMOTE = "promote"
    COMPLETE = "complete"
    DONE = "done"


@dataclass(frozen=True)
class Product:
    title: str
    image_url: str
    price: int


@dataclass(frozen=True)
class Round:
    """Shoppers ranked [start, end) may buy until deadline (ms)."""

    number: int
    start: int
    end: int
    deadline: int

    def offers(self, rank: int) -> bool:
        return self.start <= rank < self.end


@dataclass(frozen=True)
class Drop:
    drop_id: str
    name: str
    product: Product
    inventory: int
    registration_start: int
    registration_end: int
    purchase_window: int
    ticket_price_unit: int = 1
    max_tickets: int = DEFAULT_MAX_TICKETS
    rollover_cap: int = DEFAULT_ROLLOVER_CAP
    max_rounds: int = DEFAULT_MAX_ROUNDS
    phase: Phase = Phase.SCHEDULED
    remaining: int = -1
    registered: int = 0
    counted_at: int = 0  # when `registered` was last counted (ms); the count is a live estimate until the draw
    ranked: int = 0
    rounds: tuple[Round, ...] = field(default_factory=tuple)
    commitment: str = ""
    created_at: int = 0
    failure: str = ""

    def __post_init__(self) -> None:
        if self.remaining < 0:
            object.__setattr__(self, "remaining", self.inventory)

    # -- phases -------------------------------------------------------------
    def effective_phase(self, now: int) -> Phase:
        """The phase a shopper sees: timestamps rule even before the workflow catches up."""
        if self.phase in (Phase.SCHEDULED, Phase.REGISTRATION):
            if now < self.registration_start:
                return Phase.SCHEDULED
            if now < self.registration_end:
                return Phase.REGISTRATION
            return Phase.LOTTERY
        return self.phase

    def resume_phase(self, now: int) -> Phase:
        """The phase this drop's stored times and rounds say it is in (a FAILED drop resumes there)."""
        if self.rounds:
            return Phase.PURCHASE
        return replace(self, phase=Phase.SCHEDULED).effective_phase(now)

    def accepts_registration(self, now: int) -> bool:
        return self.effective_phase(now) is Phase.REGISTRATION

    @property
    def current_round(self) -> Round | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def sold(self) -> int:
        return self.inventory - self.remaining

    def can_promote(self) -> bool:
        last = self.current_round
        return (
            last is not None
            and self.remaining > 0
            and len(self.rounds) < self.max_rounds
            and last.end < self.ranked
        )

    def next_step(self, now: int, *, grace_ms: int, poll_ms: int) -> tuple[Step, int]:
        """The next workflow step and when to look again (ms epoch)."""
        if self.phase in (Phase.COMPLETED, Phase.FAILED):
            return Step.DONE, now
        if self.phase in (Phase.SCHEDULED, Phase.REGISTRATION):
            close_at = self.registration_end + grace_ms
            if now < close_at:
                target = self.registration_start if now < self.registration_start else close_at
                return Step.WAIT, min(target, now + poll_ms)
            return Step.LOTTERY, now
        if self.phase is Phase.LOTTERY:
            return Step.LOTTERY, now
        last = self.current_round
        if last is None or self.remaining <= 0:
            return Step.COMPLETE, now
        if now < last.deadline:
            return Step.WAIT, min(last.deadline, now + poll_ms)
        return (Step.PROMOTE if self.can_promote() else Step.COMPLETE), now

    # -- rounds -------------------------------------------------------------
    def first_round(self, ranked: int, now: int) -> Round:
        return Round(1, 0, min(self.inventory, ranked), now + self.purchase_window * 1000)

    def promotion_round(self, now: int) -> Round:
        last = self.current_round
        assert last is not None
        end = min(last.end + self.remaining, self.ranked)
        return Round(last.number + 1, last.end, end, now + self.purchase_window * 1000)

    def with_(self, **changes: object) -> "Drop":
        return replace(self, **changes)


@dataclass(frozen=True)
class Participant:
    drop_id: str
    shopper_id: str
    pseudonym: str
    tickets: int
    rollover_used: int
    free: int
    paid: int
    cost: int
    registered_at: int
    rank: int | None = None
    order_id: str = ""
    purchased_at: int = 0
    rollover_credited: int | None = None
    trust: dict = field(default_factory=dict)
    device: str = ""
    request_id: str = ""  # digest of the registration's Idempotency-Key ("" when none was sent)
    proof: str = ""  # Merkle inclusion path of the frozen entry, written with the rank (fairness.encode_path)

    @property
    def credit_eligible(self) -> int:
        return self.rollover_used + self.paid


@dataclass(frozen=True)
class Standing:
    """A shopper's status in a drop, derived from the drop and the participant."""

    status: Status
    position: int | None = None
    purchase_deadline: int | None = None
    round: int | None = None
    rollover_earned: int = 0


def standing(drop: Drop, participant: Participant | None, now: int) -> Standing:
    """Derive status from rank and rounds, so expiry and promotion need no per-shopper writes."""
    if participant is None:
        return Standing(Status.NOT_REGISTERED)
    if participant.order_id:
        return Standing(Status.PURCHASED)
    if participant.rank is None or not drop.rounds:
        if drop.phase is Phase.COMPLETED:
            return Standing(Status.LOST, rollover_earned=_earned(participant))
        return Standing(Status.REGISTERED)
    rank = participant.rank
    last = drop.current_round
    for rnd in drop.rounds:
        if rnd.offers(rank):
            live = rnd is last and drop.phase is Phase.PURCHASE and now < rnd.deadline
            if drop.remaining <= 0:
                return Standing(Status.LOST)
            if live:
                return Standing(Status.WINNER, purchase_deadline=rnd.deadline, round=rnd.number)
            return Standing(Status.EXPIRED)
    if drop.phase is Phase.PURCHASE and drop.remaining > 0 and len(drop.rounds) < drop.max_rounds:
        return Standing(Status.WAITLISTED, position=rank - last.end + 1)
    return Standing(Status.LOST, rollover_earned=_earned(participant))


def _earned(participant: Participant) -> int:
    if participant.rollover_credited is not None:
        return participant.rollover_credited
    return participant.credit_eligible


def never_won(drop: Drop, participant: Participant) -> bool:
    """True when the shopper was never offered a unit (rollover eligibility)."""
    if participant.order_id:
        return False
    if participant.rank is None:
        return True
    return not any(r.offers(participant.rank) for r in drop.rounds)
