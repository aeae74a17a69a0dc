"""Retries after a lost reply: the same Idempotency-Key gets the same entry, the same purchase token the same order.

A shopper whose registration landed but whose reply was lost (the API died, the network
dropped) cannot tell that from "someone else used my account" if the retry says 409. With the
key, the retry is answered 201 with the stored entry, read from the failed condition itself:
registration stays one conditional write and no read.
"""
from __future__ import annotations

import time

import pytest

from chalicelib.domain.errors import AlreadyRegistered, PurchaseExpired, RegistrationClosed
from chalicelib.service import DropService
from chalicelib.store import DropStore
from tests.conftest import drop_spec

KEY = "reg-7f3a9c"


class CountingStore(DropStore):
    """The real DropStore on moto, recording which DynamoDB operations each use case sends."""

    def __init__(self, client, table: str) -> None:
        super().__init__(client, table)
        self.ops: list[str] = []

    def _call(self, op: str, **kwargs):
        self.ops.append(op)
        return super()._call(op, **kwargs)


@pytest.fixture
def counted(ddb, service):
    store = CountingStore(ddb, "drops-test")
    return DropService(store=store, signer=service.signer, settings=service.settings, clock=service.clock)


def _entries(service, drop_id="jacket") -> int:
    return service.store.count_participants(drop_id)


def test_a_retried_registration_with_the_same_key_gets_the_same_entry_for_one_write(counted, clock):
    counted.create_drop(drop_spec(clock))
    counted.drop("jacket")  # the 1 s drop cache is warm, as under load
    counted.store.ops.clear()
    first = counted.register("jacket", "shp_a", tickets=3, rollover=0, idempotency_key=KEY)
    assert counted.store.ops == ["put_item"]  # happy path: one conditional write, no read
    counted.store.ops.clear()
    clock.advance(500)
    again = counted.register("jacket", "shp_a", tickets=3, rollover=0, idempotency_key=KEY)
    assert counted.store.ops == ["put_item"]  # the replay is answered from the failed condition
    assert again.pop("replayed") is True and "replayed" not in first
    assert {**again, "server_time": 0} == {**first, "server_time": 0} and again["status"] == "REGISTERED"
    assert _entries(counted) == 1
    assert counted.store.get_participant("jacket", "shp_a").registered_at == first["server_time"]


@pytest.mark.parametrize("second_key", ["", "another-key"], ids=["no_key", "other_key"])
def test_a_second_registration_without_the_same_key_is_still_409(service, clock, second_key):
    service.create_drop(drop_spec(clock))
    service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=KEY)
    with pytest.raises(AlreadyRegistered):
        service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=second_key)
    service.register("jacket", "shp_b", tickets=2, rollover=0)  # registered without a key ...
    with pytest.raises(AlreadyRegistered):  # ... so no key can claim the entry
        service.register("jacket", "shp_b", tickets=2, rollover=0, idempotency_key=KEY)
    assert _entries(service) == 2


def test_the_same_key_with_other_tickets_is_refused_not_replayed(service, clock):
    service.create_drop(drop_spec(clock))
    service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=KEY)
    with pytest.raises(AlreadyRegistered):
        service.register("jacket", "shp_a", tickets=5, rollover=0, idempotency_key=KEY)
    assert service.store.get_participant("jacket", "shp_a").tickets == 2


def test_a_replay_on_the_transactional_path_spends_rollover_and_the_device_once(service, clock):
    store = service.store
    store._call("put_item", TableName="drops-test", Item={"pk": {"S": "SHOPPER#shp_r"}, "sk": {"S": "ROLLOVER"},
                                                          "balance": {"N": "3"}})
    service.create_drop(drop_spec(clock))
    first = service.register("jacket", "shp_r", tickets=4, rollover=3, device="dev-1", idempotency_key=KEY)
    again = service.register("jacket", "shp_r", tickets=4, rollover=3, device="dev-1", idempotency_key=KEY)
    assert again["rollover_used"] == first["rollover_used"] == 3 and again["cost"] == first["cost"]
    assert store.rollover_balance("shp_r", consistent=True) == 0 and _entries(service) == 1
    with pytest.raises(AlreadyRegistered):  # the device stays taken for everyone else
        service.register("jacket", "shp_other", tickets=1, rollover=0, device="dev-1", idempotency_key=KEY)


