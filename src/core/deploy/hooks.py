"""CodeDeploy lifecycle hooks of the API function: smoke tests before traffic, traffic and alarms after.

CodeDeploy waits up to an hour for each hook's verdict (``put_lifecycle_event_hook_execution_status``) and
a deployment without one hangs, so both hooks report from a ``finally``: ``Failed`` whenever anything on
the way goes wrong (a configuration error, an invocation that raises, answers no JSON or a FunctionError,
time running out). Only a verdict that cannot be delivered raises: CodeDeploy invokes hooks
asynchronously, so Lambda's retry of the invocation gets another chance to deliver one.

Settings come from the environment the template gives each hook function (``HookConfig.from_env``);
every name is in ``ENVIRONMENT``.

Example:
    >>> pre_traffic({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"}, context)
    {'status': 'Succeeded', 'results': [...]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from core.aws import error_code
from core.deploy.smoke import Deadline, Invoke, default_smoke_dir, load_cases, run_cases, with_identity

logger = Logger(child=True)

Verdict = Literal["Succeeded", "Failed"]
SUCCEEDED: Verdict = "Succeeded"
FAILED: Verdict = "Failed"

# Environment variables the hook functions read (template.yaml sets them).
NEW_VERSION_ARN = "NEW_VERSION_ARN"
ALIAS_NAME = "ALIAS_NAME"
ALARM_NAMES = "ALARM_NAMES"
SMOKE_EVENTS_DIR = "SMOKE_EVENTS_DIR"
SMOKE_INVOKE_TIMEOUT_S = "SMOKE_INVOKE_TIMEOUT_S"
# What API Gateway would have added to each smoke event: the API key id and the host (core.deploy.smoke).
SMOKE_API_KEY_ID = "SMOKE_API_KEY_ID"
SMOKE_HOST = "SMOKE_HOST"
ENVIRONMENT = (
    NEW_VERSION_ARN,
    ALIAS_NAME,
    ALARM_NAMES,
    SMOKE_EVENTS_DIR,
    SMOKE_INVOKE_TIMEOUT_S,
    SMOKE_API_KEY_ID,
    SMOKE_HOST,
)

# Longest a smoke invocation may take: the API function's 29 s timeout plus a cold init (a SnapStart
# restore, or a full init of ~10 s). botocore's read timeout is set to it, with no retry.
DEFAULT_INVOKE_TIMEOUT_S = 45.0
# Kept free at the end of the hook's own timeout to deliver the verdict (the report call's worst case:
# 2 attempts of 2 s connect + 3 s read, with backoff).
REPORT_MARGIN_S = 12.0
_REPORT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})
_READ_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})


class HookEventError(ValueError):
    """The event is not a CodeDeploy lifecycle hook event: there is nothing to report a verdict to."""


@dataclass(frozen=True)
class HookConfig:
    """What a hook is told by its environment."""

    new_version_arn: str
    alias_name: str = "live"
    alarm_names: tuple[str, ...] = ()
    smoke_dir: Path = field(default_factory=default_smoke_dir)
    invoke_timeout_s: float = DEFAULT_INVOKE_TIMEOUT_S
    smoke_api_key_id: str | None = None
    smoke_host: str | None = None

    def __post_init__(self) -> None:
        parts = self.new_version_arn.split(":")
        if len(parts) != 8 or parts[2] != "lambda" or parts[5] != "function" or not parts[7].isdigit():
            raise ValueError(f"{NEW_VERSION_ARN} must be a published version's ARN, got {self.new_version_arn!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HookConfig:
        """Read the hook's settings from the environment.

        Raises:
            ValueError: ``NEW_VERSION_ARN`` is missing or not a version ARN.
        """
        env = os.environ if environ is None else environ
        smoke_dir = env.get(SMOKE_EVENTS_DIR)
        return cls(
            new_version_arn=env.get(NEW_VERSION_ARN, ""),
            alias_name=env.get(ALIAS_NAME) or "live",
            alarm_names=tuple(n.strip() for n in env.get(ALARM_NAMES, "").split(",") if n.strip()),
            smoke_dir=Path(smoke_dir) if smoke_dir else default_smoke_dir(),
            invoke_timeout_s=float(env.get(SMOKE_INVOKE_TIMEOUT_S) or DEFAULT_INVOKE_TIMEOUT_S),
            smoke_api_key_id=env.get(SMOKE_API_KEY_ID) or None,
            smoke_host=env.get(SMOKE_HOST) or None,
        )

    @property
    def function_arn(self) -> str:
        """The function's unqualified ARN."""
        return self.new_version_arn.rsplit(":", 1)[0]

    @property
    def version(self) -> str:
        """The new version's number."""
        return self.new_version_arn.rsplit(":", 1)[1]


def _execution(event: Mapping[str, Any]) -> tuple[str, str]:
    deployment_id = event.get("DeploymentId") if isinstance(event, Mapping) else None
    execution_id = event.get("LifecycleEventHookExecutionId") if isinstance(event, Mapping) else None
    if not deployment_id or not execution_id:
        raise HookEventError("not a CodeDeploy hook event: DeploymentId and LifecycleEventHookExecutionId expected")
    return deployment_id, execution_id


