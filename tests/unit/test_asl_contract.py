"""The drop state machine names only errors our Lambdas raise and only Lambdas app.py defines."""
from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from chalicelib import audit
from chalicelib.domain import errors
from chalicelib.domain.drop import Step
from devstack.statemachine import DEFINITION_PATH, FUNCTION_NAMES, local_function_arns, render_definition

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_PREFIXES = ("States.", "Lambda.")
DEFINITION = json.loads(DEFINITION_PATH.read_text())
# Error classes the ASL names that live next to the code raising them (not in domain/errors.py).
ELSEWHERE = {"BeaconPending": audit}


def _error_classes() -> set[str]:
    """Every exception class defined in chalicelib/domain/errors.py."""
    return {
        name for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }


def _lambda_function_names() -> set[str]:
    """Names given to @app.lambda_function(name=...) in app.py, read from the source."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / "app.py").read_text())):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "lambda_function":
                    kw = {k.arg: k.value for k in deco.keywords}
                    names.add(kw["name"].value if "name" in kw else node.name)
    return names


def _rules(state: dict) -> list[tuple[str, dict]]:
    return [("Retry", r) for r in state.get("Retry", [])] + [("Catch", c) for c in state.get("Catch", [])]


def _error_names() -> set[str]:
    return {name for state in DEFINITION["States"].values() for _, rule in _rules(state) for name in rule["ErrorEquals"]}


def _tasks() -> dict[str, dict]:
    return {name: s for name, s in DEFINITION["States"].items() if s["Type"] == "Task"}


def test_every_custom_error_name_is_a_class_in_domain_errors():
    custom = {n for n in _error_names() if not n.startswith(BUILTIN_PREFIXES)}
    assert custom, "the ASL should name our own error classes"
    assert custom - _error_classes() - set(ELSEWHERE) == set()


@pytest.mark.parametrize("name", sorted(ELSEWHERE))
def test_errors_defined_outside_domain_errors_are_drop_errors_where_listed(name):
    cls = getattr(ELSEWHERE[name], name)
    assert issubclass(cls, errors.DropError) and cls.__name__ == name


def test_builtin_error_names_are_ones_step_functions_knows():
    known = {"States.ALL", "States.TaskFailed", "States.Timeout", "Lambda.ServiceException",
             "Lambda.TooManyRequestsException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}
    assert {n for n in _error_names() if n.startswith(BUILTIN_PREFIXES)} <= known


def test_every_placeholder_maps_to_a_lambda_function_defined_in_app():
    placeholders = set(re.findall(r"\$\{(\w+)\}", DEFINITION_PATH.read_text()))
    assert placeholders and all(p.endswith("Arn") for p in placeholders)
    assert placeholders == set(FUNCTION_NAMES)
    assert {FUNCTION_NAMES[p] for p in placeholders} <= _lambda_function_names()


def test_route_handles_every_step_drop_tick_can_return():
    route = DEFINITION["States"]["Route"]
    handled = {c["StringEquals"] for c in route["Choices"] if c["Variable"] == "$.tick.next"}
    assert handled == {step.value for step in Step}


def test_task_resources_are_exactly_the_five_workflow_lambdas():
    resources = {s["Resource"] for s in _tasks().values()}
    assert resources == {f"${{{key}}}" for key in FUNCTION_NAMES}
    assert len(FUNCTION_NAMES) == 5
    rendered = json.loads(render_definition(local_function_arns()))
    arns = {s["Resource"] for s in rendered["States"].values() if s["Type"] == "Task"}
    assert arns == set(local_function_arns().values())


def test_tasks_take_drop_id_from_the_execution_input():
    for name, task in _tasks().items():
        assert task["Parameters"].get("drop_id.$") == "$.drop_id", name


@pytest.mark.parametrize("name", sorted(_tasks()))
def test_non_retryable_errors_come_before_the_catch_all_retrier(name):
    """Retriers match in order and States.TaskFailed matches every Lambda error."""
    retry = _tasks()[name].get("Retry", [])
    first_broad = next(i for i, r in enumerate(retry) if "States.TaskFailed" in r["ErrorEquals"])
    before = {n for r in retry[:first_broad] for n in r["ErrorEquals"]}
    assert {"InvalidInput"} <= before
    if name != "MarkFailed":
        assert "DropNotFound" in before


def test_catch_all_catchers_come_last_and_every_next_state_exists():
    states = DEFINITION["States"]
    for name, state in states.items():
        catch = state.get("Catch", [])
        for i, rule in enumerate(catch):
            assert rule["Next"] in states, (name, rule)
            if "States.ALL" in rule["ErrorEquals"]:
                assert i == len(catch) - 1 and rule["ErrorEquals"] == ["States.ALL"], name
        for key in ("Next", "Default"):
            if key in state:
                assert state[key] in states, (name, key)
        for choice in state.get("Choices", []):
            assert choice["Next"] in states, (name, choice)
