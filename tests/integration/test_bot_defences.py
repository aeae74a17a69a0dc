"""Bot defences through the HTTP API (chalice.test.Client on moto): PoW, score, device limit, rate limits, Fingerprint API."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from chalicelib import bootstrap
from chalicelib.pow import solve
from tests.conftest import Clock

HUMAN = {"fingerprint": {"visitor_id": "fp-human-1", "confidence": 0.5},
         "signals": {"interactions": 4, "elapsed_ms": 15_000}}


class Shop:
    """A shopper/operator client whose server clock the test controls."""

    def __init__(self, client, operator_key: str, clock: Clock) -> None:
        self.client, self.operator_key, self.clock = client, operator_key, clock

    def call(self, method: str, path: str, token: str = "", body: object = None, operator: bool = False):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if operator:
            headers["x-operator-key"] = self.operator_key
        res = self.client.http.request(method, path, headers=headers, body=json.dumps(body).encode() if body else b"")
        return res.status_code, json.loads(res.body or b"{}"), {k.lower(): v for k, v in res.headers.items()}

    def drop(self, drop_id: str = "jacket") -> None:
        spec = {"drop_id": drop_id, "name": "Alpha SV", "inventory": 3, "purchase_window": 60,
                "product": {"title": "Alpha SV Jacket", "image_url": "/img/jacket.svg", "price": 800},
                "registration_start": self.clock.now - 1000, "registration_end": self.clock.now + 3_600_000}
        assert self.call("POST", "/api/drops", body=spec, operator=True)[0] == 201

    def session(self) -> str:
        status, body, _ = self.call("POST", "/api/session")
        assert status == 201, body
        return body["token"]

    def challenge(self, token: str, drop_id: str = "jacket") -> dict:
        status, body, _ = self.call("GET", f"/api/pow/challenge?drop_id={drop_id}", token=token)
        assert status == 200, body
        return body

    def register(self, token: str, challenge: dict, drop_id: str = "jacket", wait_ms: int = 1200, **extra):
        self.clock.advance(wait_ms)
        body = {"tickets": 1, "rollover": 0, "pow": {"challenge": challenge, "nonce": solve(challenge)}, **extra}
        return self.call("POST", f"/api/drop/{drop_id}/register", token=token, body=body)

    def participants(self, drop_id: str = "jacket") -> list:
        return list(bootstrap.service().store.participants(drop_id))


@pytest.fixture
def make_shop(env, monkeypatch, clock):
    from chalice.test import Client

    import app as app_module

    clients = []

    def make(**settings: str) -> Shop:
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        bootstrap.service().clock = clock
        client = Client(app_module.app)
        clients.append(client)
        shop = Shop(client.__enter__(), env["OPERATOR_KEY"], clock)
        shop.drop()
        return shop

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def shop(make_shop):
    return make_shop()


# -- score ---------------------------------------------------------------------------------
def test_a_real_browser_without_a_fingerprint_key_passes_and_its_trust_is_stored(shop):
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), **HUMAN)
    assert status == 201, body
    [entry] = shop.participants()
    assert entry.device == "fp-human-1"
    assert entry.trust["score"] >= 60 and entry.trust["pow"] == 30 and entry.trust["timing"] == 30
    assert entry.trust["fingerprint"] == 10 and entry.trust["verified"] is False and entry.trust["elapsed_ms"] == 1200


def test_a_bare_script_is_refused_and_only_the_logs_say_why(shop, caplog):
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), wait_ms=50)
    assert (status, body["error"]) == (403, "bot_suspected")
    assert "fast" not in body["message"] and "fingerprint" not in body["message"]
    assert shop.participants() == []
    [record] = [r for r in caplog.records if r.getMessage() == "bot suspected"]
    assert record.layer == "score" and record.trust["score"] < 50 and record.trust["fingerprint"] == 0
    assert "no fingerprint" in record.trust["reasons"] and any("too fast" in r for r in record.trust["reasons"])


def test_too_fast_is_refused_even_with_a_fingerprint_and_lying_signals(make_shop):
    shop = make_shop(POW_DIFFICULTY="14")  # enough work that 5 ms means a native solver
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), wait_ms=5, **HUMAN)
    assert (status, body["error"]) == (403, "bot_suspected")


# -- proof-of-work ----------------------------------------------------------------------------
def test_a_replayed_solved_challenge_never_creates_a_second_entry(shop):
    token = shop.session()
    challenge = shop.challenge(token)
    assert shop.register(token, challenge, **HUMAN)[0] == 201
    for _ in range(3):
        status, body, _ = shop.register(token, challenge, wait_ms=100, **HUMAN)
        assert (status, body["error"]) == (409, "already_registered")
    assert len(shop.participants()) == 1


def test_a_solution_for_drop_a_is_refused_for_drop_b(shop):
    shop.drop("other")
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token, "jacket"), drop_id="other", **HUMAN)
    assert (status, body["error"]) == (403, "bot_suspected")
    assert shop.participants("other") == []


def test_a_solution_for_shopper_a_is_refused_for_shopper_b(shop):
    alice, bob = shop.session(), shop.session()
    status, body, _ = shop.register(bob, shop.challenge(alice), **HUMAN)
    assert (status, body["error"]) == (403, "bot_suspected")
    assert shop.participants() == []


def test_an_expired_challenge_is_refused(shop):
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), wait_ms=120_001, **HUMAN)
    assert (status, body["error"]) == (403, "bot_suspected")
    assert "expired" not in body["message"]


@pytest.mark.parametrize("tamper", [{"signature": "f" * 64}, {"difficulty": 0}, {"expires": 4_102_444_800_000}])
def test_a_forged_challenge_is_refused(shop, tamper):
    token = shop.session()
    status, body, _ = shop.register(token, {**shop.challenge(token), **tamper}, **HUMAN)
    assert (status, body["error"]) == (403, "bot_suspected")


# -- one entry per device -----------------------------------------------------------------------
def test_the_same_device_cannot_enter_twice(shop):
    alice, bob = shop.session(), shop.session()
    assert shop.register(alice, shop.challenge(alice), **HUMAN)[0] == 201
    status, body, _ = shop.register(bob, shop.challenge(bob), **HUMAN)
    assert (status, body["error"]) == (409, "already_registered")
    assert [p.device for p in shop.participants()] == ["fp-human-1"]


def test_device_limit_can_be_turned_off(make_shop):
    shop = make_shop(DEVICE_LIMIT="0")
    alice, bob = shop.session(), shop.session()
    assert shop.register(alice, shop.challenge(alice), **HUMAN)[0] == 201
    assert shop.register(bob, shop.challenge(bob), **HUMAN)[0] == 201


# -- rate limits ---------------------------------------------------------------------------------
def test_sessions_are_limited_per_ip_with_retry_after(make_shop, clock, monkeypatch):
    from chalice.local import LambdaEventConverter

    clock.now = 1_800_000_000_000 - 1_800_000_000_000 % 60_000 + 17_300  # 17.3 s into a minute
    shop = make_shop(RATE_LIMIT_SESSION_IP="3")
    for _ in range(3):
        shop.session()
    status, body, headers = shop.call("POST", "/api/session")
    assert (status, body["error"], headers["retry-after"]) == (429, "rate_limited", "43")
    monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", "203.0.113.9")
    assert shop.call("POST", "/api/session")[0] == 201  # another address has its own window
    monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", "127.0.0.1")
    clock.advance(43_000)
    assert shop.call("POST", "/api/session")[0] == 201  # the next window


def test_challenges_are_limited_per_shopper(make_shop):
    shop = make_shop(RATE_LIMIT_CHALLENGE_SHOPPER="2")
    alice, bob = shop.session(), shop.session()
    shop.challenge(alice), shop.challenge(alice)
    status, body, headers = shop.call("GET", "/api/pow/challenge?drop_id=jacket", token=alice)
    assert (status, body["error"]) == (429, "rate_limited") and 1 <= int(headers["retry-after"]) <= 60
    shop.challenge(bob)


def test_registrations_are_limited_per_ip(make_shop):
    shop = make_shop(RATE_LIMIT_REGISTER_IP="2", DEVICE_LIMIT="0")
    tokens = [shop.session() for _ in range(3)]
    challenges = [shop.challenge(t) for t in tokens]
    assert [shop.register(t, c, **HUMAN)[0] for t, c in zip(tokens[:2], challenges[:2])] == [201, 201]
    status, body, headers = shop.register(tokens[2], challenges[2], wait_ms=0, **HUMAN)
    assert (status, body["error"]) == (429, "rate_limited") and "retry-after" in headers
    assert len(shop.participants()) == 2


# -- Fingerprint Server API (a local fake speaking the v4 /events format) ---------------------------
class FakeFingerprint(BaseHTTPRequestHandler):
    events: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path  # the SDK adds ?ii=<sdk name/version>
        FakeFingerprint.seen.append((path, self.headers.get("Authorization")))
        event_id = path.rsplit("/", 1)[-1]
        if self.headers.get("Authorization") != "Bearer fp-secret":
            return self._send(403, {"error": {"code": "secret_api_key_not_found", "message": "secret key is not found"}})
        if not path.startswith("/v4/events/") or event_id not in self.events:
            return self._send(404, {"error": {"code": "event_not_found", "message": "event id not found"}})
        return self._send(200, self.events[event_id])

    def _send(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):  # keep test output quiet
        pass


def event(event_id: str, visitor_id: str, score: float, timestamp: int, bot: str = "not_detected") -> dict:
    return {"event_id": event_id, "timestamp": timestamp, "url": "https://shop.example/drops/jacket",
            "ip_address": "203.0.113.7", "bot": bot,
            "identification": {"visitor_id": visitor_id, "confidence": {"score": score, "version": "1.1"},
                               "visitor_found": True, "first_seen_at": timestamp, "last_seen_at": timestamp}}


@pytest.fixture
def fingerprint_api(make_shop, clock):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeFingerprint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeFingerprint.events, FakeFingerprint.seen = {
        "req-good": event("req-good", "vid-real", 0.995, clock.now),
        "req-bot": event("req-bot", "vid-bot", 0.99, clock.now, bot="bad"),
        "req-old": event("req-old", "vid-old", 0.99, clock.now - 3_600_000),
    }, []
    shop = make_shop(FINGERPRINT_API_KEY="fp-secret", FINGERPRINT_API_URL=f"http://127.0.0.1:{server.server_port}/v4",
                     TRUST_THRESHOLD="70")
    yield shop
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def fp(visitor: str, request_id: str | None, confidence: float = 0.5) -> dict:
    return {"fingerprint": {"visitor_id": visitor, "confidence": confidence, "request_id": request_id},
            "signals": HUMAN["signals"]}


def test_a_verified_fingerprint_earns_the_full_layer(fingerprint_api):
    shop = fingerprint_api
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), **fp("vid-real", "req-good"))
    assert status == 201, body
    [entry] = shop.participants()
    assert entry.trust["verified"] is True and entry.trust["fingerprint"] == 40 and entry.device == "vid-real"
    assert FakeFingerprint.seen == [("/v4/events/req-good", "Bearer fp-secret")]


@pytest.mark.parametrize("visitor, request_id", [
    ("vid-someone-else", "req-good"),  # a real event, but not this browser's
    ("vid-bot", "req-bot"),  # Fingerprint's bot detection says bad
    ("vid-old", "req-old"),  # a stale event replayed
    ("vid-real", "req-unknown"),  # 404 from the API
    ("vid-real", None),  # nothing to verify
])
def test_an_unverifiable_fingerprint_earns_nothing(fingerprint_api, visitor, request_id):
    shop = fingerprint_api
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), **fp(visitor, request_id, confidence=1.0))
    assert (status, body["error"]) == (403, "bot_suspected")  # 30 PoW + 30 timing < 70 with no fingerprint points
    assert shop.participants() == []


def test_an_unreachable_fingerprint_api_costs_only_that_layer(make_shop):
    shop = make_shop(FINGERPRINT_API_KEY="fp-secret", FINGERPRINT_API_URL="http://127.0.0.1:9/v4")
    token = shop.session()
    status, body, _ = shop.register(token, shop.challenge(token), **fp("vid-real", "req-good"))
    assert status == 201, body  # 60 >= the default 50: an outage does not lock humans out
    [entry] = shop.participants()
    assert entry.trust["fingerprint"] == 0 and "fingerprint api unreachable" in entry.trust["reasons"]
