"""Benchmark the SSE server: delivery latency, memory and store reads at 100 and 1,000 streams.

Starts its own moto server and SSE server on free loopback ports, registers the shoppers, opens
the streams with raw asyncio sockets, changes the drop's phase twice (lottery_now, run_lottery)
and prints p50/p95 delivery latency, the SSE server's RSS and store reads per second
(from GET /events/_stats). Usage: python bench/sse.py [--streams 100,1000] [--steady 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chalicelib.config import Settings  # noqa: E402
from chalicelib.service import DropService  # noqa: E402
from chalicelib.store import DropStore  # noqa: E402
from chalicelib.tables import create_tables  # noqa: E402
from chalicelib.tokens import Signer  # noqa: E402
from devstack.dev import free_port  # noqa: E402

TABLE = "drops-bench"
SIGNING_KEY = secrets.token_hex(32)
OPERATOR_KEY = secrets.token_hex(16)
CONNECT_TIMEOUT_S = 120
EVENT_TIMEOUT_S = 30


class TimedStore(DropStore):
    """Records when the phase-changing writes are issued, so latency counts from the write."""

    marks: dict[str, float] = {}

    def close_registration(self, drop_id, now):
        self.marks["LOTTERY"] = time.monotonic()
        return super().close_registration(drop_id, now)

    def begin_purchase(self, drop_id, first, ranked, registered):
        self.marks["PURCHASE"] = time.monotonic()
        return super().begin_purchase(drop_id, first, ranked, registered)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Client:
    """One SSE stream over a raw socket: HTTP/1.1, chunked body, events parsed as they come."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.seen: dict[str, float] = {}  # "drop:PHASE" / "me:STATUS" -> first arrival (monotonic)
        self.first_me = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.error = ""

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.first_me.set()
            return
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.error = head.split(b"\r\n", 1)[0].decode()
                self.first_me.set()
                return
            buf = b""
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return
                buf += (await reader.readexactly(size + 2))[:-2]
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    self._event(raw.decode())
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.error = self.error or f"read: {exc!r}"
        finally:
            self.first_me.set()
            writer.close()

    def _event(self, raw: str) -> None:
        fields = dict(line.split(": ", 1) for line in raw.split("\r\n") if ": " in line and not line.startswith(":"))
        name = fields.get("event")
        if name not in ("drop", "me"):
            return
        data = json.loads(fields["data"])
        key = f"drop:{data['phase']}" if name == "drop" else f"me:{data['status']}"
        self.seen.setdefault(key, time.monotonic())
        if name == "me":
            self.first_me.set()


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE if "devstack" in cmd[2] else out,
                                stderr=out, text=True)


def stats(base: str) -> dict:
    return httpx.get(f"{base}/events/_stats", headers={"x-operator-key": OPERATOR_KEY}, timeout=10).json()


def reads_per_s(a: dict, b: dict) -> tuple[float, float, float]:
    """Drop GetItems, participant GetItems and whole-roster reads (16 shard queries each) per second."""
    dt = b["time"] - a["time"]
    return tuple((b[k] - a[k]) / dt for k in ("drop_reads", "participant_reads", "roster_reads"))  # type: ignore


