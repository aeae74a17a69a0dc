"""The devstack moto server runs our Lambdas in-process and executes the drop state machine."""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from devstack.statemachine import (
    FUNCTION_NAMES,
    ensure_state_machine,
    local_function_arns,
    reconcile,
    start_drop_execution,
)

ROOT = Path(__file__).resolve().parents[2]
FAKES = "tests.integration.fake_handlers"
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/devstack-sfn"
HANDLERS = {
    "echo": f"{FAKES}:echo",
    "explode": f"{FAKES}:explode",
    "calls": f"{FAKES}:calls",
    "drop_tick": f"{FAKES}:tick",
    "drop_run_lottery": f"{FAKES}:run_lottery",
    "drop_promote": f"{FAKES}:promote",
    "drop_complete": f"{FAKES}:complete",
    "drop_mark_failed": f"{FAKES}:mark_failed",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "DEVSTACK_LAMBDA_HANDLERS": json.dumps(HANDLERS)}
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_server", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        assert "ready" in proc.stdout.readline(), f"moto server did not start:\n{log.read_text()[-3000:]}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0, "moto server did not exit cleanly on SIGTERM"


def _client(endpoint, service):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def lam(endpoint):
    return _client(endpoint, "lambda")


@pytest.fixture(scope="module")
def sfn(endpoint):
    return _client(endpoint, "stepfunctions")


@pytest.fixture(scope="module")
def drop_sm(sfn):
    return ensure_state_machine(sfn, ROLE_ARN, local_function_arns())


def _invoke(lam, name, event):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, json.loads(resp["Payload"].read())


def _wait(sfn, execution_arn, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] != "RUNNING":
            return desc
        time.sleep(0.2)
    raise AssertionError(f"{execution_arn} still RUNNING after {timeout}s")


def _functions_called(lam, drop_id):
    return [c["function"] for c in _invoke(lam, "calls", {"drop_id": drop_id})[1]]


def _set_moto_config(endpoint, config):
    req = urllib.request.Request(f"{endpoint}/moto-api/config", data=json.dumps(config).encode(), method="POST")
    urllib.request.urlopen(req).close()


