"""Locust load tests, mirroring the seed's k6 suite: registration spike, breakpoint, SSE, purchase rush, soak.

Pick one with LOAD_SCENARIO (default: spike); it runs headless, bounded by -t (the spike and breakpoint
shapes take their length from -t too, else LOAD_DURATION_S) and LOAD_USERS (the shapes' peak; pass the
same number as -u):

  spike       baseline users, then a jump to LOAD_USERS (spawned in ~2 s), hold, back down. Each user:
              session -> PoW challenge -> solve -> register (a new shopper per iteration)
  breakpoint  step load: +LOAD_STEP_USERS registering users every LOAD_STEP_S until LOAD_USERS, stopping
              early once failures pass LOAD_MAX_FAIL (5 %) or p95 passes LOAD_MAX_P95_MS (2000 ms)
  sse         LOAD_USERS viewers, each holding GET /events/{drop}?token=... for SSE_HOLD_S and reconnecting;
              "SSE first event" is the time to the first drop event, "SSE stream" one per stream
  purchase    LOAD_SHOPPERS shoppers are registered, the lottery is closed and awaited (the drop's
              workflow draws it), then LOAD_USERS buyers at once: purchase/start + purchase (a double
              click), over and over; not_a_winner / sold_out / already bought count as answers, not failures
  soak        LOAD_USERS users for the whole -t: status polls, their own standing, now and then a registration

    LOAD_SCENARIO=spike locust -f bench/locust/locustfile.py --headless -u 200 -r 50 -t 60s \\
        --host ${DROPS_ENDPOINT:-http://127.0.0.1:8000}

Environment: DROPS_ENDPOINT (when --host is not given), OPERATOR_KEY (else .dev/secrets.env, or
$DEVSTACK_DIR/secrets.env) to create the drop and close its lottery; LOAD_DROP to use an existing drop
instead (needed for distributed runs: every worker would create its own); LOAD_INVENTORY (20);
LOAD_FINGERPRINT=1 to send a fingerprint like the storefront (on the embedded stack that makes each
registration a moto transaction, which copies the whole table: keep it 0 there); LOAD_DURATION_S
(shape length, 60); LOAD_KEEP_DROP=1 to keep the drop the run created (it is deleted at the end,
which also ends its workflow; registration stays open for the run plus 5 min); LOAD_SOLVE_S (1.0): each registration waits this long after its challenge, as
a browser solving it would (faster looks like a bot to the trust score and is refused). The proof of work is solved here in Python (about 1 M hashes/s per locust
process, and it blocks that process meanwhile): against the embedded stack start it with
POW_DIFFICULTY=8 and per-IP limits off (every local client is 127.0.0.1), for example
  POW_DIFFICULTY=8 RATE_LIMIT_SESSION_IP=0 RATE_LIMIT_CHALLENGE_IP=0 RATE_LIMIT_REGISTER_IP=0 make dev
and against a deployment with a real difficulty run many locust workers (--processes).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import secrets
import threading
import time
from pathlib import Path

import gevent
import gevent.pool
from locust import HttpUser, LoadTestShape, between, constant, events, task
from locust.exception import StopUser

SCENARIO = os.environ.get("LOAD_SCENARIO", "spike").strip().lower()
SCENARIOS = ("spike", "breakpoint", "sse", "purchase", "soak")
if SCENARIO not in SCENARIOS:
    raise SystemExit(f"LOAD_SCENARIO must be one of {', '.join(SCENARIOS)}, not {SCENARIO!r}")
ROOT = Path(__file__).resolve().parents[2]
USERS = int(os.environ.get("LOAD_USERS", 200))
DURATION_S = float(os.environ.get("LOAD_DURATION_S", 60))
INVENTORY = int(os.environ.get("LOAD_INVENTORY", 20))
SHOPPERS = int(os.environ.get("LOAD_SHOPPERS", 200))
FINGERPRINT = os.environ.get("LOAD_FINGERPRINT", "0") not in ("0", "", "false", "off")
SSE_HOLD_S = float(os.environ.get("SSE_HOLD_S", 20))
SOLVE_S = float(os.environ.get("LOAD_SOLVE_S", 1.0))  # a browser's solve time: the trust score wants >= ~1 s
JSON = {"content-type": "application/json"}


def operator_key() -> str:
    if os.environ.get("OPERATOR_KEY"):
        return os.environ["OPERATOR_KEY"]
    path = Path(os.environ.get("DEVSTACK_DIR", ROOT / ".dev")) / "secrets.env"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("OPERATOR_KEY="):
                return line.split("=", 1)[1].strip()
    return ""


def solve(challenge: dict) -> int:
    """The storefront's puzzle: smallest nonce with SHA-256(salt + nonce) having `difficulty` leading zero bits."""
    salt, bits = challenge["salt"], int(challenge["difficulty"])
    limit = 1 << (256 - bits)
    sha = hashlib.sha256
    for nonce in itertools.count():
        if int.from_bytes(sha(f"{salt}{nonce}".encode()).digest(), "big") < limit:
            return nonce
    raise AssertionError("unreachable")