async def wait_all(clients: list[Client], key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(key not in c.seen and not c.error for c in clients):
        await asyncio.sleep(0.05)


async def scenario(n: int, service: DropService, store: TimedStore, port: int, sse_pid: int, steady: float) -> dict:
    base = f"http://127.0.0.1:{port}"
    drop_id = f"bench-{n}-{secrets.token_hex(3)}"
    now = service.clock()
    service.create_drop({"drop_id": drop_id, "name": "Bench", "inventory": n // 2, "registration_start": now - 1000,
                         "registration_end": now + 3_600_000, "purchase_window": 600, "max_rounds": 1,
                         "product": {"title": "Jacket", "image_url": "/img/j.svg", "price": 800}})
    shoppers = [f"shp_bench_{n}_{i:05d}" for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: service.register(drop_id, s, tickets=1 + hash(s) % 5, rollover=0), shoppers))
    rss_before = rss_mb(sse_pid)
    clients = [Client(port, f"/events/{drop_id}?token={service.stream_token(drop_id, s)['token']}") for s in shoppers]
    opened = time.monotonic()
    for i in range(0, n, 100):  # open in waves of 100, as a crowd would arrive
        for c in clients[i:i + 100]:
            c.task = asyncio.create_task(c.run())
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(c.first_me.wait() for c in clients)), CONNECT_TIMEOUT_S)
    errors = [c.error for c in clients if c.error]
    connect_s = time.monotonic() - opened
    await asyncio.sleep(1)
    s0 = stats(base)
    await asyncio.sleep(steady)
    s1 = stats(base)
    rss_streams = rss_mb(sse_pid)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, service.lottery_now, drop_id)
    await wait_all(clients, "drop:LOTTERY", EVENT_TIMEOUT_S)
    await loop.run_in_executor(None, service.run_lottery, drop_id)
    await wait_all(clients, "drop:PURCHASE", EVENT_TIMEOUT_S)
    await wait_all(clients, "me:WINNER", 3)  # half of them win; the rest become WAITLISTED/LOST
    await asyncio.sleep(2)
    s2 = stats(base)
    lat = {
        "lottery_drop": [c.seen["drop:LOTTERY"] - store.marks["LOTTERY"] for c in clients if "drop:LOTTERY" in c.seen],
        "purchase_drop": [c.seen["drop:PURCHASE"] - store.marks["PURCHASE"] for c in clients if "drop:PURCHASE" in c.seen],
        "purchase_me": [min(v for k, v in c.seen.items() if k.startswith("me:") and k != "me:REGISTERED")
                        - store.marks["PURCHASE"] for c in clients
                        if any(k.startswith("me:") and k != "me:REGISTERED" for k in c.seen)],
    }
    for c in clients:
        c.task.cancel()
    await asyncio.gather(*(c.task for c in clients), return_exceptions=True)
    steady_drop, steady_me, steady_roster = reads_per_s(s0, s1)
    change_drop, change_me, change_roster = reads_per_s(s1, s2)
    return {
        "streams": n, "errors": len(errors), "first_error": errors[0] if errors else "", "connect_s": round(connect_s, 2),
        "rss_mb_before": round(rss_before, 1), "rss_mb_with_streams": round(rss_streams, 1),
        "steady_drop_reads_per_s": round(steady_drop, 2), "steady_participant_reads_per_s": round(steady_me, 2),
        "steady_roster_reads_per_s": round(steady_roster, 2),
        "change_drop_reads_per_s": round(change_drop, 2), "change_participant_reads_per_s": round(change_me, 2),
        "change_roster_reads_per_s": round(change_roster, 2), "roster_last_ms": s2["roster_last_ms"],
        "pollers": s1["pollers"],
        **{f"{k}_{q}_ms": round(pct(v, p) * 1000, 1) for k, v in lat.items() for q, p in (("p50", 0.5), ("p95", 0.95))},
        **{f"{k}_max_ms": round(max(v) * 1000, 1) if v else None for k, v in lat.items()},
        **{f"{k}_delivered": len(v) for k, v in lat.items()},
    }


async def main_async(args: argparse.Namespace, service: DropService, store: TimedStore, port: int, pid: int) -> list[dict]:
    return [await scenario(n, service, store, port, pid, args.steady) for n in args.streams]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000])
    parser.add_argument("--steady", type=float, default=10.0, help="seconds of steady state measured per run")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    moto_port, sse_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "DROPS_TABLE": TABLE, "SIGNING_KEY": SIGNING_KEY, "OPERATOR_KEY": OPERATOR_KEY}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    moto = start([sys.executable, "-m", "devstack.moto_server", "--port", str(moto_port)], env, logs / "moto.log")
    sse = None
    try:
        assert "ready" in moto.stdout.readline(), (logs / "moto.log").read_text()[-2000:]
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        create_tables(client, {"DropsTable": TABLE})
        sse = start([sys.executable, "-m", "sse", "--port", str(sse_port)], env, logs / "sse.log")
        for _ in range(100):
            try:
                stats(f"http://127.0.0.1:{sse_port}")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        store = TimedStore(client, TABLE)
        cfg = Settings(table_name=TABLE, signing_key=SIGNING_KEY, operator_key=OPERATOR_KEY, registration_grace_ms=0)
        service = DropService(store=store, signer=Signer(SIGNING_KEY), settings=cfg)
        results = asyncio.run(main_async(args, service, store, sse_port, sse.pid))
    finally:
        for proc in (sse, moto):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    for r in results:
        print(json.dumps(r))
    print(f"\n{'streams':>8} {'p50 ms':>8} {'p95 ms':>8} {'me p95':>8} {'RSS MB':>8} {'drop rd/s':>10} "
          f"{'part rd/s':>10} {'roster/s':>9} {'errors':>7}")
    for r in results:
        print(f"{r['streams']:>8} {r['purchase_drop_p50_ms']:>8} {r['purchase_drop_p95_ms']:>8} {r['purchase_me_p95_ms']:>8} "
              f"{r['rss_mb_with_streams']:>8} {r['steady_drop_reads_per_s']:>10} {r['steady_participant_reads_per_s']:>10} "
              f"{r['steady_roster_reads_per_s']:>9} {r['errors']:>7}")
    print("(p50/p95: drop event after the PURCHASE write; me p95: the shopper's own standing after it; reads in steady state)")
    ok = all(r["errors"] == 0 and r["purchase_drop_p95_ms"] <= 1000 and r["lottery_drop_p95_ms"] <= 1000 for r in results)
    print("PASS" if ok else "FAIL: a stream failed or p95 > 1 s", f"(logs in {logs})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
