"""docs/openapi.yaml describes every route; schemathesis fuzzes each one: no 5xx, nothing internal leaks."""
from __future__ import annotations

import re

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

import app as app_module
from chalicelib.domain import errors as domain_errors
from tests.security.wsgi import SPEC, SPEC_PATH, wsgi_app

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
INTERNAL = ["Traceback", 'File "', "chalicelib", "botocore", "boto3", "moto", "pydantic", "site-packages",
            "KeyError", "ValueError", "TypeError", "AttributeError", "ClientError", "ValidationError",
            "IndexError", "AssertionError", "JSONDecodeError"]
INTERNAL += [name for name, obj in vars(domain_errors).items() if isinstance(obj, type) and issubclass(obj, Exception)]
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _spec_routes() -> set[tuple[str, str]]:
    doc = yaml.safe_load(SPEC.read_text())
    return {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops if method in METHODS}


def test_the_spec_describes_exactly_the_routes_of_app_py():
    routes = {(path, method) for path, methods in app_module.app.routes.items() for method in methods}
    assert _spec_routes() == routes, {"undocumented": routes - _spec_routes(), "not in app": _spec_routes() - routes}


def test_every_error_response_uses_the_error_schema():
    doc = yaml.safe_load(SPEC.read_text())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, res in op["responses"].items():
                if int(status) >= 400:
                    ref = res.get("$ref", "")
                    assert ref in ("#/components/responses/Error", "#/components/responses/Busy"), (path, method, status)
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "message"]


@pytest.fixture
def fuzz_env(api):
    """A drop named in the spec's examples, a shopper session and the operator key."""
    api.create_drop("jacket")
    token, _ = api.session()
    return {"token": token, "operator_key": api.operator_key}


@pytest.fixture
def wsgi(fuzz_env):
    return wsgi_app(app_module.app)


schema = schemathesis.openapi.from_path(SPEC)  # (from_fixture trips over pytest 9 in schemathesis 4.32)


def test_the_adapter_serves_the_spec_for_from_wsgi(fuzz_env):
    loaded = schemathesis.openapi.from_wsgi(SPEC_PATH, wsgi_app(app_module.app))
    assert len(list(loaded.get_all_operations())) == len(_spec_routes())


def _check(case, response) -> None:
    text = response.text
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {text[:300]}"
    for word in INTERNAL:
        assert not re.search(rf"\b{re.escape(word)}\b", text), f"{case.method} {case.path} leaks {word!r}: {text[:300]}"
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith("application/json"):
        body = response.json()
        if "error" in body:
            assert set(body) == {"error", "message"}, text[:300]


@schema.parametrize()
@FUZZ
def test_fuzz_as_anyone(case, wsgi):
    """Whatever schemathesis sends (no or random credentials), nothing breaks and nothing leaks."""
    _check(case, case.call(app=wsgi))


@schema.parametrize()
@FUZZ
def test_fuzz_as_a_shopper_and_operator_on_a_live_drop(case, fuzz_env, wsgi):
    """With valid credentials and the real drop id, the fuzzed bodies and parameters reach the use cases."""
    if case.path_parameters and "drop_id" in case.path_parameters:
        case.path_parameters["drop_id"] = "jacket"
    headers = {"Authorization": f"Bearer {fuzz_env['token']}", "X-Operator-Key": fuzz_env["operator_key"]}
    _check(case, case.call(app=wsgi, headers=headers))
