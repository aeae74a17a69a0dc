"""python -m tests.reliability.api_server --port N --pid-file F: app.py over HTTP, a new process whenever one is killed.

A supervisor binds the port once, imports app.py and builds its service (no connection is open
yet), then forks one API process at a time that serves the inherited listening socket with
Chalice's threaded local server. SIGKILL the pid written to the pid file: the requests that
process had accepted die with it; new connections wait in the socket's backlog until the next
fork accepts them, as behind a load balancer. A restart costs a fork, not a Python start-up
(gunicorn's --preload does the same).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so no server outlives a crashed test."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _local_app():
    """app.py's Chalice app with a per-thread current_request, as chalice.local.create_local_server makes it."""
    from chalice.local import CustomLocalChalice, LocalChalice

    import app

    CustomLocalChalice.__bases__ = (LocalChalice, app.app.__class__)
    app.app.__class__ = CustomLocalChalice
    return app.app


def _serve(chalice_app, listener: socket.socket) -> None:
    from chalice.config import Config
    from chalice.local import LocalDevServer, ThreadedHTTPServer

    class InheritedSocketServer(ThreadedHTTPServer):
        def __init__(self, address, handler) -> None:
            super().__init__(address, handler, bind_and_activate=False)
            self.socket.close()
            self.socket = listener
            self.server_name, self.server_port = address

    host, port = listener.getsockname()[:2]
    LocalDevServer(chalice_app, Config.create(), host, port, server_cls=InheritedSocketServer).serve_forever()


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(pid))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid-file", type=Path, required=True, help="holds the pid of the serving process")
    args = parser.parse_args(argv)
    _die_with_parent()

    from chalicelib import bootstrap

    chalice_app = _local_app()
    bootstrap.service()  # settings, signer and a boto3 client (its connection pool still empty)
    listener = socket.create_server((args.host, args.port), backlog=256)
    child = 0

    def stop(*_: object) -> None:
        if child:
            os.kill(child, signal.SIGKILL)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"api supervisor on http://{args.host}:{args.port}", flush=True)
    while True:
        child = os.fork()
        if child == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with_parent()
            try:
                _serve(chalice_app, listener)
            finally:
                os._exit(1)
        _write_pid(args.pid_file, child)
        os.waitpid(child, 0)


if __name__ == "__main__":
    sys.exit(main())
