"""CORS never opens the API to every origin, big bodies get 413, and no secret reaches the logs."""
from __future__ import annotations

import io
import json
import logging

import pytest

import app as app_module

EVIL = "https://evil.example"


def _body_routes() -> list[tuple[str, str]]:
    """(method, path) of every operation docs/openapi.yaml gives a request body."""
    import yaml

    from tests.security.wsgi import SPEC

    paths = yaml.safe_load(SPEC.read_text())["paths"]
    return [(m.upper(), p) for p, ops in paths.items() for m, op in ops.items() if "requestBody" in op]


BODY_ROUTES = _body_routes()


def _concrete(path: str) -> str:
    return path.replace("{drop_id}", "jacket")


def test_every_route_is_declared_without_cors():
    for path, methods in app_module.app.routes.items():
        for method, entry in methods.items():
            assert not entry.cors, f"{method} {path} declares CORS"


@pytest.mark.parametrize("allowed", ["", "https://shop.example"])
def test_no_route_answers_any_origin(api, monkeypatch, allowed):
    from chalicelib import bootstrap

    if allowed:
        monkeypatch.setenv("ALLOWED_ORIGIN", allowed)
        bootstrap.reset()
    from chalice.config import Config
    from chalice.local import LocalGateway

    gateway = LocalGateway(app_module.app, Config.create())
    api.create_drop()
    token, _ = api.session()
    for path, methods in app_module.app.routes.items():
        for method in [*methods, "OPTIONS"]:
            for origin in (EVIL, "null", allowed or "https://shop.example"):
                headers = {"origin": origin, "access-control-request-method": "POST"}
                if method == "OPTIONS":  # chalice.test cannot parse a body-less preflight reply
                    raw = gateway.handle_request("OPTIONS", _concrete(path), headers, b"")
                    got = {k.lower(): v for k, v in raw["headers"].items()}
                else:
                    got = api.call(method, _concrete(path), token=token, headers=headers).headers
                acao = got.get("access-control-allow-origin")
                assert acao != "*", (method, path)
                assert acao is None or (allowed and acao == allowed), (method, path, origin, acao)
                assert got.get("access-control-allow-credentials") is None or acao == allowed


def test_every_route_that_reads_a_body_is_in_the_413_test():
    import inspect

    reads_body = {(m, p) for p, ms in app_module.app.routes.items() for m, entry in ms.items()
                  if "_body()" in inspect.getsource(inspect.unwrap(entry.view_function))}
    assert set(BODY_ROUTES) == reads_body and len(reads_body) == 4


@pytest.mark.parametrize("method,path", BODY_ROUTES)
def test_bodies_over_the_limit_get_413(api, method, path):
    api.create_drop()
    token, _ = api.session()
    big = json.dumps({"pad": "x" * app_module.MAX_BODY}).encode()
    res = api.call(method, _concrete(path), token=token, operator=True, raw=big)
    assert res.status == 413 and res.body == {"error": "payload_too_large", "message": res.body["message"]}
    edge = b" " * app_module.MAX_BODY  # exactly at the limit is not "too large"
    assert api.call(method, _concrete(path), token=token, operator=True, raw=edge).status != 413


