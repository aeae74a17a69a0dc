"""Phases, workflow steps and derived shopper status."""
from chalicelib.domain.drop import Drop, Participant, Phase, Product, Round, Status, Step, never_won, standing

T0 = 1_800_000_000_000


def make_drop(**kw) -> Drop:
    base = dict(drop_id="d", name="n", product=Product("t", "", 100), inventory=2,
                registration_start=T0, registration_end=T0 + 60_000, purchase_window=30)
    base.update(kw)
    return Drop(**base)


def participant(rank=None, **kw) -> Participant:
    base = dict(drop_id="d", shopper_id="s", pseudonym="p", tickets=3, rollover_used=0, free=1, paid=2,
                cost=5, registered_at=T0, rank=rank)
    base.update(kw)
    return Participant(**base)


def test_effective_phase_follows_the_clock_before_the_workflow_catches_up():
    d = make_drop()
    assert d.effective_phase(T0 - 1) is Phase.SCHEDULED
    assert d.effective_phase(T0) is Phase.REGISTRATION
    assert d.effective_phase(T0 + 60_000) is Phase.LOTTERY


def test_next_step_waits_for_absolute_times_capped_by_the_poll():
    d = make_drop()
    assert d.next_step(T0 - 10_000, grace_ms=2000, poll_ms=5000) == (Step.WAIT, T0 - 5000)
    assert d.next_step(T0 + 59_000, grace_ms=2000, poll_ms=5000) == (Step.WAIT, T0 + 62_000)
    assert d.next_step(T0 + 62_000, grace_ms=2000, poll_ms=5000) == (Step.LOTTERY, T0 + 62_000)


def test_purchase_phase_steps():
    rnd = Round(1, 0, 2, T0 + 100_000)
    d = make_drop(phase=Phase.PURCHASE, rounds=(rnd,), ranked=5)
    assert d.next_step(T0 + 99_000, grace_ms=0, poll_ms=5000)[0] is Step.WAIT
    assert d.next_step(T0 + 100_000, grace_ms=0, poll_ms=5000)[0] is Step.PROMOTE
    assert d.with_(remaining=0).next_step(T0, grace_ms=0, poll_ms=5000)[0] is Step.COMPLETE
    assert d.with_(ranked=2).next_step(T0 + 100_000, grace_ms=0, poll_ms=5000)[0] is Step.COMPLETE
    three = d.with_(rounds=(rnd, Round(2, 2, 4, T0), Round(3, 4, 5, T0)))
    assert three.next_step(T0 + 100_000, grace_ms=0, poll_ms=5000)[0] is Step.COMPLETE


def test_standing_is_derived_from_rank_and_rounds():
    r1 = Round(1, 0, 2, T0 + 30_000)
    d = make_drop(phase=Phase.PURCHASE, rounds=(r1,), ranked=5)
    assert standing(d, None, T0).status is Status.NOT_REGISTERED
    assert standing(d, participant(1), T0) == standing(d, participant(1), T0)
    assert standing(d, participant(1), T0).status is Status.WINNER
    assert standing(d, participant(1), T0).purchase_deadline == T0 + 30_000
    assert standing(d, participant(3), T0).position == 2
    assert standing(d, participant(1), T0 + 30_000).status is Status.EXPIRED
    assert standing(d, participant(1, order_id="o"), T0).status is Status.PURCHASED
    promoted = d.with_(rounds=(r1, Round(2, 2, 4, T0 + 90_000)))
    assert standing(promoted, participant(3), T0 + 40_000).status is Status.WINNER
    assert standing(promoted, participant(4), T0 + 40_000).position == 1
    done = promoted.with_(phase=Phase.COMPLETED)
    lost = standing(done, participant(4), T0 + 100_000)
    assert lost.status is Status.LOST and lost.rollover_earned == 2


def test_never_won_decides_rollover_eligibility():
    d = make_drop(phase=Phase.COMPLETED, rounds=(Round(1, 0, 2, T0),), ranked=5)
    assert not never_won(d, participant(0))
    assert never_won(d, participant(3))
    assert not never_won(d, participant(3, order_id="o"))
