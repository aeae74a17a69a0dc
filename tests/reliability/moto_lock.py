"""Make moto's DynamoDB honour DynamoDB's isolation: one request at a time.

moto 5.2.5 is not safe under concurrent requests: transact_write_items snapshots whole tables
with deepcopy and, when any condition fails, puts the snapshot back, erasing writes other
threads made meanwhile; put_item/update_item check a condition and write in two steps.
Real DynamoDB makes each item write atomic and transactions serializable, so our race tests
serialise the emulator's request handling (in-process or in the moto server) with one lock.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

OPERATIONS = (
    "put_item", "update_item", "delete_item", "get_item", "query", "scan",
    "batch_write_item", "batch_get_item", "transact_write_items", "transact_get_items",
)
_LOCK = threading.RLock()


def _serialised(fn: Callable) -> Callable:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return fn(self, *args, **kwargs)

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    call.__name__ = fn.__name__
    return call


def patches() -> list[tuple[type, str, Callable]]:
    """(class, name, serialised method) for every DynamoDB backend operation."""
    from moto.dynamodb.models import DynamoDBBackend

    out = []
    for name in OPERATIONS:
        fn = getattr(DynamoDBBackend, name)
        out.append((DynamoDBBackend, name, _serialised(getattr(fn, "__wrapped__", fn))))
    return out


def install() -> None:
    for cls, name, fn in patches():
        setattr(cls, name, fn)
