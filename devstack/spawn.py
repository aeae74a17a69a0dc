"""Run `python -m devstack.dev` as a child (tests, benchmarks): wait until ready, kill every process it left."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devstack import provision

READY = "ready in"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with(marker: str) -> list[int]:
    """Pids whose environment holds marker (KEY=value): the stack's children carry DEVSTACK_DIR=<its dir>."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class DevStack:
    """One embedded stack in dev_dir on free ports; `env` adds or overrides settings (POW_DIFFICULTY, ...)."""

    def __init__(self, dev_dir: Path, env: dict[str, str] | None = None, *, ready_timeout_s: float = 60) -> None:
        self.dev_dir, self.port, self.moto_port = dev_dir, free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = dev_dir / "dev.out"
        self.marker = f"DEVSTACK_DIR={dev_dir}"
        self.env = {**os.environ, "DEVSTACK_DIR": str(dev_dir), "DEV_PORT": str(self.port),
                    "MOTO_PORT": str(self.moto_port), "DEVSTACK_SKIP_NPM": "1", **(env or {})}
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):  # the stack picks its own emulator
            self.env.pop(var, None)
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DevStack":
        with self.out.open("w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "devstack.dev"], cwd=provision.ROOT, env=self.env,
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout_s
        while READY not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.output()[-3000:]
                self.kill()
                raise RuntimeError(f"devstack.dev {'exited' if self.proc.poll() is not None else 'not ready'}:\n{tail}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    @property
    def operator_key(self) -> str:
        return re.search(r"^OPERATOR_KEY=(\S+)", (self.dev_dir / "secrets.env").read_text(), re.M).group(1)

    def kill(self) -> None:
        """SIGKILL the launcher's group and every process that carries this stack's marker."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pid in processes_with(self.marker):  # the emulator and gateway run in process groups of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self) -> "DevStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
