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
    return DropService(store=DropStore(client, cfg.table_name), signer=Signer(cfg.signing_key), settings=cfg)


def reset() -> None:
    """Forget cached settings and clients (tests, config reload)."""
    settings.cache_clear()
    service.cache_clear()
