"""Kill the API process at random moments while registrations and purchases are in flight.

1,000 shoppers register (session, challenge, register) and the 100 winners buy, 24 at a time,
while a killer thread SIGKILLs the serving API process every 0.6-2.4 s (a new one takes over).
Every client retries each request unchanged until it gets an answer: a registration with the
same Idempotency-Key (a retry whose first attempt landed gets the same 201 entry), a purchase
with the same purchase token (the same order). Afterwards nothing is lost, nothing is duplicated
and the stock arithmetic is exact. KILL_TEST_SHOPPERS (1000), KILL_TEST_INVENTORY (100),
KILL_TEST_KILL_EVERY_S (mean time between kills, 1.5) and KILL_TEST_RETRY_FOR_S (how long one
request is retried, 60) scale it. docs/RELIABILITY.md describes the harness.
"""
from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
import pytest
from botocore.config import Config

from chalicelib.config import Settings
from chalicelib.pow import solve
from chalicelib.service import DropService
from chalicelib.store import DropStore
from chalicelib.tables import create_tables
from chalicelib.tokens import Signer
from tests.reliability import servers

SHOPPERS = int(os.environ.get("KILL_TEST_SHOPPERS", "1000"))
INVENTORY = int(os.environ.get("KILL_TEST_INVENTORY", "100"))
WORKERS = 24
KILL_EVERY_S = float(os.environ.get("KILL_TEST_KILL_EVERY_S", "1.5"))  # mean time between kills
TABLE = "drops-kill"
DROP = "kill-drop"
RETRY_FOR_S = float(os.environ.get("KILL_TEST_RETRY_FOR_S", "60"))

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """moto server (serialised DynamoDB) + tables + the env the API process needs."""
    logs = tmp_path_factory.mktemp("kill")
    moto_port = servers.free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    base_env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    moto = servers.start("devstack.moto_server", moto_port, base_env, logs / "moto.log")
    endpoint = f"http://127.0.0.1:{moto_port}"
    try:
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32))
        create_tables(ddb, {"DropsTable": TABLE})
        env = {**base_env, "AWS_ENDPOINT_URL": endpoint, "DROPS_TABLE": TABLE, "SIGNING_KEY": secrets.token_hex(32),
               "OPERATOR_KEY": secrets.token_hex(16), "POW_DIFFICULTY": "4", "REGISTRATION_GRACE_MS": "0",
               "TRUST_THRESHOLD": "0", "POWERTOOLS_LOG_LEVEL": "WARNING"}
        for limit in ("SESSION_IP", "CHALLENGE_SHOPPER", "CHALLENGE_IP", "REGISTER_SHOPPER", "REGISTER_IP"):
            env[f"RATE_LIMIT_{limit}"] = "0"
        cfg = Settings(table_name=TABLE, signing_key=env["SIGNING_KEY"], operator_key=env["OPERATOR_KEY"],
                       registration_grace_ms=0)
        service = DropService(store=DropStore(ddb, TABLE), signer=Signer(cfg.signing_key), settings=cfg)
        yield {"env": env, "logs": logs, "service": service}
    finally:
        servers.stop(moto)


