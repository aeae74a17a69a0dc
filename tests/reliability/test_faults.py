"""Injected faults: a lottery step that fails twice, DynamoDB throttles and transaction conflicts."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from chalicelib.domain.errors import TransientStoreError
from chalicelib.service import DropService
from chalicelib.store import DropStore, shard_of
from chalicelib.tables import create_tables
from tests.conftest import drop_spec

PREFIX = "com.amazonaws.dynamodb.v20120810#"


class FlakyStore(DropStore):
    """A real DropStore on moto whose n-th call of an operation fails as a busy store would."""

    def __init__(self, client, table: str, fail_at: set[tuple[str, int]]) -> None:
        super().__init__(client, table)
        self.fail_at = set(fail_at)
        self.calls: dict[str, int] = {}
        self.failed: list[tuple[str, int]] = []

    def _call(self, op: str, **kwargs):
        n = self.calls[op] = self.calls.get(op, 0) + 1
        if (op, n) in self.fail_at:
            self.failed.append((op, n))
            raise TransientStoreError("The store is busy; retry shortly.")
        return super()._call(op, **kwargs)


def _copy_table(ddb, src: str, dst: str) -> int:
    create_tables(ddb, {"DropsTable": dst})
    items = [i for page in ddb.get_paginator("scan").paginate(TableName=src) for i in page["Items"]]
    for item in items:
        ddb.put_item(TableName=dst, Item=item)
    return len(items)


def _ranks(store: DropStore, drop_id: str) -> dict[str, int]:
    return {p.shopper_id: p.rank for p in store.participants(drop_id)}


def test_lottery_failing_twice_then_succeeding_draws_the_same_winners(service, ddb, clock):
    service.create_drop(drop_spec(clock, inventory=5))
    for i in range(60):  # three batches of ranks, varied weights
        service.register("jacket", f"shp_{i:03d}", tickets=1 + i % 4, rollover=0)
    assert _copy_table(ddb, "drops-test", "drops-clean") > 60
    clock.advance(61_000)
    # Fail after the first batch of ranks is written (a half-written state), then at the phase switch.
    flaky = FlakyStore(ddb, "drops-test", {("batch_write_item", 2), ("update_item", 2)})
    disturbed = DropService(store=flaky, signer=service.signer, settings=service.settings, clock=clock)
    attempts = 0
    while True:  # what the state machine's Retry does
        attempts += 1
        try:
            result = disturbed.run_lottery("jacket")
            break
        except TransientStoreError:
            assert attempts < 5
    assert attempts == 3 and len(flaky.failed) == 2 and result["ran"] is True
    clean_store = DropStore(ddb, "drops-clean")
    undisturbed = DropService(store=clean_store, signer=service.signer, settings=service.settings, clock=clock)
    assert undisturbed.run_lottery("jacket")["ran"] is True
    ranks, expected = _ranks(flaky, "jacket"), _ranks(clean_store, "jacket")
    assert ranks == expected and sorted(ranks.values()) == list(range(60))
    got, want = flaky.get_drop("jacket", consistent=True), clean_store.get_drop("jacket", consistent=True)
    assert got.rounds == want.rounds and got.phase == want.phase and got.ranked == want.ranked == 60
    winners = {s for s, r in ranks.items() if r < 5}
    assert winners == {s for s, r in expected.items() if r < 5} and len(winners) == 5


# -- throttles and conflicts on the real botocore client (retry handler included) -----------------
class Faults:
    """Answer the next `times` sends of one DynamoDB operation with an error, before moto sees them.

    Registered first on botocore's `before-send` event, so each attempt goes through botocore's
    real retry handler (standard mode, 5 attempts, jittered exponential backoff)."""

    def __init__(self, client, operation: str, times: int, body: dict) -> None:
        self.operation, self.left, self.body, self.sent = operation, times, body, 0
        client.meta.events.register_first(f"before-send.dynamodb.{operation}", self)

    def __call__(self, request, **_):
        self.sent += 1
        if self.left <= 0:
            return None  # let moto answer
        self.left -= 1
        url, request.url = request.url, "http://fault-injected.invalid/"  # moto's stub then leaves it alone
        body = json.dumps(self.body).encode()
        return AWSResponse(url, 400, {"Content-Type": "application/x-amz-json-1.0"}, MockRawResponse(body))


THROTTLE = {"__type": PREFIX + "ProvisionedThroughputExceededException", "message": "Rate exceeded"}
CONFLICT = {
    "__type": PREFIX + "TransactionCanceledException",
    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]",
    "CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                            {"Code": "None"}],
}


@pytest.fixture
def sleeps(monkeypatch):
    """Record botocore's and the store's backoff sleeps (and keep them short)."""
    import time as time_mod

    import botocore.endpoint
    import chalicelib.store as store_mod

    real_sleep, recorded = time_mod.sleep, []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(botocore.endpoint.time, "sleep", sleep)
    if hasattr(store_mod, "time"):
        monkeypatch.setattr(store_mod.time, "sleep", sleep)
    return recorded


def _db():
    from chalicelib import bootstrap

    return bootstrap.service().store._db


def _participants(drop_id="jacket") -> int:
    from chalicelib import bootstrap

    return bootstrap.service().store.count_participants(drop_id)


def test_throttled_registration_is_retried_with_backoff(api, sleeps):
    api.create_drop()
    token, _ = api.session()
    challenge = api.challenge(token)
    faults = Faults(_db(), "PutItem", 2, THROTTLE)
    res = api.register(token, challenge=challenge)
    assert res.status == 201, res.raw
    assert faults.sent == 3 and len(sleeps) == 2 and all(s > 0 for s in sleeps)
    assert _participants() == 1


def test_registration_throttled_past_its_retries_is_503_and_leaves_no_entry(api, sleeps):
    api.create_drop()
    token, _ = api.session()
    challenge = api.challenge(token)
    faults = Faults(_db(), "PutItem", 100, THROTTLE)
    res = api.register(token, challenge=challenge)
    assert res.status == 503 and res.body["error"] == "service_busy", res.raw
    assert int(res.headers["retry-after"]) >= 1
    assert faults.sent == 6 and len(sleeps) == 5  # bootstrap: max_attempts=5 retries after the first try
    faults.left = 0
    assert _participants() == 0 and api.me(token)["status"] == "NOT_REGISTERED"
    assert api.register(token, challenge=challenge).status == 201  # the client's retry succeeds


def _winner(api):
    api.create_drop(inventory=2)
    tokens = [api.session()[0] for _ in range(3)]
    for t in tokens:
        assert api.register(t).status == 201
    api.draw()
    winner = next(t for t in tokens if api.me(t)["status"] == "WINNER")
    start = api.call("POST", "/api/drop/jacket/purchase/start", token=winner)
    return winner, start.body["purchase_token"]


@pytest.mark.parametrize("fault", [THROTTLE, CONFLICT], ids=["throttle", "conflict"])
def test_a_purchase_hitting_transient_faults_is_retried_and_sells_once(api, sleeps, fault):
    winner, ptoken = _winner(api)
    faults = Faults(_db(), "TransactWriteItems", 2, fault)
    res = api.call("POST", "/api/drop/jacket/purchase", token=winner, body={"purchase_token": ptoken})
    assert res.status == 200, res.raw
    assert faults.sent == 3 and len(sleeps) == 2
    status = api.call("GET", "/api/drop/jacket/status").body
    assert (status["sold"], status["remaining"]) == (1, 1)


@pytest.mark.parametrize("fault", [THROTTLE, CONFLICT], ids=["throttle", "conflict"])
def test_a_purchase_that_stays_busy_is_503_with_stock_unchanged(api, sleeps, fault):
    winner, ptoken = _winner(api)
    faults = Faults(_db(), "TransactWriteItems", 100, fault)
    res = api.call("POST", "/api/drop/jacket/purchase", token=winner, body={"purchase_token": ptoken})
    assert res.status == 503 and res.body["error"] == "service_busy", res.raw
    assert int(res.headers["retry-after"]) >= 1 and faults.sent >= 3
    faults.left = 0
    status = api.call("GET", "/api/drop/jacket/status").body
    assert (status["sold"], status["remaining"]) == (0, 2)
    assert api.me(winner)["status"] == "WINNER" and api.me(winner)["order_id"] == ""
    again = api.call("POST", "/api/drop/jacket/purchase", token=winner, body={"purchase_token": ptoken})
    assert again.status == 200  # the same token, retried later, buys the unit once
    assert api.call("GET", "/api/drop/jacket/status").body["sold"] == 1


def _store():
    from chalicelib import bootstrap

    return bootstrap.service().store


def test_a_transactional_registration_that_stays_busy_is_503_and_leaves_no_half_entry(api, sleeps):
    """Device claim and rollover debit travel with the entry in one transaction: all of it or none."""
    api.create_drop()
    token, shopper = api.session()
    _store()._call("put_item", TableName="drops-test", Item={"pk": {"S": f"SHOPPER#{shopper}"}, "sk": {"S": "ROLLOVER"},
                                                             "balance": {"N": "2"}})
    challenge = api.challenge(token)
    body = {"rollover": 2, "tickets": 3, "fingerprint": {"visitor_id": "dev-42", "confidence": 0.9}}
    for fault in (CONFLICT, THROTTLE):
        faults = Faults(_db(), "TransactWriteItems", 100, fault)
        res = api.register(token, challenge=challenge, **body)
        assert res.status == 503 and res.body["error"] == "service_busy", res.raw
        assert int(res.headers["retry-after"]) >= 1 and faults.sent >= 4
        faults.left = 0
        assert _participants() == 0 and api.me(token)["status"] == "NOT_REGISTERED"
        assert _store().rollover_balance(shopper, consistent=True) == 2  # not debited
        device = _store()._get({"pk": f"DROP#jacket#S{shard_of('dev-42'):02d}", "sk": "D#dev-42"}, True)
        assert device is None  # not claimed
    res = api.register(token, challenge=challenge, **body)
    assert res.status == 201 and res.body["entry"]["rollover_used"] == 2, res.raw
    assert _store().rollover_balance(shopper, consistent=True) == 0 and _participants() == 1


def test_a_purchase_whose_reply_is_lost_to_a_busy_read_is_503_and_the_retry_returns_its_order(api, sleeps):
    """The transaction landed, the read after it did not: the client retries and gets the same order."""
    winner, ptoken = _winner(api)
    reads = Faults(_db(), "GetItem", 0, THROTTLE)

    def arm(request, **_):  # once the purchase transaction is sent, every read is throttled
        reads.left = 100

    _db().meta.events.register("before-send.dynamodb.TransactWriteItems", arm)
    res = api.call("POST", "/api/drop/jacket/purchase", token=winner, body={"purchase_token": ptoken})
    _db().meta.events.unregister("before-send.dynamodb.TransactWriteItems", arm)
    assert res.status == 503 and int(res.headers["retry-after"]) >= 1, res.raw
    reads.left = 0
    assert _store().get_drop("jacket", consistent=True).sold == 1  # it did land
    again = api.call("POST", "/api/drop/jacket/purchase", token=winner, body={"purchase_token": ptoken})
    assert again.status == 200, again.raw
    assert api.me(winner)["order_id"] == again.body["order"]["order_id"]
    drop = _store().get_drop("jacket", consistent=True)
    assert (drop.sold, drop.remaining) == (1, 1)


def test_a_busy_read_is_a_clear_503_with_retry_after(api, sleeps):
    api.create_drop()
    from chalicelib import bootstrap

    bootstrap.service()._cache.clear()
    faults = Faults(_db(), "GetItem", 100, THROTTLE)
    res = api.call("GET", "/api/drop/jacket/status")
    assert (res.status, res.body) == (503, {"error": "service_busy", "message": res.body["message"]}), res.raw
    assert int(res.headers["retry-after"]) >= 1 and faults.sent == 6


class Unprocessed:
    """Answer the next `times` BatchWriteItem sends with every item unprocessed, as DynamoDB does when throttled."""

    def __init__(self, client, times: int) -> None:
        self.left, self.sent = times, 0
        client.meta.events.register_first("before-send.dynamodb.BatchWriteItem", self)

    def __call__(self, request, **_):
        self.sent += 1
        if self.left <= 0:
            return None
        self.left -= 1
        body = json.dumps({"UnprocessedItems": json.loads(request.body)["RequestItems"]}).encode()
        url, request.url = request.url, "http://fault-injected.invalid/"
        return AWSResponse(url, 200, {"Content-Type": "application/x-amz-json-1.0"}, MockRawResponse(body))


def _registered_drop(api, shoppers: int = 30):
    api.create_drop(inventory=3)
    for _ in range(shoppers):
        assert api.register(api.session()[0]).status == 201
    assert api.call("POST", "/api/drop/jacket/lottery", operator=True).status == 200


def _expected_ranks(drop_id: str = "jacket") -> dict[str, int]:
    from chalicelib.service import draw_result

    store = _store()
    people = list(store.participants(drop_id))
    ranking = draw_result(store.get_secret(drop_id), {p.pseudonym: p.tickets for p in people})["ranking"]
    return {p.shopper_id: ranking.index(p.pseudonym) for p in people}


def test_lottery_rank_writes_left_unprocessed_are_resent_with_backoff(api, sleeps):
    _registered_drop(api)
    unprocessed = Unprocessed(_db(), 3)
    from chalicelib import bootstrap

    assert bootstrap.service().run_lottery("jacket")["ran"] is True
    assert unprocessed.sent == 2 + 3  # 30 ranks = 2 batches; the first was sent 4 times
    assert len(sleeps) == 3 and all(0 <= s <= 0.05 * 2 ** i for i, s in enumerate(sleeps))  # jittered, doubling
    assert _ranks(_store(), "jacket") == _expected_ranks()
    assert _store().get_drop("jacket", consistent=True).phase.value == "PURCHASE"


def test_a_lottery_whose_rank_writes_stay_unprocessed_fails_retryably_and_opens_no_purchase(api, sleeps):
    from chalicelib import bootstrap
    from chalicelib.store import BATCH_ATTEMPTS

    _registered_drop(api)
    unprocessed = Unprocessed(_db(), 10_000)
    with pytest.raises(TransientStoreError):  # the name drop.asl.json retries with its own backoff
        bootstrap.service().run_lottery("jacket")
    # every batch (they are written several at a time) was sent BATCH_ATTEMPTS times, then gave up
    assert unprocessed.sent >= BATCH_ATTEMPTS and unprocessed.sent % BATCH_ATTEMPTS == 0
    drop = _store().get_drop("jacket", consistent=True)
    assert drop.phase.value == "LOTTERY" and drop.rounds == ()  # nobody may buy yet
    unprocessed.left = 0
    assert bootstrap.service().run_lottery("jacket")["ran"] is True  # the state machine's retry
    assert _ranks(_store(), "jacket") == _expected_ranks()


def test_an_operator_reset_under_throttling_backs_off_and_ends_as_a_503_not_a_hot_loop(api, sleeps):
    api.create_drop()
    assert api.register(api.session()[0]).status == 201
    unprocessed = Unprocessed(_db(), 10_000)
    res = api.call("DELETE", "/api/drop/jacket", operator=True)
    assert (res.status, res.body["error"]) == (503, "service_busy") and int(res.headers["retry-after"]) >= 1
    from chalicelib.store import BATCH_ATTEMPTS

    assert unprocessed.sent == BATCH_ATTEMPTS and len(sleeps) == BATCH_ATTEMPTS - 1
    unprocessed.left = 2
    res = api.call("DELETE", "/api/drop/jacket", operator=True)
    assert res.status == 200 and res.body["deleted"] == 3, res.raw  # META, SECRET and the entry
    assert _store().get_drop("jacket", consistent=True) is None and _participants() == 0