# -- the drop under test ----------------------------------------------------------------
class Drop:
    """Created once per run (or LOAD_DROP); the purchase rush also gets its registered shoppers here."""

    id = os.environ.get("LOAD_DROP", "")
    created = False
    open_s = DURATION_S  # how long registration stays open: the run, plus a margin
    buyers: list[str] = []
    ready = threading.Event()
    failed = ""


def _http(base: str, method: str, path: str, token: str = "", body: object = None, key: str = "") -> tuple[int, dict]:
    import requests

    headers = dict(JSON)
    if token:
        headers["authorization"] = f"Bearer {token}"
    if key:
        headers["x-operator-key"] = key
    res = requests.request(method, base + path, headers=headers, data=json.dumps(body) if body is not None else None,
                           timeout=60)
    try:
        return res.status_code, res.json()
    except ValueError:
        return res.status_code, {"error": res.text[:200]}


def register_shopper(base: str, drop_id: str) -> str:
    status, session = _http(base, "POST", "/api/session")
    assert status == 201, f"session: {status} {session}"
    token = session["token"]
    status, challenge = _http(base, "GET", f"/api/pow/challenge?drop_id={drop_id}", token)
    assert status == 200, f"challenge: {status} {challenge}"
    body = paced_entry(challenge)
    status, entry = _http(base, "POST", f"/api/drop/{drop_id}/register", token, body)
    assert status == 201, f"register: {status} {entry}"
    return token


def paced_entry(challenge: dict) -> dict:
    """Solve, then wait like a browser would have (LOAD_SOLVE_S) so the timing layer sees a human pace."""
    started = time.monotonic()
    body = entry_body(challenge)
    gevent.sleep(max(0.0, SOLVE_S - (time.monotonic() - started)))
    return body


def entry_body(challenge: dict) -> dict:
    body = {"tickets": random.randint(1, 3), "rollover": 0, "pow": {"challenge": challenge, "nonce": solve(challenge)},
            "signals": {"interactions": random.randint(5, 40), "elapsed_ms": random.randint(5_000, 60_000)}}
    if FINGERPRINT:
        body["fingerprint"] = {"visitor_id": secrets.token_hex(10), "confidence": 0.9}
    return body


def prepare(base: str) -> None:
    """Create the drop; for the purchase rush register the shoppers, close the lottery, wait for PURCHASE."""
    try:
        if not Drop.id:
            key = operator_key()
            assert key, "set OPERATOR_KEY (or run against make dev, whose .dev/secrets.env holds it), or LOAD_DROP"
            now = int(time.time() * 1000)
            drop_id = f"load-{SCENARIO}-{secrets.token_hex(3)}"
            status, body = _http(base, "POST", "/api/drops", body={
                "drop_id": drop_id, "name": f"Load test ({SCENARIO})", "inventory": INVENTORY, "purchase_window": 600,
                "product": {"title": "Load test jacket", "image_url": "", "price": 100},
                "registration_start": now - 1000, "registration_end": now + int((Drop.open_s + 300) * 1000)}, key=key)
            assert status == 201, f"create drop: {status} {body}"
            Drop.id, Drop.created = drop_id, True
            if SCENARIO == "purchase":
                pool = gevent.pool.Pool(50)
                Drop.buyers = list(pool.imap_unordered(lambda _: register_shopper(base, drop_id), range(SHOPPERS)))
                status, body = _http(base, "POST", f"/api/drop/{drop_id}/lottery", key=key)
                assert status == 200, f"lottery: {status} {body}"
                deadline = time.monotonic() + 120
                while _http(base, "GET", f"/api/drop/{drop_id}/status")[1].get("phase") != "PURCHASE":
                    assert time.monotonic() < deadline, "the drop did not reach PURCHASE (is its workflow running?)"
                    gevent.sleep(1)
        elif SCENARIO == "purchase" and not Drop.buyers:
            raise AssertionError("the purchase rush needs its own registered shoppers: leave LOAD_DROP unset")
        print(f"load test {SCENARIO!r} against {base}, drop {Drop.id}"
              + (f", {len(Drop.buyers)} registered shoppers" if Drop.buyers else ""), flush=True)
    except Exception as exc:  # reported by every user, and the run stops
        Drop.failed = f"{type(exc).__name__}: {exc}"
        print(f"load test setup failed: {Drop.failed}", flush=True)
    finally:
        Drop.ready.set()


