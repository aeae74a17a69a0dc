"""Make moto's DynamoDB honour DynamoDB's isolation: one request at a time.

moto 5.2.5 is not safe under concurrent requests: transact_write_items snapshots whole tables
with deepcopy and, when any condition fails, puts the snapshot back, erasing writes other
threads made meanwhile; put_item/update_item check a condition and write in two steps.
Real DynamoDB makes each item write atomic and transactions serializable, so the devstack moto
server, the race tests and the benchmarks serialise the emulator's DynamoDB operations with one lock.

Under that lock a transaction only needs to undo the items it names, so the whole-table
deepcopy (about 0.1 s per transaction once a drop has 1,000 entries) is replaced by a copy of
those items: moto's own rollback then puts back the same table object, and we restore the items.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable

OPERATIONS = (
    "put_item", "update_item", "delete_item", "get_item", "query", "scan",
    "batch_write_item", "batch_get_item", "transact_get_items",
)
_LOCK = threading.RLock()
_IN_TRANSACTION = threading.local()


class _TableCopyShim:
    """moto's `copy` module, except that deepcopy(Table) inside our transactions is the table itself."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_IN_TRANSACTION, "active", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _serialised(fn: Callable) -> Callable:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return fn(self, *args, **kwargs)

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    call.__name__ = fn.__name__
    return call


def _touched(backend: Any, transact_items: list[dict]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, deep copy of the item or None) for every item a transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    out = []
    for entry in transact_items:
        op = next(iter(entry.values()), None)
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        attrs = (op.get("Item") or op.get("Key") or {}) if table is not None else {}
        if table is None or table.hash_key_attr not in attrs:
            continue  # moto rejects it before writing anything
        hash_key = DynamoType(attrs[table.hash_key_attr])
        range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr in attrs else None
        if table.range_key_attr and range_key is None:
            continue
        out.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    return out


def _restore(touched: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_key, range_key, item in reversed(touched):  # the first copy of a key is its original
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def _transactional(fn: Callable) -> Callable:
    def transact_write_items(self: Any, transact_items: list[dict], *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            touched = _touched(self, transact_items)
            _IN_TRANSACTION.active = True
            try:
                return fn(self, transact_items, *args, **kwargs)
            except Exception:
                _restore(touched)
                raise
            finally:
                _IN_TRANSACTION.active = False

    transact_write_items.__wrapped__ = fn  # type: ignore[attr-defined]
    return transact_write_items


def patches() -> list[tuple[Any, str, Any]]:  # pinned to moto 5.2.5's DynamoDBBackend and models.copy
    """(owner, name, replacement) for every DynamoDB backend operation and moto's `copy`."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    out: list[tuple[Any, str, Any]] = []
    for name in OPERATIONS:
        fn = getattr(DynamoDBBackend, name)
        out.append((DynamoDBBackend, name, _serialised(getattr(fn, "__wrapped__", fn))))
    fn = DynamoDBBackend.transact_write_items
    out.append((DynamoDBBackend, "transact_write_items", _transactional(getattr(fn, "__wrapped__", fn))))
    out.append((models, "copy", _TableCopyShim()))
    return out


def install() -> None:
    for owner, name, replacement in patches():
        setattr(owner, name, replacement)
