"""HTTP routes and Step Functions task Lambdas: parse, call one use case, map errors."""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

from aws_lambda_powertools import Logger
from chalice import Chalice, Response

from chalicelib import audit, bootstrap, bots, fingerprint, pow as pow_, ratelimit
from chalicelib.domain.errors import BotSuspected, DropError, InvalidInput, PayloadTooLarge, Unauthorized
from chalicelib.schemas import CreateDropIn, PurchaseIn, RegisterIn, parse

app = Chalice(app_name="product-drop")
app.api.binary_types = []
logger = Logger(service="product-drop")
MAX_BODY = 16 * 1024
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(body=json.dumps({"error": code, "message": message}), status_code=status, headers={**JSON, **(headers or {})})


def _body() -> Any:
    raw = app.current_request.raw_body or b""
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY} bytes.")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The body must be JSON.") from exc


def _bearer() -> str | None:
    header = app.current_request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _shopper() -> str:
    return bootstrap.service().shopper(_bearer())


def _operator() -> None:
    bootstrap.service().check_operator(app.current_request.headers.get("x-operator-key"))


def _idempotency_key() -> str:
    """The optional Idempotency-Key header: 1-128 visible ASCII characters ("" when absent)."""
    key = app.current_request.headers.get("idempotency-key")
    if key is None:
        return ""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 128 visible ASCII characters.")
    return key


def _client_ip() -> str:
    ctx = app.current_request.context or {}
    return (ctx.get("identity") or {}).get("sourceIp") or "unknown"


