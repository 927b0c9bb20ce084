"""CodeDeploy lifecycle hooks of ApiFunction (template.yaml: CodeDeployHookPreTraffic, CodeDeployHookPostTraffic).

PreTraffic invokes the new version with every event in ``events/smoke/`` before any traffic reaches it;
PostTraffic checks that the alias serves only the new version and that its alarms are quiet. Both always
report a verdict to CodeDeploy; the logic, and why, is in ``core.deploy.hooks``. AWS clients are made per
invocation: a hook runs a handful of times per deployment, and nothing is built at import.
"""

from typing import Any

from aws_lambda_powertools import Logger

from core.deploy import hooks

logger = Logger()


@logger.inject_lambda_context
def pre_traffic(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """BeforeAllowTraffic: smoke-test the version in ``NEW_VERSION_ARN``."""
    return hooks.pre_traffic(event, context)


@logger.inject_lambda_context
def post_traffic(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AfterAllowTraffic: the alias in ``ALIAS_NAME`` on that version, the alarms in ``ALARM_NAMES`` not in ALARM."""
    return hooks.post_traffic(event, context)