class Api:
    """The API (tests.reliability.api_server) and a killer thread that SIGKILLs its serving process."""

    def __init__(self, env: dict, logs, in_flight) -> None:
        self.log, self.port, self.pid_file = logs / "api.log", servers.free_port(), logs / "api.pid"
        self.supervisor = servers.start("tests.reliability.api_server", self.port, env, self.log,
                                        "--pid-file", str(self.pid_file))
        self.in_flight = in_flight  # () -> requests sent and not yet answered
        self.kills: list[int] = []  # requests in flight at each kill
        self._stop = threading.Event()
        self._killer = threading.Thread(target=self._kill_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serving_pid(self, not_pid: int = 0, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                pid = int(self.pid_file.read_text())
                if pid != not_pid:
                    return pid
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"no new API process after {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def _kill_loop(self) -> None:
        rng = random.Random(7)
        pid = self._serving_pid()
        while not self._stop.wait(rng.uniform(0.4, 1.6) * KILL_EVERY_S):
            in_flight = self.in_flight()
            os.kill(pid, signal.SIGKILL)  # no cleanup, no graceful shutdown: its requests die with it
            self.kills.append(in_flight)
            pid = self._serving_pid(not_pid=pid)

    def start_killing(self) -> None:
        self._killer.start()

    def stop_killing(self) -> None:
        self._stop.set()
        self._killer.join(timeout=60)

    def close(self) -> None:
        self.stop_killing()
        servers.stop(self.supervisor)


class Traffic:
    """What every shopper's client saw, and how many requests are in flight right now."""

    def __init__(self) -> None:
        self.stats: Counter = Counter()
        self.in_flight = 0
        self._lock = threading.Lock()

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.stats[what] += n

    def flying(self, n: int) -> None:
        with self._lock:
            self.in_flight += n


class Shopper:
    """One shopper's HTTP client: every request is retried unchanged until it gets an answer."""

    def __init__(self, http: httpx.Client, traffic: Traffic, token: str = "") -> None:
        self.http, self.traffic, self.token = http, traffic, token

    def send(self, method: str, path: str, **kwargs) -> tuple[httpx.Response, bool]:
        """(response, retried): retried is True when an earlier attempt may have reached the server.

        Every attempt sends the same method, path, headers and body (so the same idempotency key)."""
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", {}))
        deadline, retried, pause = time.monotonic() + RETRY_FOR_S, False, 0.05
        while True:
            self.traffic.flying(+1)
            try:
                res = self.http.request(method, path, headers=headers, **kwargs)
                if res.status_code != 503:
                    return res, retried
                self.traffic.count("busy_503")
            except httpx.TransportError:
                self.traffic.count("connection_errors")
            finally:
                self.traffic.flying(-1)
            retried = True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {path} got no answer in {RETRY_FOR_S} s")
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.5)


def _register(http: httpx.Client, traffic: Traffic) -> tuple[str, str, int]:
    shopper = Shopper(http, traffic)
    res, _ = shopper.send("POST", "/api/session")
    assert res.status_code == 201, res.text
    shopper.token, shopper_id = res.json()["token"], res.json()["shopper_id"]
    res, _ = shopper.send("GET", "/api/pow/challenge", params={"drop_id": DROP})
    assert res.status_code == 200, res.text
    challenge = res.json()
    body = {"tickets": 1 + int(shopper_id[-1], 16) % 3, "rollover": 0,
            "pow": {"challenge": challenge, "nonce": solve(challenge)}}
    res, retried = shopper.send("POST", f"/api/drop/{DROP}/register", json=body,
                                headers={"idempotency-key": f"reg-{secrets.token_hex(8)}"})
    assert res.status_code == 201, res.text  # never 409: a retry of a landed registration is replayed
    entry = res.json()["entry"]
    assert (entry["shopper_id"], entry["tickets"], entry["status"]) == (shopper_id, body["tickets"], "REGISTERED")
    if res.headers.get("idempotent-replayed") == "true":
        assert retried
        traffic.count("register_replayed")  # the first attempt landed, its reply died with the API
    elif retried:
        traffic.count("register_retried_201")
    return shopper_id, shopper.token, body["tickets"]


def _buy(http: httpx.Client, traffic: Traffic, token: str) -> str:
    shopper = Shopper(http, traffic, token)
    res, _ = shopper.send("POST", f"/api/drop/{DROP}/purchase/start")
    assert res.status_code == 200 and "purchase_token" in res.json(), res.text
    body = {"purchase_token": res.json()["purchase_token"]}
    res, retried = shopper.send("POST", f"/api/drop/{DROP}/purchase", json=body)
    assert res.status_code == 200, res.text  # never 409 already_purchased: the same token, the same order
    if retried:
        traffic.count("purchase_retried_same_token")
    return res.json()["order"]["order_id"]


def _draw(service: DropService, http: httpx.Client, traffic: Traffic, operator_key: str) -> None:
    """Close registration through the (killable) API, then run the lottery task as Step Functions would."""
    res, _ = Shopper(http, traffic).send("POST", f"/api/drop/{DROP}/lottery", headers={"x-operator-key": operator_key})
    assert res.status_code == 200, res.text
    assert service.run_lottery(DROP)["ran"] is True  # registration ended at the API's "now": not after ours
    service._cache.clear()


def test_killing_the_api_loses_and_duplicates_nothing(stack):
    service, env = stack["service"], stack["env"]
    now = int(time.time() * 1000)
    service.create_drop({"drop_id": DROP, "name": "Kill test", "inventory": INVENTORY,
                         "product": {"title": "Crash Jacket", "image_url": "", "price": 100},
                         "registration_start": now - 1000, "registration_end": now + 3_600_000,
                         "purchase_window": 3600, "max_tickets": 10})
    traffic = Traffic()
    api = Api(env, stack["logs"], lambda: traffic.in_flight)
    started = time.monotonic()
    try:
        with httpx.Client(base_url=api.url, timeout=httpx.Timeout(15.0)) as http:
            api.start_killing()
            with ThreadPoolExecutor(WORKERS) as pool:
                registered = list(pool.map(lambda _: _register(http, traffic), range(SHOPPERS)))
            reg_done = time.monotonic()
            _draw(service, http, traffic, env["OPERATOR_KEY"])
            drawn = time.monotonic()
            ranks = {p.shopper_id: p.rank for p in service.store.participants(DROP)}
            winners = [(sid, tok) for sid, tok, _ in registered if ranks[sid] < INVENTORY]
            with ThreadPoolExecutor(WORKERS) as pool:
                orders = list(pool.map(lambda w: _buy(http, traffic, w[1]), winners))
            api.stop_killing()
    finally:
        api.close()
    elapsed = time.monotonic() - started
    drop = service.store.get_drop(DROP, consistent=True)
    people = list(service.store.participants(DROP))
    entries = Counter(p.shopper_id for p in people)
    asked = {sid: tickets for sid, _, tickets in registered}
    buyers = [p for p in people if p.order_id]
    print(f"\nkill test: {SHOPPERS} shoppers, {len(winners)} winners, {len(api.kills)} kills "
          f"({sum(api.kills)} requests in flight), registration {reg_done - started:.1f} s, "
          f"lottery {drawn - reg_done:.1f} s, purchases {elapsed - (drawn - started):.1f} s, "
          f"total {elapsed:.1f} s, {dict(traffic.stats)}")
    assert sum(1 for n in api.kills if n) >= 3, "the API was not killed while requests were in flight"
    assert traffic.stats["connection_errors"] > 0, "no request ever died with the API"
    assert len(asked) == SHOPPERS and set(entries) == set(asked), "lost or unexpected entries"
    assert max(entries.values()) == 1 and len(people) == SHOPPERS, "duplicated entries"
    assert {p.shopper_id: p.tickets for p in people} == asked, "an entry does not hold what its shopper asked for"
    assert drop.registered == SHOPPERS and drop.ranked == SHOPPERS
    assert sorted(ranks.values()) == list(range(SHOPPERS))
    assert len(winners) == min(INVENTORY, SHOPPERS)
    assert drop.sold == len(buyers) == len(winners) == INVENTORY - drop.remaining, "stock arithmetic"
    assert drop.remaining >= 0
    assert {p.order_id for p in buyers} == set(orders) and len(set(orders)) == len(orders), "an order was lost or doubled"
    assert {p.shopper_id for p in buyers} == {sid for sid, _ in winners}, "a non-winner bought"
