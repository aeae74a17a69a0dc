"""Run `python -m devstack.dev` as a child (tests, benchmarks): wait until ready, kill every process it left."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack import provision
from devstack.dev import free_port

__all__ = ["DevStack", "free_port", "processes_with"]
READY = "ready in"


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
            exited = self.proc.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self.output()[-3000:]
                self.kill()
                raise RuntimeError(f"devstack.dev {'exited' if exited else 'not ready'}:\n{tail}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    @property
    def operator_key(self) -> str:
        return provision.read_env_file(self.dev_dir / "secrets.env")["OPERATOR_KEY"]

    def stop(self, timeout: float = 20) -> list[int]:
        """Ctrl-C, as an operator would; returns the pids still alive 10 s later (then killed)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # devstack.dev stops the gateway and moto on Ctrl-C
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while (left := processes_with(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.kill()
        return left

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
