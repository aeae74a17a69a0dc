"""Fixtures for API-level tests: app.py behind chalice.test.Client on moto."""
from __future__ import annotations

import pytest

from tests.security.flows import Api


@pytest.fixture
def api(env, monkeypatch):
    from chalice.test import Client

    import app as app_module

    monkeypatch.setenv("REGISTRATION_GRACE_MS", "0")
    # Bot scoring and rate limits have their own tests; here a solved PoW is enough to register.
    monkeypatch.setenv("TRUST_THRESHOLD", "0")
    for limit in ("SESSION_IP", "CHALLENGE_SHOPPER", "CHALLENGE_IP", "REGISTER_SHOPPER", "REGISTER_IP"):
        monkeypatch.setenv(f"RATE_LIMIT_{limit}", "0")
    with Client(app_module.app) as client:
        yield Api(client, env["OPERATOR_KEY"])