def report(codedeploy: Any, execution: tuple[str, str], status: Verdict) -> None:
    """Tell CodeDeploy the verdict of one hook execution.

    A verdict CodeDeploy already has (a retried invocation) is not an error.

    Raises:
        botocore.exceptions.ClientError: CodeDeploy refused it for another reason.
    """
    deployment_id, execution_id = execution
    try:
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
        )
    except ClientError as exc:
        if error_code(exc) != "LifecycleEventAlreadyCompletedException":
            raise
        logger.warning("verdict already delivered", extra={"deployment_id": deployment_id})
        return
    logger.info("verdict delivered", extra={"deployment_id": deployment_id, "status": status})


def codedeploy_client() -> Any:
    """The CodeDeploy client the verdicts go through (short timeouts: the report has a fixed margin)."""
    return boto3.client("codedeploy", config=_REPORT_CONFIG)


def invoke_config(timeout_s: float) -> Config:
    """Client settings (botocore) of the smoke invocations: one attempt, an answer within ``timeout_s``."""
    return Config(connect_timeout=5, read_timeout=timeout_s, retries={"mode": "standard", "total_max_attempts": 1})


def lambda_invoker(version_arn: str, timeout_s: float, client: Any = None) -> Invoke:
    """An ``Invoke`` that calls ``version_arn`` synchronously, once, bounded by ``timeout_s``."""
    lambda_client = client or boto3.client("lambda", config=invoke_config(timeout_s))

    def invoke(event: dict[str, Any], _timeout_s: float) -> Mapping[str, Any]:
        return lambda_client.invoke(
            FunctionName=version_arn,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )

    return invoke


def pre_traffic(
    event: Mapping[str, Any],
    context: Any,
    *,
    codedeploy: Any = None,
    invoke: Invoke | None = None,
    config: HookConfig | None = None,
    margin_s: float = REPORT_MARGIN_S,
) -> dict[str, Any]:
    """BeforeAllowTraffic: invoke the new version with every smoke event; Succeeded only if all pass.

    ``codedeploy``, ``invoke`` and ``config`` default to real clients and the environment; tests pass
    their own. The verdict is reported whatever happens before it.

    Raises:
        HookEventError: The event names no hook execution (nothing to report to).
    """
    execution = _execution(event)
    codedeploy = codedeploy or codedeploy_client()
    status, results = FAILED, []
    try:
        deadline = Deadline.from_context(context, margin_s)
        config = config or HookConfig.from_env()
        cases = with_identity(load_cases(config.smoke_dir), config.smoke_api_key_id, config.smoke_host)
        invoke = invoke or lambda_invoker(config.new_version_arn, config.invoke_timeout_s)
        logger.info("smoke tests", extra={"version": config.new_version_arn, "cases": len(cases)})
        results = [r.as_dict() for r in run_cases(cases, invoke, deadline, config.invoke_timeout_s)]
        for result in results:
            (logger.info if result["ok"] else logger.error)("smoke result", extra=result)
        status = SUCCEEDED if results and all(r["ok"] for r in results) else FAILED
    except Exception:
        logger.exception("PreTraffic hook failed before its verdict")
    finally:
        report(codedeploy, execution, status)
    return {"status": status, "results": results}


def alias_problems(lambda_client: Any, function_arn: str, alias: str, version: str) -> list[str]:
    """Why ``alias`` does not send all traffic to ``version`` (empty when it does)."""
    current = lambda_client.get_alias(FunctionName=function_arn, Name=alias)
    problems = []
    if current.get("FunctionVersion") != version:
        problems.append(f"alias {alias} points at version {current.get('FunctionVersion')}, expected {version}")
    weights = (current.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights:
        problems.append(f"alias {alias} still routes part of the traffic elsewhere: {weights}")
    return problems


def alarm_problems(cloudwatch: Any, names: tuple[str, ...]) -> list[str]:
    """Alarms among ``names`` in ALARM or missing (empty when all are OK or have too little data)."""
    if not names:
        return []
    found = cloudwatch.describe_alarms(AlarmNames=list(names), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    states = {a["AlarmName"]: a["StateValue"] for a in [*found["MetricAlarms"], *found.get("CompositeAlarms", [])]}
    problems = [f"alarm {name} does not exist" for name in names if name not in states]
    problems += [f"alarm {name} is in ALARM" for name, state in states.items() if state == "ALARM"]
    return problems


def post_traffic(
    event: Mapping[str, Any],
    context: Any,
    *,
    codedeploy: Any = None,
    lambda_client: Any = None,
    cloudwatch: Any = None,
    config: HookConfig | None = None,
) -> dict[str, Any]:
    """AfterAllowTraffic: the alias serves only the new version and none of its alarms is in ALARM.

    Raises:
        HookEventError: The event names no hook execution (nothing to report to).
    """
    execution = _execution(event)
    codedeploy = codedeploy or codedeploy_client()
    status, problems = FAILED, []
    try:
        config = config or HookConfig.from_env()
        lambda_client = lambda_client or boto3.client("lambda", config=_READ_CONFIG)
        cloudwatch = cloudwatch or boto3.client("cloudwatch", config=_READ_CONFIG)
        problems = alias_problems(lambda_client, config.function_arn, config.alias_name, config.version)
        problems += alarm_problems(cloudwatch, config.alarm_names)
        for problem in problems:
            logger.error("post-traffic check failed", extra={"problem": problem})
        status = FAILED if problems else SUCCEEDED
    except Exception as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
        logger.exception("PostTraffic hook failed before its verdict")
    finally:
        report(codedeploy, execution, status)
    return {"status": status, "problems": problems}