def test_lambda_invoke_dispatches_to_the_registered_python_callable(lam):
    resp, payload = _invoke(lam, "echo", {"drop_id": "d1"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert payload == {"event": {"drop_id": "d1"}, "function_name": "echo"}


def test_created_function_outside_the_registry_runs_its_handler_setting(endpoint, lam):
    iam = _client(endpoint, "iam")
    role = iam.create_role(RoleName="fallback-fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("unused.py", "")
    lam.create_function(
        FunctionName="fallback-echo", Runtime="python3.11", Role=role,
        Handler=f"{FAKES}.echo", Code={"ZipFile": buf.getvalue()},
    )
    assert _invoke(lam, "fallback-echo", {"x": 1})[1] == {"event": {"x": 1}, "function_name": "fallback-echo"}


def test_handler_exception_is_an_unhandled_function_error_named_after_the_class(lam):
    resp, payload = _invoke(lam, "explode", {"drop_id": "d2"})
    assert resp["FunctionError"] == "Unhandled"
    assert payload == {"errorType": "DropNotFound", "errorMessage": "drop 'd2' not found"}


def test_state_machine_created_with_the_flag_off_still_runs_to_succeeded(endpoint, sfn):
    echo_arn = f"arn:aws:lambda:{REGION}:123456789012:function:echo"
    definition = {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": echo_arn, "End": True}}}
    _set_moto_config(endpoint, {"stepfunctions": {"execute_state_machine": False}})
    try:
        sm_arn = sfn.create_state_machine(name="echo-sm", definition=json.dumps(definition), roleArn=ROLE_ARN)[
            "stateMachineArn"
        ]
    finally:
        _set_moto_config(endpoint, {"stepfunctions": {"execute_state_machine": True}})
    execution = sfn.start_execution(stateMachineArn=sm_arn, input='{"drop_id": "d3"}')
    desc = _wait(sfn, execution["executionArn"])
    assert desc["status"] == "SUCCEEDED"
    assert json.loads(desc["output"]) == {"event": {"drop_id": "d3"}, "function_name": "echo"}


def test_lambda_invoke_integration_supports_result_selector_and_catch_by_class_name(sfn):
    def invoke(function, **extra):
        return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function, "Payload.$": "$"}, **extra}

    definition = {"StartAt": "Echo", "States": {
        "Echo": invoke("echo", ResultSelector={"echoed.$": "$.Payload.event"}, Next="Explode"),
        "Explode": invoke("explode", Catch=[{"ErrorEquals": ["DropNotFound"], "ResultPath": "$.caught", "Next": "Done"}],
                          End=True),
        "Done": {"Type": "Succeed"},
    }}
    sm_arn = sfn.create_state_machine(name="integration-sm", definition=json.dumps(definition), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    desc = _wait(sfn, sfn.start_execution(stateMachineArn=sm_arn, input='{"drop_id": "d4"}')["executionArn"])
    assert desc["status"] == "SUCCEEDED", desc
    output = json.loads(desc["output"])
    assert output["echoed"] == {"drop_id": "d4"}
    assert output["caught"]["Error"] == "DropNotFound"


def test_ensure_state_machine_updates_the_existing_machine(sfn, drop_sm):
    assert ensure_state_machine(sfn, ROLE_ARN, local_function_arns()) == drop_sm
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=drop_sm)["definition"])
    resources = {state.get("Resource") for state in definition["States"].values()} - {None}
    assert resources == set(local_function_arns().values())


def test_drop_lifecycle_waits_then_runs_lottery_promote_complete_and_succeeds(sfn, lam, drop_sm):
    drop_id = f"happy-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    desc = _wait(sfn, start_drop_execution(sfn, drop_sm, drop_id))
    assert desc["status"] == "SUCCEEDED", desc
    assert 0.9 < time.monotonic() - started < 10  # one Wait of ~1 s
    tick, lottery = FUNCTION_NAMES["TickFunctionArn"], FUNCTION_NAMES["LotteryFunctionArn"]
    promote, complete = FUNCTION_NAMES["PromoteFunctionArn"], FUNCTION_NAMES["CompleteFunctionArn"]
    assert _functions_called(lam, drop_id) == [tick, tick, lottery, tick, promote, tick, complete, tick]
    assert json.loads(desc["output"])["drop_id"] == drop_id


def test_task_failing_twice_with_a_transient_error_is_retried_and_succeeds(sfn, lam, drop_sm):
    drop_id = f"flaky-{uuid.uuid4().hex[:8]}"
    desc = _wait(sfn, start_drop_execution(sfn, drop_sm, drop_id))
    assert desc["status"] == "SUCCEEDED", desc
    assert _functions_called(lam, drop_id) == ["drop_tick"] + ["drop_run_lottery"] * 3 + ["drop_tick"]


def test_non_retryable_error_marks_the_drop_failed_and_fails_the_execution(sfn, lam, drop_sm):
    drop_id = f"missing-{uuid.uuid4().hex[:8]}"
    desc = _wait(sfn, start_drop_execution(sfn, drop_sm, drop_id))
    assert desc["status"] == "FAILED"
    assert desc["error"] == "DropNotFound"
    calls = _invoke(lam, "calls", {"drop_id": drop_id})[1]
    assert [c["function"] for c in calls] == ["drop_tick", "drop_mark_failed"]
    assert calls[1]["event"]["error"]["Error"] == "DropNotFound"


def test_starting_the_same_drop_twice_is_harmless(sfn, drop_sm):
    drop_id = f"slow-{uuid.uuid4().hex[:8]}"
    first = start_drop_execution(sfn, drop_sm, drop_id)
    second = start_drop_execution(sfn, drop_sm, drop_id)
    assert first == second
    sfn.stop_execution(executionArn=first)
    assert start_drop_execution(sfn, drop_sm, drop_id) == first  # finished: ExecutionAlreadyExists
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=drop_sm)["executions"]]
    assert names.count(drop_id) == 1


def test_reconcile_restarts_a_stopped_drop_and_skips_running_and_completed_ones(sfn, drop_sm):
    stopped, running = f"slow-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:8]}"
    stopped_arn = start_drop_execution(sfn, drop_sm, stopped)
    sfn.stop_execution(executionArn=stopped_arn)
    assert _wait(sfn, stopped_arn)["status"] == "ABORTED"  # moto aborts once the running task returns
    running_arn = start_drop_execution(sfn, drop_sm, running)
    drops = [
        {"drop_id": stopped, "phase": "LOTTERY"},
        {"drop_id": running, "phase": "OPEN"},
        {"drop_id": "finished", "phase": "COMPLETED"},
    ]
    started = reconcile(sfn, drop_sm, drops)
    assert [(s["drop_id"], s["name"]) for s in started] == [(stopped, f"{stopped}-r1")]
    assert sfn.describe_execution(executionArn=started[0]["execution_arn"])["status"] == "RUNNING"
    assert reconcile(sfn, drop_sm, drops) == []
    for arn in (running_arn, started[0]["execution_arn"]):
        sfn.stop_execution(executionArn=arn)
