"""python -m bench._lib.isolated_moto --port N: a moto server with DynamoDB's isolation and fast transactions.

moto 5.2.5 under concurrent requests is not isolated (tests/reliability/moto_lock.py explains it), so
every DynamoDB operation runs under one lock, as there. And its TransactWriteItems deep-copies each
table it touches, once per item, to roll back a cancelled transaction: seconds per transaction once
the table holds thousands of entries. Here the rollback keeps copies of the touched items only
(moto keeps items in Table.items[hash][range]; its GSIs are computed when queried), which is exact
and O(items in the transaction). Only the benchmarks use it: this server (bench/storm.py), or
install() in a process using mock_aws (bench/bots.py).
"""
from __future__ import annotations

import argparse
import copy
import signal
import sys
import threading
from typing import Any, Callable

OPERATIONS = ("put_item", "update_item", "delete_item", "get_item", "query", "scan", "batch_write_item",
              "batch_get_item", "transact_write_items", "transact_get_items")
LOCK = threading.RLock()


def _locked(fn: Callable) -> Callable:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return fn(self, *args, **kwargs)

    call.__name__ = fn.__name__
    return call


def _item_level_rollback(original: Callable) -> Callable:
    from moto.dynamodb.models.table import Table

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with LOCK:
            saved = []
            for entry in transact_items:
                try:
                    (_, op), = entry.items()
                    table = self.tables[op["TableName"]]
                    key = op.get("Key") or {a: op["Item"][a] for a in (table.hash_key_attr, table.range_key_attr) if a}
                    hash_key, range_key = self.get_keys_value(table, key)
                    saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
                except Exception:  # malformed: moto's own code reports it
                    continue
            Table.__deepcopy__ = lambda table, memo: table  # moto's whole-table snapshot becomes a no-op
            try:
                return original(self, transact_items)
            except BaseException:
                for table, hash_key, range_key, item in reversed(saved):
                    _restore(table, hash_key, range_key, item)
                raise
            finally:
                del Table.__deepcopy__

    return transact_write_items


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if table.has_range_key:
        if item is None:
            table.items[hash_key].pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item
    elif item is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = item


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in OPERATIONS:
        fn = getattr(DynamoDBBackend, name)
        if name == "transact_write_items":
            setattr(DynamoDBBackend, name, _item_level_rollback(fn))
        else:
            setattr(DynamoDBBackend, name, _locked(fn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    install()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"isolated moto server ready on http://127.0.0.1:{args.port}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
