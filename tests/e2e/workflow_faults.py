"""Fault-injecting wrappers around app.py's task Lambdas, and a moto server launcher for them.

The handlers run inside the moto server process, so attempts are counted in the DynamoDB
table (pk ATTEMPTS_PK), where the test process can read them.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any

import boto3

from chalicelib.domain.errors import InvalidPhase, LotteryError, TransientStoreError

ATTEMPTS_PK = "TEST#ATTEMPTS"
FLAKY = "flaky-"  # lottery: fails before drawing, then draws and fails (result lost), then succeeds
UNREADY = "unready-"  # lottery: the first call says registration is still open
BROKEN = "broken-"  # lottery: always fails with LotteryError
REPAIRABLE = "repair-"  # lottery: fails with LotteryError until the test calls repair(drop_id)
REPAIRED_PK = "TEST#REPAIRED"


@functools.lru_cache(maxsize=1)
def _ddb() -> Any:
    return boto3.client("dynamodb")


def count_attempt(function: str, drop_id: str) -> int:
    """Count one call of function for drop_id; return the count so far (1 on the first call)."""
    res = _ddb().update_item(
        TableName=os.environ["DROPS_TABLE"], Key={"pk": {"S": ATTEMPTS_PK}, "sk": {"S": f"{function}#{drop_id}"}},
        UpdateExpression="ADD attempts :one", ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    return int(res["Attributes"]["attempts"]["N"])


def attempts(client: Any, table: str, function: str, drop_id: str) -> int:
    """Read from the test process how often function ran for drop_id."""
    item = client.get_item(TableName=table, Key={"pk": {"S": ATTEMPTS_PK}, "sk": {"S": f"{function}#{drop_id}"}},
                           ConsistentRead=True).get("Item")
    return int(item["attempts"]["N"]) if item else 0


def repair(client: Any, table: str, drop_id: str) -> None:
    """From the test process: the repair-* drop's lottery works from now on."""
    client.put_item(TableName=table, Item={"pk": {"S": REPAIRED_PK}, "sk": {"S": drop_id}})


def _repaired(drop_id: str) -> bool:
    item = _ddb().get_item(TableName=os.environ["DROPS_TABLE"], Key={"pk": {"S": REPAIRED_PK}, "sk": {"S": drop_id}},
                           ConsistentRead=True).get("Item")
    return item is not None


def run_lottery(event: dict, context: Any) -> dict:
    """app.drop_run_lottery, with faults for drops named flaky-*, unready-*, broken-* and repair-*."""
    import app  # imported in the server process on first invoke, like a Lambda cold start

    drop_id = event.get("drop_id", "") if isinstance(event, dict) else ""
    attempt = count_attempt("drop_run_lottery", drop_id)
    if drop_id.startswith(FLAKY) and attempt == 1:
        raise TransientStoreError("injected: store busy before the draw")
    if drop_id.startswith(FLAKY) and attempt == 2:
        app.drop_run_lottery(event, context)
        raise TransientStoreError("injected: store busy after the draw (result lost)")
    if drop_id.startswith(UNREADY) and attempt == 1:
        raise InvalidPhase("injected: registration is still open by this Lambda's clock")
    if drop_id.startswith(BROKEN) or (drop_id.startswith(REPAIRABLE) and not _repaired(drop_id)):
        raise LotteryError(f"injected: attempt {attempt} cannot draw")
    return app.drop_run_lottery(event, context)


def main(argv: list[str] | None = None) -> int:
    """python -m tests.e2e.workflow_faults --port N: the devstack moto server (it serialises DynamoDB itself)."""
    from devstack import moto_server

    return moto_server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
