"""Live drop status over Server-Sent Events: GET /events/{drop_id}?token=<stream token>.

Events (each with an id "<drop version>.<me version>", content hashes that make resume exact):
  drop       drop_view(drop, now), sent when it changes (server_time does not count)
  me         shopper_view(...) of the token's shopper only, sent when it changes
  heartbeat  {"server_time"} every SSE_HEARTBEAT_S (15 s)
A reconnect with Last-Event-ID gets only what changed since that id. The stream ends after
SSE_MAX_DURATION_S (600 s) and the browser reconnects after `retry:` (SSE_RETRY_MS, 2000 ms).

Reads scale with drops, not viewers: all streams of a drop in this process share one poller
(sse.hub) that reads the drop every SSE_POLL_MS (500 ms). A shopper's own record is read when
the drop's phase or round changes, and otherwise every SSE_ME_REFRESH_S (10 s, jittered): one
GetItem per stream, or, when a drop has at least SSE_ROSTER_MIN_STREAMS (50) streams here and at
most 8 entries per stream (and SSE_ROSTER_MAX, 20,000, in all), one shared read of all its
participants per phase/round change or refresh period, which every stream then looks up.

Running on AWS: this ASGI app runs behind the AWS Lambda Web Adapter layer on a function URL
with InvokeMode RESPONSE_STREAM. Command: `python -m uvicorn sse.app:app --host 0.0.0.0 --port $PORT`
(or `python -m sse --port $PORT`), with AWS_LWA_INVOKE_MODE=response_stream, PORT=8080,
DROPS_TABLE, SIGNING_KEY (or SIGNING_KEY_SECRET_ID), OPERATOR_KEY (or OPERATOR_KEY_SECRET_ID),
ALLOWED_ORIGIN; the function timeout must exceed SSE_MAX_DURATION_S. Locally: `python -m sse --port N`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chalicelib import bootstrap
from chalicelib.domain.errors import Forbidden, Unauthorized
from chalicelib.service import shopper_view
from sse.hub import STORE_ERRORS, DropHub, Hubs, now_ms, version

log = logging.getLogger("drops.sse")
VERSION = re.compile(r"^[0-9a-f]{12}$")
JSON_HEADERS = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class SseConfig:
    poll_ms: int = 500
    max_duration_s: float = 600
    heartbeat_s: float = 15
    me_refresh_s: float = 10
    retry_ms: int = 2000
    read_concurrency: int = 16
    roster_min_streams: int = 50
    roster_max: int = 20_000
    allowed_origin: str = ""

    @classmethod
    def from_env(cls) -> "SseConfig":
        env = os.environ.get
        return cls(poll_ms=int(env("SSE_POLL_MS", 500)), max_duration_s=float(env("SSE_MAX_DURATION_S", 600)),
                   heartbeat_s=float(env("SSE_HEARTBEAT_S", 15)), me_refresh_s=float(env("SSE_ME_REFRESH_S", 10)),
                   retry_ms=int(env("SSE_RETRY_MS", 2000)), read_concurrency=int(env("SSE_READ_CONCURRENCY", 16)),
                   roster_min_streams=int(env("SSE_ROSTER_MIN_STREAMS", 50)),
                   roster_max=int(env("SSE_ROSTER_MAX", 20_000)),
                   allowed_origin=env("ALLOWED_ORIGIN", ""))


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers={**JSON_HEADERS, **(headers or {})})


def _resume_point(header: str | None) -> tuple[str, str]:
    """(drop version, me version) the client already has, from Last-Event-ID; unknown parts are ''."""
    parts = (header or "").strip().split(".")
    if len(parts) != 2:
        return "", ""
    return tuple(p if VERSION.match(p) else "" for p in parts)  # type: ignore[return-value]


def _event(name: str, data: dict, drop_ver: str, me_ver: str) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=name, id=f"{drop_ver}.{me_ver}")


class _Stream(EventSourceResponse):
    """An event stream that lets go of its drop's hub however the response ends."""

    def __init__(self, hubs: Hubs, hub: DropHub, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._hubs, self._hub = hubs, hub

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hubs.release(self._hub)


async def _events(hubs: Hubs, hub: DropHub, shopper_id: str, resume: tuple[str, str],
                  cfg: SseConfig) -> AsyncIterator[ServerSentEvent]:
    """The event loop of one stream: wake on a drop change, a refresh, a deadline or a heartbeat."""
    sent_drop, sent_me = resume
    start = time.monotonic()
    end = start + cfg.max_duration_s
    next_heartbeat = start + cfg.heartbeat_s
    next_read, epoch, participant, known = start, None, None, False
    yield ServerSentEvent(comment="drop status stream", retry=cfg.retry_ms)
    while True:
        changed = hub.changed  # taken before reading state: a change after this wakes the wait below
        snap = hub.snapshot
        if snap is None or hub.missing:
            return  # the drop is gone; the client reconnects and gets a 404
        if snap.version != sent_drop:
            sent_drop = snap.version
            yield _event("drop", snap.view, sent_drop, sent_me)
        mono = time.monotonic()
        if snap.epoch != epoch or mono >= next_read:
            try:
                participant = await hub.participant(shopper_id, snap.epoch, first=not known)
                known, epoch, next_read = True, snap.epoch, mono + cfg.me_refresh_s * random.uniform(0.8, 1.2)
            except STORE_ERRORS as exc:
                hubs.stats.read_errors += 1
                log.warning("participant read failed", extra={"drop_id": hub.drop_id, "error": type(exc).__name__})
                next_read = mono + 1
            snap = hub.snapshot or snap
        now = now_ms()
        me = shopper_view(snap.drop, participant, now, None)
        me_ver = version(me)
        if known and me_ver != sent_me:  # never guess "not registered" from a failed read
            sent_me = me_ver
            yield _event("me", me, sent_drop, sent_me)
        mono = time.monotonic()
        if mono >= next_heartbeat:
            next_heartbeat = mono + cfg.heartbeat_s
            yield _event("heartbeat", {"server_time": now}, sent_drop, sent_me)
        wake = min(end, next_heartbeat, next_read)
        if me.get("purchase_deadline") and me["purchase_deadline"] > now:  # WINNER -> EXPIRED needs no write
            wake = min(wake, mono + (me["purchase_deadline"] - now) / 1000 + 0.01)
        if mono >= end:
            return
        try:
            await asyncio.wait_for(changed.wait(), timeout=max(0.0, wake - time.monotonic()))
        except TimeoutError:
            pass


def create_app(cfg: SseConfig | None = None) -> Starlette:
    cfg = cfg or SseConfig.from_env()
    hubs = Hubs(lambda: bootstrap.service().store, poll_ms=cfg.poll_ms, read_concurrency=cfg.read_concurrency,
                me_refresh_s=cfg.me_refresh_s, roster_min_streams=cfg.roster_min_streams, roster_max=cfg.roster_max)

    async def events(request: Request):
        drop_id = request.path_params["drop_id"]
        try:
            claims = bootstrap.service().signer.verify("stream", request.query_params.get("token"))
        except Unauthorized as exc:
            return _error(401, "invalid_token", exc.message)
        shopper_id = claims.get("sub")
        if claims.get("drop") != drop_id or not isinstance(shopper_id, str) or not shopper_id:
            return _error(401, "invalid_token", "The token is not valid for this drop.")
        hub = hubs.acquire(drop_id)
        try:
            snap = await hub.ready()
        except BaseException:
            hubs.release(hub)
            raise
        if snap is None:
            hubs.release(hub)
            if hub.missing:
                return _error(404, "drop_not_found", f"No drop {drop_id!r}.")
            return _error(503, "store_unavailable", "The store is busy; retry shortly.", {"Retry-After": "2"})
        stream = _events(hubs, hub, shopper_id, _resume_point(request.headers.get("last-event-id")), cfg)
        return _Stream(hubs, hub, stream, ping=0, headers={"Cache-Control": "no-store"})

    async def stats(request: Request):
        try:
            bootstrap.service().check_operator(request.headers.get("x-operator-key"))
        except Forbidden as exc:
            return _error(403, exc.code, exc.message)
        return JSONResponse({**hubs.stats.as_dict(len(hubs)), "time": time.time()}, headers=JSON_HEADERS)

    async def not_found(request: Request, exc: HTTPException):
        code = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else "bad_request"
        return _error(exc.status_code, code, str(exc.detail))

    async def crash(request: Request, exc: Exception):  # the one catch-all: log it, never leak it
        log.exception("unhandled error", extra={"path": request.url.path})
        return _error(500, "internal_error", "Something went wrong on our side.")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        hubs.stop_all()

    middleware = []
    if cfg.allowed_origin:
        middleware.append(Middleware(CORSMiddleware, allow_origins=[cfg.allowed_origin], allow_methods=["GET"],
                                     allow_headers=["Last-Event-ID", "Cache-Control"], max_age=600))
    app = Starlette(
        routes=[Route("/events/_stats", stats, methods=["GET"]), Route("/events/{drop_id}", events, methods=["GET"])],
        middleware=middleware, exception_handlers={HTTPException: not_found, Exception: crash}, lifespan=lifespan,
    )
    app.state.hubs = hubs
    return app


app = create_app()
