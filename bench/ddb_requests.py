"""DynamoDB requests and capacity units per use case, and handler CPU per API request (moto in-process).

Every DynamoDB call of the real DropService and of app.py (through chalice.test.Client) is counted
with botocore events on the default session. moto answers ReturnConsumedCapacity with a constant,
so capacity is computed here by DynamoDB's published rules from the real items (sizes read back
through a second, unmetered client): writes 1 unit per KB (x2 in a transaction, failed conditional
writes charged like successful ones), reads 1 unit per 4 KB strongly consistent, 0.5 eventually
consistent (x2 transactional), a query's units from the sum of the items it read.
Handler CPU is time.process_time() around client.http.request minus the CPU moto itself spent.

(Named ddb_requests.py, not requests.py: `python bench/requests.py` would shadow the requests
package that moto imports, for every script in bench/.)

    .venv/bin/python bench/ddb_requests.py [--repeat 100] [--participants 2000]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench._lib import fake_aws_env, isolated_moto, machine, table  # noqa: E402

fake_aws_env()
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "FINGERPRINT_API_KEY", "STATE_MACHINE_ARN", "AUDIT_BUCKET"):
    os.environ.pop(_var, None)
TABLE = "drops-bench"
os.environ.update(DROPS_TABLE=TABLE, SIGNING_KEY=secrets.token_hex(32), OPERATOR_KEY=secrets.token_hex(16),
                  POW_DIFFICULTY="8", TRUST_THRESHOLD="0", REGISTRATION_GRACE_MS="0",
                  # limits stay on (their counters are writes we count) but one local IP must not hit them
                  RATE_LIMIT_SESSION_IP="1000000", RATE_LIMIT_CHALLENGE_IP="1000000", RATE_LIMIT_REGISTER_IP="1000000")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import botocore_stubber  # noqa: E402

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


# -- capacity by DynamoDB's rules ---------------------------------------------------------
def value_size(v: dict) -> int:
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        digits = len(str(x).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(x)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: e}) for e in x)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    raise ValueError(kind)


def item_size(item: dict | None) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in (item or {}).items())


class Meter:
    """Counts DynamoDB calls and their capacity units on every client of the default boto3 session."""

    def __init__(self) -> None:
        self.probe = boto3.session.Session().client("dynamodb", region_name="us-east-1")  # unmetered
        self.calls: list[tuple[str, float, float]] = []  # (operation, read units, write units)
        self.moto_cpu = 0.0
        events = boto3.DEFAULT_SESSION.events
        events.register("provide-client-params.dynamodb", self._before)
        events.register("after-call.dynamodb", self._after)

    def reset(self) -> None:
        self.calls.clear()
        self.moto_cpu = 0.0

    def _size(self, key: dict) -> int:
        return item_size(self.probe.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item"))

    def _write_keys(self, op: str, params: dict) -> list[tuple[dict, dict | None, int]]:
        """(key, item being put, multiplier) for every item a write touches."""
        def key_of(item: dict) -> dict:
            return {"pk": item["pk"], "sk": item["sk"]}

        if op == "PutItem":
            return [(key_of(params["Item"]), params["Item"], 1)]
        if op in ("UpdateItem", "DeleteItem"):
            return [(params["Key"], None, 1)]
        if op == "BatchWriteItem":
            out = []
            for reqs in params["RequestItems"].values():
                for r in reqs:
                    if "PutRequest" in r:
                        out.append((key_of(r["PutRequest"]["Item"]), r["PutRequest"]["Item"], 1))
                    else:
                        out.append((r["DeleteRequest"]["Key"], None, 1))
            return out
        if op == "TransactWriteItems":
            out = []
            for t in params["TransactItems"]:
                (kind, spec), = t.items()
                out.append((key_of(spec["Item"]) if kind == "Put" else spec["Key"], spec.get("Item"), 2))
            return out
        return []

    def _before(self, params: dict, model, context: dict, **_) -> None:
        op = model.name
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        before = [(k, self._size(k), item, m) for k, item, m in self._write_keys(op, params)] if op in WRITES else []
        context["bench_meter"] = (op, params, before)

    def _after(self, parsed: dict, model, context: dict, **_) -> None:
        op, params, before = context.pop("bench_meter", (model.name, {}, []))
        rcu = wcu = 0.0
        if op == "GetItem":
            rcu = math.ceil(max(1, item_size(parsed.get("Item"))) / 4096) * (1 if params.get("ConsistentRead") else 0.5)
        elif op == "Query":
            size = sum(item_size(i) for i in parsed.get("Items", []))
            if params.get("Select") == "COUNT":  # COUNT reads the items all the same; size them through the probe
                probe = dict(params)
                probe.pop("Select", None)
                probe.pop("ReturnConsumedCapacity", None)
                size = sum(item_size(i) for i in self.probe.query(**probe).get("Items", []))
            rcu = math.ceil(max(1, size) / 4096) * (1 if params.get("ConsistentRead") else 0.5)
        elif op in WRITES:
            for key, old, item, mult in before:
                new = item_size(item) if item is not None else self._size(key)
                wcu += math.ceil(max(1, old, new) / 1024) * mult
        self.calls.append((op, rcu, wcu))

    def summary(self) -> dict:
        ops = Counter(op for op, _, _ in self.calls)
        return {"requests": len(self.calls), "reads": sum(n for op, n in ops.items() if op in READS),
                "writes": sum(n for op, n in ops.items() if op in WRITES),
                "RRU": sum(r for _, r, _ in self.calls), "WRU": sum(w for _, _, w in self.calls),
                "calls": " ".join(f"{n}x{op}" for op, n in sorted(ops.items()))}


def patch_moto_cpu(meter: Meter) -> None:
    """Count the CPU moto spends answering (it runs inside our process) so it can be taken out."""
    original = botocore_stubber.BotocoreStubber.__call__

    def timed(self, event_name, request, **kwargs):
        t = time.process_time()
        try:
            return original(self, event_name, request, **kwargs)
        finally:
            meter.moto_cpu += time.process_time() - t

    botocore_stubber.BotocoreStubber.__call__ = timed


# -- scenarios ------------------------------------------------------------------------------
def spec(drop_id: str, now: int, inventory: int = 5) -> dict:
    return {"drop_id": drop_id, "name": "Bench", "inventory": inventory, "purchase_window": 600, "max_rounds": 1,
            "product": {"title": "Jacket", "image_url": "", "price": 800},
            "registration_start": now - 1000, "registration_end": now + 3_600_000}


def measure(meter: Meter, fn, n: int = 1) -> dict:
    """Average requests/units per call of fn over n calls (fn(i))."""
    meter.reset()
    for i in range(n):
        fn(i)
    s = meter.summary()
    per = {k: (v / n if isinstance(v, (int, float)) else v) for k, v in s.items()}
    per["calls"] = " ".join(f"{int(c.split('x', 1)[0]) / n:g}x{c.split('x', 1)[1]}" for c in s["calls"].split()) if n > 1 else s["calls"]
    return per


def service_rows(meter: Meter, participants: int) -> list[dict]:
    from chalicelib import audit, bootstrap

    svc = bootstrap.service()
    store = svc.store
    rows = []

    def row(name: str, fn, n: int = 1, note: str = "") -> None:
        rows.append({"use case (DropService)": name, **measure(meter, fn, n), "note": note})

    now = svc.clock()
    svc.create_drop(spec("svc", now))
    svc.status("svc")  # warm the 1 s drop cache, as a busy Lambda container has it
    ids = [f"shp_svc_{i:05d}" for i in range(participants)]
    row("register (rollover given, no device)", lambda i: svc.register("svc", ids[i], tickets=3, rollover=0), 50,
        "target: 1 write, 0 reads")
    svc._cache.clear()
    row("register, cold drop cache", lambda i: svc.register("svc", ids[50 + i], tickets=3, rollover=0), 1,
        "+1 drop read per container per second")
    row("register (rollover omitted)", lambda i: svc.register("svc", ids[51 + i], tickets=3, rollover=None), 20,
        "reads the balance")
    row("register with device (DEVICE_LIMIT)", lambda i: svc.register("svc", ids[71 + i], tickets=3, rollover=0,
                                                                        device=f"fp-{i}"), 20, "storefront default")
    for i in range(20):
        store._call("put_item", TableName=TABLE, Item={"pk": {"S": f"SHOPPER#{ids[91 + i]}"}, "sk": {"S": "ROLLOVER"},
                                                       "balance": {"N": "3"}})
    row("register spending rollover + device", lambda i: svc.register("svc", ids[91 + i], tickets=3, rollover=3,
                                                                       device=f"fp-r{i}"), 20)
    with_pool(lambda s: svc.register("svc", s, tickets=1 + hash(s) % 5, rollover=0), ids[111:])
    svc.status("svc")
    row("status (warm cache)", lambda i: svc.status("svc"), 20, "0 per request within the 1 s cache")
    row("status (cold cache)", lambda i: (svc._cache.clear(), svc.status("svc")), 20)
    row("me (before the draw)", lambda i: svc.me("svc", ids[i]), 20)
    row(f"tick during registration ({participants:,} entries)", lambda i: svc.tick("svc"), 1,
        "every WORKFLOW_POLL_MS: COUNT reads every entry")
    svc.lottery_now("svc")
    time.sleep(0.01)
    row(f"run_lottery ({participants:,} entries)", lambda i: svc.run_lottery("svc"), 1, "once per drop")
    lottery = rows[-1]
    drop = svc.drop("svc", fresh=True)
    winners = [p.shopper_id for p in store.participants("svc") if p.rank is not None and p.rank < drop.inventory]
    tokens = {}
    row("purchase/start (winner)", lambda i: tokens.__setitem__(i, svc.start_purchase("svc", winners[i])["purchase_token"]),
        len(winners))
    row("purchase (winner)", lambda i: svc.purchase("svc", winners[i], tokens[i]), len(winners))
    row("purchase retried (same token)", lambda i: svc.purchase("svc", winners[i], tokens[i]), len(winners),
        "idempotent: same order")
    row("purchase/start (loser)", lambda i: _ignore(lambda: svc.start_purchase("svc", ids[-1 - i])), 20)
    audit._TREES.clear()
    audit._RECORDS.clear()
    row(f"me after the draw, cold container ({participants:,} entries)",
        lambda i: (svc.me("svc", ids[i]), svc.inclusion_proof("svc", ids[i])), 1, "reads every entry once per container")
    row("me after the draw, warm", lambda i: (svc.me("svc", ids[i]), svc.inclusion_proof("svc", ids[i])), 20)
    eligible = sum(1 for p in store.participants("svc") if p.credit_eligible and (p.rank or 0) >= drop.inventory)
    row(f"complete ({participants:,} entries, {eligible:,} losers with paid tickets)", lambda i: svc.complete("svc"), 1,
        "rollover credit per eligible loser")
    return rows, {"lottery": lottery, "complete": rows[-1]}


def _ignore(fn) -> None:
    from chalicelib.domain.errors import DropError

    try:
        fn()
    except DropError:
        pass


def with_pool(fn, items) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fn, items))


def route_rows(meter: Meter, repeat: int) -> list[dict]:
    from chalice.test import Client

    import app as app_module
    from chalicelib import bootstrap
    from chalicelib.pow import solve

    svc = bootstrap.service()
    client = Client(app_module.app).__enter__()
    op_key = os.environ["OPERATOR_KEY"]
    now = svc.clock()
    res = client.http.post("/api/drops", headers={"content-type": "application/json", "x-operator-key": op_key},
                           body=json.dumps(spec("api", now, inventory=repeat)))
    assert res.status_code == 201, res.body
    rows = []
    cpu: dict[str, list[float]] = {}

    def call(name: str, method: str, path: str, token: str = "", body: object = None, ok=(200, 201)) -> dict:
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        moto0, t = meter.moto_cpu, time.process_time()
        res = client.http.request(method, path, headers=headers, body=json.dumps(body).encode() if body else b"")
        cpu.setdefault(name, []).append((time.process_time() - t) - (meter.moto_cpu - moto0))
        assert res.status_code in ok, (name, res.status_code, res.body)
        return json.loads(res.body or b"{}")

    def entry(challenge: dict, fingerprint: bool) -> dict:
        body = {"tickets": 2, "rollover": 0, "pow": {"challenge": challenge, "nonce": solve(challenge)},
                "signals": {"interactions": 12, "elapsed_ms": 30_000}}
        if fingerprint:
            body["fingerprint"] = {"visitor_id": secrets.token_hex(10), "confidence": 0.9}
        return body

    shoppers: list[str] = []
    rollups: dict[str, list[dict]] = {}

    def metered(name: str, fn) -> None:
        meter.reset()
        fn()
        rollups.setdefault(name, []).append(meter.summary())

    for i in range(repeat):
        session: dict = {}
        metered("POST /api/session", lambda: session.update(call("POST /api/session", "POST", "/api/session")))
        token = session["token"]
        shoppers.append(token)
        ch: dict = {}
        metered("GET /api/pow/challenge", lambda: ch.update(call("GET /api/pow/challenge", "GET",
                                                                  "/api/pow/challenge?drop_id=api", token)))
        body = entry(ch, fingerprint=i % 2 == 0)
        name = "POST register (storefront: fingerprint)" if i % 2 == 0 else "POST register (no fingerprint)"
        metered(name, lambda: call(name, "POST", "/api/drop/api/register", token, body))
        metered("GET status", lambda: call("GET status", "GET", "/api/drop/api/status"))
        metered("GET me", lambda: call("GET me", "GET", "/api/drop/api/me", token))
        metered("POST stream-token", lambda: call("POST stream-token", "POST", "/api/drop/api/stream-token", token))
    svc.lottery_now("api")
    time.sleep(0.01)
    svc.run_lottery("api")
    svc._cache.clear()
    for token in shoppers:  # inventory == shoppers: everyone wins
        start: dict = {}
        metered("POST purchase/start", lambda: start.update(call("POST purchase/start", "POST",
                                                                  "/api/drop/api/purchase/start", token)))
        metered("POST purchase", lambda: call("POST purchase", "POST", "/api/drop/api/purchase", token,
                                              {"purchase_token": start["purchase_token"]}))
    for name, summaries in rollups.items():
        n = len(summaries)
        ops = Counter()
        for s in summaries:
            for c in s["calls"].split():
                k, op = c.split("x", 1)
                ops[op] += int(k)
        rows.append({"API request (app.py)": name, "requests": sum(s["requests"] for s in summaries) / n,
                     "reads": sum(s["reads"] for s in summaries) / n, "writes": sum(s["writes"] for s in summaries) / n,
                     "RRU": sum(s["RRU"] for s in summaries) / n, "WRU": sum(s["WRU"] for s in summaries) / n,
                     "handler CPU ms p50": statistics.median(cpu[name]) * 1000,
                     "p95": sorted(cpu[name])[int(0.95 * (len(cpu[name]) - 1))] * 1000,
                     "calls": " ".join(f"{v / n:g}x{op}" for op, v in sorted(ops.items()))})
    client.__exit__(None, None, None)
    return rows


# -- cost model (assumed us-east-1 list prices; see docs/PERFORMANCE.md) --------------------------
PRICES = {"API Gateway REST per 1M requests": 3.50, "Lambda per 1M requests": 0.20, "Lambda per GB-s": 0.0000166667,
          "DynamoDB per 1M WRU": 1.25, "DynamoDB per 1M RRU": 0.25}
API_MEMORY_GB = 0.5  # infra/template.yaml Globals MemorySize 512
LAMBDA_VCPU = 512 / 1769  # Lambda's CPU share is proportional to memory (1,769 MB = one vCPU)
DDB_MS = 5.0  # assumed DynamoDB round trip from Lambda, per call (sequential calls)
REGISTRATION_S, POLL_S = 180, 5  # tick cost: a 3-minute registration window, WORKFLOW_POLL_MS 5000 on AWS
FLOW = ("POST /api/session", "GET /api/pow/challenge", "POST register (storefront: fingerprint)")


def cost_model(api: dict[str, dict], per_entry: dict[str, dict], tick_rru_per_entry: float) -> str:
    """Dollars per 1M registrations from the measured requests, units and handler CPU."""
    lines, total = [], 0.0
    requests = len(FLOW)
    gb_s = sum((api[n]["handler CPU ms p50"] / LAMBDA_VCPU + api[n]["requests"] * DDB_MS) / 1000 * API_MEMORY_GB
               for n in FLOW)
    wru = sum(api[n]["WRU"] for n in FLOW)
    rru = sum(api[n]["RRU"] for n in FLOW)
    ticks = REGISTRATION_S / POLL_S
    tick_rru = tick_rru_per_entry * ticks / 2  # each tick reads every entry so far: on average half of them
    items = [
        (f"API Gateway: {requests} requests (session, challenge, register)", requests * PRICES["API Gateway REST per 1M requests"]),
        (f"Lambda requests: {requests}", requests * PRICES["Lambda per 1M requests"]),
        (f"Lambda duration: {gb_s * 1000:.1f} GB-ms (CPU p50 / {LAMBDA_VCPU:.2f} vCPU + {DDB_MS:g} ms per DynamoDB call, 512 MB)",
         gb_s * 1e6 * PRICES["Lambda per GB-s"]),
        (f"DynamoDB writes in the flow: {wru:g} WRU", wru * PRICES["DynamoDB per 1M WRU"]),
        (f"DynamoDB reads in the flow: {rru:g} RRU", rru * PRICES["DynamoDB per 1M RRU"]),
        (f"run_lottery: {per_entry['lottery']['WRU']:.2f} WRU + {per_entry['lottery']['RRU']:.3f} RRU per entry",
         per_entry["lottery"]["WRU"] * PRICES["DynamoDB per 1M WRU"] + per_entry["lottery"]["RRU"] * PRICES["DynamoDB per 1M RRU"]),
        (f"complete (rollover credits): {per_entry['complete']['WRU']:.2f} WRU + {per_entry['complete']['RRU']:.2f} RRU per entry",
         per_entry["complete"]["WRU"] * PRICES["DynamoDB per 1M WRU"] + per_entry["complete"]["RRU"] * PRICES["DynamoDB per 1M RRU"]),
        (f"ticks: {tick_rru:.2f} RRU per entry ({ticks:.0f} COUNT ticks over a {REGISTRATION_S // 60}-minute window)",
         tick_rru * PRICES["DynamoDB per 1M RRU"]),
    ]
    width = max(len(name) for name, _ in items)
    for name, dollars in items:
        total += dollars
        lines.append(f"  {name:<{width}}  ${dollars:8.2f}")
    lines.append(f"  {'total per 1M registrations':<{width}}  ${total:8.2f}")
    prices = ", ".join(f"{k} ${v:g}" for k, v in PRICES.items())
    return f"\ncost model, dollars per 1M registrations (assumed us-east-1 list prices: {prices}):\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="API requests of each kind")
    parser.add_argument("--participants", type=int, default=2000, help="entries for the tick/lottery/me-after-draw rows")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    print(f"machine: {machine()}")
    with mock_aws():
        from chalicelib import bootstrap
        from chalicelib.tables import create_tables

        boto3.setup_default_session()
        create_tables(boto3.client("dynamodb", region_name="us-east-1"), {"DropsTable": TABLE})
        bootstrap.reset()
        isolated_moto.install()  # moto's transactions deep-copy the table; this keeps complete() in seconds
        meter = Meter()
        patch_moto_cpu(meter)
        svc_rows, per_drop = service_rows(meter, args.participants)
        api_rows = route_rows(meter, args.repeat)
    cols = ["requests", "reads", "writes", "RRU", "WRU", "calls"]
    print("\nper call of a use case (DropService over moto; RRU/WRU = on-demand request units by DynamoDB's rules)")
    print(table(svc_rows, ["use case (DropService)", *cols, "note"]))
    print(f"\nper API request (app.py via chalice.test.Client, rate limits on (per-IP limits raised: one local IP), POW_DIFFICULTY=8 so the bench can "
          f"solve; verification costs the same at 17); handler CPU excludes moto's own CPU; n={args.repeat} "
          f"(register: {args.repeat // 2} each)")
    print(table(api_rows, ["API request (app.py)", *cols[:-1], "handler CPU ms p50", "p95", "calls"]))
    reg = svc_rows[0]
    tick = next(r for r in svc_rows if r["use case (DropService)"].startswith("tick"))
    per_entry = {name: {k: row[k] / args.participants for k in ("requests", "RRU", "WRU")}
                 for name, row in per_drop.items()}
    for name, v in per_entry.items():
        print(f"{name} per entry: {v['requests']:.3f} requests, {v['RRU']:.3f} RRU, {v['WRU']:.3f} WRU")
    print(cost_model({r["API request (app.py)"]: r for r in api_rows}, per_entry, tick["RRU"] / args.participants))
    ok = reg["writes"] == 1 and reg["reads"] == 0
    print(("TARGET MET" if ok else "TARGET MISSED") + f": registration (no rollover) = {reg['writes']:g} write "
          f"request(s), {reg['reads']:g} reads ({reg['calls']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
