"""`python -m devstack.dev` end to end: one origin serves site, API and 404s; state survives the gateway; Ctrl-C cleans up."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devstack.spawn import DevStack, processes_with as _processes_with

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _state(dev_dir: Path) -> dict:
    return json.loads((dev_dir / "state.json").read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    dev = DevStack(tmp_path_factory.mktemp("devstack"), {"POW_DIFFICULTY": "8"}).start()
    client = httpx.Client(base_url=dev.base, timeout=10)
    try:
        yield {"proc": dev.proc, "client": client, "dev_dir": dev.dev_dir, "out": dev.out, "marker": dev.marker}
    finally:
        client.close()
        dev.kill()


def test_prints_the_url_the_operator_key_location_and_the_emulator_dashboard(stack):
    text = stack["out"].read_text()
    state = _state(stack["dev_dir"])
    assert f"http://127.0.0.1:{state['dev_port']}/" in text
    assert str(stack["dev_dir"] / "secrets.env") in text
    assert f"http://127.0.0.1:{state['moto_port']}/moto-api/" in text
    assert (stack["dev_dir"] / "secrets.env").stat().st_mode & 0o777 == 0o600


def test_root_serves_the_storefront_page_as_html(stack):
    resp = stack["client"].get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "<html" in resp.text.lower() or "<h1>" in resp.text


def test_demo_drop_is_open_for_registration_with_its_workflow_running(stack):
    resp = stack["client"].get("/api/drop/demo/status")
    assert resp.status_code == 200
    assert resp.json()["phase"] == "REGISTRATION" and resp.json()["inventory"] == 5
    from devstack import provision

    sfn = provision.client(_state(stack["dev_dir"])["endpoint"], "stepfunctions")
    executions = sfn.list_executions(stateMachineArn=_state(stack["dev_dir"])["state_machine_arn"])["executions"]
    assert [(e["name"], e["status"]) for e in executions] == [("demo", "RUNNING")]


def test_unknown_api_route_is_a_json_404_not_api_gateways_403(stack):
    resp = stack["client"].get("/api/no/such/route")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"


def test_audit_files_are_served_from_the_audit_bucket_on_the_same_origin(stack):
    """/audits/* is the audit bucket (CloudFront's behaviour in AWS): entry lists the verifier fetches."""
    import boto3

    state = _state(stack["dev_dir"])
    s3 = boto3.client("s3", endpoint_url=state["endpoint"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.put_object(Bucket=state["audit_bucket"], Key="audits/x/entries.json", Body=b'[["p", 2]]',
                  ContentType="application/json")
    res = stack["client"].get("/audits/x/entries.json")
    assert res.status_code == 200 and res.json() == [["p", 2]]
    assert res.headers["content-type"].startswith("application/json")
    assert stack["client"].get("/audits/nope/entries.json").status_code == 404
    assert stack["client"].get("/audits/index.html").status_code == 404  # never the site's index


def test_killing_the_gateway_loses_nothing(stack):
    client, dev_dir = stack["client"], stack["dev_dir"]
    key = (dev_dir / "secrets.env").read_text().split("OPERATOR_KEY=")[1].split()[0]
    now = int(time.time() * 1000)
    created = client.post("/api/drops", headers={"X-Operator-Key": key}, json={
        "drop_id": "survivor", "name": "Survivor", "product": {"title": "Cap", "price": 20}, "inventory": 2,
        "registration_start": now + 60_000, "registration_end": now + 120_000, "purchase_window": 60})
    assert created.status_code == 201, created.text
    old = _state(dev_dir)["pids"]["gateway"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, "the gateway was not restarted"
        try:
            if _state(dev_dir)["pids"]["gateway"] != old and client.get("/__devstack/health").status_code == 200:
                break
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)
    listed = client.get("/api/drops", headers={"X-Operator-Key": key}).json()["drops"]
    assert {d["drop_id"] for d in listed} == {"demo", "survivor"}
    assert client.get("/api/drop/demo/status").json()["phase"] == "REGISTRATION"


def test_the_readmes_curl_walkthrough_runs_as_written(stack, tmp_path):
    """README.md's "A drop with curl" block: create, three shoppers register, lottery now, winners buy."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A drop with curl", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    script = (block.replace("/tmp/", f"{tmp_path}/")
              .replace("http://127.0.0.1:8000", str(stack["client"].base_url).rstrip("/"))
              .replace(".dev/secrets.env", str(stack["dev_dir"] / "secrets.env")))
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line.split(": ", 1)[1] if line.split(":", 1)[0] in ("ana", "ben", "cy", "ana start",
             "ben start", "cy start") else line) for line in done.stdout.splitlines() if line.strip()]
    entries = [line["entry"] for line in lines if "entry" in line]
    assert [(e["status"], e["tickets"], e["cost"]) for e in entries] == [("REGISTERED", 1, 0), ("REGISTERED", 3, 5),
                                                                         ("REGISTERED", 5, 30)]
    standings = sorted(line["status"] for line in lines if "status" in line and "drop_id" in line and "name" not in line)
    assert standings == ["WAITLISTED", "WINNER", "WINNER"]
    orders = {line["order"]["order_id"] for line in lines if "order" in line}
    assert len(orders) == 2
    assert (lines[-1]["sold"], lines[-1]["remaining"]) == (2, 0)


def test_ctrl_c_stops_every_process(stack):
    proc = stack["proc"]
    assert len(_processes_with(stack["marker"])) >= 2  # moto server and gateway
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    deadline = time.monotonic() + 5
    while _processes_with(stack["marker"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(stack["marker"]) == []
    assert not (stack["dev_dir"] / "state.json").exists() and (stack["dev_dir"] / "secrets.env").exists()
    with pytest.raises(httpx.TransportError):
        stack["client"].get("/__devstack/health")


def test_gateway_reports_each_callers_address_as_source_ip_for_per_ip_limits(env, monkeypatch):
    """In-process: the ApiGateway passes the client address on, so one address is limited and another is not."""
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from app import app as chalice_app
    from chalicelib import bootstrap
    from devstack.gateway import API_METHODS, ApiGateway

    monkeypatch.setenv("RATE_LIMIT_SESSION_IP", "2")
    bootstrap.reset()
    asgi = Starlette(routes=[Route("/api/{rest:path}", ApiGateway(chalice_app).handle, methods=API_METHODS)])
    with TestClient(asgi, client=("10.0.0.1", 1000)) as first, TestClient(asgi, client=("10.0.0.2", 1000)) as second:
        codes = [first.post("/api/session").status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        assert second.post("/api/session").status_code == 201
        wrong = first.put("/api/drops")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"

