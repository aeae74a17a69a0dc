"""Forged, expired, replayed and other-shopper tokens are refused with 401/403 JSON."""
from __future__ import annotations

import time

import jwt
import pytest

from chalicelib.tokens import PURPOSES, Signer
from chalicelib.domain.errors import Unauthorized

def _spec_routes(scheme: str) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation docs/openapi.yaml secures with `scheme`."""
    import yaml

    from tests.security.wsgi import SPEC

    doc = yaml.safe_load(SPEC.read_text())
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if any(scheme in req for req in op.get("security", doc.get("security", []))):
                out.append((method.upper(), path.replace("{drop_id}", "jacket")))
    return out


SHOPPER_ROUTES = [(m, p + ("?drop_id=jacket" if p == "/api/pow/challenge" else "")) for m, p in _spec_routes("bearer")]


def test_the_token_tests_cover_every_secured_route_of_app_py():
    import app as app_module

    secured = {(m, p.split("?")[0]) for m, p in SHOPPER_ROUTES} | {(m, p) for m, p, _ in OPERATOR_ROUTES}
    public = {("POST", "/api/session"), ("GET", "/api/drop/jacket/status"), ("GET", "/api/drop/jacket/audit"),
              ("GET", "/api/drop/jacket/beacon")}
    routes = {(m, p.replace("{drop_id}", "jacket")) for p, ms in app_module.app.routes.items() for m in ms}
    assert len(SHOPPER_ROUTES) == 6 and len(OPERATOR_ROUTES) == 7
    assert secured | public == routes and not secured & public


def _signer(env) -> Signer:
    return Signer(env["SIGNING_KEY"])


def _bad_session_tokens(env, shopper_id: str) -> dict[str, str]:
    good = _signer(env)
    real = good.issue("shopper", {"sub": shopper_id}, ttl_s=600)
    head, payload, sig = real.split(".")
    now = time.time()
    return {
        "forged_other_key": Signer("x" * 32).issue("shopper", {"sub": shopper_id}, ttl_s=600),
        "expired": jwt.encode({"sub": shopper_id, "typ": "shopper", "iat": int(now) - 100, "exp": now - 10},
                              good.key("shopper"), algorithm="HS256"),
        "alg_none": jwt.encode({"sub": shopper_id, "typ": "shopper", "exp": now + 600}, None, algorithm="none"),
        "tampered_signature": f"{head}.{payload}.{sig[:-4]}AAAA",
        "no_exp": jwt.encode({"sub": shopper_id, "typ": "shopper"}, good.key("shopper"), algorithm="HS256"),
        "stream_purpose": good.issue("stream", {"sub": shopper_id, "drop": "jacket"}, ttl_s=600),
        "purchase_purpose": good.issue("purchase", {"sub": shopper_id, "drop": "jacket", "round": 1}, ttl_s=600),
        "wrong_typ_claim": jwt.encode({"sub": shopper_id, "typ": "operator", "exp": now + 600},
                                      good.key("shopper"), algorithm="HS256"),
        "garbage": "not-a-jwt",
        "oversized": "a" * 5000,
    }


def _assert_json_error(res, statuses=(401, 403)):
    assert res.status in statuses, (res.status, res.raw)
    assert set(res.body) == {"error", "message"}, res.raw
    assert res.headers.get("content-type", "").startswith("application/json")


def test_every_shopper_route_refuses_missing_and_bad_session_tokens(api, env):
    api.create_drop()
    _, shopper = api.session()
    bad = _bad_session_tokens(env, shopper)
    for method, path in SHOPPER_ROUTES:
        res = api.call(method, path, body={})
        _assert_json_error(res, (401,))
        assert res.body["error"] == "invalid_token" and res.headers.get("www-authenticate") == "Bearer"
        for name, token in bad.items():
            res = api.call(method, path, token=token, body={})
            _assert_json_error(res, (401,))
            expected = "token_expired" if name == "expired" else "invalid_token"
            assert res.body["error"] == expected, (name, path, res.raw)


def test_a_token_of_one_purpose_never_passes_as_another(env):
    signer = _signer(env)
    for issued in PURPOSES:
        token = signer.issue(issued, {"sub": "shp_x"}, ttl_s=60)
        for checked in PURPOSES:
            if checked == issued:
                assert signer.verify(checked, token)["sub"] == "shp_x"
            else:
                with pytest.raises(Unauthorized):
                    signer.verify(checked, token)


def test_challenge_forged_expired_or_of_another_shopper_or_drop_is_refused(api, env):
    api.create_drop()
    api.create_drop("boots")
    alice, _ = api.session()
    bob, _ = api.session()
    challenge = api.challenge(alice)
    cases = {
        "forged_signature": {**challenge, "signature": "0" * 64},
        "raised_expiry": {**challenge, "expires": challenge["expires"] + 10**9},
        "lowered_difficulty": {**challenge, "difficulty": 0},
    }
    for name, forged in cases.items():
        res = api.register(alice, challenge=forged)
        _assert_json_error(res, (403,))
        assert res.body["error"] == "bot_suspected", name
    res = api.register(bob, challenge=challenge)  # another shopper's solved challenge
    _assert_json_error(res, (403,))
    res = api.register(alice, "boots", challenge=challenge)  # another drop
    _assert_json_error(res, (403,))
    svc_signer = _signer(env)
    from chalicelib import pow as pow_

    shopper = svc_signer.verify("shopper", alice)["sub"]
    old = pow_.issue_challenge(svc_signer, shopper, "jacket", difficulty=8, ttl_s=1, now_ms=int(time.time() * 1000) - 10_000)
    res = api.register(alice, challenge=old)
    _assert_json_error(res, (403,))
    assert api.me(alice)["status"] == "NOT_REGISTERED" and api.me(bob)["status"] == "NOT_REGISTERED"


def test_a_replayed_challenge_never_makes_a_second_entry(api):
    api.create_drop()
    alice, _ = api.session()
    challenge = api.challenge(alice)
    assert api.register(alice, challenge=challenge).status == 201
    res = api.register(alice, challenge=challenge)
    _assert_json_error(res, (403, 409))
    status = api.call("GET", "/api/drop/jacket/status").body
    assert status["drop_id"] == "jacket"
    assert api.me(alice)["status"] == "REGISTERED"
    from chalicelib import bootstrap

    assert bootstrap.service().store.count_participants("jacket") == 1


def test_purchase_tokens_forged_expired_replayed_or_of_another_shopper_are_refused(api, env):
    api.create_drop(inventory=2)
    shoppers = [api.session() for _ in range(4)]
    for token, _ in shoppers:
        assert api.register(token).status == 201
    api.draw()
    winners = [(t, s) for t, s in shoppers if api.me(t)["status"] == "WINNER"]
    losers = [(t, s) for t, s in shoppers if api.me(t)["status"] != "WINNER"]
    assert len(winners) == 2 and losers
    (w_tok, w_id), (w2_tok, _) = winners
    l_tok, l_id = losers[0]
    start = api.call("POST", "/api/drop/jacket/purchase/start", token=w_tok)
    ptoken = start.body["purchase_token"]
    signer = _signer(env)
    forged = {
        "other_key": Signer("y" * 32).issue("purchase", {"sub": l_id, "drop": "jacket", "round": 1}, ttl_s=60),
        "session_token": l_tok,
        "self_made_round": signer.issue("purchase", {"sub": l_id, "drop": "jacket", "round": 7}, ttl_s=60),
    }
    for name, tok in forged.items():
        res = api.call("POST", "/api/drop/jacket/purchase", token=l_tok, body={"purchase_token": tok})
        _assert_json_error(res, (401, 403))
    stolen = api.call("POST", "/api/drop/jacket/purchase", token=l_tok, body={"purchase_token": ptoken})
    _assert_json_error(stolen, (403,))
    assert stolen.body["error"] == "not_a_winner"
    expired = signer.issue("purchase", {"sub": w2_id_of(api, w2_tok), "drop": "jacket", "round": 1}, exp_ms=1000)
    res = api.call("POST", "/api/drop/jacket/purchase", token=w2_tok, body={"purchase_token": expired})
    _assert_json_error(res, (401, 403, 410))  # an expired right to buy is 410 purchase_expired
    first = api.call("POST", "/api/drop/jacket/purchase", token=w_tok, body={"purchase_token": ptoken})
    again = api.call("POST", "/api/drop/jacket/purchase", token=w_tok, body={"purchase_token": ptoken})
    assert first.status == again.status == 200 and first.body == again.body  # a replay is the same order
    other = signer.issue("purchase", {"sub": w_id, "drop": "jacket", "round": 1}, ttl_s=60)
    res = api.call("POST", "/api/drop/jacket/purchase", token=w_tok, body={"purchase_token": other})
    _assert_json_error(res, (409,))
    assert res.body["error"] == "already_purchased"
    status = api.call("GET", "/api/drop/jacket/status").body
    assert status["sold"] == 1 and status["remaining"] == 1


def w2_id_of(api, token: str) -> str:
    return api.me(token)["shopper_id"]


def test_stream_tokens_are_bound_to_purpose_shopper_drop_and_time(api, env):
    api.create_drop()
    alice, alice_id = api.session()
    res = api.call("POST", "/api/drop/jacket/stream-token", token=alice)
    assert res.status == 201
    stream = res.body["token"]
    signer = _signer(env)
    claims = signer.verify("stream", stream)
    assert claims["sub"] == alice_id and claims["drop"] == "jacket"
    assert claims["exp"] - time.time() <= 300 + 1
    with pytest.raises(Unauthorized):
        signer.verify("shopper", stream)
    res = api.call("GET", "/api/drop/jacket/me", token=stream)  # a stream token is no session
    _assert_json_error(res, (401,))
    res = api.call("POST", "/api/drop/nope/stream-token", token=alice)
    assert res.status == 404 and res.body["error"] == "drop_not_found"
    expired = jwt.encode({"sub": alice_id, "drop": "jacket", "typ": "stream", "exp": time.time() - 5},
                         signer.key("stream"), algorithm="HS256")
    with pytest.raises(Unauthorized):
        signer.verify("stream", expired)
    with pytest.raises(Unauthorized):
        signer.verify("stream", Signer("z" * 32).issue("stream", {"sub": alice_id, "drop": "jacket"}, ttl_s=60))


OPERATOR_BODIES = {("POST", "/api/drops"): "create", ("PUT", "/api/drop/jacket/beacon"): "beacon"}
OPERATOR_ROUTES = [(m, p, OPERATOR_BODIES.get((m, p))) for m, p in _spec_routes("operatorKey")]


def test_operator_routes_refuse_a_missing_or_wrong_key(api, env):
    from chalicelib import bootstrap
    from tests.security.flows import drop_body

    api.create_drop()
    shopper, _ = api.session()
    assert api.register(shopper).status == 201
    wrong_keys = [None, "", "wrong", env["OPERATOR_KEY"][:-1], env["OPERATOR_KEY"] + "x", env["SIGNING_KEY"],
                  env["OPERATOR_KEY"].upper() if env["OPERATOR_KEY"] != env["OPERATOR_KEY"].upper() else "X"]
    bodies = {"create": drop_body("other"), "beacon": {"source": "drand-quicknet", "round": 1}, None: None}
    for method, path, body in OPERATOR_ROUTES:
        for key in wrong_keys:
            headers = {} if key is None else {"x-operator-key": key}
            res = api.call(method, path, headers=headers, body=bodies[body], token=shopper)
            _assert_json_error(res, (403,))
            assert res.body["error"] == "forbidden"
            assert "shp_" not in res.raw and "participants" not in res.raw  # no operator data leaks
    status = api.call("GET", "/api/drop/jacket/status").body
    assert status["phase"] == "REGISTRATION"  # nothing was closed or deleted
    assert api.call("GET", "/api/drop/other/status").status == 404
    store = bootstrap.service().store
    drop = store.get_drop("jacket", consistent=True)
    assert store.get_beacon("jacket", drop.commitment) is None  # no beacon was named
    assert store.count_participants("jacket") == 1
