"""`make dev`: emulator, provisioning, one local origin and a demo drop; Ctrl-C stops it all."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import provision
from devstack.statemachine import reconcile

DEMO_ID = "demo"
DEMO_REGISTRATION_S = 180
DEMO_INVENTORY = 5
DEMO_WINDOW_S = 120
GATEWAY_RESTARTS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and moto bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Child:
    """A child process in its own process group: SIGTERM to the group, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Child":
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.argv, cwd=provision.ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def wait_http(url: str, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early; see {child.log}:\n{_tail(child.log)}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f}s; see {child.log}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def api(base: str, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"X-Operator-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"error": "not_json", "message": raw[:200].decode(errors="replace")}


def demo_spec(now_ms: int) -> dict:
    return {"drop_id": DEMO_ID, "name": "Demo drop",
            "product": {"title": "Alpha SV Jacket", "image_url": "/jacket.svg", "price": 800},
            "inventory": DEMO_INVENTORY, "registration_start": now_ms,
            "registration_end": now_ms + DEMO_REGISTRATION_S * 1000, "purchase_window": DEMO_WINDOW_S}


def build_frontend(dist: Path = provision.DIST) -> None:
    """Build frontend/dist with npm when it is missing and node is installed."""
    if (dist / "index.html").is_file() or os.environ.get("DEVSTACK_SKIP_NPM"):
        return
    if not shutil.which("npm"):
        print("  (node/npm not found: the site is not built; the API still works)")
        return
    print("  building the storefront (npm ci && npm run build) ...", flush=True)
    frontend = provision.ROOT / "frontend"
    for cmd in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "build"]):
        if subprocess.run(cmd, cwd=frontend, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            print(f"  {' '.join(cmd)} failed: the site is not built; the API still works")
            return


class Stack:
    """The running embedded stack."""

    def __init__(self, dev_dir: Path, dev_port: int, moto_port: int) -> None:
        self.dev_dir, self.dev_port, self.moto_port = dev_dir, dev_port, moto_port
        self.base = f"http://127.0.0.1:{dev_port}"
        self.endpoint = provision.endpoint_of(moto_port)
        self.keys = provision.load_secrets(dev_dir)
        self.state: dict = {}
        self.moto: Child | None = None
        self.gateway: Child | None = None

    def _env(self) -> dict[str, str]:
        state = {"endpoint": self.endpoint, "table": provision.TABLE, "audit_bucket": provision.AUDIT_BUCKET, **self.state}
        return {**os.environ, **provision.app_env(state, self.keys), "PYTHONUNBUFFERED": "1",
                "DEVSTACK_DIR": str(self.dev_dir), "DEV_PORT": str(self.dev_port)}

    def start_moto(self) -> None:
        log = self.dev_dir / "moto.log"
        self.moto = Child("moto server", [sys.executable, "-m", "devstack.moto_server", "--port", str(self.moto_port)],
                          self._env(), log).start()
        wait_http(f"{self.endpoint}/moto-api/", 30, self.moto)

    def start_gateway(self) -> None:
        self.gateway = Child("gateway", [sys.executable, "-m", "devstack.gateway", "--port", str(self.dev_port)],
                             self._env(), self.dev_dir / "gateway.log").start()
        self._save()
        wait_http(f"{self.base}/__devstack/health", 30, self.gateway)

    def _save(self) -> None:
        provision.save_state({**self.state, "dev_port": self.dev_port, "moto_port": self.moto_port, "base": self.base,
                              "pids": {"dev": os.getpid(), "moto": self.moto.pid if self.moto else 0,
                                       "gateway": self.gateway.pid if self.gateway else 0}}, self.dev_dir)

    def provision(self) -> None:
        build_frontend()
        self.state = provision.provision_all(self.endpoint)
        self._save()

    def reconcile_and_demo(self) -> None:
        key = self.keys["OPERATOR_KEY"]
        status, listed = api(self.base, "GET", "/api/drops", key)
        drops = listed.get("drops", []) if status == 200 else []
        sfn = provision.client(self.endpoint, "stepfunctions")
        for started in reconcile(sfn, self.state["state_machine_arn"], drops):
            print(f"  reconciled {started['drop_id']}: started {started['name']}")
        if not any(d["drop_id"] == DEMO_ID for d in drops):
            status, body = api(self.base, "POST", "/api/drops", key, demo_spec(int(time.time() * 1000)))
            if status != 201:
                raise RuntimeError(f"creating the demo drop failed: {status} {body}")

    def stop(self) -> None:
        for child in (self.gateway, self.moto):
            if child:
                child.stop()

    def supervise(self, stop: threading.Event) -> int:
        """Restart the gateway if it dies (state lives in the emulator); stop if the emulator dies."""
        restarts = 0
        while not stop.wait(0.5):
            if self.moto and not self.moto.alive():
                print(f"\nthe moto server exited; see {self.moto.log}", file=sys.stderr)
                return 1
            if self.gateway and not self.gateway.alive():
                if restarts >= GATEWAY_RESTARTS:
                    print(f"\nthe gateway keeps exiting; see {self.gateway.log}", file=sys.stderr)
                    return 1
                restarts += 1
                print(f"gateway exited ({self.gateway.proc.returncode}); restarting it ...", flush=True)
                self.start_gateway()
        return 0


def banner(stack: Stack) -> str:
    secrets_file = stack.dev_dir / "secrets.env"
    base = stack.base
    return f"""
  Product drop is running (embedded AWS emulator; state lasts until Ctrl-C).

  Open              {base}/
  Operator key      {secrets_file}  (OPERATOR_KEY=..., mode 600)
  Try the API       curl -s {base}/api/drop/{DEMO_ID}/status
                    curl -s -H "X-Operator-Key: $(grep OPERATOR_KEY {secrets_file} | cut -d= -f2)" {base}/api/drops
  Live events       {base}/events/{DEMO_ID}?token=...  (POST /api/drop/{DEMO_ID}/stream-token)
  Emulator          {stack.endpoint}/moto-api/   (AWS_ENDPOINT_URL={stack.endpoint})
  Operator CLI      .venv/bin/drops status {DEMO_ID} | list | create --opens-in 10s --duration 2m | lottery {DEMO_ID}
                    | winners {DEMO_ID} | executions {DEMO_ID} | reset {DEMO_ID} | reset-all   (drops --help)
  Logs              {stack.dev_dir}/moto.log, {stack.dev_dir}/gateway.log

  Demo drop '{DEMO_ID}': registration open {DEMO_REGISTRATION_S // 60} min, {DEMO_INVENTORY} items, {DEMO_WINDOW_S} s to buy.
  Ctrl-C stops everything.
"""


def main() -> int:
    dev_dir = Path(os.environ.get("DEVSTACK_DIR", provision.DEV_DIR)).resolve()
    dev_dir.mkdir(parents=True, exist_ok=True)
    dev_port = int(os.environ.get("DEV_PORT", 8000))
    if not port_free(dev_port):
        print(f"error: port {dev_port} is in use (is `make dev` already running?). Set DEV_PORT=... to use another.",
              file=sys.stderr)
        return 1
    moto_port = int(os.environ.get("MOTO_PORT", 0)) or 5000
    if not port_free(moto_port):
        moto_port = free_port()
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = Stack(dev_dir, dev_port, moto_port)
    started, code = time.monotonic(), 0
    try:
        print(f"Starting the embedded stack in {dev_dir} ...", flush=True)
        stack.start_moto()
        print(f"  emulator   {stack.endpoint} (moto, Step Functions executing, Lambdas in-process)", flush=True)
        stack.provision()
        stack.start_gateway()
        stack.reconcile_and_demo()
        print(banner(stack), flush=True)
        print(f"  ready in {time.monotonic() - started:.1f} s", flush=True)
        code = stack.supervise(stop)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        print("\nstopping ...", flush=True)
        stopping = time.monotonic()
        stack.stop()
        (dev_dir / "state.json").unlink(missing_ok=True)  # the emulator's state is gone with it
        print(f"stopped in {time.monotonic() - stopping:.1f} s.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
