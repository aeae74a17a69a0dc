"""Start and stop the processes of the kill test: the moto server and the API supervisor."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devstack.dev import free_port  # noqa: F401  (servers.free_port for the kill test)

ROOT = Path(__file__).resolve().parents[2]


def start(module: str, port: int, env: dict, log: Path, *args: str, timeout_s: float = 30) -> subprocess.Popen:
    """Run `python -m module --port port *args` (output to log) and wait until it accepts connections."""
    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    kill(proc)
    raise RuntimeError(f"{module} did not start on port {port}:\n{log.read_text()[-3000:]}")


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: no cleanup, no graceful shutdown, in-flight requests die with it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill(proc)
