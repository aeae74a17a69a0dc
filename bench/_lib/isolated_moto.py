"""python -m bench._lib.isolated_moto --port N: a moto server with DynamoDB's isolation and fast transactions.

moto 5.2.5 under concurrent requests is not isolated and its TransactWriteItems deep-copies whole
tables; devstack/moto_isolation.py fixes both (one lock, item-level rollback). This is that patch in a
plain moto server (no Step Functions), for bench/storm.py; bench/bots.py installs it in-process.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading


from devstack.moto_isolation import install  # one implementation for devstack, tests and benches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    install()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"isolated moto server ready on http://127.0.0.1:{args.port}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
