"""A scripted client without a browser tries N registrations in-process (moto + chalice test Client).

It solves the proof-of-work in Python, fakes a FingerprintJS result and does not wait. Scenarios:
  naive    one IP, no delay                      (rate limits, then the score)
  pool     a fresh IP per attempt, no delay      (the score alone)
  patient  a fresh IP per attempt, waits 1.2 s   (simulated with the server clock: what gets through)
  device   like patient, one faked visitor id    (the one-entry-per-device rule)
Prints the outcome counts, CPU per attempt (server side and attacker side) and PoW verification µs.

    .venv/bin/python -m bench.bots [--attempts 200] [--difficulty 17] [--scenarios naive,pool,patient,device]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import statistics
import sys
import time
import timeit

for _name, _value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                      "AWS_SECRET_ACCESS_KEY": "testing"}.items():
    os.environ.setdefault(_name, _value)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `python bench/bots.py` too
from bench._lib import isolated_moto  # noqa: E402

DROP = "bench-drop"


class Offset:
    """The server's clock: real time plus whatever the attacker 'waited'."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.ms


def setup(difficulty: int) -> tuple:
    from chalice.test import Client

    from chalicelib import bootstrap
    from chalicelib.tables import create_tables

    os.environ.update(DROPS_TABLE="drops-bench", SIGNING_KEY=secrets.token_hex(32), OPERATOR_KEY=secrets.token_hex(16),
                      POW_DIFFICULTY=str(difficulty))
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "FINGERPRINT_API_KEY"):
        os.environ.pop(var, None)
    create_tables(boto3.client("dynamodb", region_name="us-east-1"), {"DropsTable": "drops-bench"})
    bootstrap.reset()
    clock = Offset()
    bootstrap.service().clock = clock
    import app as app_module

    client = Client(app_module.app).__enter__()
    now = clock()
    spec = {"drop_id": DROP, "name": "Bench", "inventory": 10, "purchase_window": 60,
            "product": {"title": "Thing", "image_url": "", "price": 100},
            "registration_start": now - 1000, "registration_end": now + 86_400_000}
    res = client.http.post("/api/drops", headers={"content-type": "application/json",
                                                  "x-operator-key": os.environ["OPERATOR_KEY"]}, body=json.dumps(spec))
    assert res.status_code == 201, res.body
    return client, clock


def run(scenario: str, attempts: int, difficulty: int) -> dict:
    from chalice.local import LambdaEventConverter

    from chalicelib.pow import solve

    client, clock = setup(difficulty)
    outcomes: collections.Counter = collections.Counter()
    server_cpu, attacker_cpu = [], []
    started = time.perf_counter()

    def call(method: str, path: str, token: str = "", body: object = None) -> tuple[int, dict]:
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        t = time.process_time()
        res = client.http.request(method, path, headers=headers, body=json.dumps(body).encode() if body else b"")
        server_cpu[-1] += time.process_time() - t
        return res.status_code, json.loads(res.body or b"{}")

    for i in range(attempts):
        server_cpu.append(0.0)
        attacker_cpu.append(0.0)
        LambdaEventConverter.LOCAL_SOURCE_IP = "198.51.100.7" if scenario == "naive" else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        status, body = call("POST", "/api/session")
        if status != 201:
            outcomes[f"session {status} {body.get('error')}"] += 1
            continue
        token = body["token"]
        status, challenge = call("GET", f"/api/pow/challenge?drop_id={DROP}", token)
        if status != 200:
            outcomes[f"challenge {status} {challenge.get('error')}"] += 1
            continue
        t = time.process_time()
        nonce = solve(challenge)
        visitor = "fp-constant" if scenario == "device" else secrets.token_hex(10)
        entry = {"tickets": 1, "rollover": 0, "pow": {"challenge": challenge, "nonce": nonce},
                 "fingerprint": {"visitor_id": visitor, "confidence": 1.0},
                 "signals": {"interactions": 12, "elapsed_ms": 30_000}}
        attacker_cpu[-1] += time.process_time() - t
        if scenario in ("patient", "device"):
            clock.ms += 1200  # the script 'waits' 1.2 s: costs it wall time, no CPU
        status, body = call("POST", f"/api/drop/{DROP}/register", token, entry)
        outcomes["REGISTERED" if status == 201 else f"register {status} {body.get('error')}"] += 1
    LambdaEventConverter.LOCAL_SOURCE_IP = "127.0.0.1"
    return {"scenario": scenario, "attempts": attempts, "outcomes": dict(outcomes),
            "through": outcomes["REGISTERED"], "wall_s": time.perf_counter() - started,
            "server_cpu_ms": 1000 * statistics.mean(server_cpu), "attacker_cpu_ms": 1000 * statistics.mean(attacker_cpu)}


def verification_us(difficulty: int, repeat: int = 20_000) -> dict:
    """The cost of pow.verify_solution and of the score, in µs per call."""
    from chalicelib import bots, pow as pow_
    from chalicelib.tokens import Signer

    signer, now = Signer(secrets.token_hex(32)), 1_800_000_000_000
    challenge = pow_.issue_challenge(signer, "shp_x", DROP, difficulty=difficulty, ttl_s=120, now_ms=now)
    nonce = pow_.solve(challenge)
    verify = timeit.timeit(lambda: pow_.verify_solution(signer, challenge, nonce, shopper_id="shp_x", drop_id=DROP,
                                                         now_ms=now + 900), number=repeat)
    issue = timeit.timeit(lambda: pow_.issue_challenge(signer, "shp_x", DROP, difficulty=difficulty, ttl_s=120,
                                                         now_ms=now), number=repeat)
    score = timeit.timeit(lambda: bots.assess(pow_valid=True, elapsed_ms=1100, tried=nonce + 1, fp_present=True,
                                              fp_confidence=0.5, fp_verified=False), number=repeat)
    solve_s = timeit.timeit(lambda: pow_.solve(challenge), number=3) / 3
    return {"verify_us": verify / repeat * 1e6, "issue_us": issue / repeat * 1e6, "score_us": score / repeat * 1e6,
            "solve_this_challenge_ms": solve_s * 1000, "nonce": nonce}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=200)  # 1000 takes ~8 min: make bench runs it
    parser.add_argument("--difficulty", type=int, default=17)
    parser.add_argument("--scenarios", default="naive,pool,patient,device")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # the app logs every refusal; the bench only counts them
    isolated_moto.install()  # moto's transactions copy the whole table: the device rule's would dominate server CPU
    cost = verification_us(args.difficulty)
    print(f"PoW difficulty {args.difficulty} bits: verify {cost['verify_us']:.1f} µs, issue {cost['issue_us']:.1f} µs, "
          f"trust score {cost['score_us']:.1f} µs; solving one challenge in Python "
          f"{cost['solve_this_challenge_ms']:.0f} ms (nonce {cost['nonce']})")
    for scenario in args.scenarios.split(","):
        with mock_aws():
            r = run(scenario, args.attempts, args.difficulty)
        print(f"\n[{r['scenario']}] {r['through']}/{r['attempts']} registered in {r['wall_s']:.1f} s wall")
        for outcome, n in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:5d}  {outcome}")
        print(f"  CPU per attempt: server {r['server_cpu_ms']:.2f} ms (in-process moto included), "
              f"attacker {r['attacker_cpu_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
