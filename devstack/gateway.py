"""One local origin (ASGI): the site from S3, /api/* through Chalice's LocalGateway, /events/* from sse.app.

Run on its own with `python -m devstack.gateway` (reads .dev/state.json and .dev/secrets.env).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter, to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from devstack import provision

LOG = logging.getLogger("devstack.gateway")
API_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
DEFAULT_PORT = 8000
MAX_BODY = 1024 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=NO_STORE)


def _local_gateway(chalice_app: Any) -> Any:
    """chalice.local.LocalGateway that reports the caller's address as sourceIp, as API Gateway does."""
    from chalice.config import Config
    from chalice.local import LocalGateway

    class SourceIpGateway(LocalGateway):
        source_ip = "127.0.0.1"

        def _generate_lambda_event(self, *args: Any, **kwargs: Any) -> dict:  # chalice 1.34 private hook
            event = super()._generate_lambda_event(*args, **kwargs)
            event["requestContext"]["identity"]["sourceIp"] = self.source_ip
            return event

    return SourceIpGateway(chalice_app, Config.create(chalice_stage="dev", lambda_timeout=60,
                                                      lambda_memory_size=512, function_name="api_handler"))


class ApiGateway:
    """API Gateway's role: Chalice's LocalGateway, one request at a time (Chalice keeps current_request on the app)."""

    def __init__(self, chalice_app: Any) -> None:
        self._gateway = _local_gateway(chalice_app)
        self._limiter = CapacityLimiter(1)

    def _call(self, method: str, path: str, headers: dict[str, str], body: bytes | None, ip: str) -> Response:
        from chalice.local import ForbiddenError, LocalGatewayException

        self._gateway.source_ip = ip  # safe: one request at a time
        try:
            result = self._gateway.handle_request(method=method, path=path, headers=headers, body=body)
        except ForbiddenError:  # API Gateway's "Missing Authentication Token" 403 means: no such route
            return _error(404, "not_found", f"No route for {method} {path.split('?')[0]}.")
        except LocalGatewayException as exc:
            return _error(exc.CODE or 500, "gateway_error", (exc.body or b"").decode(errors="replace")[:200])
        return _to_response(result)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "payload_too_large", "The request body is too large.")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        ip = request.client.host if request.client else "127.0.0.1"
        headers = {k: v for k, v in request.headers.items() if k != "x-forwarded-for"}
        headers["x-forwarded-for"] = ", ".join(filter(None, [request.headers.get("x-forwarded-for"), ip]))
        return await to_thread.run_sync(self._call, request.method, path, headers, body or None, ip,
                                        limiter=self._limiter)


def _to_response(result: dict) -> Response:
    """A Chalice (API Gateway proxy) response dict -> Starlette response; Chalice's own errors become our JSON."""
    status = result["statusCode"]
    headers = {k: v for k, v in (result.get("headers") or {}).items() if k.lower() != "content-length"}
    body = result.get("body") or b""
    if result.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body)
    if status >= 400 and isinstance(body, str) and body.startswith('{"Code"'):
        try:
            code = json.loads(body)
            return _error(status, _snake(code.get("Code", "error")), code.get("Message", ""))
        except ValueError:
            pass
    response = Response(content=body, status_code=status, headers=headers)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.append(name, value)
    return response


def _snake(code: str) -> str:
    """'MethodNotAllowedError' -> 'method_not_allowed'."""
    code = code.removesuffix("Error")
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(code))


