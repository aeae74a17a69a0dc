"""Fixtures for API-level tests: app.py behind chalice.test.Client on moto."""
from __future__ import annotations

import pytest

from tests.security.flows import Api


@pytest.fixture
def api(env, monkeypatch):
    from chalice.test import Client

    import app as app_module

    monkeypatch.setenv("REGISTRATION_GRACE_MS", "0")
    with Client(app_module.app) as client:
        yield Api(client, env["OPERATOR_KEY"])
