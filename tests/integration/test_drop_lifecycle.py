"""Use cases against DynamoDB (moto): registration, lottery, purchase, promotion, rollover."""
from __future__ import annotations

import pytest

from chalicelib.domain.drop import Phase
from chalicelib.domain.errors import (
    AlreadyPurchased, AlreadyRegistered, NotAWinner, PurchaseExpired, RegistrationClosed, RolloverUnavailable, SoldOut,
)
from tests.conftest import drop_spec


def _register_many(service, n, tickets=1):
    ids = [f"shp_{i:04d}" for i in range(n)]
    for sid in ids:
        service.register("jacket", sid, tickets=tickets, rollover=0)
    return ids


def _close_and_draw(service, clock):
    clock.advance(61_000)
    service.run_lottery("jacket")
    return service.drop("jacket", fresh=True)


def test_registration_is_one_conditional_put_and_refuses_a_second(service, clock):
    service.create_drop(drop_spec(clock))
    entry = service.register("jacket", "shp_a", tickets=3, rollover=0)
    assert entry["status"] == "REGISTERED" and entry["cost"] == 5 and entry["tickets"] == 3
    with pytest.raises(AlreadyRegistered):
        service.register("jacket", "shp_a", tickets=1, rollover=0)


def test_registration_refused_outside_the_window(service, clock):
    service.create_drop(drop_spec(clock))
    clock.advance(61_000)
    with pytest.raises(RegistrationClosed):
        service.register("jacket", "shp_late", tickets=1, rollover=0)


def test_one_entry_per_device(service, clock):
    service.create_drop(drop_spec(clock))
    service.register("jacket", "shp_a", tickets=1, rollover=0, device="dev-1")
    with pytest.raises(AlreadyRegistered):
        service.register("jacket", "shp_b", tickets=1, rollover=0, device="dev-1")
    assert service.store.get_participant("jacket", "shp_b") is None


def test_lottery_twice_gives_the_same_ranks_written_once(service, clock):
    service.create_drop(drop_spec(clock))
    ids = _register_many(service, 12)
    drop = _close_and_draw(service, clock)
    ranks = {sid: service.store.get_participant("jacket", sid).rank for sid in ids}
    assert sorted(ranks.values()) == list(range(12))
    assert drop.phase is Phase.PURCHASE and drop.current_round.end == 3
    service.store.set_phase("jacket", (Phase.PURCHASE,), Phase.LOTTERY)  # as if the first run crashed late
    service.run_lottery("jacket")
    assert {sid: service.store.get_participant("jacket", sid).rank for sid in ids} == ranks
    assert service.drop("jacket", fresh=True).rounds == drop.rounds


def test_winner_buys_once_and_a_retry_returns_the_same_order(service, clock):
    service.create_drop(drop_spec(clock))
    ids = _register_many(service, 5)
    _close_and_draw(service, clock)
    winner = next(s for s in ids if service.me("jacket", s)["status"] == "WINNER")
    token = service.start_purchase("jacket", winner)["purchase_token"]
    first = service.purchase("jacket", winner, token)["order"]
    again = service.purchase("jacket", winner, token)["order"]
    assert first["order_id"] == again["order_id"]
    assert service.drop("jacket", fresh=True).remaining == 2
    with pytest.raises(AlreadyPurchased):
        service.purchase("jacket", winner, service.signer.issue("purchase", {"sub": winner, "drop": "jacket", "round": 1}, ttl_s=30))
    assert service.me("jacket", winner)["status"] == "PURCHASED"


def test_loser_cannot_buy_and_cannot_use_a_winners_token(service, clock):
    service.create_drop(drop_spec(clock))
    ids = _register_many(service, 6)
    _close_and_draw(service, clock)
    views = {s: service.me("jacket", s) for s in ids}
    winner = next(s for s, v in views.items() if v["status"] == "WINNER")
    loser = next(s for s, v in views.items() if v["status"] == "WAITLISTED")
    with pytest.raises(NotAWinner):
        service.start_purchase("jacket", loser)
    token = service.start_purchase("jacket", winner)["purchase_token"]
    with pytest.raises(NotAWinner):
        service.purchase("jacket", loser, token)


def test_expired_winners_make_way_for_the_waitlist(service, clock):
    service.create_drop(drop_spec(clock, inventory=2))
    ids = _register_many(service, 6)
    _close_and_draw(service, clock)
    by_rank = sorted(ids, key=lambda s: service.store.get_participant("jacket", s).rank)
    assert service.me("jacket", by_rank[2])["position"] == 1
    token = service.start_purchase("jacket", by_rank[0])["purchase_token"]
    service.purchase("jacket", by_rank[0], token)
    stale = service.start_purchase("jacket", by_rank[1])["purchase_token"]
    clock.advance(61_000)
    with pytest.raises(PurchaseExpired):
        service.purchase("jacket", by_rank[1], stale)
    assert service.tick("jacket")["next"] == "promote"
    assert service.promote("jacket")["promoted"] == 1
    assert service.promote("jacket")["promoted"] == 0  # idempotent: the new round is not over yet
    assert service.me("jacket", by_rank[1])["status"] == "EXPIRED"
    assert service.me("jacket", by_rank[2])["status"] == "WINNER"
    assert service.me("jacket", by_rank[3])["position"] == 1
    token = service.start_purchase("jacket", by_rank[2])["purchase_token"]
    service.purchase("jacket", by_rank[2], token)
    assert service.tick("jacket")["next"] == "complete"
    service.complete("jacket")
    assert service.me("jacket", by_rank[3])["status"] == "LOST"