class Site:
    """The static site: objects of the private S3 bucket (as CloudFront would fetch them), or frontend/dist."""

    def __init__(self, state: dict, dist: Path = provision.DIST) -> None:
        self._bucket = state.get("bucket") if state.get("site_files") else None
        self._s3 = provision.client(state["endpoint"], "s3") if self._bucket else None
        self._dist = dist
        self._audit_bucket = state.get("audit_bucket")
        self._audit_s3 = provision.client(state["endpoint"], "s3") if self._audit_bucket else None

    def _read_audit(self, key: str) -> tuple[bytes, str, dict] | None:
        """/audits/* from the audit bucket, as the CloudFront behaviour of that path does."""
        if self._audit_s3 is None:
            return None
        try:
            obj = self._audit_s3.get_object(Bucket=self._audit_bucket, Key=key)
        except self._audit_s3.exceptions.NoSuchKey:
            return None
        return obj["Body"].read(), obj["ContentType"], {"ETag": obj["ETag"], "Cache-Control": obj.get("CacheControl") or "no-cache"}

    def _read(self, key: str) -> tuple[bytes, str, dict] | None:
        if self._s3 is not None:
            try:
                obj = self._s3.get_object(Bucket=self._bucket, Key=key)
            except self._s3.exceptions.NoSuchKey:
                return None
            extra = {"ETag": obj["ETag"], "Cache-Control": obj.get("CacheControl") or "no-cache"}
            return obj["Body"].read(), obj["ContentType"], extra
        path = (self._dist / key).resolve()
        if not path.is_relative_to(self._dist.resolve()) or not path.is_file():
            return None
        return path.read_bytes(), provision.content_type(path), {"Cache-Control": "no-cache"}

    async def handle(self, request: Request) -> Response:
        key = request.url.path.lstrip("/")
        if not key or key.endswith("/"):
            key += "index.html"
        if key.startswith("audits/"):
            found = await to_thread.run_sync(self._read_audit, key)
            if found is None:
                return Response("Not found", 404, media_type="text/plain")
        else:
            found = await to_thread.run_sync(self._read, key)
        if found is None and "." not in key.rsplit("/", 1)[-1]:
            found = await to_thread.run_sync(self._read, "index.html")  # client-side routes
        if found is None:
            if key == "index.html":
                return Response("<h1>Storefront not built</h1><p>Run <code>cd frontend &amp;&amp; npm ci &amp;&amp; "
                                "npm run build</code> and restart <code>make dev</code>.</p>", 200, media_type="text/html")
            return Response("Not found", 404, media_type="text/plain")
        body, ctype, extra = found
        if extra.get("ETag") and request.headers.get("if-none-match") == extra["ETag"]:
            return Response(status_code=304, headers=extra)
        if request.method == "HEAD":
            return Response(status_code=200, headers={**extra, "Content-Length": str(len(body))}, media_type=ctype)
        return Response(body, 200, headers=extra, media_type=ctype)


def _sse_app() -> ASGIApp:
    """sse.app:app, or a stand-in answering 503 JSON while it is not there."""
    try:
        from sse.app import app as sse  # noqa: PLC0415 - imported after the environment is set
    except ImportError as exc:
        LOG.warning("sse.app:app not available (%s); /events answers 503", exc)

        async def unavailable(request: Request) -> Response:
            return _error(503, "unavailable", "Live updates are not available in this build.")

        return Starlette(routes=[Route("/events/{rest:path}", unavailable)])
    return sse


class Origin:
    """Route by path like the CloudFront distribution: /events/* -> SSE, everything else -> API or site."""

    def __init__(self, main: ASGIApp, events: ASGIApp) -> None:
        self.main, self.events = main, events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.events(scope, receive, send)  # the SSE app may open clients on startup
        elif scope["path"] == "/events" or scope["path"].startswith("/events/"):
            await self.events(scope, receive, send)
        else:
            await self.main(scope, receive, send)


def build_app(state: dict, keys: dict[str, str], *, dist: Path = provision.DIST) -> Origin:
    """The whole origin, with the process environment set for app.py and sse.app."""
    os.environ.update(provision.app_env(state, keys))
    from app import app as chalice_app  # noqa: PLC0415 - reads the environment set above

    api, site = ApiGateway(chalice_app), Site(state, dist)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers=NO_STORE)

    main = Starlette(routes=[
        Route("/__devstack/health", health),
        Route("/api", api.handle, methods=API_METHODS),
        Route("/api/{rest:path}", api.handle, methods=API_METHODS),
        Route("/{path:path}", site.handle, methods=["GET", "HEAD"]),
    ])
    return Origin(main, _sse_app())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("DEV_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEV_PORT", DEFAULT_PORT)))
    parser.add_argument("--dev-dir", type=Path, default=Path(os.environ.get("DEVSTACK_DIR", provision.DEV_DIR)))
    args = parser.parse_args(argv)
    try:
        state = provision.load_state(args.dev_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = provision.load_secrets(args.dev_dir)
    import uvicorn

    config = uvicorn.Config(build_app(state, keys), host=args.host, port=args.port, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    print(f"devstack gateway on http://{args.host}:{args.port}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