def route(path: str, methods: list[str], status: int = 200) -> Callable:
    """A Chalice route whose domain errors become JSON 4xx and anything else a logged 500."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Response:
            headers: dict[str, str] = {}
            try:
                body = fn(*args, **kwargs)
                if isinstance(body, tuple):  # (body, extra response headers)
                    body, headers = body
            except DropError as exc:
                if exc.status >= 500:
                    logger.warning("store busy", extra={"path": path, "error": exc.code})
                headers = {"Retry-After": str(exc.details.get("retry_after", 1))} if exc.status in (429, 503) else {}
                if isinstance(exc, Unauthorized):
                    headers["WWW-Authenticate"] = "Bearer"
                return _error(exc.status, exc.code, exc.message, headers)
            except Exception:  # the one catch-all: log it, never leak it
                logger.exception("unhandled error", extra={"path": path})
                return _error(500, "internal_error", "Something went wrong on our side.")
            return Response(body=json.dumps(body), status_code=status, headers={**JSON, **headers})

        return app.route(path, methods=methods, cors=False)(handler)

    return wrap


# -- shoppers ------------------------------------------------------------------------
@route("/api/session", ["POST"], status=201)
def create_session() -> dict:
    svc = bootstrap.service()
    ratelimit.enforce(svc.store, svc.settings, "session", ip=_client_ip(), now_ms=svc.clock())
    return svc.new_session()


@route("/api/drop/{drop_id}/status", ["GET"])
def drop_status(drop_id: str) -> dict:
    return bootstrap.service().status(drop_id)


@route("/api/drop/{drop_id}/me", ["GET"])
def my_status(drop_id: str) -> dict:
    svc = bootstrap.service()
    return svc.me(drop_id, svc.shopper(_bearer()))


@route("/api/drop/{drop_id}/audit", ["GET"])
def drop_audit(drop_id: str) -> dict:
    return bootstrap.service().audit(drop_id)


@route("/api/drop/{drop_id}/beacon", ["GET"])
def drop_beacon(drop_id: str) -> dict:
    svc = bootstrap.service()
    return audit.beacon_view(svc.store, svc.drop(drop_id, fresh=True))


@route("/api/pow/challenge", ["GET"])
def pow_challenge() -> dict:
    svc = bootstrap.service()
    shopper = svc.shopper(_bearer())
    ratelimit.enforce(svc.store, svc.settings, "challenge", ip=_client_ip(), shopper=shopper, now_ms=svc.clock())
    drop_id = (app.current_request.query_params or {}).get("drop_id", "")
    svc.drop(drop_id)
    cfg = svc.settings
    return pow_.issue_challenge(svc.signer, shopper, drop_id, difficulty=cfg.pow_difficulty,
                                ttl_s=cfg.challenge_ttl_s, now_ms=svc.clock())


@route("/api/drop/{drop_id}/register", ["POST"], status=201)
def register(drop_id: str) -> tuple[dict, dict]:
    svc = bootstrap.service()
    cfg = svc.settings
    shopper = svc.shopper(_bearer())
    ratelimit.enforce(svc.store, cfg, "register", ip=_client_ip(), shopper=shopper, now_ms=svc.clock())
    req = parse(RegisterIn, _body())
    idempotency_key = _idempotency_key()
    svc.drop(drop_id)
    log = {"drop_id": drop_id, "shopper_id": shopper, "ip": _client_ip()}
    try:
        issued = pow_.verify_solution(svc.signer, req.pow.challenge, req.pow.nonce, shopper_id=shopper,
                                      drop_id=drop_id, now_ms=svc.clock())
    except BotSuspected as exc:  # the reason is for operators, never for the client
        logger.warning("bot suspected", extra={**log, "layer": "pow", "reason": exc.message})
        raise BotSuspected() from exc
    fp = fingerprint.check(req.fingerprint, api_key=cfg.fingerprint_api_key, api_url=cfg.fingerprint_api_url,
                           now_ms=svc.clock())
    signals = req.signals
    trust = bots.assess(pow_valid=True, elapsed_ms=svc.clock() - issued, tried=req.pow.nonce + 1,
                        fp_present=bool(fp.visitor_id), fp_confidence=fp.confidence, fp_verified=fp.verified,
                        fp_bot=fp.bot, fp_reason=fp.reason, interactions=signals.interactions if signals else 0,
                        page_ms=signals.elapsed_ms if signals else 0, max_hps=cfg.pow_max_hps)
    if not trust.passes(cfg.trust_threshold):
        logger.warning("bot suspected", extra={**log, "layer": "score", "trust": trust.to_dict()})
        raise BotSuspected()
    entry = svc.register(drop_id, shopper, tickets=req.tickets, rollover=req.rollover, trust=trust.to_dict(),
                         device=fp.visitor_id, idempotency_key=idempotency_key)
    replayed = entry.pop("replayed", False)  # the same 201, plus the header Stripe uses for replays
    return {"entry": entry}, {"Idempotent-Replayed": "true"} if replayed else {}


@route("/api/drop/{drop_id}/stream-token", ["POST"], status=201)
def stream_token(drop_id: str) -> dict:
    svc = bootstrap.service()
    return svc.stream_token(drop_id, svc.shopper(_bearer()))


@route("/api/drop/{drop_id}/purchase/start", ["POST"])
def purchase_start(drop_id: str) -> dict:
    svc = bootstrap.service()
    return svc.start_purchase(drop_id, svc.shopper(_bearer()))


@route("/api/drop/{drop_id}/purchase", ["POST"])
def purchase(drop_id: str) -> dict:
    svc = bootstrap.service()
    shopper = svc.shopper(_bearer())
    req = parse(PurchaseIn, _body())
    return svc.purchase(drop_id, shopper, req.purchase_token)


# -- operators -----------------------------------------------------------------------
@route("/api/drops", ["GET"])
def list_drops() -> dict:
    _operator()
    return {"drops": bootstrap.service().list_drops()}


@route("/api/drops", ["POST"], status=201)
def create_drop() -> dict:
    _operator()
    spec = parse(CreateDropIn, _body()).model_dump()
    return bootstrap.service().create_drop(spec)


@route("/api/drop/{drop_id}/lottery", ["POST"])
def lottery_now(drop_id: str) -> dict:
    _operator()
    return bootstrap.service().lottery_now(drop_id)


@route("/api/drop/{drop_id}/retry", ["POST"])
def retry_failed(drop_id: str) -> dict:
    _operator()
    return bootstrap.service().retry_failed(drop_id)


@route("/api/drop/{drop_id}/beacon", ["PUT"])
def name_beacon(drop_id: str) -> dict:
    _operator()
    svc = bootstrap.service()
    return audit.put_beacon(svc.store, svc.drop(drop_id, fresh=True), _body(), svc.clock())


@route("/api/drop/{drop_id}/participants", ["GET"])
def drop_participants(drop_id: str) -> dict:
    """Operator: counts by status, trust-score histogram, one page of entries (?status=&limit=&offset=)."""
    _operator()
    from chalicelib import operator

    svc, query = bootstrap.service(), app.current_request.query_params or {}
    statuses = operator.parse_statuses(query.get("status"))
    limit, offset = operator.parse_page(query.get("limit"), query.get("offset"))
    drop = svc.drop(drop_id, fresh=True)
    return operator.participants_summary(drop, svc.store.participants(drop_id), svc.clock(),
                                         statuses=statuses, limit=limit, offset=offset)


@route("/api/drop/{drop_id}", ["DELETE"])
def reset_drop(drop_id: str) -> dict:
    _operator()
    return bootstrap.service().reset_drop(drop_id)


# -- Step Functions tasks ---------------------------------------------------------------
def _task(event: dict) -> str:
    drop_id = event.get("drop_id") if isinstance(event, dict) else None
    if not isinstance(drop_id, str):
        raise InvalidInput("event.drop_id is required")
    return drop_id


@app.lambda_function(name="drop_tick")
def drop_tick(event: dict, context: Any) -> dict:
    return bootstrap.service().tick(_task(event))


@app.lambda_function(name="drop_run_lottery")
def drop_run_lottery(event: dict, context: Any) -> dict:
    return bootstrap.service().run_lottery(_task(event))


@app.lambda_function(name="drop_promote")
def drop_promote(event: dict, context: Any) -> dict:
    return bootstrap.service().promote(_task(event))


@app.lambda_function(name="drop_complete")
def drop_complete(event: dict, context: Any) -> dict:
    return bootstrap.service().complete(_task(event))


@app.lambda_function(name="drop_mark_failed")
def drop_mark_failed(event: dict, context: Any) -> dict:
    error = event.get("error") if isinstance(event, dict) else None
    return bootstrap.service().mark_failed(_task(event), json.dumps(error)[:500] if error else "unknown")
