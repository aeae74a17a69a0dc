"""Purchase storm: 2,000 registered shoppers, 100 units, everyone clicks buy at once; count what was sold.

app.py runs in-process behind chalice.local.LocalGateway (thread-local current_request, as chalice's
local server does), at most --executors requests at a time (like a Lambda concurrency cap; a click
waiting for an executor is latency the shopper sees). The store talks HTTP to a moto server with
DynamoDB's isolation (bench/_lib/isolated_moto.py). The drop is created and the lottery closed through
the API; the 2,000 entries are written with DropService.register directly (not timed: the storm is
what is measured), then run_lottery runs as its Lambda would.

Scenarios:
  lottery  the real flow: the lottery draws 100 winners of 2,000; every shopper, winner or not,
           fires purchase/start + purchase at once; winners double-click (the same token twice at
           once), then reload and buy again (a new token): every extra click must give the same order
  wide     every shopper holds a right to buy (round 1 widened to all ranks, as tests/reliability
           does): 2,000 buyers for 100 units, the stock condition is the only guard
Prints sold, oversold (must be 0), doubles (must be 0), outcomes and p50/p95 latency; exits 1 if
oversold or doubles > 0.

    .venv/bin/python bench/storm.py [--shoppers 2000] [--inventory 100] [--executors 64] [--scenarios lottery,wide]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench._lib import FAKE_AWS, Child, free_port, machine, pct, table  # noqa: E402

TABLE = "drops-storm"


class Api:
    """app.py through LocalGateway, at most `executors` requests at once; records latency per request kind."""

    def __init__(self, executors: int) -> None:
        from chalice.config import Config
        from chalice.local import CustomLocalChalice, LocalChalice, LocalGateway

        import app as app_module

        chalice_app = app_module.app
        if not isinstance(chalice_app, LocalChalice):
            CustomLocalChalice.__bases__ = (LocalChalice, type(chalice_app))
            chalice_app.__class__ = CustomLocalChalice
        self.gateway = LocalGateway(chalice_app, Config.create(chalice_stage="dev", lambda_timeout=60,
                                                               lambda_memory_size=512, function_name="api_handler"))
        self.slots = threading.BoundedSemaphore(executors)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    def call(self, kind: str, method: str, path: str, token: str = "", body: object = None,
             operator: str = "") -> tuple[int, dict]:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if operator:
            headers["x-operator-key"] = operator
        raw = json.dumps(body).encode() if body is not None else None
        t = time.perf_counter()
        with self.slots:
            res = self.gateway.handle_request(method=method, path=path, headers=headers, body=raw)
        elapsed = time.perf_counter() - t
        with self.lock:
            self.latency[kind].append(elapsed)
        return res["statusCode"], json.loads(res["body"] or b"{}")


def setup_drop(api: Api, drop_id: str, shoppers: int, inventory: int, wide: bool) -> list[str]:
    """Create the drop, register every shopper through the API, run the lottery; returns shopper tokens."""
    from chalicelib import bootstrap
    from chalicelib.domain.drop import Phase, Round

    key = os.environ["OPERATOR_KEY"]
    now = int(time.time() * 1000)
    status, body = api.call("setup", "POST", "/api/drops", body={
        "drop_id": drop_id, "name": "Storm", "product": {"title": "Jacket", "price": 800}, "inventory": inventory,
        "registration_start": now - 1000, "registration_end": now + 3_600_000, "purchase_window": 600,
        "max_rounds": 1}, operator=key)
    assert status == 201, body

    svc = bootstrap.service()

    def register(i: int) -> str:  # the use case directly: the storm, not registration, is measured here
        session = svc.new_session()
        svc.register(drop_id, session["shopper_id"], tickets=1 + i % 5, rollover=0)
        return session["token"]

    with ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(register, range(shoppers)))
    status, body = api.call("setup", "POST", f"/api/drop/{drop_id}/lottery", operator=key)
    assert status == 200, body
    result = svc.run_lottery(drop_id)  # what the drop_run_lottery Lambda does
    assert result["ran"], result
    if wide:  # every rank may buy: the stock check is the only guard left
        store = svc.store
        drop = svc.drop(drop_id, fresh=True)
        assert store.set_phase(drop_id, (Phase.PURCHASE,), Phase.LOTTERY)
        assert store.begin_purchase(drop_id, Round(1, 0, shoppers, int(time.time() * 1000) + 600_000),
                                    drop.ranked, drop.registered)
    svc._cache.clear()
    return tokens


def storm(api: Api, drop_id: str, tokens: list[str]) -> dict:
    """Every shopper at once: start + buy; winners double-click, then reload and buy again."""
    go = threading.Event()
    orders: dict[int, set[str]] = defaultdict(set)
    outcomes: Counter = Counter()
    journeys: list[float] = []
    lock = threading.Lock()

    def note(i: int, what: str, body: dict) -> None:
        with lock:
            outcomes[what] += 1
            order = (body.get("order") or {}).get("order_id")
            if order:
                orders[i].add(order)

    def buy(i: int, token: str, first: bool) -> None:
        status, start = api.call("purchase/start", "POST", f"/api/drop/{drop_id}/purchase/start", token)
        if status != 200:
            note(i, f"start {status} {start.get('error')}", start)
            return
        if "order" in start:  # already bought: the start answers with the order
            note(i, "start: already bought", start)
            return
        note(i, "start: token", start)
        body = {"purchase_token": start["purchase_token"]}
        results: list[tuple[int, dict]] = []
        if first:  # a double click: the same token twice at once
            twin = threading.Thread(target=lambda: results.append(
                api.call("purchase", "POST", f"/api/drop/{drop_id}/purchase", token, body)))
            twin.start()
        results.append(api.call("purchase", "POST", f"/api/drop/{drop_id}/purchase", token, body))
        if first:
            twin.join()
        for status, res in results:
            note(i, f"purchase {status} {res.get('error', 'ok')}", res)

    def shopper(i: int, token: str) -> None:
        go.wait()
        t = time.perf_counter()
        buy(i, token, first=True)
        with lock:
            journeys.append(time.perf_counter() - t)
        if orders.get(i):
            buy(i, token, first=False)  # reload the page and buy again: must show the same order

    threading.stack_size(512 * 1024)
    threads = [threading.Thread(target=shopper, args=(i, tok)) for i, tok in enumerate(tokens)]
    for th in threads:
        th.start()
    started = time.perf_counter()
    go.set()
    for th in threads:
        th.join()
    return {"orders": orders, "outcomes": outcomes, "journeys": journeys, "seconds": time.perf_counter() - started}


def verify(drop_id: str, inventory: int, result: dict) -> dict:
    from chalicelib import bootstrap

    store = bootstrap.service().store
    drop = store.get_drop(drop_id, consistent=True)
    people = list(store.participants(drop_id))
    stored = {p.shopper_id: p.order_id for p in people if p.order_id}
    answered = result["orders"]
    distinct_answered = set().union(*answered.values()) if answered else set()
    doubles = sum(1 for o in answered.values() if len(o) > 1) + len(distinct_answered - set(stored.values()))
    sold = drop.inventory - drop.remaining
    oversold = max(0, sold - inventory) + max(0, len(stored) - inventory) + (1 if drop.remaining < 0 else 0)
    return {"sold": sold, "remaining": drop.remaining, "orders stored": len(stored),
            "buyers answered": len(answered), "oversold": oversold, "doubles": doubles}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument("--inventory", type=int, default=100)
    parser.add_argument("--executors", type=int, default=64, help="API requests served at once")
    parser.add_argument("--scenarios", default="lottery,wide")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    logs = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **FAKE_AWS}
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "STATE_MACHINE_ARN", "AUDIT_BUCKET", "FINGERPRINT_API_KEY"):
        env.pop(var, None)
    moto = Child([sys.executable, "-m", "bench._lib.isolated_moto", "--port", str(port)], env, logs / "moto.log")
    rows, ok = [], True
    try:
        moto.wait_for("ready", 30)
        os.environ.update({**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint, "DROPS_TABLE": TABLE,
                           "SIGNING_KEY": secrets.token_hex(32), "OPERATOR_KEY": secrets.token_hex(16),
                           "POW_DIFFICULTY": "8", "TRUST_THRESHOLD": "0", "REGISTRATION_GRACE_MS": "0",
                           "RATE_LIMIT_SESSION_IP": "0", "RATE_LIMIT_CHALLENGE_IP": "0", "RATE_LIMIT_REGISTER_IP": "0",
                           "RATE_LIMIT_CHALLENGE_SHOPPER": "0", "RATE_LIMIT_REGISTER_SHOPPER": "0"})
        for var in ("STATE_MACHINE_ARN", "AUDIT_BUCKET", "FINGERPRINT_API_KEY"):
            os.environ.pop(var, None)
        logging.disable(logging.WARNING)  # refusals are the point here; the app logs each
        import boto3
        from botocore.config import Config

        from chalicelib import bootstrap
        from chalicelib.tables import create_tables

        bootstrap.BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5},
                                       max_pool_connections=args.executors + 16)  # one connection per executor
        bootstrap.reset()
        create_tables(boto3.client("dynamodb", endpoint_url=endpoint), {"DropsTable": TABLE})
        api = Api(args.executors)
        for scenario in args.scenarios.split(","):
            drop_id = f"storm-{scenario}-{secrets.token_hex(3)}"
            t = time.monotonic()
            tokens = setup_drop(api, drop_id, args.shoppers, args.inventory, wide=scenario == "wide")
            setup_s = time.monotonic() - t
            api.latency.clear()
            result = storm(api, drop_id, tokens)
            checked = verify(drop_id, args.inventory, result)
            ok = ok and checked["oversold"] == 0 and checked["doubles"] == 0 and checked["sold"] == args.inventory
            lat = {k: v for k, v in api.latency.items() if k != "setup"}
            rows.append({"scenario": scenario, **checked, "storm s": result["seconds"], "setup s": setup_s,
                         "click->answer p50 ms": pct(result["journeys"], 0.5) * 1000,
                         "p95 ms": pct(result["journeys"], 0.95) * 1000,
                         "start p50/p95 ms": f"{pct(lat['purchase/start'], 0.5) * 1000:.0f}/"
                                             f"{pct(lat['purchase/start'], 0.95) * 1000:.0f}",
                         "purchase p50/p95 ms": f"{pct(lat.get('purchase', []), 0.5) * 1000:.0f}/"
                                                f"{pct(lat.get('purchase', []), 0.95) * 1000:.0f}",
                         "requests": sum(len(v) for v in lat.values()), "outcomes": result["outcomes"]})
    finally:
        moto.stop(timeout=15)
    print(f"\n{args.shoppers:,} shoppers, {args.inventory} units, {args.executors} API executors, "
          f"store over HTTP to an isolated moto server:")
    print(table(rows, ["scenario", "sold", "remaining", "orders stored", "oversold", "doubles", "requests", "storm s",
                       "click->answer p50 ms", "p95 ms", "start p50/p95 ms", "purchase p50/p95 ms"]))
    for r in rows:
        print(f"\n[{r['scenario']}] outcomes:")
        for what, n in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:6d}  {what}")
    print("\n(click->answer: from the storm's start to the answer of the shopper's first purchase attempt, "
          "queueing for an executor included)")
    print("PASS: nothing oversold, no shopper with two orders" if ok else "FAIL: oversold, doubles or unsold stock")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