def test_no_secret_or_token_reaches_the_logs(api, env, caplog, capsys):
    from chalicelib.domain.errors import TransientStoreError
    from chalicelib import bootstrap

    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    seen: list[str] = []
    try:
        api.create_drop(inventory=1)
        tokens = [api.session()[0] for _ in range(3)]
        for token in tokens:
            assert api.register(token).status == 201
            seen.append(api.call("POST", "/api/drop/jacket/stream-token", token=token).body["token"])
        api.draw()
        winner = next(t for t in tokens if api.me(t)["status"] == "WINNER")
        res, ptoken = api.buy(winner)
        assert res.status == 200
        seen.append(ptoken)
        api.call("GET", "/api/drops", headers={"x-operator-key": "guess-" + env["OPERATOR_KEY"]})
        api.call("GET", "/api/drop/jacket/me", token=winner[:-3] + "abc")
        svc = bootstrap.service()
        original = svc.store.get_participant

        def busy(*a, **k):
            raise TransientStoreError("busy")

        svc.store.get_participant = busy  # one 503 and one 500 path, both logged
        api.call("GET", "/api/drop/jacket/me", token=winner)
        svc.store.get_participant = lambda *a, **k: 1 / 0
        assert api.call("GET", "/api/drop/jacket/me", token=winner).status == 500
        svc.store.get_participant = original
    finally:
        logging.getLogger().removeHandler(handler)
    out = capsys.readouterr()
    logs = "\n".join([caplog.text, stream.getvalue(), out.out, out.err])
    assert "unhandled error" in logs  # the capture does see the app's logs
    secrets_ = {"SIGNING_KEY": env["SIGNING_KEY"], "OPERATOR_KEY": env["OPERATOR_KEY"]}
    secrets_.update({f"token{i}": t for i, t in enumerate(tokens + seen)})
    for name, value in secrets_.items():
        for part in {value, value.split(".")[-1]} if "." in value else {value}:
            assert part not in logs, f"{name} leaked into the logs"
    assert "Bearer " not in logs


def test_lone_surrogates_and_odd_text_in_bodies_are_4xx_not_500(api):
    """JSON may carry "\\ud800" (a lone surrogate) or non-ASCII text: refused, never a crash."""
    api.create_drop()
    token, _ = api.session()
    challenge = api.challenge(token)
    odd = ["\ud800", "é", "\x00", "\U0001f600" * 10]
    bodies = []
    for text in odd:
        bodies += [
            ("/api/drop/jacket/register", {"pow": {"challenge": {**challenge, "signature": text}, "nonce": 1}}),
            ("/api/drop/jacket/register", {"pow": {"challenge": {**challenge, "salt": text}, "nonce": 1}}),
            ("/api/drop/jacket/purchase", {"purchase_token": text}),
            ("/api/drop/jacket/purchase", {"purchase_token": f"{text}.{text}.{text}"}),
            ("/api/drops", {"name": text, "inventory": 1, "product": {"title": text, "price": 1},
                            "registration_start": 0, "registration_end": 1, "purchase_window": 1}),
        ]
    for path, body in bodies:
        raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as an escape
        res = api.call("POST", path, token=token, operator=True, raw=raw)
        assert res.status < 500, (path, body, res.status, res.raw)
        if path != "/api/drops":  # a drop may well be named "é"; pow and tokens must refuse all of these
            assert 400 <= res.status < 500 and set(res.body) == {"error", "message"}, (path, body, res.raw)


def test_the_sse_server_never_logs_stream_tokens_even_at_info_level(tmp_path):
    """Stream tokens travel in the query string (EventSource sends no headers): access logs would keep them."""
    import os
    import secrets

    import httpx

    from chalicelib.tokens import Signer
    from tests.reliability import servers

    key = secrets.token_hex(32)
    genuine = Signer(key).issue("stream", {"sub": "shp_a", "drop": "jacket"}, ttl_s=60)
    forged = Signer(secrets.token_hex(32)).issue("stream", {"sub": "shp_a", "drop": "jacket"}, ttl_s=60)
    env = {**os.environ, "SIGNING_KEY": key, "OPERATOR_KEY": secrets.token_hex(16), "DROPS_TABLE": "drops-test",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1", "SSE_LOG_LEVEL": "info"}
    port, log = servers.free_port(), tmp_path / "sse.log"
    proc = servers.start("sse", port, env, log)
    try:
        for token in (genuine, forged):
            res = httpx.get(f"http://127.0.0.1:{port}/events/jacket?token={token}", timeout=30)
            assert res.status_code in (401, 404, 503), res.text
    finally:
        servers.stop(proc)
    out = log.read_text()
    assert "Uvicorn running" in out or "Started server process" in out, out  # info lines are written
    assert genuine not in out and forged not in out and "token=" not in out, out
