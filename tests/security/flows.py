"""Drive app.py through Chalice's test client: sessions, PoW, registration, lottery, purchase."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from chalicelib.pow import solve


def now_ms() -> int:
    return int(time.time() * 1000)


def drop_body(drop_id: str = "jacket", **overrides) -> dict:
    now = now_ms()
    body = {
        "drop_id": drop_id, "name": "Alpha SV", "inventory": 3,
        "product": {"title": "Alpha SV Jacket", "image_url": "/img/jacket.svg", "price": 800},
        "registration_start": now - 1000, "registration_end": now + 600_000, "purchase_window": 600,
    }
    body.update(overrides)
    return body


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict
    raw: str


@dataclass
class Api:
    """A thin shopper/operator client over chalice.test.Client."""

    client: object
    operator_key: str

    def call(self, method: str, path: str, *, token: str | None = None, operator: bool = False,
             body: object = None, headers: dict | None = None, raw: bytes | None = None) -> Reply:
        hdrs = {"content-type": "application/json", **(headers or {})}
        if token:
            hdrs["authorization"] = f"Bearer {token}"
        if operator:
            hdrs["x-operator-key"] = self.operator_key
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        res = self.client.http.request(method, path, headers=hdrs, body=data)
        text = res.body.decode() if isinstance(res.body, bytes) else (res.body or "")
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = {}
        return Reply(res.status_code, parsed, {k.lower(): v for k, v in res.headers.items()}, text)

    def create_drop(self, drop_id: str = "jacket", **overrides) -> dict:
        res = self.call("POST", "/api/drops", operator=True, body=drop_body(drop_id, **overrides))
        assert res.status == 201, res.raw
        return res.body

    def session(self) -> tuple[str, str]:
        res = self.call("POST", "/api/session")
        assert res.status == 201, res.raw
        return res.body["token"], res.body["shopper_id"]

    def challenge(self, token: str, drop_id: str = "jacket") -> dict:
        res = self.call("GET", f"/api/pow/challenge?drop_id={drop_id}", token=token)
        assert res.status == 200, res.raw
        return res.body

    def register(self, token: str, drop_id: str = "jacket", challenge: dict | None = None,
                 headers: dict | None = None, **extra) -> Reply:
        challenge = challenge or self.challenge(token, drop_id)
        body = {"tickets": 1, "rollover": 0, "pow": {"challenge": challenge, "nonce": solve(challenge)}, **extra}
        return self.call("POST", f"/api/drop/{drop_id}/register", token=token, body=body, headers=headers)

    def draw(self, drop_id: str = "jacket") -> None:
        """Close registration and run the lottery task, as the workflow would."""
        assert self.call("POST", f"/api/drop/{drop_id}/lottery", operator=True).status == 200
        out = self.client.lambda_.invoke("drop_run_lottery", {"drop_id": drop_id}).payload
        assert out.get("ran") is True, out
        from chalicelib import bootstrap

        bootstrap.service()._cache.clear()  # the task ran in "another Lambda": forget the 1 s drop cache

    def me(self, token: str, drop_id: str = "jacket") -> dict:
        return self.call("GET", f"/api/drop/{drop_id}/me", token=token).body

    def buy(self, token: str, drop_id: str = "jacket") -> tuple[Reply, str]:
        start = self.call("POST", f"/api/drop/{drop_id}/purchase/start", token=token)
        assert start.status == 200, start.raw
        ptoken = start.body["purchase_token"]
        return self.call("POST", f"/api/drop/{drop_id}/purchase", token=token,
                         body={"purchase_token": ptoken}), ptoken
