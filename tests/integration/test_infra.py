"""infra/template.yaml merged with `chalice package` is valid CloudFormation and wires what the app needs."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
BIN = Path(sys.executable).parent
TASKS = ["DropTick", "DropRunLottery", "DropPromote", "DropComplete", "DropMarkFailed"]


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    """`chalice package --merge-template infra/template.yaml` in a copy of the project (no pip downloads)."""
    work = tmp_path_factory.mktemp("package")
    project = work / "project"
    project.mkdir()
    shutil.copy(ROOT / "app.py", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    (project / "requirements.txt").write_text("")  # the template does not depend on the wheels
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = work / "out"
    result = subprocess.run(
        [str(BIN / "chalice"), "package", "--stage", "dev", "--template-format", "yaml",
         "--merge-template", str(TEMPLATE), str(out)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "sam.yaml"


@pytest.fixture(scope="module")
def resources(merged) -> dict:
    return yaml.safe_load(merged.read_text())["Resources"]


def test_merged_template_passes_cfn_lint(merged):
    result = subprocess.run([str(BIN / "cfn-lint"), "--format", "parseable", str(merged)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_reads_with_a_plain_yaml_loader_and_keeps_the_table():
    doc = yaml.safe_load(TEMPLATE.read_text())
    table = doc["Resources"]["DropsTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert re.search(r"(:|-)\s+!\w", TEMPLATE.read_text()) is None, "short-form intrinsics (!Sub) need a CFN loader"


def test_state_machine_definition_is_the_asl_file_with_the_chalice_lambda_arns(resources):
    sub = resources["DropStateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
    asl_text = (ROOT / "statemachines" / "drop.asl.json").read_text()
    assert json.loads(sub[0]) == json.loads(asl_text), "stale copy: run python infra/sync_asl.py"
    assert set(re.findall(r"\$\{(\w+)\}", asl_text)) == set(sub[1])
    assert {k: v["Fn::GetAtt"][0] for k, v in sub[1].items()} == {
        "TickFunctionArn": "DropTick", "LotteryFunctionArn": "DropRunLottery", "PromoteFunctionArn": "DropPromote",
        "CompleteFunctionArn": "DropComplete", "FailFunctionArn": "DropMarkFailed"}
    for task in TASKS:  # the logical ids Chalice generates for app.py's lambda functions
        assert resources[task]["Type"] == "AWS::Serverless::Function"


def _statements(role: dict) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_iam_is_least_privilege(resources):
    table_arns = [{"Fn::GetAtt": ["DropsTable", "Arn"]}, {"Fn::Sub": "${DropsTable.Arn}/index/*"}]
    for role in ("ApiRole", "TaskRole", "SseRole"):
        for st in _statements(resources[role]):
            assert "*" not in json.dumps(st["Action"]), (role, st)
            if any(a.startswith("dynamodb:") for a in st["Action"]):
                assert st["Resource"] == table_arns, (role, st)
    start = [s for s in _statements(resources["ApiRole"]) if s["Action"] == "states:StartExecution"]
    assert start == [{"Sid": "StartDropWorkflow", "Effect": "Allow", "Action": "states:StartExecution",
                      "Resource": {"Ref": "DropStateMachine"}}]
    (invoke,) = _statements(resources["StateMachineRole"])
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert [r["Fn::GetAtt"][0] for r in invoke["Resource"]] == TASKS
    assert resources["APIHandler"]["Properties"]["Role"] == {"Fn::GetAtt": ["ApiRole", "Arn"]}
    assert all(resources[t]["Properties"]["Role"] == {"Fn::GetAtt": ["TaskRole", "Arn"]} for t in TASKS)


def test_edge_serves_site_api_and_streamed_events_over_https(resources):
    config = resources["Distribution"]["Properties"]["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    behaviours = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert behaviours["/api/*"]["TargetOriginId"] == "api" and origins["api"]["OriginPath"] == "/api"
    assert behaviours["/events/*"]["TargetOriginId"] == "events"
    assert "OriginAccessControlId" in origins["site"] and "OriginAccessControlId" in origins["events"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert all(b["ViewerProtocolPolicy"] == "https-only" for b in behaviours.values())
    assert resources["SseFunctionUrl"]["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    sse = resources["SseFunction"]["Properties"]
    assert sse["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert sse["Layers"] == [{"Ref": "LambdaWebAdapterLayerArn"}]
    assert "sse.app:app" in (ROOT / "infra" / "sse" / "run.sh").read_text()
    block = resources["SiteBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())


def test_waf_rate_limits_per_ip_in_cloudfront_scope(resources):
    acl = resources["WebAcl"]
    assert acl["Properties"]["Scope"] == "CLOUDFRONT" and acl["Condition"] == "InUsEast1"
    rules = acl["Properties"]["Rules"]
    assert any("RateBasedStatement" in r["Statement"] and "Block" in r["Action"] for r in rules)