def test_a_retry_that_arrives_after_the_close_still_gets_its_entry(service, clock):
    service.create_drop(drop_spec(clock))
    first = service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=KEY)
    clock.advance(61_000)
    again = service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=KEY)
    assert again["tickets"] == 2 and again["cost"] == first["cost"] and again["status"] == "REGISTERED"
    assert again["replayed"] is True
    for key in ("", "other"):
        with pytest.raises(RegistrationClosed):
            service.register("jacket", "shp_a", tickets=2, rollover=0, idempotency_key=key)
    with pytest.raises(RegistrationClosed):
        service.register("jacket", "shp_new", tickets=2, rollover=0, idempotency_key=KEY)
    assert _entries(service) == 1


def _expiring_purchase_token(service, shopper: str, seconds: float = 1.0) -> str:
    return service.signer.issue("purchase", {"sub": shopper, "drop": "jacket", "round": 1},
                                exp_ms=int((time.time() + seconds) * 1000))


def _wait_until_expired(service, token: str) -> None:
    from chalicelib.domain.errors import TokenExpired

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            service.signer.verify("purchase", token)
        except TokenExpired:
            return
        time.sleep(0.05)
    raise AssertionError("the token never expired")


def _winner(service, clock) -> str:
    service.create_drop(drop_spec(clock, inventory=1))
    for s in ("shp_a", "shp_b"):
        service.register("jacket", s, tickets=1, rollover=0)
    clock.advance(61_000)
    service.run_lottery("jacket")
    service._cache.clear()
    return next(s for s in ("shp_a", "shp_b") if service.me("jacket", s)["status"] == "WINNER")


def test_a_purchase_retried_after_its_token_expired_returns_the_order_it_made(service, clock):
    winner = _winner(service, clock)
    token = _expiring_purchase_token(service, winner)
    order = service.purchase("jacket", winner, token)["order"]
    _wait_until_expired(service, token)
    again = service.purchase("jacket", winner, token)  # the reply was lost; the window closed meanwhile
    assert again["order"] == order
    drop = service.drop("jacket", fresh=True)
    assert (drop.sold, drop.remaining) == (1, 0)


def test_an_expired_purchase_token_that_bought_nothing_is_still_410(service, clock):
    winner = _winner(service, clock)
    loser = next(s for s in ("shp_a", "shp_b") if s != winner)
    token = _expiring_purchase_token(service, winner)
    _wait_until_expired(service, token)
    with pytest.raises(PurchaseExpired):
        service.purchase("jacket", winner, token)
    service.purchase("jacket", winner, service.signer.issue("purchase", {"sub": winner, "drop": "jacket", "round": 1},
                                                            ttl_s=60))
    for who in (winner, loser):  # another token of the buyer, or the buyer's token in another's hands
        with pytest.raises(PurchaseExpired):
            service.purchase("jacket", who, token)
    assert service.drop("jacket", fresh=True).sold == 1


# -- over HTTP (app.py) --------------------------------------------------------------------------
def test_over_http_the_same_idempotency_key_gets_201_twice_and_one_entry(api):
    from chalicelib import bootstrap

    api.create_drop()
    token, shopper = api.session()
    challenge = api.challenge(token)
    first = api.register(token, challenge=challenge, headers={"Idempotency-Key": KEY})
    again = api.register(token, challenge=challenge, headers={"Idempotency-Key": KEY})
    assert first.status == again.status == 201, (first.raw, again.raw)
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert {**again.body["entry"], "server_time": 0} == {**first.body["entry"], "server_time": 0}
    assert again.body["entry"]["shopper_id"] == shopper and set(again.body) == {"entry"}
    other = api.register(token, headers={"Idempotency-Key": "another"})
    assert (other.status, other.body["error"]) == (409, "already_registered")
    assert bootstrap.service().store.count_participants("jacket") == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 129, "caf\u00e9", "a b", "tab\tkey"])
def test_an_invalid_idempotency_key_is_400(api, key):
    api.create_drop()
    token, _ = api.session()
    res = api.register(token, headers={"Idempotency-Key": key})
    assert (res.status, res.body["error"]) == (400, "invalid_input"), res.raw
    assert "Idempotency-Key" in res.body["message"]
    assert api.me(token)["status"] == "NOT_REGISTERED"
