"""The DynamoDB adapter: the only module that knows keys and condition expressions.

Single table. Items:
  DROP#<id> / META               the drop (phase, stock, rounds)
  DROP#<id> / SECRET             the lottery secret (revealed with the results)
  DROP#<id>#S<nn> / P#<shopper>  a participant; 16 shards spread a drop's writes
  DROP#<id>#S<nn> / D#<device>   one entry per device per drop
  SHOPPER#<id> / ROLLOVER        the shopper's rollover balance, across drops
  RATE#<key> / <window>          rate-limit counters (TTL)
"""
from __future__ import annotations

import hashlib
import random
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from decimal import Decimal
from itertools import islice
from typing import Any, Iterable, Iterator

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.domain.drop import Drop, Participant, Phase, Product, Round
from chalicelib.domain.errors import (
    AlreadyPurchased,
    AlreadyRegistered,
    DropExists,
    InvalidPhase,
    PurchaseExpired,
    RolloverUnavailable,
    SoldOut,
    TransientStoreError,
)

SHARDS = 16
RANK_WRITERS = 8  # BatchWriteItem calls in flight while the lottery saves ranks
CONFLICT_ATTEMPTS = 4  # a cancelled transaction (TransactionConflict) is sent up to 4 times
CONFLICT_BACKOFF_S = 0.025  # jittered: [0, 25 ms * 2^attempt), as botocore does for DynamoDB
BATCH_ATTEMPTS = 8  # a batch whose items come back unprocessed is sent up to 8 times ...
BATCH_BACKOFF_S = 0.05  # ... after jittered waits of [0, 50 ms * 2^attempt) (at most 6.4 s in all)
TRANSIENT = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
}
_ser = TypeSerializer()
_de = TypeDeserializer()


def shard_of(value: str) -> int:
    return hashlib.sha256(value.encode()).digest()[0] % SHARDS


def _drop_pk(drop_id: str) -> str:
    return f"DROP#{drop_id}"


def _shard_pk(drop_id: str, shard: int) -> str:
    return f"DROP#{drop_id}#S{shard:02d}"


def _participant_key(drop_id: str, shopper_id: str) -> dict:
    return {"pk": _shard_pk(drop_id, shard_of(shopper_id)), "sk": f"P#{shopper_id}"}


def _to_ddb(item: dict) -> dict:
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def _from_ddb(item: dict) -> dict:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _vals(**values: Any) -> dict:
    return {f":{k}": _ser.serialize(v) for k, v in values.items()}


# -- mapping ------------------------------------------------------------------
def drop_to_item(drop: Drop) -> dict:
    return {
        "pk": _drop_pk(drop.drop_id), "sk": "META", "type": "drop",
        "gsi1pk": "DROPS", "gsi1sk": f"{drop.created_at:015d}#{drop.drop_id}",
        "drop_id": drop.drop_id, "name": drop.name,
        "product": {"title": drop.product.title, "image_url": drop.product.image_url, "price": drop.product.price},
        "inventory": drop.inventory, "remaining": drop.remaining,
        "registration_start": drop.registration_start, "registration_end": drop.registration_end,
        "purchase_window": drop.purchase_window, "ticket_price_unit": drop.ticket_price_unit,
        "max_tickets": drop.max_tickets, "rollover_cap": drop.rollover_cap, "max_rounds": drop.max_rounds,
        "phase": drop.phase.value, "registered": drop.registered, "ranked": drop.ranked,
        "rounds": [[r.number, r.start, r.end, r.deadline] for r in drop.rounds], "round_no": len(drop.rounds),
        "commitment": drop.commitment, "created_at": drop.created_at, "failure": drop.failure,
    }


def drop_from_item(item: dict) -> Drop:
    p = item["product"]
    return Drop(
        drop_id=item["drop_id"], name=item["name"], product=Product(p["title"], p["image_url"], p["price"]),
        inventory=item["inventory"], remaining=item["remaining"],
        registration_start=item["registration_start"], registration_end=item["registration_end"],
        purchase_window=item["purchase_window"], ticket_price_unit=item["ticket_price_unit"],
        max_tickets=item["max_tickets"], rollover_cap=item["rollover_cap"], max_rounds=item["max_rounds"],
        phase=Phase(item["phase"]), registered=item.get("registered", 0), counted_at=item.get("counted_at", 0),
        ranked=item.get("ranked", 0),
        rounds=tuple(Round(*r) for r in item.get("rounds", [])), commitment=item.get("commitment", ""),
        created_at=item.get("created_at", 0), failure=item.get("failure", ""),
    )


