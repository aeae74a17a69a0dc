"""Create the DynamoDB tables from infra/template.yaml, the single source of truth."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def table_specs(template: Path = TEMPLATE) -> dict[str, dict]:
    """Logical id -> CreateTable arguments (without TableName) for every table in the template."""
    doc = yaml.safe_load(template.read_text())
    return {
        name: {k: res["Properties"][k] for k in _TABLE_KEYS if k in res["Properties"]}
        for name, res in doc["Resources"].items()
        if res["Type"] == "AWS::DynamoDB::Table"
    }


def create_tables(client: Any, names: dict[str, str]) -> None:
    """Create each table (logical id -> physical name) and wait until it is active."""
    specs = table_specs()
    for logical, physical in names.items():
        try:
            client.create_table(TableName=physical, **specs[logical])
        except client.exceptions.ResourceInUseException:
            continue
        client.get_waiter("table_exists").wait(TableName=physical, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
