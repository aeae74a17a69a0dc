#!/bin/bash
# Lambda Web Adapter entry point (Handler: run.sh): serve sse.app on the port the adapter polls.
exec python -m uvicorn sse.app:app --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log
