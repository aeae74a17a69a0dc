"""Reliability fixtures: moto with DynamoDB's isolation (devstack/moto_isolation.py)."""
from __future__ import annotations

import pytest

from devstack import moto_isolation as moto_lock


@pytest.fixture(autouse=True)
def serialised_moto(monkeypatch):
    for cls, name, fn in moto_lock.patches():
        monkeypatch.setattr(cls, name, fn)


from tests.security.conftest import api  # noqa: E402,F401  (the chalice.test.Client fixture)
