"""Shared fixtures: a moto-backed store and service, built from infra/template.yaml."""
from __future__ import annotations

import os
import secrets

import boto3
import pytest
from moto import mock_aws

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


class Clock:
    """A settable clock in ms."""

    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def aws(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def ddb(aws):
    from chalicelib.tables import create_tables

    client = boto3.client("dynamodb", region_name="us-east-1")
    create_tables(client, {"DropsTable": "drops-test"})
    return client


@pytest.fixture
def env(monkeypatch, ddb):
    """Environment for code that builds itself (app.py, bootstrap)."""
    from chalicelib import bootstrap

    monkeypatch.setenv("DROPS_TABLE", "drops-test")
    monkeypatch.setenv("SIGNING_KEY", secrets.token_hex(32))
    monkeypatch.setenv("OPERATOR_KEY", secrets.token_hex(16))
    monkeypatch.setenv("POW_DIFFICULTY", "8")
    bootstrap.reset()
    yield os.environ
    bootstrap.reset()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(ddb):
    from chalicelib.store import DropStore

    return DropStore(ddb, "drops-test")


@pytest.fixture
def service(store, clock):
    from chalicelib.config import Settings
    from chalicelib.service import DropService
    from chalicelib.tokens import Signer

    cfg = Settings(table_name="drops-test", signing_key=secrets.token_hex(32), operator_key="op-" + secrets.token_hex(8),
                   pow_difficulty=8, registration_grace_ms=0)
    return DropService(store=store, signer=Signer(cfg.signing_key), settings=cfg, clock=clock)


def drop_spec(clock: Clock, **overrides) -> dict:
    spec = {
        "drop_id": "jacket", "name": "Alpha SV", "inventory": 3,
        "product": {"title": "Alpha SV Jacket", "image_url": "/img/jacket.svg", "price": 800},
        "registration_start": clock.now - 1000, "registration_end": clock.now + 60_000,
        "purchase_window": 60, "ticket_price_unit": 1, "max_tickets": 10, "rollover_cap": 10, "max_rounds": 3,
    }
    spec.update(overrides)
    return spec
