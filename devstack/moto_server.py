"""Run a moto server with executing Step Functions and in-process Lambdas: python -m devstack.moto_server --port N."""

import argparse
import os
import signal
import sys
import threading
import time

DEFAULT_PORT = 5000


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", DEFAULT_PORT)))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # Step Functions calls Lambda back through http://localhost:$MOTO_PORT
    # (moto/stepfunctions/parser/asl/utils/boto_client.py).
    os.environ["MOTO_PORT"] = str(args.port)
    # In-process handlers see UTC local time, as on AWS Lambda.
    os.environ["TZ"] = "UTC"
    time.tzset()

    from moto.core.config import default_user_config
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from devstack import moto_ext, moto_isolation

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    moto_ext.install()
    moto_isolation.install()  # conditional writes and transactions isolated as in DynamoDB

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(f"devstack moto server ready on http://{args.host}:{args.port}", flush=True)
    stop.wait()
    server.stop()
    print("devstack moto server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
