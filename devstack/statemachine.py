"""Render, deploy, start and reconcile the drop lifecycle state machine (statemachines/drop.asl.json)."""

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DEFINITION_PATH = Path(__file__).resolve().parent.parent / "statemachines" / "drop.asl.json"
STATE_MACHINE_NAME = "drop-lifecycle"
COMPLETED_PHASE = "COMPLETED"
# drop_tick answers 'done' for both, so a new execution could only end at once.
FINISHED_PHASES = (COMPLETED_PHASE, "FAILED")
# ASL placeholder -> Lambda function name (the contract with the Lambda authors).
FUNCTION_NAMES = {
    "TickFunctionArn": "drop_tick",
    "LotteryFunctionArn": "drop_run_lottery",
    "PromoteFunctionArn": "drop_promote",
    "CompleteFunctionArn": "drop_complete",
    "FailFunctionArn": "drop_mark_failed",
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_RESTART = re.compile(r"^(?P<drop>.+)-r(?P<n>\d+)$")


def local_function_arns(region: str = "us-east-1", account_id: str = "123456789012") -> dict[str, str]:
    """Placeholder -> Lambda ARN for a local stack (moto's default account)."""
    return {
        key: f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        for key, name in FUNCTION_NAMES.items()
    }


def render_definition(arns: Mapping[str, str]) -> str:
    """Fill ${...} placeholders like CloudFormation Fn::Sub; a missing one raises KeyError."""
    template = DEFINITION_PATH.read_text()
    return _PLACEHOLDER.sub(lambda m: arns[m.group(1)], template)


def ensure_state_machine(
    sfn_client: Any, role_arn: str, arns: Mapping[str, str], *, name: str = STATE_MACHINE_NAME
) -> str:
    """Create the state machine, or update its definition and role if it exists; return its ARN."""
    definition = render_definition(arns)
    for page in sfn_client.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                sfn_client.update_state_machine(
                    stateMachineArn=machine["stateMachineArn"], definition=definition, roleArn=role_arn
                )
                return machine["stateMachineArn"]
    created = sfn_client.create_state_machine(
        name=name, definition=definition, roleArn=role_arn, type="STANDARD"
    )
    return created["stateMachineArn"]


def _execution_arn(sm_arn: str, name: str) -> str:
    return f"{sm_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def start_drop_execution(sfn_client: Any, sm_arn: str, drop_id: str, *, name: str | None = None) -> str:
    """Start the lifecycle for drop_id (execution name = drop_id); an existing one counts as started."""
    name = name or drop_id
    try:
        started = sfn_client.start_execution(
            stateMachineArn=sm_arn, name=name, input=json.dumps({"drop_id": drop_id})
        )
    except sfn_client.exceptions.ExecutionAlreadyExists:
        return _execution_arn(sm_arn, name)
    return started["executionArn"]


def _executions_by_drop(sfn_client: Any, sm_arn: str) -> dict[str, list[dict[str, Any]]]:
    """drop_id -> its executions, recognised by name: 'drop_id' or 'drop_id-rN'."""
    by_drop: dict[str, list[dict[str, Any]]] = {}
    for page in sfn_client.get_paginator("list_executions").paginate(stateMachineArn=sm_arn):
        for execution in page["executions"]:
            name = execution["name"]
            restart = _RESTART.match(name)
            by_drop.setdefault(name, []).append(execution)
            if restart:
                by_drop.setdefault(restart.group("drop"), []).append(execution)
    return by_drop


def _restart_number(drop_id: str, executions: Iterable[dict[str, Any]]) -> int:
    numbers = [0]
    for execution in executions:
        restart = _RESTART.match(execution["name"])
        if restart and restart.group("drop") == drop_id:
            numbers.append(int(restart.group("n")))
    return max(numbers) + 1


def reconcile(sfn_client: Any, sm_arn: str, drops: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Start an execution for every unfinished drop that has none RUNNING; return what was started."""
    by_drop = _executions_by_drop(sfn_client, sm_arn)
    started = []
    for drop in drops:
        drop_id, phase = drop["drop_id"], drop.get("phase")
        executions = by_drop.get(drop_id, [])
        if phase in FINISHED_PHASES or any(e["status"] == "RUNNING" for e in executions):
            continue
        name = f"{drop_id}-r{_restart_number(drop_id, executions)}" if executions else drop_id
        arn = start_drop_execution(sfn_client, sm_arn, drop_id, name=name)
        started.append({"drop_id": drop_id, "name": name, "execution_arn": arn})
    return started
