"""Composition root: builds the service from the environment, once per process."""
from __future__ import annotations

from functools import lru_cache

import boto3
from botocore.config import Config

from chalicelib.config import settings
from chalicelib.service import DropService
from chalicelib.store import DropStore
from chalicelib.tokens import Signer

BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64)


@lru_cache(maxsize=1)
def service() -> DropService:
    cfg = settings()
    client = boto3.client("dynamodb", config=BOTO_CONFIG)
    return DropService(store=DropStore(client, cfg.table_name), signer=Signer(cfg.signing_key), settings=cfg,
                       start_workflow=_workflow_starter(cfg.state_machine_arn))


def _workflow_starter(state_machine_arn: str):
    """Start one execution per drop, named after it (starting twice is harmless)."""
    if not state_machine_arn:
        return None
    sfn = boto3.client("stepfunctions", config=BOTO_CONFIG)

    def start(drop_id: str, name: str | None = None) -> None:
        import json

        try:
            sfn.start_execution(stateMachineArn=state_machine_arn, name=name or drop_id,
                                input=json.dumps({"drop_id": drop_id}))
        except sfn.exceptions.ExecutionAlreadyExists:
            pass

    return start


def reset() -> None:
    """Forget cached settings and clients (tests, config reload)."""
    settings.cache_clear()
    service.cache_clear()
