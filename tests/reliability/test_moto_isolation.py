"""The test harness's moto patch keeps DynamoDB's transaction semantics while copying only named items."""
from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError

TABLE = "drops-test"


def _item(ddb, pk: str, sk: str = "META") -> dict | None:
    return ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")


def _put(ddb, pk: str, n: int, sk: str = "META") -> None:
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}})


def _update(pk: str, cond: str = "attribute_exists(pk)") -> dict:
    return {"Update": {"TableName": TABLE, "Key": {"pk": {"S": pk}, "sk": {"S": "META"}},
                       "UpdateExpression": "SET n = n + :one", "ConditionExpression": cond,
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}


def test_a_cancelled_transaction_undoes_its_own_writes_and_keeps_everything_else(ddb):
    _put(ddb, "A", 1)
    _put(ddb, "B", 1)
    _put(ddb, "OTHER", 7)
    items = [
        _update("A"),  # applied by moto before the failing condition is seen
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "NEW"}, "sk": {"S": "META"}}}},
        _update("B", "n > :one"),  # fails
    ]
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=items)
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in err.value.response["CancellationReasons"]] == ["None", "None", "ConditionalCheckFailed"]
    assert _item(ddb, "A")["n"] == {"N": "1"} and _item(ddb, "B")["n"] == {"N": "1"}
    assert _item(ddb, "NEW") is None
    assert _item(ddb, "OTHER")["n"] == {"N": "7"}


def test_a_transaction_that_holds_applies_every_write(ddb):
    _put(ddb, "A", 1)
    ddb.transact_write_items(TransactItems=[_update("A"), {"Put": {"TableName": TABLE, "Item": {
        "pk": {"S": "NEW"}, "sk": {"S": "META"}}, "ConditionExpression": "attribute_not_exists(pk)"}}])
    assert _item(ddb, "A")["n"] == {"N": "2"} and _item(ddb, "NEW") is not None


def test_naming_one_item_twice_is_still_refused_and_undone(ddb):
    _put(ddb, "A", 1)
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[_update("A"), _update("A")])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert _item(ddb, "A")["n"] == {"N": "1"}


def test_outside_transactions_a_table_deepcopy_is_a_real_copy(ddb):
    from moto.dynamodb import models

    table = next(iter(models.dynamodb_backends["123456789012"]["us-east-1"].tables.values()))
    assert models.copy.deepcopy(table) is not table
    assert models.copy.deepcopy([1, [2]]) == copy.deepcopy([1, [2]])
