"""Shared bench helpers: repo on sys.path, free ports, percentiles, child processes, a lean HTTP client.

Not a benchmark itself: `make bench` runs only bench/*.py, so helpers live in this package.
"""
from __future__ import annotations

import asyncio
import os
import platform
import time
from pathlib import Path

from devstack.dev import Child as DevChild, free_port
from devstack.spawn import processes_with

__all__ = ["FAKE_AWS", "Child", "Conn", "closed_loop", "fake_aws_env", "free_port", "http_request", "machine", "pct",
           "processes_with", "table"]

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
FAKE_AWS = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def fake_aws_env() -> None:
    for name, value in FAKE_AWS.items():
        os.environ.setdefault(name, value)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table, right-aligned, columns sized to content."""
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


# -- child processes ----------------------------------------------------------------------
class Child(DevChild):
    """devstack's child process (its own group; SIGTERM, then SIGKILL), started at once, with a log to wait on."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        log.write_text("")
        super().__init__(log.stem, argv, env, log)
        self.start()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.proc.args} did not print {text!r}:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# -- a lean keep-alive HTTP/1.1 client (so the client costs little of a 2-core box) ------------
class Conn:
    """One keep-alive HTTP/1.1 connection over asyncio streams (Content-Length or chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send a complete request (bytes, built once beforehand); returns (status, body)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip() or b"0", 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_request(method: str, path: str, host: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def closed_loop(requests: list[bytes], host: str, port: int, concurrency: int) -> dict:
    """Send every request with `concurrency` connections, each sending its next one when answered."""
    queue = list(reversed(requests))
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    async def worker() -> None:
        conn = Conn(host, port)
        try:
            while queue:
                raw = queue.pop()
                t = time.perf_counter()
                status, _ = await conn.request(raw)
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"n": len(requests), "seconds": elapsed, "rate": len(requests) / elapsed, "statuses": statuses,
            "p50_ms": pct(latencies, 0.5) * 1000, "p95_ms": pct(latencies, 0.95) * 1000}