def participant_to_item(p: Participant) -> dict:
    item = {
        **_participant_key(p.drop_id, p.shopper_id), "type": "participant",
        "drop_id": p.drop_id, "shopper_id": p.shopper_id, "pseudonym": p.pseudonym, "tickets": p.tickets,
        "rollover_used": p.rollover_used, "free": p.free, "paid": p.paid, "cost": p.cost,
        "registered_at": p.registered_at, "trust": p.trust, "device": p.device,
    }
    if p.request_id:
        item["request_id"] = p.request_id
    if p.rank is not None:
        item["rank"] = p.rank
    if p.proof:
        item["proof"] = p.proof
    if p.order_id:
        item.update(order_id=p.order_id, purchased_at=p.purchased_at)
    if p.rollover_credited is not None:
        item["rollover_credited"] = p.rollover_credited
    return item


def participant_from_item(item: dict) -> Participant:
    return Participant(
        drop_id=item["drop_id"], shopper_id=item["shopper_id"], pseudonym=item["pseudonym"],
        tickets=item["tickets"], rollover_used=item["rollover_used"], free=item["free"], paid=item["paid"],
        cost=item["cost"], registered_at=item["registered_at"], rank=item.get("rank"),
        order_id=item.get("order_id", ""), purchased_at=item.get("purchased_at", 0),
        rollover_credited=item.get("rollover_credited"), trust=item.get("trust", {}), device=item.get("device", ""),
        request_id=item.get("request_id", ""), proof=item.get("proof", ""),
    )


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _reasons(exc: ClientError) -> list[dict]:
    return exc.response.get("CancellationReasons") or []


