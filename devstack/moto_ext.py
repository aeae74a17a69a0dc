"""Pinned moto 5.2.5 extension: in-process Lambda dispatch and one executing Step Functions store."""

import datetime
import importlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import moto

REQUIRED_MOTO_VERSION = "5.2.5"
HANDLERS_ENV = "DEVSTACK_LAMBDA_HANDLERS"

if moto.__version__ != REQUIRED_MOTO_VERSION:
    raise RuntimeError(
        f"devstack.moto_ext patches moto internals and is pinned to moto=={REQUIRED_MOTO_VERSION}; "
        f"found moto=={moto.__version__}. Re-check moto/awslambda and moto/stepfunctions before bumping."
    )

# Imported after the version check on purpose: these are private moto modules.
from moto.awslambda.models import LambdaBackend  # noqa: E402
from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402
from moto.stepfunctions import models as sfn_models  # noqa: E402
from moto.stepfunctions.parser import models as sfn_parser_models  # noqa: E402
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (  # noqa: E402
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import (  # noqa: E402
    Timestamp,
)

LOG = logging.getLogger(__name__)
_installed = False


class LambdaContext:
    """The subset of the AWS Lambda context object our handlers may read."""

    def __init__(self, function_name: str, function_arn: str, timeout_s: int = 900):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "devstack"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class ExecutingStepFunctionsBackend(sfn_parser_models.StepFunctionsParserBackend):
    """moto's executing (parser) backend, served on moto.stepfunctions' URLs."""

    @property
    def _url_module(self) -> Any:
        # BaseBackend derives the URL module from the class's module (moto/core/base_backend.py).
        return importlib.import_module("moto.stepfunctions.urls")


def load_registry() -> dict[str, str]:
    """Parse DEVSTACK_LAMBDA_HANDLERS: {"function-name": "module.path:callable"}."""
    registry = json.loads(os.environ.get(HANDLERS_ENV) or "{}")
    if not isinstance(registry, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in registry.items()
    ):
        raise ValueError(f"{HANDLERS_ENV} must be a JSON object of strings")
    return registry


def function_name_from(name_or_arn: str) -> str:
    """'NAME', 'NAME:qualifier', 'acct:function:NAME' or a full ARN -> 'NAME'."""
    if "function:" in name_or_arn:
        name_or_arn = name_or_arn.split("function:", 1)[1]
    return name_or_arn.split(":", 1)[0]


def import_callable(spec: str) -> Callable[[Any, Any], Any]:
    """'pkg.mod:attr' (registry form) or 'pkg.mod.attr' (Lambda Handler form) -> callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def _resolve(backend: LambdaBackend, name: str) -> Callable[[Any, Any], Any]:
    spec = load_registry().get(name)
    if spec is None:
        # Raises moto's ResourceNotFoundException for unknown functions.
        spec = backend.get_function(name, None).handler
    return import_callable(spec)


def run_handler(handler: Callable[[Any, Any], Any], event: Any, context: LambdaContext) -> tuple[bytes, bool]:
    """Call handler like Lambda; return (payload, errored)."""
    try:
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - the Lambda runtime boundary reports any error
        LOG.exception("devstack lambda %s raised", context.function_name)
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        return json.dumps(error).encode(), True
    try:
        return json.dumps(result).encode(), False
    except (TypeError, ValueError) as exc:
        error = {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}
        return json.dumps(error).encode(), True


def _invoke(
    self: LambdaBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: dict[str, str],
) -> bytes:
    """Replacement for LambdaBackend.invoke (moto/awslambda/models.py) dispatching in-process."""
    name = function_name_from(function_name)
    handler = _resolve(self, name)
    raw = body.decode() if isinstance(body, bytes) else body
    event = json.loads(raw) if raw else {}
    arn = f"arn:aws:lambda:{self.region_name}:{self.account_id}:function:{name}"
    context = LambdaContext(name, arn)
    invocation_type = (headers or {}).get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        threading.Thread(target=run_handler, args=(handler, event, context), daemon=True).start()
        return b""
    payload, errored = run_handler(handler, event, context)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["Content-Length"] = str(len(payload))
    return payload


def _timestamp_wait_seconds(self: Timestamp, env: Any) -> int:
    """Replacement for Timestamp._get_wait_seconds: UTC and rounded up, so a Wait never ends early.

    moto compares the 'Z' timestamp with naive local datetime.now() and floors the delta
    (moto/stepfunctions/parser/asl/component/state/wait/wait_function/timestamp.py).
    """
    self.string.eval(env=env)
    timestamp_str: str = env.stack.pop()
    if self._from_timestamp_string(timestamp=timestamp_str) is None:  # moto's format check
        raise FailureEventException(self._create_failure_event(env, timestamp_str))
    due = datetime.datetime.fromisoformat(timestamp_str)
    delta = due - datetime.datetime.now(datetime.timezone.utc)
    return max(0, math.ceil(delta.total_seconds()))


def install() -> None:
    """Patch moto in this process; call before the server handles its first request."""
    global _installed
    if _installed:
        return
    load_registry()  # fail at start-up, not at first invoke, on a malformed registry
    LambdaBackend.invoke = _invoke  # type: ignore[method-assign]
    LambdaSimpleBackend.invoke = _invoke  # type: ignore[method-assign]
    Timestamp._get_wait_seconds = _timestamp_wait_seconds  # type: ignore[method-assign]
    # One Step Functions store whose executions run, whatever the execute_state_machine
    # flag says and whoever creates the machine (API, CloudFormation): see
    # moto/stepfunctions/responses.py:get_backend and moto/stepfunctions/models.py.
    backends = sfn_models.stepfunctions_backends
    if len(backends):
        raise RuntimeError("devstack.moto_ext.install() must run before Step Functions is used")
    backends.backend = ExecutingStepFunctionsBackend
    sfn_parser_models.stepfunctions_parser_backends = backends
    _installed = True
