"""Serve the live drop status stream: python -m sse --port N."""
from __future__ import annotations

import argparse
import os

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sse", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SSE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--log-level", default=os.environ.get("SSE_LOG_LEVEL", "warning"))
    args = parser.parse_args(argv)
    # No access log (as infra/sse/run.sh): its lines would carry ?token=, the stream token.
    uvicorn.run("sse.app:app", host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=3, backlog=4096)


if __name__ == "__main__":
    main()