class DropStore:
    """All reads and writes of drops, participants, rollover balances and counters."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    # -- plumbing -------------------------------------------------------------
    def _call(self, op: str, **kwargs: Any) -> dict:
        """One DynamoDB call; botocore retries throttles, we retry transaction conflicts (it does not)."""
        attempt = 0
        while True:
            try:
                return getattr(self._db, op)(**kwargs)
            except ClientError as exc:
                attempt += 1
                conflict = _code(exc) == "TransactionCanceledException" and any(
                    r.get("Code") in ("TransactionConflict", "ThrottlingError") for r in _reasons(exc))
                if conflict and attempt < CONFLICT_ATTEMPTS:  # nothing was written: safe to send again
                    time.sleep(random.uniform(0, CONFLICT_BACKOFF_S * 2 ** (attempt - 1)))
                    continue
                if _code(exc) in TRANSIENT or conflict:
                    raise TransientStoreError("The store is busy; retry shortly.") from exc
                raise

    def _get(self, key: dict, consistent: bool = False) -> dict | None:
        res = self._call("get_item", TableName=self._table, Key=_to_ddb(key), ConsistentRead=consistent)
        return _from_ddb(res["Item"]) if "Item" in res else None

    # -- drops ----------------------------------------------------------------
    def create_drop(self, drop: Drop, secret_hex: str) -> None:
        try:
            self._call("transact_write_items", TransactItems=[
                {"Put": {"TableName": self._table, "Item": _to_ddb(drop_to_item(drop)),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self._table,
                         "Item": _to_ddb({"pk": _drop_pk(drop.drop_id), "sk": "SECRET", "secret": secret_hex}),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                raise DropExists(f"Drop {drop.drop_id!r} already exists.") from exc
            raise

    def get_drop(self, drop_id: str, consistent: bool = False) -> Drop | None:
        item = self._get({"pk": _drop_pk(drop_id), "sk": "META"}, consistent)
        return drop_from_item(item) if item else None

    def get_secret(self, drop_id: str) -> str:
        item = self._get({"pk": _drop_pk(drop_id), "sk": "SECRET"}, True)
        return item["secret"] if item else ""

    def list_drops(self) -> list[Drop]:
        drops, kwargs = [], {}
        while True:
            res = self._call("query", TableName=self._table, IndexName="gsi1",
                             KeyConditionExpression="gsi1pk = :p", ExpressionAttributeValues=_vals(p="DROPS"),
                             ScanIndexForward=False, **kwargs)
            drops += [drop_from_item(_from_ddb(i)) for i in res["Items"]]
            if "LastEvaluatedKey" not in res:
                return drops
            kwargs = {"ExclusiveStartKey": res["LastEvaluatedKey"]}

    def _update_drop(self, drop_id: str, update: str, condition: str, names: dict | None = None, **values: Any) -> Drop | None:
        """Conditional update of the drop; None when the condition does not hold."""
        kwargs: dict[str, Any] = dict(
            TableName=self._table, Key=_to_ddb({"pk": _drop_pk(drop_id), "sk": "META"}),
            UpdateExpression=update, ConditionExpression=condition,
            ExpressionAttributeValues=_vals(**values), ReturnValues="ALL_NEW",
        )
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            res = self._call("update_item", **kwargs)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return drop_from_item(_from_ddb(res["Attributes"]))

    def set_phase(self, drop_id: str, expected: tuple[Phase, ...], new: Phase, failure: str = "") -> Drop | None:
        allowed = {f"p{i}": p.value for i, p in enumerate(expected)}
        cond = "attribute_exists(pk) AND #ph IN (" + ", ".join(f":{k}" for k in allowed) + ")"
        return self._update_drop(drop_id, "SET #ph = :new, failure = :f", cond, {"#ph": "phase"},
                                 new=new.value, f=failure, **allowed)

    def close_registration(self, drop_id: str, now: int) -> Drop | None:
        return self._update_drop(
            drop_id, "SET registration_end = :now, registration_start = if_not_exists(registration_start, :now)",
            "#ph IN (:s, :r) AND registration_end > :now", {"#ph": "phase"},
            now=now, s=Phase.SCHEDULED.value, r=Phase.REGISTRATION.value)

    def set_registered(self, drop_id: str, count: int, now: int = 0) -> None:
        self._update_drop(drop_id, "SET registered = :c, counted_at = :t", "attribute_exists(pk)", c=count, t=now)

    def begin_purchase(self, drop_id: str, first: Round, ranked: int, registered: int) -> Drop | None:
        """LOTTERY -> PURCHASE with round 1, once."""
        return self._update_drop(
            drop_id, "SET #ph = :pur, rounds = :rounds, round_no = :one, ranked = :ranked, registered = :reg",
            "#ph = :lot", {"#ph": "phase"}, pur=Phase.PURCHASE.value, lot=Phase.LOTTERY.value,
            rounds=[[first.number, first.start, first.end, first.deadline]], one=1, ranked=ranked, reg=registered)

    def add_round(self, drop_id: str, rnd: Round) -> Drop | None:
        """Append round n only if round n-1 is the current one (idempotent under retries)."""
        return self._update_drop(
            drop_id, "SET rounds = list_append(rounds, :r), round_no = :n",
            "#ph = :pur AND round_no = :prev", {"#ph": "phase"},
            r=[[rnd.number, rnd.start, rnd.end, rnd.deadline]], n=rnd.number, prev=rnd.number - 1,
            pur=Phase.PURCHASE.value)

    # -- participants ---------------------------------------------------------
    def register(self, p: Participant, *, rollover_debit: int = 0, device: str = "") -> tuple[Participant, bool]:
        """One conditional PutItem; a transaction when rollover is spent or devices are unique.

        Returns (the stored entry, replayed): when the shopper is already registered by a request
        with the same request_id (a retry whose reply was lost), that entry comes back with
        replayed=True, read from the failed condition itself (no extra read); else AlreadyRegistered.
        """
        put = {"TableName": self._table, "Item": _to_ddb(participant_to_item(p)),
               "ConditionExpression": "attribute_not_exists(pk)", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if not rollover_debit and not device:
            try:
                self._call("put_item", **put)
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return self._replay(p, exc.response.get("Item"), exc), True
                raise
            return p, False
        items: list[dict] = [{"Put": put}]
        if device:
            items.append({"Put": {"TableName": self._table, "ConditionExpression": "attribute_not_exists(pk)",
                                  "Item": _to_ddb({"pk": _shard_pk(p.drop_id, shard_of(device)), "sk": f"D#{device}",
                                                   "shopper_id": p.shopper_id})}})
        if rollover_debit:
            items.append({"Update": {"TableName": self._table,
                                     "Key": _to_ddb({"pk": f"SHOPPER#{p.shopper_id}", "sk": "ROLLOVER"}),
                                     "UpdateExpression": "SET balance = balance - :n",
                                     "ConditionExpression": "balance >= :n", "ExpressionAttributeValues": _vals(n=rollover_debit)}})
        try:
            self._call("transact_write_items", TransactItems=items)
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = _reasons(exc)
            codes = [r.get("Code") for r in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                return self._replay(p, reasons[0].get("Item"), exc), True
            if device and len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise AlreadyRegistered("This device is already registered for this drop.", device=True) from exc
            raise RolloverUnavailable("Your rollover balance changed; reload and try again.") from exc
        return p, False

    @staticmethod
    def _replay(p: Participant, existing: dict | None, exc: Exception) -> Participant:
        """The stored entry if the same request made it, else AlreadyRegistered."""
        stored = participant_from_item(_from_ddb(existing)) if existing else None
        if stored is None or not p.request_id or stored.request_id != p.request_id:
            raise AlreadyRegistered("You are already registered for this drop.") from exc
        return stored

    def get_participant(self, drop_id: str, shopper_id: str, consistent: bool = False) -> Participant | None:
        item = self._get(_participant_key(drop_id, shopper_id), consistent)
        return participant_from_item(item) if item else None

    def _query_shard(self, drop_id: str, shard: int, select_count: bool = False) -> list[dict] | int:
        out: list[dict] = []
        total, kwargs = 0, {}
        while True:  # a live count may lag a little (eventually consistent: half the read units)
            res = self._call("query", TableName=self._table, KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                             ExpressionAttributeValues=_vals(pk=_shard_pk(drop_id, shard), p="P#"),
                             ConsistentRead=not select_count, **({"Select": "COUNT"} if select_count else {}),
                             **kwargs)
            if select_count:
                total += res["Count"]
            else:
                out += [_from_ddb(i) for i in res["Items"]]
            if "LastEvaluatedKey" not in res:
                return total if select_count else out
            kwargs = {"ExclusiveStartKey": res["LastEvaluatedKey"]}

    def participants(self, drop_id: str) -> Iterator[Participant]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for items in pool.map(lambda s: self._query_shard(drop_id, s), range(SHARDS)):
                yield from (participant_from_item(i) for i in items)

    def count_participants(self, drop_id: str) -> int:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return sum(pool.map(lambda s: self._query_shard(drop_id, s, True), range(SHARDS)))

    def _batch_write(self, requests: list[dict]) -> None:
        """BatchWriteItem of up to 25 requests; unprocessed ones (throttling) are re-sent with backoff."""
        pending = {self._table: requests}
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, BATCH_BACKOFF_S * 2 ** (attempt - 1)))
            pending = self._call("batch_write_item", RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
        raise TransientStoreError("The store is busy; retry shortly.")

    def save_ranks(self, ranked: Iterable[Participant]) -> None:
        """Write ranks with batch puts, RANK_WRITERS batches in flight; idempotent (the same items every time).

        One after another, 1M entries would be 40,000 round trips: longer than a Lambda may run. The
        entries are consumed as they are written, so a generator keeps memory flat.
        """
        items = iter(ranked)
        with ThreadPoolExecutor(max_workers=RANK_WRITERS) as pool:
            in_flight: set = set()
            while batch := [{"PutRequest": {"Item": _to_ddb(participant_to_item(p))}} for p in islice(items, 25)]:
                in_flight.add(pool.submit(self._batch_write, batch))
                if len(in_flight) >= 2 * RANK_WRITERS:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()  # re-raises the first TransientStoreError
            for future in in_flight:
                future.result()

    # -- purchase -------------------------------------------------------------
    def purchase(self, drop_id: str, shopper_id: str, rnd: Round, order_id: str, now: int) -> Participant:
        """Stock -1 and WINNER -> PURCHASED in one transaction; a retry returns the same order."""
        try:
            self._call("transact_write_items", TransactItems=[
                {"Update": {"TableName": self._table, "Key": _to_ddb({"pk": _drop_pk(drop_id), "sk": "META"}),
                            "UpdateExpression": "SET remaining = remaining - :one",
                            "ConditionExpression": "remaining > :zero AND round_no = :r AND #ph = :pur",
                            "ExpressionAttributeNames": {"#ph": "phase"},
                            "ExpressionAttributeValues": _vals(one=1, zero=0, r=rnd.number, pur=Phase.PURCHASE.value),
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                {"Update": {"TableName": self._table, "Key": _to_ddb(_participant_key(drop_id, shopper_id)),
                            "UpdateExpression": "SET order_id = :oid, purchased_at = :now",
                            "ConditionExpression": "attribute_not_exists(order_id) AND #rank BETWEEN :lo AND :hi AND :now < :deadline",
                            "ExpressionAttributeNames": {"#rank": "rank"},
                            "ExpressionAttributeValues": _vals(oid=order_id, now=now, lo=rnd.start, hi=rnd.end - 1, deadline=rnd.deadline),
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            ])
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            self._raise_purchase_failure(exc, drop_id, shopper_id, order_id)
        participant = self.get_participant(drop_id, shopper_id, consistent=True)
        assert participant is not None
        return participant

    def _raise_purchase_failure(self, exc: ClientError, drop_id: str, shopper_id: str, order_id: str) -> None:
        existing = self.get_participant(drop_id, shopper_id, consistent=True)
        if existing and existing.order_id:
            if existing.order_id == order_id:
                return  # the same purchase, retried: same order
            raise AlreadyPurchased("You already bought this drop.", order_id=existing.order_id) from exc
        reasons = _reasons(exc)
        meta = _from_ddb(reasons[0].get("Item", {})) if reasons and reasons[0].get("Item") else {}
        if reasons and reasons[0].get("Code") == "ConditionalCheckFailed" and meta.get("remaining", 1) <= 0:
            raise SoldOut("Sold out.") from exc
        raise PurchaseExpired("Your purchase window has closed.") from exc

    # -- rollover -------------------------------------------------------------
    def rollover_balance(self, shopper_id: str, consistent: bool = False) -> int:
        item = self._get({"pk": f"SHOPPER#{shopper_id}", "sk": "ROLLOVER"}, consistent)
        return int(item["balance"]) if item else 0

    def credit_rollover(self, p: Participant, credit: int, cap: int) -> bool:
        """Add credit (capped) exactly once per shopper per drop; False if already done."""
        for _ in range(10):
            old = self.rollover_balance(p.shopper_id, consistent=True)
            new = min(cap, old + credit) if old < cap else old
            granted = new - old
            balance_cond = "balance = :old" if old else "attribute_not_exists(balance) OR balance = :old"
            try:
                self._call("transact_write_items", TransactItems=[
                    {"Update": {"TableName": self._table, "Key": _to_ddb(_participant_key(p.drop_id, p.shopper_id)),
                                "UpdateExpression": "SET rollover_credited = :g",
                                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(rollover_credited)",
                                "ExpressionAttributeValues": _vals(g=granted)}},
                    {"Update": {"TableName": self._table, "Key": _to_ddb({"pk": f"SHOPPER#{p.shopper_id}", "sk": "ROLLOVER"}),
                                "UpdateExpression": "SET balance = :new", "ConditionExpression": balance_cond,
                                "ExpressionAttributeValues": _vals(new=new, old=old)}},
                ])
                return True
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                if _reasons(exc) and _reasons(exc)[0].get("Code") == "ConditionalCheckFailed":
                    return False
        raise TransientStoreError("Rollover balance kept changing.")

    # -- counters and housekeeping ---------------------------------------------
    def hit(self, key: str, window: int, expires_at: int) -> int:
        """Count one request in a fixed window; returns the count so far."""
        res = self._call("update_item", TableName=self._table, Key=_to_ddb({"pk": f"RATE#{key}", "sk": str(window)}),
                         UpdateExpression="ADD hits :one SET expires_at = :exp",
                         ExpressionAttributeValues=_vals(one=1, exp=expires_at), ReturnValues="UPDATED_NEW")
        return int(res["Attributes"]["hits"]["N"])

    def delete_drop(self, drop_id: str) -> int:
        """Remove a drop and everything under it (operator reset)."""
        keys = [{"pk": _drop_pk(drop_id), "sk": s} for s in ("META", "SECRET")]
        for shard in range(SHARDS):
            kwargs: dict = {}
            while True:
                res = self._call("query", TableName=self._table, KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues=_vals(pk=_shard_pk(drop_id, shard)),
                                 ProjectionExpression="pk, sk", **kwargs)
                keys += [_from_ddb(i) for i in res["Items"]]
                if "LastEvaluatedKey" not in res:
                    break
                kwargs = {"ExclusiveStartKey": res["LastEvaluatedKey"]}
        for i in range(0, len(keys), 25):
            self._batch_write([{"DeleteRequest": {"Key": _to_ddb(k)}} for k in keys[i : i + 25]])
        return len(keys)

    # -- fairness: the named beacon and the audit record (both bound to the drop's commitment) ------
    def _put_once(self, drop_id: str, sk: str, item: dict, condition: str, **values: Any) -> bool:
        """Conditional put of DROP#<id>/<sk>; False when the condition does not hold."""
        names = {"#c": "commitment"} if "#c" in condition else {}
        if "#st" in condition:
            names["#st"] = "state"
        kwargs: dict[str, Any] = dict(TableName=self._table, Item=_to_ddb({"pk": _drop_pk(drop_id), "sk": sk, **item}),
                                      ConditionExpression=condition)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = _vals(**values)
        try:
            self._call("put_item", **kwargs)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _get_bound(self, drop_id: str, sk: str, commitment: str) -> dict | None:
        """The item, unless it is left over from an earlier drop of the same id (another commitment)."""
        item = self._get({"pk": _drop_pk(drop_id), "sk": sk}, True)
        return item if item and item.get("commitment") == commitment else None

    def name_beacon(self, drop_id: str, commitment: str, source: str, round_no: int) -> dict | None:
        """Name the beacon round once; returns the stored beacon (None if another one was named)."""
        self._put_once(drop_id, "BEACON", {"commitment": commitment, "source": source, "round": round_no},
                       "attribute_not_exists(pk) OR #c <> :c", c=commitment)
        beacon = self.get_beacon(drop_id, commitment)
        return beacon if beacon and beacon["source"] == source and beacon["round"] == round_no else None

    def set_beacon_value(self, drop_id: str, commitment: str, value: str) -> dict | None:
        """Record the named round's value once; None when none is named or another value is stored."""
        try:
            res = self._call("update_item", TableName=self._table, Key=_to_ddb({"pk": _drop_pk(drop_id), "sk": "BEACON"}),
                             UpdateExpression="SET #v = :v", ConditionExpression="#c = :c AND (attribute_not_exists(#v) OR #v = :v)",
                             ExpressionAttributeNames={"#c": "commitment", "#v": "value"},
                             ExpressionAttributeValues=_vals(c=commitment, v=value), ReturnValues="ALL_NEW")
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return _from_ddb(res["Attributes"])

    def get_beacon(self, drop_id: str, commitment: str) -> dict | None:
        item = self._get_bound(drop_id, "BEACON", commitment)
        return {k: item[k] for k in ("source", "round", "value") if k in item} if item else None

    def freeze_audit(self, drop_id: str, commitment: str, root: str, entries: int, frozen_at: int) -> dict:
        """Publish the frozen entries' root once; returns what is stored (an earlier freeze wins)."""
        self._put_once(drop_id, "AUDIT", {"commitment": commitment, "state": "frozen", "root": root,
                                          "entries": entries, "frozen_at": frozen_at},
                       "attribute_not_exists(pk) OR #c <> :c", c=commitment)
        stored = self._get_bound(drop_id, "AUDIT", commitment)
        assert stored is not None
        return stored

    def save_audit(self, drop_id: str, commitment: str, root: str, record: str) -> dict | None:
        """frozen -> drawn with the record (JSON), only over the same root; idempotent. Returns the stored item."""
        self._put_once(drop_id, "AUDIT", {"commitment": commitment, "state": "drawn", "root": root, "record": record},
                       "#c = :c AND root = :r AND #st = :frozen", c=commitment, r=root, frozen="frozen")
        return self._get_bound(drop_id, "AUDIT", commitment)

    def get_audit(self, drop_id: str, commitment: str) -> dict | None:
        return self._get_bound(drop_id, "AUDIT", commitment)