@events.init.add_listener
def _init(environment, **_) -> None:
    """Set up before the run (and its -t clock) starts; a distributed worker uses LOAD_DROP instead."""
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner) and not Drop.id:
        Drop.failed = "distributed runs need LOAD_DROP (each worker would create its own drop)"
        Drop.ready.set()
        return
    base = (environment.host or os.environ.get("DROPS_ENDPOINT", "http://127.0.0.1:8000")).rstrip("/")
    run_time = getattr(environment.parsed_options, "run_time", None)
    Drop.open_s = max(DURATION_S, float(run_time or 0))
    started = time.monotonic()
    prepare(base)
    print(f"set up in {time.monotonic() - started:.1f} s", flush=True)

    @events.quitting.add_listener
    def _cleanup(environment, **_) -> None:
        """Delete the drop this run created (its workflow then ends); LOAD_KEEP_DROP=1 keeps it."""
        if Drop.created and os.environ.get("LOAD_KEEP_DROP", "0") in ("0", ""):
            try:
                status, _ = _http(base, "DELETE", f"/api/drop/{Drop.id}", key=operator_key())
                print(f"deleted drop {Drop.id}: {status}", flush=True)
            except Exception as exc:  # the run is over either way
                print(f"could not delete drop {Drop.id}: {exc}", flush=True)


class DropUser(HttpUser):
    abstract = True
    host = os.environ.get("DROPS_ENDPOINT", "http://127.0.0.1:8000")

    def on_start(self) -> None:
        while not Drop.ready.is_set():
            gevent.sleep(0.2)
        if Drop.failed:
            gevent.spawn(self.environment.runner.quit)
            raise StopUser()

    def auth(self, token: str) -> dict:
        return {**JSON, "authorization": f"Bearer {token}"}

    def session(self) -> str | None:
        with self.client.post("/api/session", name="/api/session", catch_response=True) as res:
            if res.status_code != 201:
                res.failure(f"{res.status_code} {res.text[:120]}")
                return None
            return res.json()["token"]

    def register(self) -> str | None:
        token = self.session()
        if not token:
            return None
        with self.client.get(f"/api/pow/challenge?drop_id={Drop.id}", headers=self.auth(token),
                             name="/api/pow/challenge", catch_response=True) as res:
            if res.status_code != 200:
                res.failure(f"{res.status_code} {res.text[:120]}")
                return None
            challenge = res.json()
        body = paced_entry(challenge)  # solving (and a browser's pace) between the requests
        with self.client.post(f"/api/drop/{Drop.id}/register", data=json.dumps(body), headers=self.auth(token),
                              name="/api/drop/[id]/register", catch_response=True) as res:
            if res.status_code != 201:
                res.failure(f"{res.status_code} {res.text[:120]}")
                return None
        return token


class Registrant(DropUser):
    """spike / breakpoint: a new shopper registers, again and again."""

    wait_time = constant(0)

    @task
    def register_once(self) -> None:
        self.register()


class Viewer(DropUser):
    """sse: holds a live stream like an open storefront tab; reconnects when it ends."""

    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.token = self.session()
        self.stream_token, self.stream_expires = "", 0.0

    def fresh_stream_token(self) -> str:
        if time.time() * 1000 > self.stream_expires - 30_000:
            with self.client.post(f"/api/drop/{Drop.id}/stream-token", headers=self.auth(self.token),
                                  name="/api/drop/[id]/stream-token", catch_response=True) as res:
                if res.status_code != 201:
                    res.failure(f"{res.status_code} {res.text[:120]}")
                    return ""
                self.stream_token, self.stream_expires = res.json()["token"], res.json()["expires_at"]
        return self.stream_token

    @task
    def watch(self) -> None:
        token = self.token and self.fresh_stream_token()
        if not token:
            gevent.sleep(1)
            return
        started = time.perf_counter()
        first, count = None, 0
        res = self.client.get(f"/events/{Drop.id}?token={token}", stream=True, name="/events/[id] (headers)",
                              headers={"accept": "text/event-stream"}, timeout=SSE_HOLD_S + 30)
        try:
            if res.status_code != 200:
                return
            with gevent.Timeout(SSE_HOLD_S, False):
                for line in res.iter_lines(decode_unicode=True):
                    if line.startswith("event:"):
                        count += 1
                        if first is None and line.split(":", 1)[1].strip() == "drop":
                            first = time.perf_counter()
                            self.fire("SSE first event", (first - started) * 1000, 0)
        except Exception as exc:  # a broken stream is a failure of the stream, not of the test
            self.fire("SSE stream", (time.perf_counter() - started) * 1000, count, exc)
            return
        finally:
            res.close()
        self.fire("SSE stream", (time.perf_counter() - started) * 1000, count,
                  None if first is not None else AssertionError("no drop event"))

    def fire(self, name: str, ms: float, length: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type="SSE", name=name, response_time=ms, response_length=length,
                                             exception=exc, context={})