def test_sold_out_is_reported_and_stock_never_goes_negative(service, clock):
    service.create_drop(drop_spec(clock, inventory=1))
    ids = _register_many(service, 3)
    drop = _close_and_draw(service, clock)
    winner = next(s for s in ids if service.me("jacket", s)["status"] == "WINNER")
    rnd = drop.current_round
    service.store.purchase("jacket", winner, rnd, "ord_1", clock())
    other = next(s for s in ids if s != winner)
    with pytest.raises((SoldOut, PurchaseExpired)):
        service.store.purchase("jacket", other, rnd, "ord_2", clock())
    assert service.drop("jacket", fresh=True).remaining == 0


def test_rollover_converts_once_is_capped_and_is_spent_first(service, clock):
    service.create_drop(drop_spec(clock, inventory=1, rollover_cap=4))
    _register_many(service, 4, tickets=3)  # 1 free + 2 paid each
    _close_and_draw(service, clock)
    clock.advance(61_000)
    service.complete("jacket")
    service.complete("jacket")
    service.store.set_phase("jacket", (Phase.COMPLETED,), Phase.PURCHASE)
    service.complete("jacket")  # a re-run after a crash credits nobody twice
    losers = [f"shp_{i:04d}" for i in range(4) if service.me("jacket", f"shp_{i:04d}")["status"] != "EXPIRED"]
    assert losers and all(service.store.rollover_balance(s) == 2 for s in losers)
    shopper = losers[0]
    service.create_drop(drop_spec(clock, drop_id="jacket-2", registration_start=clock.now - 1, registration_end=clock.now + 60_000))
    entry = service.register("jacket-2", shopper, tickets=4, rollover=None)
    assert (entry["rollover_used"], entry["cost"]) == (2, 1)  # 2 rollover, 1 free, 1 paid
    assert service.store.rollover_balance(shopper) == 0
    service.create_drop(drop_spec(clock, drop_id="jacket-3", registration_start=clock.now - 1, registration_end=clock.now + 60_000))
    with pytest.raises(RolloverUnavailable):
        service.register("jacket-3", shopper, tickets=2, rollover=2)
    assert service.store.get_participant("jacket-3", shopper) is None


def test_everyone_wins_when_stock_covers_all(service, clock):
    service.create_drop(drop_spec(clock, inventory=10))
    ids = _register_many(service, 4)
    _close_and_draw(service, clock)
    assert all(service.me("jacket", s)["status"] == "WINNER" for s in ids)


def test_me_right_after_the_draw_shows_the_result_not_the_cached_pre_draw_drop(service, clock):
    """The API's 1 s drop cache must not hide a draw another process (the lottery Lambda) just made."""
    import dataclasses

    service.create_drop(drop_spec(clock, inventory=1))
    service.register("jacket", "shp_a", tickets=1, rollover=0)
    api = dataclasses.replace(service, _cache={})  # the API process, with its own cache
    clock.advance(61_000)
    assert api.me("jacket", "shp_a")["status"] == "REGISTERED"  # caches the drop before the draw
    service.run_lottery("jacket")  # the task Lambda; the clock does not move: api's cache is still fresh
    assert api.me("jacket", "shp_a")["status"] == "WINNER"


@pytest.mark.parametrize("when,expected", [("before", "SCHEDULED"), ("during", "REGISTRATION"),
                                           ("after", "LOTTERY"), ("drawn", "PURCHASE")])
def test_retrying_a_failed_drop_resumes_the_phase_its_data_says_with_a_new_execution(service, clock, when, expected):
    import dataclasses

    from chalicelib.domain.errors import InvalidPhase

    started = []
    svc = dataclasses.replace(service, start_workflow=lambda drop_id, name: started.append((drop_id, name)))
    svc.create_drop(drop_spec(clock, registration_start=clock.now + 10_000, registration_end=clock.now + 70_000))
    assert started == [("jacket", None)]
    if when != "before":
        clock.advance(11_000)
        svc.register("jacket", "shp_a", tickets=2, rollover=0)
    if when in ("after", "drawn"):
        clock.advance(61_000)
    if when == "drawn":
        svc.run_lottery("jacket")
    svc.mark_failed("jacket", "LotteryError: injected")
    assert svc.drop("jacket", fresh=True).failure == "LotteryError: injected"
    resumed = svc.retry_failed("jacket")
    drop = svc.drop("jacket", fresh=True)
    assert resumed["phase"] == expected and drop.phase.value == expected and drop.failure == ""
    assert started[1] == ("jacket", f"jacket-r{clock.now}") == ("jacket", resumed["execution"])
    with pytest.raises(InvalidPhase):
        svc.retry_failed("jacket")
    assert len(started) == 2


def test_the_workflow_recounts_entries_at_most_once_per_count_interval(service, clock):
    """A COUNT reads every entry, so polling ticks refresh the live registration count only now and then."""
    service.create_drop(drop_spec(clock))
    service.register("jacket", "shp_a", tickets=1, rollover=0)
    service.tick("jacket")
    assert service.drop("jacket", fresh=True).registered == 1
    service.register("jacket", "shp_b", tickets=1, rollover=0)
    clock.advance(service.settings.count_every_ms - 1)
    service.tick("jacket")
    assert service.drop("jacket", fresh=True).registered == 1  # not yet: the last count is recent
    clock.advance(1)
    service.tick("jacket")
    assert service.drop("jacket", fresh=True).registered == 2
