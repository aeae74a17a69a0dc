"""Registrations per second through the embedded stack's one origin, beside the emulator's raw PutItem rate.

Starts `python -m devstack.dev` (moto server + gateway) in a temporary DEVSTACK_DIR on free ports with
rate limits off (RATE_LIMIT_*=0), TRUST_THRESHOLD=0 and POW_DIFFICULTY=8, creates a drop, and before
any timing takes a session and a challenge per shopper and solves it, so the timed part is only
POST /api/drop/{id}/register, with 32 keep-alive connections from a lean asyncio client. In the same
run and with the same client and concurrency, raw PutItem requests of participant-sized items go
straight to the same moto server (and, for reference, boto3 put_item from 32 threads). Prints both
rates and their ratio (target >= 0.5), then stops every process it started. A smaller set of
registrations with a fingerprint (the storefront's default: a TransactWriteItems for the one-entry-per-
device rule) shows what moto's transactions cost (devstack/moto_isolation.py rolls back items, not tables).

    .venv/bin/python bench/throughput.py [--registrations 2000] [--concurrency 32]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench._lib import closed_loop, http_request, machine, table  # noqa: E402
from devstack import provision  # noqa: E402
from devstack.spawn import DevStack  # noqa: E402

TARGET_RATIO = 0.5
DROP = "throughput"


def start_stack(dev_dir: Path, env_extra: dict[str, str]) -> tuple[DevStack, dict, dict]:
    dev = DevStack(dev_dir, env_extra, ready_timeout_s=90).start()
    return dev, provision.load_state(dev_dir), provision.read_env_file(dev_dir / "secrets.env")


def call(port: int, method: str, path: str, body: object = None, headers: dict | None = None) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"content-type": "application/json", **(headers or {})})
        res = conn.getresponse()
        return res.status, json.loads(res.read() or b"{}")
    finally:
        conn.close()


def presolve(port: int, n: int, fingerprint: bool, prefix: str) -> list[bytes]:
    """n ready-to-send register requests: session, challenge and proof of work done beforehand."""
    from chalicelib.pow import solve

    def one(i: int) -> bytes:
        status, session = call(port, "POST", "/api/session")
        assert status == 201, session
        auth = {"authorization": f"Bearer {session['token']}"}
        status, challenge = call(port, "GET", f"/api/pow/challenge?drop_id={DROP}", headers=auth)
        assert status == 200, challenge
        body = {"tickets": 1 + i % 3, "rollover": 0, "pow": {"challenge": challenge, "nonce": solve(challenge)},
                "signals": {"interactions": 12, "elapsed_ms": 30_000}}
        if fingerprint:
            body["fingerprint"] = {"visitor_id": f"{prefix}-{i:06d}", "confidence": 0.9}
        raw = json.dumps(body).encode()
        return http_request("POST", f"/api/drop/{DROP}/register", f"127.0.0.1:{port}", raw,
                            {"Content-Type": "application/json", **auth})

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def put_requests(moto_port: int, table_name: str, n: int, tag: str) -> list[bytes]:
    """Raw DynamoDB PutItem requests with an item shaped like a participant (same size class)."""
    auth = ("AWS4-HMAC-SHA256 Credential=devstack/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64)
    out = []
    for i in range(n):
        item = {"pk": {"S": f"DROP#{tag}#S{i % 16:02d}"}, "sk": {"S": f"P#shp_{tag}_{i:08d}"},
                "type": {"S": "participant"}, "drop_id": {"S": tag}, "shopper_id": {"S": f"shp_{tag}_{i:08d}"},
                "pseudonym": {"S": f"{i:032x}"}, "tickets": {"N": "2"}, "rollover_used": {"N": "0"},
                "free": {"N": "1"}, "paid": {"N": "1"}, "cost": {"N": "1"}, "registered_at": {"N": "1780000000000"},
                "trust": {"M": {"score": {"N": "80"}, "pow": {"N": "30"}, "timing": {"N": "30"}, "fp": {"N": "20"}}},
                "device": {"S": ""}}
        body = json.dumps({"TableName": table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"})
        out.append(http_request("POST", "/", f"127.0.0.1:{moto_port}", body.encode(), {
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.PutItem",
            "X-Amz-Date": "20260101T000000Z", "Authorization": auth}))
    return out


def table_items(state: dict) -> int:
    from devstack import provision

    ddb = provision.client(state["endpoint"], "dynamodb")
    return ddb.scan(TableName=state["table"], Select="COUNT")["Count"]


def boto3_puts(endpoint: str, table_name: str, n: int, concurrency: int) -> dict:
    import boto3
    from botocore.config import Config

    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="devstack",
                       aws_secret_access_key="devstack", config=Config(max_pool_connections=concurrency))

    def put(i: int) -> None:
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"DROP#boto#S{i % 16:02d}"}, "sk": {"S": f"P#{i:08d}"},
                                                 "tickets": {"N": "2"}, "pseudonym": {"S": f"{i:032x}"}},
                     ConditionExpression="attribute_not_exists(pk)")

    put(-1)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, range(n)))
    elapsed = time.perf_counter() - started
    return {"n": n, "seconds": elapsed, "rate": n / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fingerprinted", type=int, default=20,
                        help="registrations with a fingerprint (a TransactWriteItems, slow in moto: it deep-copies the table)")
    args = parser.parse_args(argv)
    n, c = args.registrations, args.concurrency
    print(f"machine: {machine()}")
    dev_dir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    knobs = {"POW_DIFFICULTY": "8", "TRUST_THRESHOLD": "0", "WORKFLOW_POLL_MS": "60000", "RATE_LIMIT_SESSION_IP": "0",
             "RATE_LIMIT_CHALLENGE_IP": "0", "RATE_LIMIT_REGISTER_IP": "0", "RATE_LIMIT_CHALLENGE_SHOPPER": "0",
             "RATE_LIMIT_REGISTER_SHOPPER": "0"}
    t0 = time.monotonic()
    dev, state, secrets = start_stack(dev_dir, knobs)
    rows, left = [], []
    try:
        port, moto_port = state["dev_port"], state["moto_port"]
        print(f"stack up in {time.monotonic() - t0:.1f} s (origin :{port}, moto :{moto_port}, logs in {dev_dir})")
        now = int(time.time() * 1000)
        status, body = call(port, "POST", "/api/drops", {
            "drop_id": DROP, "name": "Throughput", "product": {"title": "Cap", "price": 20}, "inventory": 10,
            "registration_start": now - 1000, "registration_end": now + 1_800_000, "purchase_window": 60},
            {"x-operator-key": secrets["OPERATOR_KEY"]})
        assert status == 201, body
        t = time.monotonic()
        plain = presolve(port, n, fingerprint=False, prefix="a")
        puts = put_requests(moto_port, state["table"], n, "raw")
        print(f"pre-solved {len(plain)} registrations in {time.monotonic() - t:.1f} s (not timed)")
        asyncio.run(closed_loop(puts[:100], "127.0.0.1", moto_port, c))  # warm-up, not counted
        reg = asyncio.run(closed_loop(plain, "127.0.0.1", port, c))
        raw = asyncio.run(closed_loop(puts[100:], "127.0.0.1", moto_port, c))
        items = table_items(state)
        with_fp = presolve(port, args.fingerprinted, fingerprint=True, prefix="b")  # challenges live 120 s
        reg_fp = asyncio.run(closed_loop(with_fp, "127.0.0.1", port, c))
        boto = boto3_puts(state["endpoint"], state["table"], n // 2, c)
        rows = [
            {"measured": "POST register via the origin (1 PutItem each)", **reg},
            {"measured": f"POST register, with fingerprint (TransactWriteItems; table of {items:,} items)", **reg_fp},
            {"measured": "raw PutItem to the same moto server", **raw},
            {"measured": "boto3 put_item, 32 threads, same moto server", **boto},
        ]
        status, listed = call(port, "GET", f"/api/drop/{DROP}/status")
        registered_ok = reg["statuses"].get(201, 0) + reg_fp["statuses"].get(201, 0)
    finally:
        left = dev.stop()
    for r in rows:
        r["statuses"] = " ".join(f"{k}:{v}" for k, v in sorted(r.get("statuses", {}).items())) or "-"
    print(f"\n{c} concurrent keep-alive connections, closed loop (each sends its next request when answered):")
    print(table(rows, ["measured", "n", "seconds", "rate", "p50_ms", "p95_ms", "statuses"]))
    ratio = rows[0]["rate"] / rows[2]["rate"]
    print(f"\nregistrations/s {rows[0]['rate']:.0f} vs raw PutItem/s {rows[2]['rate']:.0f}: ratio {ratio:.2f} "
          f"(target >= {TARGET_RATIO}); against boto3 put_item/s {rows[3]['rate']:.0f}: {rows[0]['rate'] / rows[3]['rate']:.2f}")
    print(f"processes left after stopping: {len(left)} (killed)" if left else "all processes stopped")
    ok = registered_ok == len(plain) + len(with_fp)
    print(("TARGET MET" if ratio >= TARGET_RATIO else "TARGET MISSED") + f" (ratio {ratio:.2f}); "
          f"{registered_ok}/{len(plain) + len(with_fp)} registrations answered 201")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
