"""The `drops` operator CLI against the real API (Chalice app behind devstack's gateway, DynamoDB in moto)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from chalicelib import cli

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def api(env, monkeypatch, tmp_path):
    """The Chalice routes served through devstack.gateway.ApiGateway; the CLI's HTTP client talks to it in-process."""
    from app import app as chalice_app
    from devstack.gateway import API_METHODS, ApiGateway

    monkeypatch.setenv("REGISTRATION_GRACE_MS", "0")
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path))  # no make dev state or secrets here
    gateway = ApiGateway(chalice_app)
    asgi = Starlette(routes=[Route("/api/{rest:path}", gateway.handle, methods=API_METHODS)])
    clients = []

    def http_client(endpoint, key):
        client = TestClient(asgi, base_url=endpoint, headers={"X-Operator-Key": key} if key else {})
        clients.append(client)
        return client

    monkeypatch.setattr(cli, "http_client", http_client)
    yield env["OPERATOR_KEY"]
    for client in clients:
        client.close()


def drops(key: str, *args: str):
    result = runner.invoke(cli.app, ["--operator-key", key, *args], catch_exceptions=True)
    return result


def test_create_then_list_and_status_show_the_drop(api):
    created = drops(api, "create", "spring", "--inventory", "7", "--opens-in", "0s", "--duration", "2m", "--window", "90s")
    assert created.exit_code == 0, created.output
    listed = drops(api, "list")
    assert "spring" in listed.output and "REGISTRATION" in listed.output and "7/7" in listed.output
    status = drops(api, "status", "spring")
    assert status.exit_code == 0 and "90 s" in status.output and "none yet" in status.output
    assert "7 of 7 left" in drops(api, "stock", "spring").output


def test_lottery_now_then_winners_with_the_trust_histogram(api):
    from chalicelib import bootstrap

    assert drops(api, "create", "fall", "--inventory", "2", "--duration", "5m").exit_code == 0
    svc = bootstrap.service()
    for i, score in enumerate([95, 91, 72, 12, 55]):
        svc.register("fall", f"shp_{i}", tickets=1, rollover=0, trust={"score": score, "reasons": []})
    closed = drops(api, "lottery", "fall")
    assert closed.exit_code == 0 and "registration closed" in closed.output
    time.sleep(0.01)
    assert svc.run_lottery("fall")["ran"] is True
    won = drops(api, "winners", "fall")
    assert won.exit_code == 0, won.output
    assert won.output.count("WINNER") == 2
    assert "90-100 │       2" in won.output and "10-19  │       1" in won.output
    assert "5 entries, 0 without a score" in won.output


def test_participants_route_pages_and_filters(api):
    from chalicelib import bootstrap

    drops(api, "create", "paged", "--duration", "5m")
    svc = bootstrap.service()
    for i in range(3):
        svc.register("paged", f"shp_{i}", tickets=1, rollover=0, trust={"score": 80})
    client = cli.api()
    page = client.call("GET", "/api/drop/paged/participants", params={"limit": 2})
    assert page["total"] == 3 and page["by_status"]["REGISTERED"] == 3
    assert len(page["participants"]) == 2 and page["next_offset"] == 2
    assert client.call("GET", "/api/drop/paged/participants", params={"status": "WINNER"})["matching"] == 0
    with pytest.raises(cli.CliError, match="400 invalid_input"):
        client.call("GET", "/api/drop/paged/participants", params={"status": "NOPE"})


def test_reset_all_deletes_every_drop(api):
    for name in ("a1", "a2", "a3"):
        assert drops(api, "create", name).exit_code == 0
    result = drops(api, "reset-all", "--yes")
    assert result.exit_code == 0 and "3 drops reset" in result.output
    assert "a1" not in drops(api, "list").output


def test_reset_asks_first(api):
    drops(api, "create", "keep")
    result = runner.invoke(cli.app, ["--operator-key", api, "reset", "keep"], input="n\n")
    assert result.exit_code == 1
    assert "keep" in drops(api, "list").output


def test_a_wrong_operator_key_is_one_clear_error(api):
    result = drops("not-the-key", "list")
    assert isinstance(result.exception, cli.CliError)
    assert "operator key was refused" in str(result.exception)


def test_executions_lists_the_drop_workflow(api):
    from devstack.statemachine import ensure_state_machine, local_function_arns, start_drop_execution

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = ensure_state_machine(sfn, "arn:aws:iam::123456789012:role/sfn", local_function_arns())
    start_drop_execution(sfn, arn, "winter")
    result = drops(api, "executions", "winter", "--state-machine", arn)
    assert result.exit_code == 0, result.output
    assert "winter" in result.output and "RUNNING" in result.output


def test_endpoint_down_exits_2_with_one_line_and_no_traceback(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    proc = subprocess.run([sys.executable, "-m", "chalicelib.cli", "--endpoint", f"http://127.0.0.1:{port}",
                           "--operator-key", "k", "list"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "DEVSTACK_DIR": str(tmp_path), "COLUMNS": "200"})
    assert proc.returncode == 2
    assert "cannot reach" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("text, ms", [("90s", 90_000), ("3m", 180_000), ("1.5h", 5_400_000), ("250ms", 250), ("12", 12_000)])
def test_durations(text, ms):
    assert cli.parse_duration(text) == ms


def test_a_bad_duration_is_a_usage_error(api):
    result = drops(api, "create", "--duration", "soon")
    assert result.exit_code == 2 and "not a duration" in result.output


def test_status_names_a_failed_drop_and_retry_resumes_it_once(api):
    from chalicelib import bootstrap

    assert drops(api, "create", "torn", "--duration", "5m").exit_code == 0
    bootstrap.service().mark_failed("torn", '{"Error": "LotteryError", "Cause": "injected"}')
    status = drops(api, "status", "torn")
    assert "FAILED" in status.output and "LotteryError" in status.output and "drops retry torn" in status.output
    retried = drops(api, "retry", "torn")
    assert retried.exit_code == 0, retried.output
    assert "resumed in REGISTRATION" in retried.output  # registration is still open by the clock
    again = drops(api, "retry", "torn")
    assert isinstance(again.exception, cli.CliError) and "409 invalid_phase" in str(again.exception)
    assert "failed:" not in drops(api, "status", "torn").output