class Buyer(DropUser):
    """purchase: every buyer clicks buy at once (and double-clicks); the same shoppers keep trying."""

    wait_time = between(0.5, 1.5)
    ANSWERS = {403: "not_a_winner", 409: "sold_out / already"}
    _next = itertools.count()

    @task
    def buy(self) -> None:
        token = Drop.buyers[next(self._next) % len(Drop.buyers)]
        with self.client.post(f"/api/drop/{Drop.id}/purchase/start", headers=self.auth(token),
                              name="/api/drop/[id]/purchase/start", catch_response=True) as res:
            if res.status_code in self.ANSWERS:
                res.success()
                return
            if res.status_code != 200:
                res.failure(f"{res.status_code} {res.text[:120]}")
                return
            start = res.json()
        if "order" in start:
            return
        body = json.dumps({"purchase_token": start["purchase_token"]})
        clicks = [gevent.spawn(self.purchase, token, body) for _ in range(2)]  # a double click
        gevent.joinall(clicks)

    def purchase(self, token: str, body: str) -> None:
        with self.client.post(f"/api/drop/{Drop.id}/purchase", data=body, headers=self.auth(token),
                              name="/api/drop/[id]/purchase", catch_response=True) as res:
            if res.status_code in (200, *self.ANSWERS):
                res.success()
            else:
                res.failure(f"{res.status_code} {res.text[:120]}")


class Soaker(DropUser):
    """soak: what an open storefront does over a long time, plus a trickle of registrations."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        super().on_start()
        self.token = None

    @task(10)
    def status(self) -> None:
        self.client.get(f"/api/drop/{Drop.id}/status", name="/api/drop/[id]/status")

    @task(3)
    def me(self) -> None:
        if self.token:
            self.client.get(f"/api/drop/{Drop.id}/me", headers=self.auth(self.token), name="/api/drop/[id]/me")

    @task(1)
    def register_once(self) -> None:
        if self.token is None:
            self.token = self.register()


def _duration(shape: LoadTestShape) -> float:
    """A shape's length: -t/--run-time when given, else LOAD_DURATION_S."""
    run_time = getattr(shape.runner.environment.parsed_options, "run_time", None) if shape.runner else None
    return float(run_time or DURATION_S)


def _select() -> None:
    """Only the scenario's user class is concrete (locust runs every concrete User in the file)."""
    chosen = {"spike": Registrant, "breakpoint": Registrant, "sse": Viewer, "purchase": Buyer, "soak": Soaker}[SCENARIO]
    for cls in (Registrant, Viewer, Buyer, Soaker):
        cls.abstract = cls is not chosen


_select()


if SCENARIO == "spike":
    class SpikeShape(LoadTestShape):
        """10 % of the run at a baseline, a jump to LOAD_USERS in ~2 s, hold, the last 20 % back at the baseline."""

        def tick(self):
            t, length = self.get_run_time(), _duration(self)
            if t >= length:
                return None
            base = max(1, USERS // 20)
            if t < 0.1 * length or t >= 0.8 * length:
                return base, max(1, USERS)
            return USERS, max(1, USERS // 2)

elif SCENARIO == "breakpoint":
    class BreakpointShape(LoadTestShape):
        """Step load until something breaks (failure ratio or p95), or LOAD_USERS, or the duration."""

        step_s = float(os.environ.get("LOAD_STEP_S", 10))
        step_users = int(os.environ.get("LOAD_STEP_USERS", 10))
        max_fail = float(os.environ.get("LOAD_MAX_FAIL", 0.05))
        max_p95 = float(os.environ.get("LOAD_MAX_P95_MS", 2000))

        def tick(self):
            t = self.get_run_time()
            stats = self.runner.stats.total
            if t >= _duration(self):
                return None
            if t > self.step_s and stats.num_requests > 50:
                p95 = stats.get_current_response_time_percentile(0.95) or 0
                if stats.fail_ratio > self.max_fail or p95 > self.max_p95:
                    print(f"breakpoint at {self.runner.user_count} users: fail {stats.fail_ratio:.1%}, "
                          f"p95 {p95:.0f} ms (after {t:.0f} s)", flush=True)
                    return None
            users = min(USERS, self.step_users * (int(t // self.step_s) + 1))
            return users, self.step_users
