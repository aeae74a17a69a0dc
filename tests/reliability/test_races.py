"""Concurrent shoppers on moto: stock is exact, nobody holds two, one entry per shopper."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from chalicelib.domain.drop import Phase, Round
from chalicelib.domain.errors import AlreadyRegistered, DropError
from tests.conftest import drop_spec

THREADS = 32


def _storm(service, clock, drop_id: str, shoppers: int = 200, inventory: int = 10) -> dict:
    """Register shoppers, offer every one of them a unit, then let them all buy at once (twice each)."""
    service.create_drop(drop_spec(clock, drop_id=drop_id, inventory=inventory,
                                  registration_start=clock.now - 1, registration_end=clock.now + 60_000))
    ids = [f"shp_{drop_id}_{i:03d}" for i in range(shoppers)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda s: service.register(drop_id, s, tickets=1, rollover=0), ids))
    clock.advance(61_000)
    service.run_lottery(drop_id)
    store = service.store
    # Widen round 1 to every rank: 200 rights to buy, 10 units, so the stock check is the only guard.
    drop = service.drop(drop_id, fresh=True)
    assert store.set_phase(drop_id, (Phase.PURCHASE,), Phase.LOTTERY)
    wide = Round(1, 0, shoppers, clock.now + 60_000)
    assert store.begin_purchase(drop_id, wide, drop.ranked, drop.registered)
    service._cache.clear()
    barrier = threading.Barrier(THREADS)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def shop(shopper: str) -> None:
        if shoppers <= THREADS or shopper < ids[THREADS]:
            barrier.wait(timeout=30)
        for _ in range(2):  # every shopper tries twice, with two different purchase tokens
            try:
                token = service.start_purchase(drop_id, shopper)
                if "order" in token:
                    outcome = "already"
                else:
                    service.purchase(drop_id, shopper, token["purchase_token"])
                    outcome = "bought"
            except DropError as exc:
                outcome = exc.code
            with lock:
                outcomes[outcome] += 1

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(shop, ids))
    final = store.get_drop(drop_id, consistent=True)
    people = list(store.participants(drop_id))
    orders = Counter(p.order_id for p in people if p.order_id)
    return {"outcomes": outcomes, "drop": final, "buyers": sum(1 for p in people if p.order_id),
            "orders": orders, "entries": Counter(p.shopper_id for p in people)}


def test_200_shoppers_buying_10_units_at_once_sell_exactly_10(service, clock):
    result = _storm(service, clock, "jacket")
    drop = result["drop"]
    assert drop.remaining == 0 and drop.sold == 10
    assert result["buyers"] == 10 and result["outcomes"]["bought"] == 10
    assert all(n == 1 for n in result["orders"].values()) and len(result["orders"]) == 10
    assert set(result["outcomes"]) <= {"bought", "already", "sold_out", "already_purchased"}, result["outcomes"]


def test_ten_purchase_storms_in_a_row_never_oversell_or_double(service, clock):
    report = []
    for n in range(10):
        result = _storm(service, clock, f"storm-{n}", shoppers=40, inventory=6)
        drop = result["drop"]
        report.append((drop.sold, drop.remaining, result["buyers"], max(result["orders"].values())))
        service.reset_drop(f"storm-{n}")  # keep moto's table small: its transactions deepcopy the table
    assert report == [(6, 0, 6, 1)] * 10


def test_one_shopper_registering_20_times_at_once_gets_one_entry(service, clock):
    service.create_drop(drop_spec(clock))
    barrier = threading.Barrier(20)

    def once(_: int) -> str:
        barrier.wait(timeout=30)
        try:
            service.register("jacket", "shp_eager", tickets=2, rollover=0)
            return "ok"
        except AlreadyRegistered:
            return "dup"

    with ThreadPoolExecutor(20) as pool:
        results = Counter(pool.map(once, range(20)))
    assert results == Counter(ok=1, dup=19)
    assert service.store.count_participants("jacket") == 1


def test_concurrent_registrations_spend_rollover_once(service, clock):
    """The transactional path (rollover debit) is just as exclusive, and the balance never goes negative."""
    store = service.store
    store._call("put_item", TableName="drops-test", Item={"pk": {"S": "SHOPPER#shp_roll"}, "sk": {"S": "ROLLOVER"},
                                                          "balance": {"N": "3"}})
    service.create_drop(drop_spec(clock))
    barrier = threading.Barrier(20)

    def once(_: int) -> str:
        barrier.wait(timeout=30)
        try:
            service.register("jacket", "shp_roll", tickets=4, rollover=3)
            return "ok"
        except DropError as exc:
            return exc.code

    with ThreadPoolExecutor(20) as pool:
        results = Counter(pool.map(once, range(20)))
    assert results["ok"] == 1 and set(results) <= {"ok", "already_registered", "rollover_unavailable", "service_busy"}
    assert store.count_participants("jacket") == 1
    assert store.rollover_balance("shp_roll", consistent=True) == 0
